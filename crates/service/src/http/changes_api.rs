//! The change register over HTTP: register (one notice or an array, all or nothing; the fields given merge over a
//! stored notice with the same id, or `?replace=true` replaces it whole), list with filters, show with its audit
//! trail, and status updates. Every write re-runs correlation in the engine.

use crate::http::query::{ApiJson, ApiQuery};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;

use crate::engine::EngineInput;
use crate::http::api_error::{ApiError, store_error};
use crate::http::auth::{confined_to, list_scope, may_register_for, may_touch_stored, principal};
use crate::http::page::Paging;
use crate::http::query::time_window;
use crate::http::state::AppState;
use crate::store::{
    ChangeFilter, NoticeCheck, Principal, Registration, StoreError, StoredChange, Upsert,
};
use stormwatch_core::changes::{ChangeNotice, ChangeOwner, ChangeStatus};

/// Limits on a notice registered over HTTP (the contract sets none; these keep one request from filling the
/// store, the console or an alert). Lengths in characters.
pub const MAX_ID_CHARS: usize = 128;
pub const MAX_TITLE_CHARS: usize = 1_000;
pub const MAX_CONTACT_CHARS: usize = 500;
pub const MAX_SRVS: usize = 256;
pub const MAX_NOTICES_PER_REQUEST: usize = 10_000;

/// The first field of `notice` over its limit, with a sentence for the 400.
fn over_limit(notice: &ChangeNotice) -> Option<(&'static str, String)> {
    let chars = |text: &str, limit: usize, field: &'static str| {
        let length = text.chars().count();
        (length > limit).then(|| {
            (
                field,
                format!("is {length} characters long; at most {limit} are allowed"),
            )
        })
    };
    chars(&notice.id, MAX_ID_CHARS, "id")
        .or_else(|| chars(&notice.title, MAX_TITLE_CHARS, "title"))
        .or_else(|| {
            notice
                .contact
                .as_deref()
                .and_then(|contact| chars(contact, MAX_CONTACT_CHARS, "contact"))
        })
        .or_else(|| {
            (notice.srvs.len() > MAX_SRVS).then(|| {
                (
                    "srvs",
                    format!(
                        "lists {} SRVs; at most {MAX_SRVS} are allowed",
                        notice.srvs.len()
                    ),
                )
            })
        })
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/changes", post(register).get(list))
        .route("/api/v1/changes/{id}", get(show).delete(cancel))
        .route("/api/v1/changes/{id}/status", post(set_status))
}

/// Tells the engine the register moved; it re-correlates every incident, so a change registered late can still
/// become an open incident's top suspect.
async fn tell_engine(state: &AppState, input: EngineInput) -> Result<(), ApiError> {
    let engine = state.engine.clone();
    tokio::task::spawn_blocking(move || engine.send(input).is_ok())
        .await
        .map_err(|_| ApiError::EngineGone)?
        .then_some(())
        .ok_or(ApiError::EngineGone)
}

/// Hands the engine the notices an API write stored (only those: the engine's register is kept current by each
/// write, not replaced).
pub async fn refresh_engine(state: &AppState, written: Vec<ChangeNotice>) -> Result<(), ApiError> {
    if written.is_empty() {
        return Ok(());
    }
    tell_engine(state, EngineInput::UpsertChanges(written)).await
}

/// Notices registered from the command line (another connection to the store) reach the engine within two
/// seconds: the store re-reads its register only when its data version moved, which only writes from other
/// connections do.
pub async fn follow_external_writes(state: AppState) {
    let mut every = tokio::time::interval(std::time::Duration::from_secs(2));
    loop {
        every.tick().await;
        let reloaded = match state.store.sync_register_async().await {
            Ok(false) => continue,
            Ok(true) => match state.store.load_register_async().await {
                Ok(register) => tell_engine(&state, EngineInput::SetChanges(register)).await,
                Err(error) => Err(error.into()),
            },
            Err(error) => Err(error.into()),
        };
        crate::http::coordination::gauge_due();
        match reloaded {
            Ok(()) => tracing::info!("change register reloaded after an outside write"),
            Err(error) => tracing::warn!(%error, "cannot reload the change register"),
        }
    }
}

#[derive(Deserialize)]
struct RegisterQuery {
    /// `true`: each notice replaces the stored one with its id whole, as a full notice must; otherwise the
    /// fields given are merged over it.
    replace: Option<bool>,
}

async fn register(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiQuery(query): ApiQuery<RegisterQuery>,
    ApiJson(body): ApiJson<serde_json::Value>,
) -> Result<Response, ApiError> {
    let who = principal(&state.store, &headers).await?;
    let (values, single) = match body {
        serde_json::Value::Array(values) => (values, false),
        other => (vec![other], true),
    };
    if values.len() > MAX_NOTICES_PER_REQUEST {
        return Err(ApiError::invalid(format!(
            "{} notices in one request; at most {MAX_NOTICES_PER_REQUEST} are allowed",
            values.len()
        )));
    }
    let at = |index: usize| (!single).then_some(index);
    let replace = query.replace.unwrap_or(false);
    let mut registrations = Vec::with_capacity(values.len());
    for (index, value) in values.into_iter().enumerate() {
        let registration = if replace {
            let notice = ChangeNotice::try_from(&value).map_err(|e| ApiError::Invalid {
                field: Some(e.field.clone()),
                index: at(index),
                reason: e.to_string(),
            })?;
            may_register_for(&who, &notice.owner)?;
            Registration::Replace(notice)
        } else {
            match value {
                serde_json::Value::Object(fields) => {
                    // An owner given is checked now; one kept from the stored notice is checked by the store.
                    let owner = fields
                        .get("user")
                        .and_then(serde_json::Value::as_str)
                        .and_then(ChangeOwner::parse);
                    if let Some(owner) = owner {
                        may_register_for(&who, &owner)?;
                    }
                    Registration::Merge(fields)
                }
                _ => {
                    return Err(ApiError::Invalid {
                        field: None,
                        index: at(index),
                        reason: "a notice is a JSON object".into(),
                    });
                }
            }
        };
        registrations.push(registration);
    }
    // The limits are checked on each notice as it will be stored (merged), inside the store's transaction. So is
    // the stored owner of each id, so a User token registering another User's change id under its own User
    // cannot take that change over.
    let confined = confined_to(&who)?.map(ChangeOwner::User);
    let check: NoticeCheck = Box::new(|notice| {
        over_limit(notice).map_or(Ok(()), |(field, why)| {
            Err((field.to_owned(), format!("field `{field}` {why}")))
        })
    });
    let outcomes = state
        .store
        .register_changes_async(
            registrations,
            who.name.clone(),
            confined,
            state.coordination.clone(),
            check,
        )
        .await
        .map_err(|error| match error {
            StoreError::Invalid {
                index,
                field,
                reason,
            } => ApiError::Invalid {
                field: Some(field),
                index: at(index),
                reason,
            },
            other => store_error(other),
        })?;
    let written: Vec<ChangeNotice> = outcomes
        .iter()
        .filter(|outcome| outcome.outcome != Upsert::Unchanged)
        .map(|outcome| outcome.notice.clone())
        .collect();
    refresh_engine(&state, written).await?;
    // 201 when something was written; a repeated registration that changed nothing is a plain 200.
    let status = if outcomes.iter().any(|o| o.outcome != Upsert::Unchanged) {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let answer = crate::http::coordination::registered(&state, outcomes, confined).await?;
    Ok((status, Json(answer)).into_response())
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
    ApiQuery(query): ApiQuery<ListQuery>,
    ApiQuery(paging): ApiQuery<Paging>,
) -> Result<Response, ApiError> {
    let page = paging.standard()?;
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
        limit: Some(page.rows()),
        offset: page.offset,
    };
    let (next, stored) = page.trim(state.store.list_changes_async(filter).await?);
    let viewer = confined_to(&who)?.map(ChangeOwner::User);
    // Each notice as the contract writes it, with the warnings it raised at registration beside its fields.
    let changes = crate::http::coordination::with_register(&state, move |register| {
        stored
            .into_iter()
            .map(|change| {
                let mut json = change
                    .notice
                    .to_json()
                    .map_err(|e| ApiError::invalid(e.to_string()))?;
                let mut recorded = change.warnings;
                if let Some(found) = recorded.as_mut() {
                    crate::http::coordination::redact(found, register, viewer);
                }
                if let Some(object) = json.as_object_mut() {
                    object.insert("warnings".into(), serde_json::json!(recorded));
                }
                Ok(json)
            })
            .collect::<Result<Vec<_>, ApiError>>()
    })
    .await??;
    Ok((next, Json(changes)).into_response())
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
    let warnings = crate::http::coordination::listed(&state, &stored, viewer).await?;
    let outcome = crate::http::outcomes_api::outcome_of(&state, &stored.notice).await?;
    Ok(Json(serde_json::json!({
        "change": stored.notice,
        // Raised when the change was last registered (null: stored before warnings were recorded).
        "warnings": warnings.recorded,
        // What it would be warned about now, against the current register.
        "current_warnings": warnings.current,
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
    may_touch_stored(who, id, &stored.notice.owner)?;
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
    ApiJson(body): ApiJson<StatusBody>,
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
    // Checked again inside the store's transaction, against the owner stored at the moment of the write.
    let changed = match confined_to(&who)? {
        None => {
            state
                .store
                .set_change_status_async(id, status, who.name.clone())
                .await
        }
        Some(user) => {
            state
                .store
                .set_change_status_confined_async(
                    id,
                    status,
                    who.name.clone(),
                    ChangeOwner::User(user),
                )
                .await
        }
    }
    .map_err(store_error)?;
    if changed.previous != changed.change.notice.status {
        refresh_engine(&state, vec![changed.change.notice.clone()]).await?;
        crate::http::coordination::gauge_due();
    }
    Ok(Json(serde_json::json!({ "change": changed.change.notice, "previous_status": changed.previous.as_str() })).into_response())
}
