//! Incidents over HTTP: the stored list with filters, and one incident in full with the per-second series of its
//! Users around the onset (from the engine's windows while they still hold it).

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::api_error::ApiError;
use super::auth::{confined_to, list_scope, principal};
use super::query::time_window;
use super::state::{AppState, ask};
use crate::store::IncidentFilter;
use stormwatch_core::engine::Engine;
use stormwatch_core::engine::window::Flow;
use stormwatch_core::incident::IncidentKind;
use stormwatch_core::report::IncidentRecord;
use stormwatch_core::telemetry::Eui64;

/// Seconds of series before and after the onset.
const SERIES_BEFORE_S: i64 = 120;
const SERIES_AFTER_S: i64 = 300;
/// A `*` incident shows the series of at most this many of its Users.
const SERIES_USERS: usize = 10;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/incidents", get(list))
        .route("/api/v1/incidents/{id}", get(show))
}

#[derive(Deserialize)]
struct ListQuery {
    open: Option<bool>,
    user: Option<String>,
    kind: Option<IncidentKind>,
    from: Option<String>,
    to: Option<String>,
}

async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<ListQuery>,
) -> Result<Response, ApiError> {
    let who = principal(&state.store, &headers).await?;
    let user = list_scope(
        &who,
        query.user.as_deref(),
        Eui64::parse,
        "an EUI-64",
        |own| own,
    )?;
    let (from_ms, to_ms) = time_window(query.from.as_deref(), query.to.as_deref())?;
    let filter = IncidentFilter {
        open: query.open,
        user,
        kind: query.kind,
        from_ms,
        to_ms,
    };
    let incidents: Vec<IncidentRecord> = state
        .store
        .list_incidents_async(filter)
        .await?
        .into_iter()
        .map(|i| i.record)
        .collect();
    Ok(Json(incidents).into_response())
}

/// One User's second as the incident page charts it.
#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct SeriesPoint {
    pub ts: i64,
    pub depth: u64,
    pub requests: u64,
    pub rejected: u64,
    pub queued_responses: u64,
    pub queued_alerts: u64,
    pub delivered: u64,
    pub delivery_failed: u64,
    pub expired: u64,
}

fn series(engine: &Engine, user: Eui64, onset_ms: i64) -> Vec<SeriesPoint> {
    let Some(state) = engine.users().iter().find(|u| u.id == user) else {
        return Vec::new();
    };
    let onset = onset_ms.div_euclid(1000);
    let last_closed = state.view.second;
    (onset - SERIES_BEFORE_S..=(onset + SERIES_AFTER_S).min(last_closed))
        .filter(|&second| {
            last_closed - second < stormwatch_core::engine::window::RING_SECONDS as i64
        })
        .map(|second| {
            let counts = state.window.read(second);
            SeriesPoint {
                ts: second * 1000,
                depth: counts.depth_end,
                requests: counts.get(Flow::Requests),
                rejected: counts.get(Flow::Rejected),
                queued_responses: counts.get(Flow::QueuedResponses),
                queued_alerts: counts.get(Flow::QueuedAlerts),
                delivered: counts.get(Flow::Delivered),
                delivery_failed: counts.get(Flow::Failed),
                expired: counts.get(Flow::Expired),
            }
        })
        .collect()
}

async fn show(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let who = principal(&state.store, &headers).await?;
    let stored = state
        .store
        .get_incident_async(id.clone())
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no incident `{id}`")))?;
    let record = stored.record;
    let users: Vec<Eui64> = if record.user == "*" {
        record
            .users
            .iter()
            .filter_map(|u| Eui64::parse(u))
            .take(SERIES_USERS)
            .collect()
    } else {
        Eui64::parse(&record.user).into_iter().collect()
    };
    if let Some(own) = confined_to(&who)?
        && !users.contains(&own)
    {
        return Err(ApiError::Forbidden(format!(
            "token `{}` is bound to User {own}; incident {id} is not about it",
            who.name
        )));
    }
    let onset = record.onset;
    let series = ask(&state, move |engine, _| {
        users.iter().map(|&u| serde_json::json!({ "user": u.to_string(), "points": series(engine, u, onset) })).collect::<Vec<_>>()
    })
    .await?;
    let mut body = serde_json::to_value(&record).map_err(|e| ApiError::invalid(e.to_string()))?;
    body["series"] = serde_json::Value::Array(series);
    body["extra"] = stored.extra.unwrap_or(serde_json::Value::Null);
    Ok(Json(body).into_response())
}
