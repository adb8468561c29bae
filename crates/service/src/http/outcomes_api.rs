//! Change outcomes over HTTP: the network-wide summary per owner (`GET /api/v1/outcomes`, sortable), one owner's
//! figures with each change's outcome (`GET /api/v1/outcomes/{owner}`), and the outcome shown on a change. Periods
//! and judgements are as of the views' clock (`view_clock`): the event time of the data the service holds.

use crate::http::page::Paging;
use crate::http::query::ApiQuery;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;

use crate::http::api_error::ApiError;
use crate::http::auth::{confined_to, principal};
use crate::http::query::time_window;
use crate::http::state::AppState;
use crate::store::{ChangeFilter, IncidentFilter, Judgement, StoredIncident, Triage, TriageAction};
use crate::view_clock::ViewNow;
use stormwatch_core::changes::{
    ChangeNotice, ChangeOutcome, ChangeOwner, JudgedIncident, OwnerOutcomes, change_outcome,
    summarize,
};

const DAY_MS: i64 = 86_400_000;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/outcomes", get(summary))
        .route("/api/v1/outcomes/{owner}", get(one_owner))
}

#[derive(Deserialize)]
struct OutcomeQuery {
    /// The period's length in days (default: the `[coordination]` outcome window, 90), back from `to` or on from
    /// `from`; ignored when both are given.
    days: Option<u32>,
    /// Start of the period, RFC 3339 or ms.
    from: Option<String>,
    /// End of the period, RFC 3339 or ms (default: now, the event time of the data the service holds).
    to: Option<String>,
    sort: Option<String>,
    order: Option<String>,
}

/// The period asked for, and the "now" outcomes are judged at.
fn period(state: &AppState, query: &OutcomeQuery) -> Result<(i64, i64, ViewNow), ApiError> {
    let now = crate::view_clock::now(&state.published);
    let days = query.days.unwrap_or(state.coordination.outcome_window_days);
    if !(1..=3_650).contains(&days) {
        return Err(ApiError::field("days", "days must be 1 to 3650"));
    }
    let span = i64::from(days) * DAY_MS;
    let (from, to) = match time_window(query.from.as_deref(), query.to.as_deref())? {
        (Some(from), Some(to)) => (from, to),
        (Some(from), None) => (from, from.saturating_add(span)),
        (None, Some(to)) => (to.saturating_sub(span), to),
        (None, None) => (now.ms.saturating_sub(span), now.ms),
    };
    if to < from {
        return Err(ApiError::field("to", "`to` is before `from`"));
    }
    Ok((from, to, now))
}

fn grace_ms(state: &AppState) -> i64 {
    i64::from(state.coordination.outcome_grace_minutes) * 60_000
}

/// The incidents that may name changes of the period, with their operators' triage folded in.
pub async fn judged_incidents(
    state: &AppState,
    from_ms: i64,
    to_ms: i64,
) -> Result<Vec<JudgedIncident>, ApiError> {
    let stored = state
        .store
        .list_incidents_async(IncidentFilter {
            from_ms: Some(from_ms),
            to_ms: Some(to_ms.saturating_add(grace_ms(state))),
            ..IncidentFilter::default()
        })
        .await?;
    let ids: Vec<String> = stored.iter().map(|s| s.record.id.clone()).collect();
    let triages = state.store.incident_triages_async(ids).await?;
    Ok(judge(&stored, triages))
}

/// Stored incidents with their triage (same order), as outcomes judge them: the operators' confirmations and
/// rejections override the correlator; the acknowledgement and the first store write are both wall clock.
pub fn judge(stored: &[StoredIncident], triages: Vec<Triage>) -> Vec<JudgedIncident> {
    stored
        .iter()
        .zip(triages)
        .map(|(stored, triage)| {
            let mut judged = JudgedIncident::from_record(&stored.record);
            judged.acknowledged_ms = triage.acknowledged.as_ref().map(|a| a.at_ms);
            judged.stored_ms = Some(stored.created_ms);
            for entry in triage
                .judgements
                .iter()
                .filter(|e| e.action == TriageAction::Suspect)
            {
                let (Some(change), Some(judgement)) = (&entry.change, entry.judgement) else {
                    continue;
                };
                match judgement {
                    Judgement::Confirmed => judged.confirmed.push(change.clone()),
                    Judgement::Rejected => judged.rejected.push(change.clone()),
                    Judgement::Undecided => {}
                }
            }
            judged
        })
        .collect()
}

/// The outcome of one stored change now, by the views' clock (for its detail view).
pub async fn outcome_of(
    state: &AppState,
    notice: &ChangeNotice,
) -> Result<ChangeOutcome, ApiError> {
    let incidents = judged_incidents(state, notice.start_ms, notice.end_ms).await?;
    let now = crate::view_clock::now(&state.published);
    Ok(change_outcome(notice, &incidents, now.ms, grace_ms(state)))
}

async fn rows(
    state: &AppState,
    from: i64,
    to: i64,
    now: i64,
) -> Result<(Vec<OwnerOutcomes>, Vec<ChangeNotice>, Vec<JudgedIncident>), ApiError> {
    let notices: Vec<ChangeNotice> = state
        .store
        .list_changes_async(ChangeFilter {
            from_ms: Some(from),
            to_ms: Some(to),
            ..ChangeFilter::default()
        })
        .await?
        .into_iter()
        .map(|stored| stored.notice)
        .collect();
    let incidents = judged_incidents(state, from, to).await?;
    let grace = grace_ms(state);
    // Years of changes against years of incidents is real work: never on an async worker.
    tokio::task::spawn_blocking(move || {
        let rows = summarize(&notices, &incidents, (from, to), now, grace);
        (rows, notices, incidents)
    })
    .await
    .map_err(|error| {
        tracing::error!(%error, "summarizing change outcomes failed");
        ApiError::Store(crate::store::StoreError::Closed)
    })
}

fn sort(rows: &mut [OwnerOutcomes], by: Option<&str>, order: Option<&str>) -> Result<(), ApiError> {
    let descending = match order {
        None | Some("desc") => true,
        Some("asc") => false,
        Some(other) => return Err(ApiError::field("order", format!("`{other}`: asc or desc"))),
    };
    let key = |row: &OwnerOutcomes| -> f64 {
        match by.unwrap_or("change_failure_rate") {
            "changes_registered" => row.changes_registered as f64,
            "incidents" => row.incidents as f64,
            "unregistered_change_suspected" => row.unregistered_change_suspected as f64,
            "median_onset_to_detection_s" => row.median_onset_to_detection_s.unwrap_or(f64::NAN),
            "median_onset_to_acknowledgement_s" => {
                row.median_onset_to_acknowledgement_s.unwrap_or(f64::NAN)
            }
            "median_detection_to_acknowledgement_s" => row
                .median_detection_to_acknowledgement_s
                .unwrap_or(f64::NAN),
            _ => row.change_failure_rate.unwrap_or(f64::NAN),
        }
    };
    const KEYS: [&str; 8] = [
        "owner",
        "changes_registered",
        "change_failure_rate",
        "incidents",
        "unregistered_change_suspected",
        "median_onset_to_detection_s",
        "median_onset_to_acknowledgement_s",
        "median_detection_to_acknowledgement_s",
    ];
    if let Some(by) = by
        && !KEYS.contains(&by)
    {
        return Err(ApiError::field(
            "sort",
            format!("`{by}`: one of {}", KEYS.join(", ")),
        ));
    }
    if by == Some("owner") {
        rows.sort_by(|a, b| a.owner.cmp(&b.owner));
        if descending {
            rows.reverse();
        }
        return Ok(());
    }
    // Rows without a figure (NaN) go last whichever the order; ties keep owner order.
    rows.sort_by(|a, b| {
        let (x, y) = (key(a), key(b));
        match (x.is_nan(), y.is_nan()) {
            (true, true) => std::cmp::Ordering::Equal,
            (true, false) => std::cmp::Ordering::Greater,
            (false, true) => std::cmp::Ordering::Less,
            _ if descending => y.total_cmp(&x),
            _ => x.total_cmp(&y),
        }
    });
    Ok(())
}

fn time(ms: i64) -> String {
    stormwatch_core::rfc3339::format_seconds(ms).unwrap_or_default()
}

async fn summary(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<OutcomeQuery>,
    ApiQuery(paging): ApiQuery<Paging>,
) -> Result<Response, ApiError> {
    let page = paging.standard()?;
    let who = principal(&state.store, &headers).await?;
    let own = confined_to(&who)?;
    let (from, to, now) = period(&state, &query)?;
    let (mut rows, _, _) = rows(&state, from, to, now.ms).await?;
    // A User token sees its own row: the other Users' figures are theirs and the DCC's.
    if let Some(own) = own {
        let own = own.to_string();
        rows.retain(|row| row.owner == own);
    }
    sort(&mut rows, query.sort.as_deref(), query.order.as_deref())?;
    let (next, rows) = page.cut(rows);
    Ok((
        next,
        Json(serde_json::json!({
            "from": time(from), "to": time(to), "now": now.json()["now"], "clock": now.clock, "owners": rows,
        })),
    )
        .into_response())
}

async fn one_owner(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(owner): Path<String>,
    Query(query): Query<OutcomeQuery>,
    ApiQuery(paging): ApiQuery<Paging>,
) -> Result<Response, ApiError> {
    let page = paging.standard()?;
    let who = principal(&state.store, &headers).await?;
    let asked = if owner == "*" {
        None
    } else {
        Some(ChangeOwner::parse(&owner).ok_or_else(|| {
            ApiError::field("owner", format!("`{owner}` is not an EUI-64, DCC or *"))
        })?)
    };
    if let Some(own) = confined_to(&who)?
        && asked != Some(ChangeOwner::User(own))
    {
        return Err(ApiError::Forbidden(format!(
            "token `{}` is bound to User {own}, not {owner}",
            who.name
        )));
    }
    let key = asked.map_or_else(|| "*".to_owned(), |o| o.to_string());
    let (from, to, now) = period(&state, &query)?;
    let (rows, notices, incidents) = rows(&state, from, to, now.ms).await?;
    let figures = rows.into_iter().find(|row| row.owner == key);
    let (next, mine) = page.cut(
        notices
            .iter()
            .filter(|n| n.owner.to_string() == key && (from..=to).contains(&n.start_ms)),
    );
    let changes: Vec<ChangeOutcome> = mine
        .into_iter()
        .map(|n| change_outcome(n, &incidents, now.ms, grace_ms(&state)))
        .collect();
    Ok((
        next,
        Json(serde_json::json!({
            "owner": key, "from": time(from), "to": time(to), "now": now.json()["now"], "clock": now.clock,
            "figures": figures, "changes": changes,
        })),
    )
        .into_response())
}
