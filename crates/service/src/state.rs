//! What every HTTP handler shares: the application state (engine queue, store, metrics, readiness) and the one way
//! to ask the engine thread a question.

use std::sync::Arc;

use crossbeam::channel::Sender;
use metrics_exporter_prometheus::PrometheusHandle;

use crate::api_error::ApiError;
use crate::engine_loop::EngineInput;
use crate::malformed::MalformedLog;
use crate::store::Store;
use stormwatch_core::changes::{CoordinationConfig, CorrelatorConfig};
use stormwatch_core::engine::Engine;

#[derive(Clone)]
pub struct AppState {
    pub engine: Sender<EngineInput>,
    pub store: Store,
    pub metrics: PrometheusHandle,
    pub health: Arc<crate::health::Health>,
    /// The engine's correlator settings, to judge stored incidents against the register the same way.
    pub correlator: Arc<CorrelatorConfig>,
    /// Registration warnings' thresholds and the outcome window.
    pub coordination: Arc<CoordinationConfig>,
}

/// Runs `question` on the engine thread and returns its answer.
pub async fn ask<T: Send + 'static>(
    engine: &Sender<EngineInput>,
    question: impl FnOnce(&Engine, &MalformedLog) -> T + Send + 'static,
) -> Result<T, ApiError> {
    let (reply, answer) = tokio::sync::oneshot::channel();
    let query = Box::new(move |engine: &Engine, malformed: &MalformedLog| {
        let _ = reply.send(question(engine, malformed));
    });
    let engine = engine.clone();
    // A full engine queue blocks the send: do it off the async workers.
    tokio::task::spawn_blocking(move || engine.send(EngineInput::Query(query)).is_ok())
        .await
        .map_err(|_| ApiError::EngineGone)?
        .then_some(())
        .ok_or(ApiError::EngineGone)?;
    answer.await.map_err(|_| ApiError::EngineGone)
}
