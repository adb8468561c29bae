//! The forward schedule of change (DP083): every User's and the DCC's changes in a time range, with status,
//! expected impact, owner and warnings, as JSON (`GET /api/v1/schedule`) and as an RFC 5545 calendar feed
//! (`GET /api/v1/schedule.ics`) a change team subscribes to from Outlook or any calendar. A calendar client
//! cannot send a header, so the feed also takes `?key=`: a `calendar` key only (read-only, revocable, good for
//! nothing else). A bearer token is never accepted in a URL, where proxies, logs and calendar servers keep it.

use axum::extract::{Query, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use crate::http::api_error::ApiError;
use crate::http::auth::{any_principal, confined_to, principal};
use crate::http::coordination::ScheduledChange;
use crate::http::page::{Page, Paging};
use crate::http::query::{ApiQuery, time_window};
use crate::http::state::AppState;
use crate::store::{ChangeFilter, Principal, Role, StoredChange};
use crate::view_clock::ViewNow;
use stormwatch_core::changes::{Category, ChangeNotice, ChangeOwner, change_outcome};

/// Without `from`, the schedule starts a day back from now by the views' clock (the event time of the data the
/// service holds), so changes running now show; without `to`, it runs four weeks on from `from`.
const LOOK_BACK_MS: i64 = 86_400_000;
const LOOK_AHEAD_MS: i64 = 28 * 86_400_000;
/// Longest range one request may ask for: a calendar client polls often, and a year is plenty.
const MAX_RANGE_MS: i64 = 400 * 86_400_000;
/// Changes per page: a timeline shows hundreds at most; a calendar feed (which cannot follow pages) gets the
/// maximum, and says in its log line when it was cut.
const DEFAULT_LIMIT: usize = 1_000;
const MAX_LIMIT: usize = 5_000;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/schedule", get(schedule))
        .route("/api/v1/schedule.ics", get(calendar))
}

#[derive(Deserialize)]
struct ScheduleQuery {
    from: Option<String>,
    to: Option<String>,
    user: Option<String>,
    category: Option<String>,
    /// A calendar key, for calendar clients that cannot send an `Authorization` header (`.ics` only).
    key: Option<String>,
    /// Refused: tokens do not belong in URLs. Read only to say so.
    token: Option<String>,
}

#[derive(Serialize)]
struct Schedule {
    from: String,
    to: String,
    /// The views' "now" (RFC 3339) the range and the outcomes are reckoned from, and its clock.
    now: String,
    clock: crate::view_clock::Clock,
    /// The rows of a timeline: `DCC` first when it has changes, then Users in EUI-64 order.
    rows: Vec<String>,
    changes: Vec<ScheduledChange>,
}

/// What one request may see and asked for.
struct Selection {
    from_ms: i64,
    to_ms: i64,
    now: ViewNow,
    owner: Option<ChangeOwner>,
    /// A User token's own User: it sees those changes and the DCC's.
    confined: Option<ChangeOwner>,
    category: Option<Category>,
}

fn select(who: &Principal, query: &ScheduleQuery, now: ViewNow) -> Result<Selection, ApiError> {
    let (from, to) = time_window(query.from.as_deref(), query.to.as_deref())?;
    let from_ms = from.unwrap_or(now.ms - LOOK_BACK_MS);
    let to_ms = to.unwrap_or(from_ms.saturating_add(LOOK_AHEAD_MS));
    if to_ms < from_ms {
        return Err(ApiError::field("to", "`to` is before `from`"));
    }
    if to_ms - from_ms > MAX_RANGE_MS {
        return Err(ApiError::field("to", "ask for at most 400 days at once"));
    }
    let owner = query
        .user
        .as_deref()
        .map(|text| {
            ChangeOwner::parse(text)
                .ok_or_else(|| ApiError::field("user", format!("`{text}` is not an EUI-64 or DCC")))
        })
        .transpose()?;
    // A calendar key sees what a token bound to the same User (or, unbound, an ops token) would see.
    let confined = if who.role == Role::Calendar {
        who.user.map(ChangeOwner::User)
    } else {
        confined_to(who)?.map(ChangeOwner::User)
    };
    if let (Some(own), Some(asked)) = (confined, owner)
        && asked != own
        && asked != ChangeOwner::Dcc
    {
        return Err(ApiError::Forbidden(format!(
            "token `{}` is bound to User {own}: it sees its own changes and the DCC's, not {asked}'s",
            who.name
        )));
    }
    let category = query
        .category
        .as_deref()
        .map(|text| {
            Category::parse(text).ok_or_else(|| {
                ApiError::field(
                    "category",
                    format!("unknown category `{text}`; one of {}", Category::names()),
                )
            })
        })
        .transpose()?;
    Ok(Selection {
        from_ms,
        to_ms,
        now,
        owner,
        confined,
        category,
    })
}

/// One page of the selected changes, each judged against the current register (on a blocking thread: only the
/// page's changes are judged).
async fn gather(
    state: &AppState,
    selection: &Selection,
    page: Page,
) -> Result<(HeaderMap, Vec<ScheduledChange>), ApiError> {
    let stored = state
        .store
        .list_changes_async(ChangeFilter {
            user: selection.owner,
            from_ms: Some(selection.from_ms),
            to_ms: Some(selection.to_ms),
            ..ChangeFilter::default()
        })
        .await?;
    let incidents =
        crate::http::outcomes_api::judged_incidents(state, selection.from_ms, selection.to_ms)
            .await?;
    let (now, grace) = (
        selection.now.ms,
        i64::from(state.coordination.outcome_grace_minutes) * 60_000,
    );
    let visible = |notice: &ChangeNotice| {
        selection
            .confined
            .is_none_or(|own| notice.owner == own || notice.owner == ChangeOwner::Dcc)
            && selection.category.is_none_or(|c| notice.category == c)
    };
    let (next, stored) = page.cut(stored.into_iter().filter(|s| visible(&s.notice)));
    let (config, confined) = (state.coordination.clone(), selection.confined);
    let changes = crate::http::coordination::with_register(state, move |register| {
        judge_page(stored, register, &config, confined, &incidents, now, grace)
    })
    .await??;
    Ok((next, changes))
}

fn judge_page(
    stored: Vec<StoredChange>,
    register: &stormwatch_core::changes::ChangeRegister,
    config: &stormwatch_core::changes::CoordinationConfig,
    confined: Option<ChangeOwner>,
    incidents: &[stormwatch_core::changes::JudgedIncident],
    now: i64,
    grace: i64,
) -> Result<Vec<ScheduledChange>, ApiError> {
    stored
        .into_iter()
        .map(
            |StoredChange {
                 notice,
                 updated_ms,
                 warnings: recorded,
                 ..
             }| {
                let mut current = crate::http::coordination::of(&notice, register, config);
                crate::http::coordination::redact(&mut current, register, confined);
                let warnings_recorded = recorded.is_some();
                let mut recorded = recorded.unwrap_or_default();
                crate::http::coordination::redact(&mut recorded, register, confined);
                let json = notice
                    .to_json()
                    .map_err(|e| ApiError::invalid(e.to_string()))?;
                Ok(ScheduledChange {
                    notice: json,
                    owner: if notice.owner == ChangeOwner::Dcc {
                        "dcc"
                    } else {
                        "user"
                    },
                    warnings: recorded,
                    warnings_recorded,
                    current_warnings: current,
                    outcome: change_outcome(&notice, incidents, now, grace),
                    updated_ms,
                })
            },
        )
        .collect()
}

/// The feed's caller: from the header (any token but ingest, or a calendar key), or from `?key=`, which must be a
/// calendar key. `?token=` is refused outright, before the secret is even looked up.
async fn caller(
    state: &AppState,
    headers: &HeaderMap,
    query: &ScheduleQuery,
) -> Result<Principal, ApiError> {
    if query.token.is_some() {
        return Err(ApiError::field(
            "token",
            "tokens are not accepted in a URL; subscribe with a calendar key \
             (`stormwatch tokens add --role calendar`) as `?key=`, and revoke the token you put here",
        ));
    }
    let Some(secret) = query.key.as_deref().map(str::trim) else {
        return any_principal(&state.store, headers).await;
    };
    if secret.is_empty() {
        return Err(ApiError::Unauthorized);
    }
    let who = state
        .store
        .authenticate_async(secret.to_owned())
        .await?
        .ok_or(ApiError::Unauthorized)?;
    if who.role != Role::Calendar {
        return Err(ApiError::Forbidden(format!(
            "`{}` is a `{}` token, not a calendar key: only calendar keys go in a URL (revoke this one, it is \
             exposed)",
            who.name, who.role
        )));
    }
    Ok(who)
}

async fn schedule(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<ScheduleQuery>,
    ApiQuery(paging): ApiQuery<Paging>,
) -> Result<Response, ApiError> {
    let page = paging.page(DEFAULT_LIMIT, MAX_LIMIT)?;
    let who = principal(&state.store, &headers).await?;
    let selection = select(&who, &query, crate::view_clock::now(&state.published))?;
    let (next, changes) = gather(&state, &selection, page).await?;
    let mut rows: Vec<String> = changes
        .iter()
        .filter_map(|c| c.notice["user"].as_str().map(str::to_owned))
        .collect();
    rows.sort_by_key(|row| (row != "DCC", row.clone()));
    rows.dedup();
    let time = |ms| stormwatch_core::rfc3339::format_seconds(ms).unwrap_or_default();
    Ok((
        next,
        Json(Schedule {
            from: time(selection.from_ms),
            to: time(selection.to_ms),
            now: time(selection.now.ms),
            clock: selection.now.clock,
            rows,
            changes,
        }),
    )
        .into_response())
}

async fn calendar(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<ScheduleQuery>,
) -> Result<Response, ApiError> {
    let who = caller(&state, &headers, &query).await?;
    let selection = select(&who, &query, crate::view_clock::now(&state.published))?;
    let page = Page {
        limit: MAX_LIMIT,
        offset: 0,
    };
    let (next, changes) = gather(&state, &selection, page).await?;
    if !next.is_empty() {
        tracing::warn!(
            calendar = %who.name,
            "the calendar feed holds the first {MAX_LIMIT} changes of its range; ask for a shorter range"
        );
    }
    let feed = crate::http::calendar_feed::render(&changes);
    Ok((
        [
            (header::CONTENT_TYPE, "text/calendar; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "inline; filename=\"stormwatch-schedule.ics\"",
            ),
        ],
        feed,
    )
        .into_response())
}
