//! Registration warnings in the service: those a change raised when it was registered (stored with it by the
//! store, so they stay listed), those it has now against the current register (later registrations and
//! cancellations move them), and the upcoming-conflicts gauge behind the Prometheus rule (current warnings).
//! Judging reads the store's in-memory register through its time index, always on a blocking thread: the async
//! workers that answer `/healthz` and `/readyz` never run it.

use std::collections::BTreeMap;
use std::sync::LazyLock;
use std::time::Duration;

use metrics::gauge;
use serde_json::{Value, json};

use crate::http::api_error::ApiError;
use crate::http::state::AppState;
use crate::store::UpsertOutcome;
use stormwatch_core::changes::{
    ChangeNotice, ChangeOutcome, ChangeOwner, ChangeRegister, ChangeStatus, CoordinationConfig,
    Warning, WarningKind, register_warnings,
};

/// One change on the schedule: the contract notice, who owns it, and its warnings.
#[derive(serde::Serialize)]
pub struct ScheduledChange {
    #[serde(flatten)]
    pub notice: serde_json::Value,
    /// `dcc` or `user`.
    pub owner: &'static str,
    /// Raised when the change was last registered or updated, as stored (empty if not recorded).
    pub warnings: Vec<Warning>,
    /// False for a change stored before warnings were recorded (an upgraded store): `warnings` is then empty.
    pub warnings_recorded: bool,
    /// What the change would be warned about now, against the current register.
    pub current_warnings: Vec<Warning>,
    /// Whether it ran clean or caused incidents, with their ids.
    pub outcome: ChangeOutcome,
    pub updated_ms: i64,
}

/// Planned or in-progress changes not yet ended that carry a warning, by warning kind.
pub const UPCOMING_CONFLICTS: &str = "stormwatch_change_upcoming_conflicts";

/// How often the gauge is recomputed besides after each write (time passing moves it too).
const REFRESH: Duration = Duration::from_secs(30);

/// Asks made while a count runs wake the counting task once more, so a burst of writes costs one more count,
/// not one each. Process-wide, like the gauge it feeds.
static GAUGE_DUE: LazyLock<tokio::sync::Notify> = LazyLock::new(tokio::sync::Notify::new);

/// The warnings `notice` has against the register.
pub fn of(
    notice: &ChangeNotice,
    register: &ChangeRegister,
    config: &CoordinationConfig,
) -> Vec<Warning> {
    register_warnings(notice, register, config)
}

/// Runs `read` on the store's register on a blocking thread.
pub async fn with_register<T: Send + 'static>(
    state: &AppState,
    read: impl FnOnce(&ChangeRegister) -> T + Send + 'static,
) -> Result<T, ApiError> {
    let store = state.store.clone();
    tokio::task::spawn_blocking(move || store.with_register(read))
        .await
        .map_err(|error| {
            tracing::error!(%error, "a read of the change register failed");
            ApiError::Store(crate::store::StoreError::Closed)
        })
}

/// Keeps in each warning's `related` only the changes `viewer` may see (its own and the DCC's): a User learns
/// that other Users' changes pile up with its own, not which.
pub fn redact(found: &mut [Warning], register: &ChangeRegister, viewer: Option<ChangeOwner>) {
    let Some(own) = viewer else { return };
    for warning in found {
        warning.related.retain(|id| {
            register
                .get(id)
                .is_some_and(|n| n.owner == own || n.owner == ChangeOwner::Dcc)
        });
    }
}

/// The registration answer: each outcome with the warnings the store recorded for it.
pub async fn registered(
    state: &AppState,
    outcomes: Vec<UpsertOutcome>,
    viewer: Option<ChangeOwner>,
) -> Result<Value, ApiError> {
    gauge_due();
    let changes: Vec<Value> = with_register(state, move |register| {
        outcomes
            .into_iter()
            .map(|outcome| {
                let mut found = outcome.warnings;
                redact(&mut found, register, viewer);
                json!({
                    "id": outcome.id,
                    "outcome": outcome.outcome,
                    "changed": outcome.changed,
                    "replaced": outcome.replaced,
                    "warnings": found,
                })
            })
            .collect()
    })
    .await?;
    let warned = changes
        .iter()
        .filter(|c| c["warnings"].as_array().is_some_and(|w| !w.is_empty()))
        .count();
    // A bulk registration's totals, so a client need not count thousands of entries.
    let count = |what: &str| changes.iter().filter(|c| c["outcome"] == what).count();
    let counts = json!({
        "created": count("created"),
        "updated": count("updated"),
        "unchanged": count("unchanged"),
    });
    Ok(json!({ "changes": changes, "warned": warned, "counts": counts }))
}

/// Asks for the gauge to be recounted after a write (by [`publish_upcoming`], off the async workers).
pub fn gauge_due() {
    GAUGE_DUE.notify_one();
}

/// A stored change's warnings for `viewer`: those recorded at registration (`None` if never recorded) and those
/// it has now.
pub struct Listed {
    pub recorded: Option<Vec<Warning>>,
    pub current: Vec<Warning>,
}

/// Both sets of warnings of one stored change, for its detail view.
pub async fn listed(
    state: &AppState,
    stored: &crate::store::StoredChange,
    viewer: Option<ChangeOwner>,
) -> Result<Listed, ApiError> {
    let (notice, mut recorded) = (stored.notice.clone(), stored.warnings.clone());
    let config = state.coordination.clone();
    with_register(state, move |register| {
        let mut current = of(&notice, register, &config);
        redact(&mut current, register, viewer);
        if let Some(found) = recorded.as_mut() {
            redact(found, register, viewer);
        }
        Listed { recorded, current }
    })
    .await
}

/// Counts, by kind, the changes still ahead or running (planned or in progress, window end after `now_ms`) that
/// carry warnings.
pub fn upcoming(
    register: &ChangeRegister,
    config: &CoordinationConfig,
    now_ms: i64,
) -> BTreeMap<WarningKind, u64> {
    let mut counts = BTreeMap::new();
    for notice in register.iter().filter(|n| {
        matches!(n.status, ChangeStatus::Planned | ChangeStatus::InProgress) && n.end_ms >= now_ms
    }) {
        let mut kinds: Vec<WarningKind> = of(notice, register, config)
            .iter()
            .map(|w| w.kind)
            .collect();
        kinds.dedup();
        for kind in kinds {
            *counts.entry(kind).or_insert(0) += 1;
        }
    }
    counts
}

fn publish(counts: &BTreeMap<WarningKind, u64>) {
    for kind in [
        WarningKind::DccMaintenanceOverlap,
        WarningKind::BcdrTestOverlap,
        WarningKind::HighRiskPileUp,
        WarningKind::MorningPeak,
        WarningKind::ScheduledReads,
        WarningKind::UndeclaredImpact,
        WarningKind::ShortWindow,
    ] {
        let count = counts.get(&kind).copied().unwrap_or(0);
        gauge!(UPCOMING_CONFLICTS, "kind" => kind.as_str()).set(count as f64);
    }
}

/// Keeps the upcoming-conflicts gauge current as time passes and after writes ([`gauge_due`]); each count runs
/// on a blocking thread, one at a time.
pub async fn publish_upcoming(state: AppState) {
    metrics::describe_gauge!(
        UPCOMING_CONFLICTS,
        "Planned or running changes, not yet ended, with a registration warning, by kind"
    );
    let mut every = tokio::time::interval(REFRESH);
    loop {
        tokio::select! {
            _ = every.tick() => {}
            () = GAUGE_DUE.notified() => {}
        }
        let config = state.coordination.clone();
        let now = crate::view_clock::now(&state.published).ms;
        // Counted on a copy (the notices are shared, so it is cheap): the store's writes never wait on a count.
        let counted = match with_register(&state, ChangeRegister::clone).await {
            Ok(register) => tokio::task::spawn_blocking(move || upcoming(&register, &config, now))
                .await
                .map_err(|error| error.to_string()),
            Err(error) => Err(error.to_string()),
        };
        match counted {
            Ok(counts) => publish(&counts),
            Err(error) => tracing::warn!(%error, "cannot count upcoming change conflicts"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stormwatch_core::changes::{Category, ChangeOwner};
    use stormwatch_core::telemetry::Eui64;

    #[test]
    fn upcoming_counts_only_live_changes_not_yet_ended() {
        let config = CoordinationConfig::default();
        let user = ChangeOwner::User(Eui64(7));
        // 2026-03-10T11:00Z: quiet hours; each change is too short for its category.
        let eleven = 1_773_140_400_000;
        let mut register = ChangeRegister::new();
        register.upsert(ChangeNotice::planned(
            "A",
            user,
            Category::Network,
            eleven,
            eleven + 60_000,
        ));
        let mut done = ChangeNotice::planned("B", user, Category::Network, eleven, eleven + 60_000);
        done.status = ChangeStatus::Completed;
        register.upsert(done);
        register.upsert(ChangeNotice::planned(
            "C",
            user,
            Category::Network,
            eleven - 7_200_000,
            eleven - 3_600_000,
        ));
        let counts = upcoming(&register, &config, eleven);
        assert_eq!(counts.get(&WarningKind::ShortWindow), Some(&1));
        assert_eq!(counts.len(), 1);
    }
}
