//! The change register over HTTP: register (one notice or an array, all or nothing), list with filters, show
//! with its audit trail, and status updates. Every write re-runs correlation in the engine.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;

use super::api_error::ApiError;
use super::auth::{confined_to, list_scope, may_touch_change, principal};
use super::engine_loop::EngineInput;
use super::query::time_window;
use super::state::AppState;
use crate::store::{ChangeFilter, Principal, StoredChange};
use stormwatch_core::changes::{ChangeNotice, ChangeOwner, ChangeStatus};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/changes", post(register).get(list))
        .route("/api/v1/changes/{id}", get(show).delete(cancel))
        .route("/api/v1/changes/{id}/status", post(set_status))
}

/// Hands the store's register to the engine, which re-correlates every incident: a change registered late can
/// still become an open incident's top suspect.
pub async fn refresh_engine(state: &AppState) -> Result<(), ApiError> {
    let register = state.store.load_register_async().await?;
    let engine = state.engine.clone();
    tokio::task::spawn_blocking(move || engine.send(EngineInput::SetChanges(register)).is_ok())
        .await
        .map_err(|_| ApiError::EngineGone)?
        .then_some(())
        .ok_or(ApiError::EngineGone)
}

/// Notices registered from the command line (another connection to the store) reach the engine within two
/// seconds: the store's data version moves only on writes from other connections.
pub async fn follow_external_writes(state: AppState) {
    let mut seen = state.store.external_writes_async().await.ok();
    let mut every = tokio::time::interval(std::time::Duration::from_secs(2));
    loop {
        every.tick().await;
        let now = state.store.external_writes_async().await.ok();
        if now != seen {
            seen = now;
            match refresh_engine(&state).await {
                Ok(()) => tracing::info!("change register reloaded after an outside write"),
                Err(error) => tracing::warn!(%error, "cannot reload the change register"),
            }
        }
    }
}

async fn register(
    State(state): State<AppState>,
    headers: HeaderMap,
    Json(body): Json<serde_json::Value>,
) -> Result<Response, ApiError> {
    let who = principal(&state.store, &headers).await?;
    let (values, single) = match body {
        serde_json::Value::Array(values) => (values, false),
        other => (vec![other], true),
    };
    let mut notices = Vec::with_capacity(values.len());
    for (index, value) in values.iter().enumerate() {
        let notice = ChangeNotice::try_from(value).map_err(|e| ApiError::Invalid {
            field: Some(e.field.clone()),
            index: (!single).then_some(index),
            reason: e.to_string(),
        })?;
        may_touch_change(&who, &notice.owner)?;
        notices.push(notice);
    }
    let outcomes = state
        .store
        .upsert_changes_async(notices, who.name.clone())
        .await?;
    refresh_engine(&state).await?;
    let viewer = confined_to(&who)?.map(ChangeOwner::User);
    let answer = crate::coordination::registered(&state, outcomes, viewer).await?;
    Ok((StatusCode::CREATED, Json(answer)).into_response())
}

#[derive(Deserialize)]
struct ListQuery {
    user: Option<String>,
    from: Option<String>,
    to: Option<String>,
    status: Option<String>,
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
        ChangeOwner::parse,
        "an EUI-64 or DCC",
        ChangeOwner::User,
    )?;
    let status = query
        .status
        .as_deref()
        .map(|s| {
            ChangeStatus::parse(s)
                .ok_or_else(|| ApiError::field("status", format!("unknown status `{s}`")))
        })
        .transpose()?;
    let (from_ms, to_ms) = time_window(query.from.as_deref(), query.to.as_deref())?;
    let filter = ChangeFilter {
        user,
        from_ms,
        to_ms,
        status,
    };
    let changes: Vec<_> = state
        .store
        .list_changes_async(filter)
        .await?
        .into_iter()
        .map(|c| c.notice)
        .collect();
    Ok(Json(changes).into_response())
}

async fn show(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let who = principal(&state.store, &headers).await?;
    let stored = change_they_may_touch(&state, &who, &id).await?;
    let audit = state.store.change_audit_async(id).await?;
    let viewer = confined_to(&who)?.map(ChangeOwner::User);
    let warnings = crate::coordination::listed(&state, &stored.notice, viewer).await?;
    let outcome = crate::outcomes_api::outcome_of(&state, &stored.notice).await?;
    Ok(Json(serde_json::json!({
        "change": stored.notice,
        "warnings": warnings,
        "outcome": outcome,
        "created_ms": stored.created_ms,
        "updated_ms": stored.updated_ms,
        "audit": audit,
    }))
    .into_response())
}

/// The stored change `id`, if it exists and `who` may see and change it.
async fn change_they_may_touch(
    state: &AppState,
    who: &Principal,
    id: &str,
) -> Result<StoredChange, ApiError> {
    let stored = state
        .store
        .get_change_async(id.to_owned())
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no change `{id}`")))?;
    may_touch_change(who, &stored.notice.owner)?;
    Ok(stored)
}

#[derive(Deserialize)]
struct StatusBody {
    status: String,
}

async fn set_status(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Json(body): Json<StatusBody>,
) -> Result<Response, ApiError> {
    let status = ChangeStatus::parse(&body.status)
        .ok_or_else(|| ApiError::field("status", format!("unknown status `{}`", body.status)))?;
    update_status(state, headers, id, status).await
}

async fn cancel(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    update_status(state, headers, id, ChangeStatus::Cancelled).await
}

async fn update_status(
    state: AppState,
    headers: HeaderMap,
    id: String,
    status: ChangeStatus,
) -> Result<Response, ApiError> {
    let who = principal(&state.store, &headers).await?;
    change_they_may_touch(&state, &who, &id).await?;
    let changed = state
        .store
        .set_change_status_async(id, status, who.name.clone())
        .await?;
    refresh_engine(&state).await?;
    crate::coordination::refresh_gauge(&state).await;
    Ok(Json(serde_json::json!({ "change": changed.change.notice, "previous_status": changed.previous.as_str() })).into_response())
}
