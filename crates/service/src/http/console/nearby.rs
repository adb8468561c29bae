//! Changes registered near an incident, each with the correlator's judgement of it, so the console can show not
//! only the suspects but also what was ruled out and why. The facts are rebuilt from the stored record, so the
//! answer also holds for incidents the engine no longer keeps.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::http::api_error::{ApiError, store_error};
use crate::http::auth::{confined_to, principal, visible_incident};
use crate::http::state::AppState;
use crate::store::ChangeFilter;
use stormwatch_core::changes::{
    ChangeNotice, ChangeOwner, CorrelatorConfig, judge, only_change_near,
};
use stormwatch_core::report::IncidentRecord;

/// How far around the onset a change window counts as nearby: the correlator still gives some weight to a window
/// that ended hours before (see `changes::factors`), and little to one that opens more than half an hour after.
const BEFORE_MS: i64 = 6 * 3_600_000;
const AFTER_MS: i64 = 2 * 3_600_000;

#[derive(Serialize, Debug, PartialEq)]
pub struct NearbyChange {
    pub change: ChangeNotice,
    /// 1-based rank among the incident's suspects, when it is one.
    pub rank: Option<usize>,
    /// The correlator's score of this change against the incident, when it can reach the incident at all.
    pub score: Option<f64>,
    /// One phrase per factor, as for a suspect.
    pub reasons: Vec<String>,
    /// For a change that is not a suspect: why not, in a sentence.
    pub ruled_out: Option<String>,
}

/// Judges each notice against the incident; suspects first by rank, then the rest by window start.
pub fn judge_all(
    config: &CorrelatorConfig,
    record: &IncidentRecord,
    notices: Vec<ChangeNotice>,
) -> Vec<NearbyChange> {
    let facts = record.facts();
    let (min_score, max_suspects) = (config.min_suspect_score, config.max_suspects);
    let alone: Vec<bool> = notices
        .iter()
        .map(|change| only_change_near(config, change, &facts, &notices))
        .collect();
    let mut judged: Vec<NearbyChange> = notices
        .into_iter()
        .zip(alone)
        .map(|(change, alone)| {
            let rank = record
                .suspects
                .iter()
                .position(|s| s.change == change.id)
                .map(|p| p + 1);
            let suspect = judge(config, &change, &facts, alone);
            let ruled_out = match (&suspect, rank) {
                (_, Some(_)) => None,
                (None, None) => Some(format!(
                    "no known way for a {} change by {} to reach this incident's Users",
                    change.category.label(),
                    change.owner
                )),
                (Some(s), None) if s.score < min_score => Some(format!(
                    "score {:.2} is below the {min_score} a suspect needs",
                    s.score
                )),
                (Some(s), None) if record.suspects.len() >= max_suspects => Some(format!(
                    "score {:.2} ranks below the top {max_suspects} suspects",
                    s.score
                )),
                // Every register write re-correlates, so this is a record saved just before such a write.
                (Some(s), None) => Some(format!(
                    "score {:.2}, but not yet judged when the incident was last correlated",
                    s.score
                )),
            };
            NearbyChange {
                rank,
                score: suspect.as_ref().map(|s| s.score),
                reasons: suspect.map(|s| s.reasons).unwrap_or_default(),
                ruled_out,
                change,
            }
        })
        .collect();
    judged.sort_by(|a, b| {
        let key = |c: &NearbyChange| (c.rank.unwrap_or(usize::MAX), c.change.start_ms);
        key(a)
            .cmp(&key(b))
            .then_with(|| a.change.id.cmp(&b.change.id))
    });
    judged
}

/// `GET /api/v1/incidents/{id}/nearby-changes`: every registered change whose window overlaps the six hours
/// before the onset to two hours after, with the correlator's judgement. A User token sees only its own changes.
pub async fn nearby_changes(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let who = principal(&state.store, &headers).await?;
    let record = visible_incident(&state, &who, &id).await?;
    let filter = ChangeFilter {
        user: confined_to(&who)?.map(ChangeOwner::User),
        from_ms: Some(record.onset - BEFORE_MS),
        to_ms: Some(record.onset + AFTER_MS),
        ..ChangeFilter::default()
    };
    let notices = state
        .store
        .list_changes_async(filter)
        .await
        .map_err(store_error)?
        .into_iter()
        .map(|c| c.notice)
        .collect();
    // Judging every change of the window is CPU work: on a blocking thread, never on an async worker.
    let correlator = state.correlator.clone();
    let (id, onset) = (record.id.clone(), record.onset);
    let changes = tokio::task::spawn_blocking(move || judge_all(&correlator, &record, notices))
        .await
        .map_err(|error| {
            tracing::error!(%error, "judging the changes near an incident failed");
            ApiError::Store(crate::store::StoreError::Closed)
        })?;
    Ok(Json(serde_json::json!({
        "incident": id,
        "from": onset - BEFORE_MS,
        "to": onset + AFTER_MS,
        "changes": changes,
    }))
    .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use stormwatch_core::changes::{Category, ChangeStatus};
    use stormwatch_core::incident::{IncidentKind, Suspect, Verdict};

    const USER: &str = "90-B3-D5-1F-30-01-00-07";
    const OTHER: &str = "4C-E1-73-00-00-00-11-01";
    const ONSET: i64 = 1_773_133_500_000;

    fn notice(id: &str, owner: &str, category: Category, start_ms: i64) -> ChangeNotice {
        let owner = ChangeOwner::parse(owner).unwrap();
        ChangeNotice {
            title: id.into(),
            status: ChangeStatus::InProgress,
            ..ChangeNotice::planned(id, owner, category, start_ms, start_ms + 3_600_000)
        }
    }

    #[test]
    fn suspects_keep_their_rank_and_the_rest_say_why_they_were_ruled_out() {
        let record = IncidentRecord {
            id: "INC-1".into(),
            user: USER.into(),
            kind: IncidentKind::Backlog,
            onset: ONSET,
            detected: ONSET + 65_000,
            resolved: None,
            peak_depth: 10_000,
            verdict: Verdict::RegisteredChange,
            suspects: vec![Suspect {
                change: "CHG-OWN".into(),
                title: String::new(),
                contact: String::new(),
                score: 0.9,
                reasons: vec![],
            }],
            peak_rate: 50.0,
            baseline_rate: 0.0,
            peak_ratio: 50.0,
            users: vec![],
            evidence: stormwatch_core::report::Evidence {
                failure_reason: Some("refused".into()),
                concurrent_users: 1,
                ..Default::default()
            },
        };
        let notices = vec![
            notice("CHG-OTHER", OTHER, Category::Network, ONSET - 60_000),
            notice("CHG-OLD", USER, Category::Campaign, ONSET - 5 * 3_600_000),
            notice("CHG-OWN", USER, Category::Network, ONSET - 20_000),
        ];
        let judged = judge_all(&CorrelatorConfig::default(), &record, notices);
        let ids: Vec<_> = judged.iter().map(|c| c.change.id.as_str()).collect();
        assert_eq!(ids, ["CHG-OWN", "CHG-OLD", "CHG-OTHER"]);
        assert_eq!(judged[0].rank, Some(1));
        assert!(judged[0].ruled_out.is_none());
        assert!(judged[0].reasons.iter().any(|r| r == "same User"));
        let old = judged[1].ruled_out.as_deref().unwrap_or_default();
        assert!(old.contains("below"), "{old}");
        assert!(!judged[1].reasons.is_empty(), "the factors still show");
        let other = judged[2].ruled_out.as_deref().unwrap_or_default();
        assert!(other.contains("no known way"), "{other}");
        assert_eq!(judged[2].score, None);
    }
}
