//! The console's own API: the overview it polls (network strip, open incidents with live depth and triage state,
//! Users in trouble) and operator triage of one incident (acknowledge, notes, suspect judgements), stored and
//! audited by the store. Writes need an ops token; reads follow the incident API's visibility rules.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;
use serde_json::Value;

use super::nearby;
use crate::http::api_error::{ApiError, store_error};
use crate::http::auth::{confined_to, may_see_incident, principal, require_ops, visible_incident};
use crate::http::state::AppState;
use crate::http::users_api::UserView;
use crate::store::{Judgement, Triage, TriageRequest};
use stormwatch_core::report::IncidentRecord;
use stormwatch_core::telemetry::Eui64;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/console/overview", get(overview))
        .route("/api/v1/incidents/{id}/triage", get(show_triage))
        .route("/api/v1/incidents/{id}/acknowledge", post(acknowledge))
        .route("/api/v1/incidents/{id}/notes", post(add_note))
        .route(
            "/api/v1/incidents/{id}/suspects/{change}",
            post(judge_suspect),
        )
        .route(
            "/api/v1/incidents/{id}/nearby-changes",
            get(nearby::nearby_changes),
        )
}

#[derive(Serialize)]
struct Network {
    users: usize,
    users_in_trouble: usize,
    open_incidents: usize,
    /// Sums over the Users of their 10-second mean rates, per second.
    requests_per_s: f64,
    queued_per_s: f64,
    delivered_per_s: f64,
    /// Messages waiting, over all Users.
    depth: u64,
}

/// A network rate: the sum to one decimal. A float sum of nothing is -0.0, which the console showed as
/// "-0.0/s" on a fresh service; adding 0.0 makes it 0.0.
fn rounded_sum(rates: impl Iterator<Item = f64>) -> f64 {
    (rates.sum::<f64>() * 10.0).round() / 10.0 + 0.0
}

/// An open incident as the overview lists it.
#[derive(Serialize)]
struct OverviewIncident {
    #[serde(flatten)]
    record: IncidentRecord,
    /// Messages waiting now for the incident's Users (summed for a `*` incident).
    depth_now: u64,
    acknowledged: Option<Value>,
    notes: usize,
    /// Standing judgements by change id.
    judgements: serde_json::Map<String, Value>,
}

/// `GET /api/v1/console/overview`: one cheap call for everything the overview shows, from the engine's state
/// published at its last tick (so depths and peaks are at most a second old) and the store's triage. A User token sees only its own User.
async fn overview(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    let who = principal(&state.store, &headers).await?;
    let only = confined_to(&who)?;
    // The engine's state as of its last tick: the overview never waits on the engine thread.
    let published = state.published.load();
    let (as_of, mut open) = (published.as_of, published.open.clone());
    let users: Vec<&UserView> = published
        .users
        .iter()
        .filter(|u| only.is_none_or(|o| Eui64::parse(&u.user) == Some(o)))
        .collect();
    open.retain(|record| may_see_incident(&who, record).is_ok());
    open.sort_by(|a, b| b.onset.cmp(&a.onset).then_with(|| a.id.cmp(&b.id)));
    let in_open = |user: &str| {
        open.iter()
            .any(|r| r.user == user || r.users.iter().any(|u| u == user))
    };
    let troubled: Vec<&UserView> = users
        .iter()
        .copied()
        .filter(|u| !u.anomalies.is_empty() || in_open(&u.user))
        .collect();
    let rate = |flow: &str| -> f64 {
        rounded_sum(
            users
                .iter()
                .flat_map(|u| &u.flows)
                .filter(|f| f.flow == flow)
                .map(|f| f.rate),
        )
    };
    let network = Network {
        users: users.len(),
        users_in_trouble: troubled.len(),
        open_incidents: open.len(),
        requests_per_s: rate("requests"),
        queued_per_s: rate("queued_responses") + rate("queued_alerts"),
        delivered_per_s: rate("delivered"),
        depth: users.iter().map(|u| u.depth).sum(),
    };
    let ids = open.iter().map(|r| r.id.clone()).collect();
    let triages = state
        .store
        .incident_triages_async(ids)
        .await
        .map_err(store_error)?;
    let depth_of = |user: &str| users.iter().find(|u| u.user == user).map_or(0, |u| u.depth);
    let incidents: Vec<OverviewIncident> = open
        .iter()
        .zip(triages)
        .map(|(record, triage)| OverviewIncident {
            depth_now: if record.user == "*" {
                record.users.iter().map(|u| depth_of(u)).sum()
            } else {
                depth_of(&record.user)
            },
            acknowledged: triage
                .acknowledged
                .as_ref()
                .and_then(|a| serde_json::to_value(a).ok()),
            notes: triage.notes.len(),
            judgements: standing(&triage),
            record: record.clone(),
        })
        .collect();
    Ok(Json(serde_json::json!({
        "who": { "name": who.name, "role": who.role.to_string(), "user": who.user.map(|u| u.to_string()) },
        "as_of": as_of,
        "network": network,
        "incidents": incidents,
        "users_in_trouble": troubled,
    }))
    .into_response())
}

fn standing(triage: &Triage) -> serde_json::Map<String, Value> {
    triage
        .judgements
        .iter()
        .filter_map(|j| Some((j.change.clone()?, j.judgement?.as_str().into())))
        .collect()
}

async fn show_triage(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let who = principal(&state.store, &headers).await?;
    visible_incident(&state, &who, &id).await?;
    let triage = state
        .store
        .incident_triage_async(id)
        .await
        .map_err(store_error)?;
    Ok(Json(triage).into_response())
}

/// The body's JSON object; an empty body counts as `{}` (acknowledging needs nothing more).
fn object(body: &Bytes) -> Result<serde_json::Map<String, Value>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(serde_json::Map::new());
    }
    match serde_json::from_slice(body) {
        Ok(Value::Object(object)) => Ok(object),
        Ok(_) => Err(ApiError::invalid("expected a JSON object")),
        Err(error) => Err(ApiError::invalid(format!("body is not JSON: {error}"))),
    }
}

/// An optional string field of the body.
fn text_field(object: &serde_json::Map<String, Value>, field: &str) -> Result<String, ApiError> {
    match object.get(field) {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(text)) => Ok(text.clone()),
        Some(_) => Err(ApiError::Invalid {
            field: Some(field.into()),
            index: None,
            reason: format!("`{field}` must be a string"),
        }),
    }
}

/// Runs one triage request for an ops caller: 201 with the triage when something was written, 200 when it was
/// already so.
async fn triage(
    state: AppState,
    headers: HeaderMap,
    id: String,
    request: impl FnOnce() -> Result<TriageRequest, ApiError>,
) -> Result<Response, ApiError> {
    let who = principal(&state.store, &headers).await?;
    require_ops(&who)?;
    let request = request()?;
    let outcome = state
        .store
        .triage_incident_async(id, request, who.name)
        .await
        .map_err(store_error)?;
    let status = if outcome.written {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(outcome.triage)).into_response())
}

/// `POST /api/v1/incidents/{id}/acknowledge`, body `{}` or `{"text": "..."}`.
async fn acknowledge(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    triage(state, headers, id, || {
        Ok(TriageRequest::Acknowledge {
            text: text_field(&object(&body)?, "text")?,
        })
    })
    .await
}

/// `POST /api/v1/incidents/{id}/notes`, body `{"text": "..."}`.
async fn add_note(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    triage(state, headers, id, || {
        Ok(TriageRequest::Note {
            text: text_field(&object(&body)?, "text")?,
        })
    })
    .await
}

/// `POST /api/v1/incidents/{id}/suspects/{change}`, body `{"judgement": "confirmed" | "rejected" | "undecided",
/// "text": "..."}`.
async fn judge_suspect(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((id, change)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, ApiError> {
    triage(state, headers, id, || {
        let object = object(&body)?;
        let named = text_field(&object, "judgement")?;
        let judgement = Judgement::parse(&named).ok_or_else(|| ApiError::Invalid {
            field: Some("judgement".into()),
            index: None,
            reason: format!("`{named}` is not one of confirmed, rejected, undecided"),
        })?;
        Ok(TriageRequest::Suspect {
            change,
            judgement,
            text: text_field(&object, "text")?,
        })
    })
    .await
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_network_rate_over_no_users_is_zero_not_minus_zero() {
        let none = super::rounded_sum(std::iter::empty());
        assert_eq!(serde_json::json!(none).to_string(), "0.0");
        assert_eq!(super::rounded_sum([0.04, 1.26].into_iter()), 1.3);
    }
}
