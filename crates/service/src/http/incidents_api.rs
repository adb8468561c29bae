//! Incidents over HTTP: the stored list with filters, and one incident in full with its Users' chart for its whole
//! life (stored, see incident_series.rs) and the seconds since it was last saved (from the engine's windows).

use crate::http::query::ApiQuery;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;

use crate::engine::incident_series::{BEFORE_ONSET_S, IncidentSeries, MAX_USERS, SeriesPoint};
use crate::http::api_error::ApiError;
use crate::http::auth::{confined_to, list_scope, principal};
use crate::http::query::time_window;
use crate::http::state::AppState;
use crate::published::EngineView;
use crate::store::IncidentFilter;
use stormwatch_core::incident::IncidentKind;
use stormwatch_core::report::IncidentRecord;
use stormwatch_core::telemetry::Eui64;

/// A closed incident's live tail (before its chart is stored) stops this long after it resolved.
const SERIES_AFTER_RESOLVED_S: i64 = 300;

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
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Response, ApiError> {
    let who = principal(&state.store, &headers).await?;
    // `user=*`: network-wide incidents only (for a User token, those listing its own User).
    let network_only = query.user.as_deref() == Some("*");
    let asked = query.user.as_deref().filter(|_| !network_only);
    let user = list_scope(
        &who,
        asked,
        Eui64::parse,
        "an EUI-64 or `*` (network-wide incidents)",
        |own| own,
    )?;
    let (from_ms, to_ms) = time_window(query.from.as_deref(), query.to.as_deref())?;
    let filter = IncidentFilter {
        open: query.open,
        user,
        network_only,
        kind: query.kind,
        from_ms,
        to_ms,
    };
    let incidents: Vec<serde_json::Value> = state
        .store
        .list_incidents_async(filter)
        .await?
        .into_iter()
        .map(|i| named(&state.names, &i.record))
        .collect();
    Ok(Json(incidents).into_response())
}

/// The record as JSON with the User directory's names beside the IDs: `user_name` for the User, and
/// `user_names` (EUI-64 -> name) for a network-wide incident's Users that the directory names.
fn named(names: &crate::user_directory::Names, record: &IncidentRecord) -> serde_json::Value {
    let mut body = serde_json::to_value(record).unwrap_or_default();
    if let Some(label) = names.label(&record.user) {
        body["user_name"] = label.into();
    }
    let each: serde_json::Map<String, serde_json::Value> = record
        .users
        .iter()
        .filter_map(|user| names.label(user).map(|label| (user.clone(), label.into())))
        .collect();
    if !each.is_empty() {
        body["user_names"] = each.into();
    }
    body
}

/// The seconds of `user` the engine's window still holds from `from_s` (or around the onset when nothing is
/// stored yet) to the last closed one: the live tail of the stored chart. Read from the window itself, which
/// the engine publishes and goes on writing: lock-free, without asking the engine thread.
fn window_points(view: &EngineView, user: Eui64, from_s: i64) -> Vec<SeriesPoint> {
    let Some(window) = view.window(user) else {
        return Vec::new();
    };
    let Some(last_closed) = window.closed_through() else {
        return Vec::new();
    };
    let oldest_held = last_closed - stormwatch_core::engine::window::RING_SECONDS as i64 + 1;
    (from_s.max(oldest_held)..=last_closed)
        .map(|second| SeriesPoint::of_second(second, &window.read(second)))
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
            .take(MAX_USERS)
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
    // The stored chart covers the incident's life; the engine's window adds the seconds since it was saved.
    let saved: Option<IncidentSeries> = state
        .store
        .get_series_async(id.clone())
        .await?
        .and_then(|text| serde_json::from_str(&text).ok());
    let first = record.onset.div_euclid(1000) - BEFORE_ONSET_S;
    let last = match record.resolved {
        Some(resolved) => resolved.div_euclid(1000) + SERIES_AFTER_RESOLVED_S,
        None => i64::MAX,
    };
    let charts: Vec<(Eui64, Vec<SeriesPoint>, i64)> = users
        .iter()
        .map(|&user| {
            let chart = saved
                .as_ref()
                .and_then(|s| s.users.iter().find(|u| u.user == user.to_string()));
            let points = saved
                .as_ref()
                .and_then(|s| s.charts().into_iter().find(|(u, _)| *u == user.to_string()))
                .map(|(_, points)| points)
                .unwrap_or_default();
            (user, points, chart.map_or(first, |c| c.next_second))
        })
        .collect();
    let published = state.published.load();
    let series: Vec<serde_json::Value> = charts
        .into_iter()
        .map(|(user, mut points, next)| {
            points.extend(
                window_points(&published, user, next)
                    .into_iter()
                    .filter(|p| p.ts.div_euclid(1000) <= last),
            );
            serde_json::json!({ "user": user.to_string(), "points": points })
        })
        .collect();
    let mut body = named(&state.names, &record);
    body["series"] = serde_json::Value::Array(series);
    body["extra"] = stored.extra.unwrap_or(serde_json::Value::Null);
    Ok(Json(body).into_response())
}
