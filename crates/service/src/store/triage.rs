//! Operator actions on incidents from the triage console: acknowledging, notes, and a suspect change confirmed or
//! rejected. Each is one appended row with its actor and wall-clock time, so the rows are the audit trail; what an
//! incident's triage is now is folded from them.

use std::collections::HashMap;

use rusqlite::{Connection, OptionalExtension, Transaction, params, params_from_iter};
use serde::{Deserialize, Serialize};

use super::history::{self, HistoryEntry};
use super::{StoreError, now_ms};

/// Longest note (or reason given with an action), in characters: a note is a sentence or two, not a log dump.
pub const MAX_NOTE_CHARS: usize = 2_000;

#[derive(Copy, Clone, Eq, PartialEq, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TriageAction {
    Acknowledge,
    Note,
    /// A judgement on one suspect change.
    Suspect,
}

impl TriageAction {
    pub fn as_str(self) -> &'static str {
        match self {
            TriageAction::Acknowledge => "acknowledge",
            TriageAction::Note => "note",
            TriageAction::Suspect => "suspect",
        }
    }

    fn parse(text: &str) -> Option<TriageAction> {
        [
            TriageAction::Acknowledge,
            TriageAction::Note,
            TriageAction::Suspect,
        ]
        .into_iter()
        .find(|action| action.as_str() == text)
    }
}

/// An operator's word on whether a change caused the incident. `Undecided` withdraws an earlier judgement.
#[derive(Copy, Clone, Eq, PartialEq, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Judgement {
    Confirmed,
    Rejected,
    Undecided,
}

impl Judgement {
    pub fn as_str(self) -> &'static str {
        match self {
            Judgement::Confirmed => "confirmed",
            Judgement::Rejected => "rejected",
            Judgement::Undecided => "undecided",
        }
    }

    pub fn parse(text: &str) -> Option<Judgement> {
        [
            Judgement::Confirmed,
            Judgement::Rejected,
            Judgement::Undecided,
        ]
        .into_iter()
        .find(|judgement| judgement.as_str() == text)
    }
}

/// One audited action: who, when (wall clock, ms since the epoch), what.
#[derive(Clone, Eq, PartialEq, Debug, Serialize)]
pub struct TriageEntry {
    pub seq: i64,
    pub incident_id: String,
    pub action: TriageAction,
    pub actor: String,
    pub at_ms: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub change: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub judgement: Option<Judgement>,
    /// The note, or the reason given with an acknowledgement or judgement (may be empty).
    pub text: String,
}

/// An incident's triage as it stands, with every action and state transition behind it.
#[derive(Clone, Eq, PartialEq, Debug, Serialize)]
pub struct Triage {
    pub incident_id: String,
    /// The first acknowledgement; later ones change nothing and are not written.
    pub acknowledged: Option<TriageEntry>,
    /// The standing judgement of each change judged, by change id (withdrawn ones left out).
    pub judgements: Vec<TriageEntry>,
    pub notes: Vec<TriageEntry>,
    /// Every action, oldest first: the audit trail.
    pub log: Vec<TriageEntry>,
    /// The incident's state transitions as the store recorded them, oldest first.
    pub history: Vec<HistoryEntry>,
}

impl Triage {
    fn fold(incident_id: String, log: Vec<TriageEntry>, history: Vec<HistoryEntry>) -> Triage {
        let acknowledged = log
            .iter()
            .find(|e| e.action == TriageAction::Acknowledge)
            .cloned();
        let notes = log
            .iter()
            .filter(|e| e.action == TriageAction::Note)
            .cloned()
            .collect();
        let mut judgements: Vec<TriageEntry> = Vec::new();
        for entry in log.iter().filter(|e| e.action == TriageAction::Suspect) {
            judgements.retain(|j| j.change != entry.change);
            if entry.judgement != Some(Judgement::Undecided) {
                judgements.push(entry.clone());
            }
        }
        judgements.sort_by(|a, b| a.change.cmp(&b.change));
        Triage {
            incident_id,
            acknowledged,
            judgements,
            notes,
            log,
            history,
        }
    }

    /// The standing judgement of `change`, if any.
    pub fn judgement_of(&self, change: &str) -> Option<Judgement> {
        self.judgements
            .iter()
            .find(|j| j.change.as_deref() == Some(change))
            .and_then(|j| j.judgement)
    }
}

/// What an operator asks for.
#[derive(Clone, Eq, PartialEq, Debug)]
pub enum TriageRequest {
    Acknowledge {
        text: String,
    },
    Note {
        text: String,
    },
    Suspect {
        change: String,
        judgement: Judgement,
        text: String,
    },
}

/// The triage after a request, and whether the request wrote anything (a repeated acknowledgement or an
/// unchanged judgement does not).
#[derive(Clone, Eq, PartialEq, Debug)]
pub struct TriageOutcome {
    pub triage: Triage,
    pub written: bool,
}

pub(super) fn apply(
    db: &mut Connection,
    incident_id: &str,
    request: TriageRequest,
    actor: &str,
) -> Result<TriageOutcome, StoreError> {
    let tx = db.transaction()?;
    require_incident(&tx, incident_id)?;
    let before = Triage::fold(
        incident_id.to_owned(),
        read_log(&tx, &[incident_id])?,
        vec![],
    );
    let (action, change, judgement, text) = match request {
        TriageRequest::Acknowledge { text } => (TriageAction::Acknowledge, None, None, text),
        TriageRequest::Note { text } => {
            if text.trim().is_empty() {
                return Err(constraint("text", "a note needs some text"));
            }
            (TriageAction::Note, None, None, text)
        }
        TriageRequest::Suspect {
            change,
            judgement,
            text,
        } => {
            let known: Option<i64> = tx
                .query_row("SELECT 1 FROM changes WHERE id = ?1", [&change], |row| {
                    row.get(0)
                })
                .optional()?;
            if known.is_none() {
                return Err(StoreError::NotFound {
                    what: "change",
                    id: change,
                });
            }
            (TriageAction::Suspect, Some(change), Some(judgement), text)
        }
    };
    let text = text.trim().to_owned();
    if text.chars().count() > MAX_NOTE_CHARS {
        return Err(constraint(
            "text",
            &format!("longer than {MAX_NOTE_CHARS} characters"),
        ));
    }
    let redundant = match (action, &change) {
        (TriageAction::Acknowledge, _) => before.acknowledged.is_some(),
        (TriageAction::Suspect, Some(change)) => {
            let standing = before.judgement_of(change).unwrap_or(Judgement::Undecided);
            Some(standing) == judgement && text.is_empty()
        }
        _ => false,
    };
    if !redundant {
        tx.execute(
            "INSERT INTO incident_actions (incident_id, action, actor, at_ms, change_id, judgement, text)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                incident_id,
                action.as_str(),
                actor,
                now_ms(),
                change,
                judgement.map(Judgement::as_str),
                text
            ],
        )?;
    }
    let triage = read(&tx, incident_id)?;
    tx.commit()?;
    Ok(TriageOutcome {
        triage,
        written: !redundant,
    })
}

/// One incident's triage; `NotFound` when no incident has the id.
pub(super) fn get(db: &mut Connection, incident_id: &str) -> Result<Triage, StoreError> {
    let tx = db.transaction()?;
    require_incident(&tx, incident_id)?;
    let triage = read(&tx, incident_id)?;
    tx.commit()?;
    Ok(triage)
}

/// The triage of each id, in the order given, without history (for lists: one query for all). Unknown ids get an
/// empty triage.
pub(super) fn many(db: &mut Connection, ids: &[String]) -> Result<Vec<Triage>, StoreError> {
    let tx = db.transaction()?;
    let keys: Vec<&str> = ids.iter().map(String::as_str).collect();
    let mut by_incident: HashMap<String, Vec<TriageEntry>> = HashMap::new();
    for entry in read_log(&tx, &keys)? {
        by_incident
            .entry(entry.incident_id.clone())
            .or_default()
            .push(entry);
    }
    tx.commit()?;
    Ok(ids
        .iter()
        .map(|id| {
            let log = by_incident.get(id).cloned().unwrap_or_default();
            Triage::fold(id.clone(), log, vec![])
        })
        .collect())
}

fn read(tx: &Transaction<'_>, incident_id: &str) -> Result<Triage, StoreError> {
    Ok(Triage::fold(
        incident_id.to_owned(),
        read_log(tx, &[incident_id])?,
        history::read(tx, incident_id)?,
    ))
}

fn require_incident(tx: &Transaction<'_>, id: &str) -> Result<(), StoreError> {
    let found: Option<i64> = tx
        .query_row("SELECT 1 FROM incidents WHERE id = ?1", [id], |row| {
            row.get(0)
        })
        .optional()?;
    found.map(|_| ()).ok_or_else(|| StoreError::NotFound {
        what: "incident",
        id: id.to_owned(),
    })
}

fn constraint(field: &str, reason: &str) -> StoreError {
    StoreError::Constraint {
        field: field.to_owned(),
        reason: reason.to_owned(),
    }
}

type RawEntry = (
    i64,
    String,
    String,
    String,
    i64,
    Option<String>,
    Option<String>,
    String,
);

fn read_log(tx: &Transaction<'_>, ids: &[&str]) -> Result<Vec<TriageEntry>, StoreError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let marks = vec!["?"; ids.len()].join(", ");
    let mut statement = tx.prepare(&format!(
        "SELECT seq, incident_id, action, actor, at_ms, change_id, judgement, text
         FROM incident_actions WHERE incident_id IN ({marks}) ORDER BY seq"
    ))?;
    let rows = statement.query_map(params_from_iter(ids), |row| {
        Ok((
            row.get(0)?,
            row.get(1)?,
            row.get(2)?,
            row.get(3)?,
            row.get(4)?,
            row.get(5)?,
            row.get(6)?,
            row.get(7)?,
        ))
    })?;
    rows.map(|row| entry(row?)).collect()
}

fn entry(
    (seq, incident_id, action, actor, at_ms, change, judgement, text): RawEntry,
) -> Result<TriageEntry, StoreError> {
    let corrupt = |reason: String| StoreError::Corrupt {
        what: "action on incident",
        id: incident_id.clone(),
        reason,
    };
    let action = TriageAction::parse(&action)
        .ok_or_else(|| corrupt(format!("unknown action `{action}`")))?;
    let judgement = judgement
        .map(|text| {
            Judgement::parse(&text).ok_or_else(|| corrupt(format!("unknown judgement `{text}`")))
        })
        .transpose()?;
    Ok(TriageEntry {
        seq,
        incident_id,
        action,
        actor,
        at_ms,
        change,
        judgement,
        text,
    })
}

#[cfg(test)]
#[path = "triage_tests.rs"]
mod tests;
