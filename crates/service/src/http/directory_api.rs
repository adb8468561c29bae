//! The User directory over HTTP: list and show entries (a `user` token sees only its own), and put or delete
//! one with an ops token. Each write is audited in the store, updates the names every view shows, and, when a
//! directory file is loaded, the engine's allow-list.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;

use crate::engine::EngineInput;
use crate::http::api_error::{ApiError, store_error};
use crate::http::auth::{confined_to, may_see_user, principal, require_ops};
use crate::http::state::AppState;
use crate::user_directory::{PartyRole, checked};
use stormwatch_core::telemetry::Eui64;

pub fn routes() -> Router<AppState> {
    Router::new().route("/api/v1/directory", get(list)).route(
        "/api/v1/directory/{user}",
        get(show).put(put).delete(delete),
    )
}

fn parse_user(text: &str) -> Result<Eui64, ApiError> {
    Eui64::parse(text).ok_or_else(|| ApiError::Invalid {
        field: Some("user".into()),
        index: None,
        reason: format!("`{text}` is not an EUI-64"),
    })
}

async fn list(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
    crate::http::query::ApiQuery(paging): crate::http::query::ApiQuery<crate::http::page::Paging>,
) -> Result<Response, ApiError> {
    let page = paging.standard()?;
    let who = principal(&state.store, &headers).await?;
    let own = confined_to(&who)?;
    let (next, entries) = page.cut(
        state
            .names
            .entries()
            .into_iter()
            .filter(|entry| own.is_none_or(|user| entry.user == user)),
    );
    Ok((next, Json(entries)).into_response())
}

async fn show(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
    Path(user): Path<String>,
) -> Result<Response, ApiError> {
    let who = principal(&state.store, &headers).await?;
    may_see_user(&who, &user)?;
    let user = parse_user(&user)?;
    let entry = state
        .names
        .get(&user)
        .ok_or_else(|| ApiError::NotFound(format!("User {user} is not in the directory")))?;
    let mut body = serde_json::to_value(&entry).unwrap_or_default();
    // Who edited the entry, and when, is for operators; a User sees only its own listing.
    if confined_to(&who)?.is_none() {
        let audit = state
            .store
            .directory_audit_async(user)
            .await
            .map_err(store_error)?;
        body["audit"] = serde_json::to_value(audit).unwrap_or_default();
    }
    Ok(Json(body).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PutBody {
    name: String,
    #[serde(default)]
    role: Option<String>,
}

async fn put(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
    Path(user): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let who = principal(&state.store, &headers).await?;
    require_ops(&who)?;
    let user = parse_user(&user)?;
    let body: PutBody = serde_json::from_slice(&body).map_err(|error| {
        ApiError::invalid(format!("the body is not a directory entry: {error}"))
    })?;
    let role = match body.role.as_deref() {
        None | Some("") => None,
        Some(text) => Some(PartyRole::parse(text).ok_or_else(|| ApiError::Invalid {
            field: Some("role".into()),
            index: None,
            reason: format!("`{text}` is not supplier, network_operator or other_user"),
        })?),
    };
    let entry = checked(user, &body.name, role).map_err(|reason| ApiError::Invalid {
        field: Some("name".into()),
        index: None,
        reason,
    })?;
    if entry.name.is_empty() {
        return Err(ApiError::Invalid {
            field: Some("name".into()),
            index: None,
            reason: "a directory entry needs a name".into(),
        });
    }
    let changed = write(&state, user, Some(entry.clone()), &who.name).await?;
    Ok(Json(serde_json::json!({"entry": entry, "changed": changed})).into_response())
}

async fn delete(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
    Path(user): Path<String>,
) -> Result<Response, ApiError> {
    let who = principal(&state.store, &headers).await?;
    require_ops(&who)?;
    let user = parse_user(&user)?;
    if state.names.get(&user).is_none() {
        return Err(ApiError::NotFound(format!(
            "User {user} is not in the directory"
        )));
    }
    write(&state, user, None, &who.name).await?;
    Ok(Json(serde_json::json!({"deleted": user})).into_response())
}

/// Stores the edit first (so a failed write changes nothing anyone sees), then the shared names, then the
/// engine's allow-list.
async fn write(
    state: &AppState,
    user: Eui64,
    entry: Option<crate::user_directory::Entry>,
    actor: &str,
) -> Result<bool, ApiError> {
    let before = state.names.get(&user);
    let changed = state
        .store
        .put_directory_async(user, entry.clone(), before, actor.to_owned())
        .await
        .map_err(store_error)?;
    let allow_list = state.names.set(user, entry);
    if allow_list.is_some() {
        // The engine queue is bounded: wait off the async workers, like every other engine message.
        let engine = state.engine.clone();
        let sent = tokio::task::spawn_blocking(move || {
            engine.send(EngineInput::SetDirectory(allow_list)).is_ok()
        })
        .await
        .map_err(|_| ApiError::EngineGone)?;
        if !sent {
            return Err(ApiError::EngineGone);
        }
    }
    Ok(changed)
}
