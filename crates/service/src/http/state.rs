//! What every HTTP handler shares: the application state (engine queue, the engine's published state, store,
//! metrics, readiness) and the one way to ask the engine thread a question (for what it does not publish).

use std::sync::Arc;

use crossbeam::channel::Sender;
use metrics_exporter_prometheus::PrometheusHandle;

use crate::engine::EngineInput;
use crate::http::api_error::ApiError;
use crate::ingest::malformed::MalformedLog;
use crate::store::Store;
use stormwatch_core::changes::{CoordinationConfig, CorrelatorConfig};
use stormwatch_core::engine::Engine;

#[derive(Clone)]
pub struct AppState {
    pub engine: Sender<EngineInput>,
    /// The engine's per-User state as of its last tick: read this rather than `ask` where it suffices.
    pub published: Arc<crate::published::Published>,
    pub store: Store,
    pub metrics: PrometheusHandle,
    pub health: Arc<crate::health::Health>,
    /// The engine's correlator settings, to judge stored incidents against the register the same way.
    pub correlator: Arc<CorrelatorConfig>,
    /// Registration warnings' thresholds and the outcome window.
    pub coordination: Arc<CoordinationConfig>,
    /// The User directory: names and roles for every view, edited through the API.
    pub names: crate::user_directory::Names,
}

/// Runs `question` on the engine thread and returns its answer. A stuck engine gets a 503 after the stall limit
/// (`engine_stall_after_s`), rather than a request that hangs until the client gives up.
pub async fn ask<T: Send + 'static>(
    state: &AppState,
    question: impl FnOnce(&Engine, &MalformedLog) -> T + Send + 'static,
) -> Result<T, ApiError> {
    let (reply, answer) = tokio::sync::oneshot::channel();
    let query = Box::new(move |engine: &Engine, malformed: &MalformedLog| {
        let _ = reply.send(question(engine, malformed));
    });
    let engine = state.engine.clone();
    let patience = state.health.stall_after();
    let deadline = std::time::Instant::now() + patience;
    // A full engine queue blocks the send: do it off the async workers, and never for longer than the patience.
    // The outcome without the unsent query: `Some(true)` sent, `Some(false)` timed out, `None` engine gone.
    let sent = tokio::task::spawn_blocking(move || {
        match engine.send_deadline(EngineInput::Query(query), deadline) {
            Ok(()) => Some(true),
            Err(crossbeam::channel::SendTimeoutError::Timeout(_)) => Some(false),
            Err(crossbeam::channel::SendTimeoutError::Disconnected(_)) => None,
        }
    })
    .await
    .map_err(|_| ApiError::EngineGone)?;
    match sent {
        Some(true) => {}
        Some(false) => return Err(ApiError::EngineBusy(patience.as_secs())),
        None => return Err(ApiError::EngineGone),
    }
    let remaining = deadline.saturating_duration_since(std::time::Instant::now());
    match tokio::time::timeout(remaining, answer).await {
        Ok(answer) => answer.map_err(|_| ApiError::EngineGone),
        Err(_) => Err(ApiError::EngineBusy(patience.as_secs())),
    }
}
