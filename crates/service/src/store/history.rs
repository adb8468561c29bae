//! An incident's state transitions (opened, verdict or top suspect changed, resolved) as the store saw them. The
//! incident row keeps only the latest record, so without these rows a verdict that changed when a change was
//! registered late would leave no trace.

use rusqlite::{Transaction, params};
use serde::Serialize;

use super::StoreError;
use stormwatch_core::report::IncidentRecord;

/// One transition: when the store wrote it (wall clock), the event time it happened at when the record says, what
/// state the incident entered and a sentence about it.
#[derive(Clone, Eq, PartialEq, Debug, Serialize)]
pub struct HistoryEntry {
    pub seq: i64,
    pub at_ms: i64,
    pub event_ms: Option<i64>,
    /// `opened`, `verdict`, `resolved` or `reopened`.
    pub state: String,
    pub detail: String,
}

/// Appends a row for each way `new` differs from `old` (the stored JSON before this save, if any) that a person
/// triaging the incident cares about. Growing peaks are not transitions and are left out.
pub(super) fn record(
    tx: &Transaction<'_>,
    old: Option<&str>,
    new: &IncidentRecord,
    at_ms: i64,
) -> Result<(), StoreError> {
    let old = match old {
        None => None,
        // A stored record this build cannot read says nothing reliable about what changed.
        Some(text) => match serde_json::from_str::<IncidentRecord>(text) {
            Ok(old) => Some(old),
            Err(_) => return Ok(()),
        },
    };
    let mut rows: Vec<(Option<i64>, &str, String)> = Vec::new();
    match &old {
        None => rows.push((
            Some(new.detected),
            "opened",
            format!("opened with verdict {}{}", new.verdict.as_str(), top(new)),
        )),
        Some(old) if old.verdict != new.verdict || top_id(old) != top_id(new) => rows.push((
            None,
            "verdict",
            format!(
                "verdict {} -> {}{}",
                old.verdict.as_str(),
                new.verdict.as_str(),
                top(new)
            ),
        )),
        Some(_) => {}
    }
    let was_resolved = old.as_ref().and_then(|o| o.resolved);
    match (was_resolved, new.resolved) {
        (None, Some(at)) => rows.push((Some(at), "resolved", "resolved".to_owned())),
        (Some(_), None) => rows.push((None, "reopened", "open again".to_owned())),
        _ => {}
    }
    for (event_ms, state, detail) in rows {
        tx.execute(
            "INSERT INTO incident_history (incident_id, at_ms, event_ms, state, detail)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![new.id, at_ms, event_ms, state, detail],
        )?;
    }
    Ok(())
}

fn top_id(record: &IncidentRecord) -> Option<&str> {
    record.suspects.first().map(|s| s.change.as_str())
}

fn top(record: &IncidentRecord) -> String {
    match record.suspects.first() {
        Some(suspect) => format!(
            "; top suspect {} (score {:.2})",
            suspect.change, suspect.score
        ),
        None => "; no suspect".to_owned(),
    }
}

pub(super) fn read(
    tx: &Transaction<'_>,
    incident_id: &str,
) -> Result<Vec<HistoryEntry>, StoreError> {
    let mut statement = tx.prepare(
        "SELECT seq, at_ms, event_ms, state, detail FROM incident_history
         WHERE incident_id = ?1 ORDER BY seq",
    )?;
    let rows = statement.query_map([incident_id], |row| {
        Ok(HistoryEntry {
            seq: row.get(0)?,
            at_ms: row.get(1)?,
            event_ms: row.get(2)?,
            state: row.get(3)?,
            detail: row.get(4)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}
