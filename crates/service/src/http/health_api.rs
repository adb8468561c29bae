//! Operators' answers to readiness checks that only a person can clear: acknowledging that the engine started
//! without the state of a snapshot it could not read (`POST /api/v1/health/snapshot/acknowledge`, ops only).

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};

use crate::http::api_error::ApiError;
use crate::http::auth::{principal, require_ops};
use crate::http::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new().route(
        "/api/v1/health/snapshot/acknowledge",
        post(acknowledge_lost_snapshot),
    )
}

/// Clears the `snapshot_lost` check. Answers what was acknowledged; acknowledging when nothing is pending is not
/// an error (two operators may answer the same page).
async fn acknowledge_lost_snapshot(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
) -> Result<Response, ApiError> {
    let who = principal(&state.store, &headers).await?;
    require_ops(&who)?;
    // The store first: if it cannot forget the loss, a restart would bring the check back, so the check stays.
    let recorded = state.store.acknowledge_snapshot_loss_async().await?;
    let reason = state.health.snapshot_loss_acknowledged();
    let acknowledged = recorded || reason.is_some();
    match &reason {
        Some(reason) => tracing::warn!(
            token = %who.name,
            %reason,
            "the lost engine snapshot was acknowledged; ready again unless another check fails"
        ),
        None => {
            tracing::info!(token = %who.name, "snapshot acknowledgement with no lost snapshot pending")
        }
    }
    Ok(Json(serde_json::json!({
        "acknowledged": acknowledged,
        "reason": reason,
    }))
    .into_response())
}
