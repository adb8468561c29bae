//! The stored change register: notices as contract JSON plus indexed columns, and the audit row every write leaves.

use rusqlite::types::Value as Sql;
use rusqlite::{Connection, OptionalExtension, Row, Transaction, params, params_from_iter};
use serde::Serialize;
use serde_json::Value;

use super::{StoreError, now_ms};
use crate::changes::{
    ChangeNotice, ChangeOwner, ChangeRegister, ChangeStatus, format_rfc3339_ms,
    validate_notice_json,
};

/// What registering one notice did.
#[derive(Copy, Clone, Eq, PartialEq, Debug, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Upsert {
    Created,
    Updated,
    /// The stored notice was identical: nothing written, no audit row.
    Unchanged,
}

#[derive(Clone, Eq, PartialEq, Debug, Serialize)]
pub struct UpsertOutcome {
    pub id: String,
    pub outcome: Upsert,
}

/// A notice as stored, with the wall-clock times (ms since the epoch) it was first and last written.
#[derive(Clone, PartialEq, Debug)]
pub struct StoredChange {
    pub notice: ChangeNotice,
    pub created_ms: i64,
    pub updated_ms: i64,
}

/// Which notices `list_changes` returns; every `None` matches all. Sorted by window start, then id.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ChangeFilter {
    /// Exactly this owner (a User's filter does not include the DCC's changes).
    pub user: Option<ChangeOwner>,
    /// With `to_ms`: windows overlapping `[from_ms, to_ms]`, ends included.
    pub from_ms: Option<i64>,
    pub to_ms: Option<i64>,
    pub status: Option<ChangeStatus>,
}

#[derive(Copy, Clone, Eq, PartialEq, Debug, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditAction {
    Create,
    Update,
    Status,
}

impl AuditAction {
    pub fn as_str(self) -> &'static str {
        match self {
            AuditAction::Create => "create",
            AuditAction::Update => "update",
            AuditAction::Status => "status",
        }
    }

    fn parse(text: &str) -> Option<AuditAction> {
        [
            AuditAction::Create,
            AuditAction::Update,
            AuditAction::Status,
        ]
        .into_iter()
        .find(|action| action.as_str() == text)
    }
}

/// One write to a notice: who, when (wall clock, ms), and what changed.
#[derive(Clone, Eq, PartialEq, Debug, Serialize)]
pub struct AuditEntry {
    pub change_id: String,
    pub action: AuditAction,
    pub actor: String,
    pub at_ms: i64,
    pub before_status: Option<ChangeStatus>,
    pub after_status: Option<ChangeStatus>,
    /// For an update: `field: old -> new; ...`. For a create: the notice in one line.
    pub detail: String,
}

/// The notice after a status change, and the status it had before (equal when nothing changed).
#[derive(Clone, PartialEq, Debug)]
pub struct StatusChange {
    pub change: StoredChange,
    pub previous: ChangeStatus,
}

/// All notices or none: an error on any row rolls the whole batch back.
pub(super) fn upsert(
    db: &mut Connection,
    notices: Vec<ChangeNotice>,
    actor: &str,
) -> Result<Vec<UpsertOutcome>, StoreError> {
    let tx = db.transaction()?;
    let now = now_ms();
    let outcomes = notices
        .iter()
        .map(|notice| upsert_one(&tx, notice, actor, now))
        .collect::<Result<Vec<_>, _>>()?;
    tx.commit()?;
    Ok(outcomes)
}

fn upsert_one(
    tx: &Transaction<'_>,
    notice: &ChangeNotice,
    actor: &str,
    now: i64,
) -> Result<UpsertOutcome, StoreError> {
    let json = notice_json(notice)?;
    let status = notice.status.as_str();
    let outcome = match fetch(tx, &notice.id)? {
        None => {
            tx.execute(
                "INSERT INTO changes (id, owner, category, start_ms, end_ms, status, notice, created_ms, updated_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8)",
                params![notice.id, notice.owner.to_string(), notice.category.as_str(),
                    notice.start_ms, notice.end_ms, status, json.to_string(), now],
            )?;
            let detail = describe(notice);
            audit(
                tx,
                &notice.id,
                AuditAction::Create,
                actor,
                now,
                None,
                Some(status),
                &detail,
            )?;
            Upsert::Created
        }
        Some(old) if old.notice == *notice => Upsert::Unchanged,
        Some(old) => {
            tx.execute(
                "UPDATE changes SET owner = ?2, category = ?3, start_ms = ?4, end_ms = ?5, status = ?6,
                 notice = ?7, updated_ms = ?8 WHERE id = ?1",
                params![notice.id, notice.owner.to_string(), notice.category.as_str(),
                    notice.start_ms, notice.end_ms, status, json.to_string(), now],
            )?;
            let detail = diff(&notice_json(&old.notice)?, &json);
            let before = Some(old.notice.status.as_str());
            audit(
                tx,
                &notice.id,
                AuditAction::Update,
                actor,
                now,
                before,
                Some(status),
                &detail,
            )?;
            Upsert::Updated
        }
    };
    Ok(UpsertOutcome {
        id: notice.id.clone(),
        outcome,
    })
}

pub(super) fn set_status(
    db: &mut Connection,
    id: &str,
    status: ChangeStatus,
    actor: &str,
) -> Result<StatusChange, StoreError> {
    let tx = db.transaction()?;
    let old = fetch(&tx, id)?.ok_or_else(|| not_found(id))?;
    let previous = old.notice.status;
    if previous == status {
        return Ok(StatusChange {
            change: old,
            previous,
        });
    }
    let now = now_ms();
    let notice = ChangeNotice {
        status,
        ..old.notice
    };
    tx.execute(
        "UPDATE changes SET status = ?2, notice = ?3, updated_ms = ?4 WHERE id = ?1",
        params![id, status.as_str(), notice_json(&notice)?.to_string(), now],
    )?;
    let detail = format!("status: {previous} -> {status}");
    let (before, after) = (Some(previous.as_str()), Some(status.as_str()));
    audit(
        &tx,
        id,
        AuditAction::Status,
        actor,
        now,
        before,
        after,
        &detail,
    )?;
    tx.commit()?;
    Ok(StatusChange {
        change: StoredChange {
            notice,
            created_ms: old.created_ms,
            updated_ms: now,
        },
        previous,
    })
}

pub(super) fn get(db: &mut Connection, id: &str) -> Result<Option<StoredChange>, StoreError> {
    fetch(db, id)
}

pub(super) fn list(
    db: &mut Connection,
    filter: &ChangeFilter,
) -> Result<Vec<StoredChange>, StoreError> {
    let mut clauses = Vec::new();
    let mut values = Vec::new();
    if let Some(owner) = filter.user {
        clauses.push("owner = ?");
        values.push(Sql::Text(owner.to_string()));
    }
    if let Some(to) = filter.to_ms {
        clauses.push("start_ms <= ?");
        values.push(Sql::Integer(to));
    }
    if let Some(from) = filter.from_ms {
        clauses.push("end_ms >= ?");
        values.push(Sql::Integer(from));
    }
    if let Some(status) = filter.status {
        clauses.push("status = ?");
        values.push(Sql::Text(status.as_str().to_owned()));
    }
    let mut sql = String::from("SELECT id, notice, created_ms, updated_ms FROM changes");
    if !clauses.is_empty() {
        sql.push_str(" WHERE ");
        sql.push_str(&clauses.join(" AND "));
    }
    sql.push_str(" ORDER BY start_ms, id");
    let mut statement = db.prepare(&sql)?;
    let rows = statement.query_map(params_from_iter(values), raw_change)?;
    rows.map(|row| read_change(row?)).collect()
}

pub(super) fn load_register(db: &mut Connection) -> Result<ChangeRegister, StoreError> {
    let all = list(db, &ChangeFilter::default())?;
    Ok(all.into_iter().map(|stored| stored.notice).collect())
}

pub(super) fn audit_trail(db: &mut Connection, id: &str) -> Result<Vec<AuditEntry>, StoreError> {
    let mut statement = db.prepare(
        "SELECT change_id, action, actor, at_ms, before_status, after_status, detail
         FROM change_audit WHERE change_id = ?1 ORDER BY seq",
    )?;
    let rows = statement.query_map([id], |row| {
        Ok((
            row.get::<_, String>(0)?,
            row.get::<_, String>(1)?,
            row.get::<_, String>(2)?,
            row.get::<_, i64>(3)?,
            row.get::<_, Option<String>>(4)?,
            row.get::<_, Option<String>>(5)?,
            row.get::<_, String>(6)?,
        ))
    })?;
    rows.map(|row| {
        let (change_id, action, actor, at_ms, before, after, detail) = row?;
        let corrupt = |reason: String| StoreError::Corrupt {
            what: "audit row of change",
            id: change_id.clone(),
            reason,
        };
        let status = |text: Option<String>| match text {
            None => Ok(None),
            Some(text) => ChangeStatus::parse(&text)
                .map(Some)
                .ok_or_else(|| corrupt(format!("unknown status `{text}`"))),
        };
        Ok(AuditEntry {
            action: AuditAction::parse(&action)
                .ok_or_else(|| corrupt(format!("unknown action `{action}`")))?,
            before_status: status(before)?,
            after_status: status(after)?,
            change_id,
            actor,
            at_ms,
            detail,
        })
    })
    .collect()
}

type RawChange = (String, String, i64, i64);

fn raw_change(row: &Row<'_>) -> rusqlite::Result<RawChange> {
    Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
}

fn fetch(db: &Connection, id: &str) -> Result<Option<StoredChange>, StoreError> {
    db.query_row(
        "SELECT id, notice, created_ms, updated_ms FROM changes WHERE id = ?1",
        [id],
        raw_change,
    )
    .optional()?
    .map(read_change)
    .transpose()
}

/// Read back through the contract's validation, so a stored notice is exactly what a file would have given.
fn read_change((id, text, created_ms, updated_ms): RawChange) -> Result<StoredChange, StoreError> {
    let corrupt = |reason: String| StoreError::Corrupt {
        what: "change",
        id: id.clone(),
        reason,
    };
    let value: Value = serde_json::from_str(&text).map_err(|error| corrupt(error.to_string()))?;
    let notice = validate_notice_json(&value).map_err(|error| corrupt(error.to_string()))?;
    Ok(StoredChange {
        notice,
        created_ms,
        updated_ms,
    })
}

fn notice_json(notice: &ChangeNotice) -> Result<Value, StoreError> {
    notice.to_json().map_err(|error| StoreError::Constraint {
        field: "start".into(),
        reason: format!("notice `{}` cannot be written: {error}", notice.id),
    })
}

fn not_found(id: &str) -> StoreError {
    StoreError::NotFound {
        what: "change",
        id: id.to_owned(),
    }
}

#[allow(clippy::too_many_arguments)]
fn audit(
    tx: &Transaction<'_>,
    id: &str,
    action: AuditAction,
    actor: &str,
    at_ms: i64,
    before: Option<&str>,
    after: Option<&str>,
    detail: &str,
) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO change_audit (change_id, action, actor, at_ms, before_status, after_status, detail)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![id, action.as_str(), actor, at_ms, before, after, detail],
    )?;
    Ok(())
}

/// One line for the audit trail of a new notice.
fn describe(notice: &ChangeNotice) -> String {
    let time = |ms| format_rfc3339_ms(ms).unwrap_or_else(|| ms.to_string());
    format!(
        "{} change by {}, {} .. {}: {}",
        notice.category,
        notice.owner,
        time(notice.start_ms),
        time(notice.end_ms),
        notice.title
    )
}

/// `field: old -> new` for each top-level field that differs, absent fields shown as `-`.
fn diff(old: &Value, new: &Value) -> String {
    const LONGEST: usize = 60;
    let show = |value: Option<&Value>| {
        let text = match value {
            None | Some(Value::Null) => "-".to_owned(),
            Some(Value::String(text)) => text.clone(),
            Some(other) => other.to_string(),
        };
        match text.char_indices().nth(LONGEST) {
            Some((cut, _)) => format!("{}...", &text[..cut]),
            None => text,
        }
    };
    let mut keys: Vec<&String> = old
        .as_object()
        .into_iter()
        .chain(new.as_object())
        .flat_map(|object| object.keys())
        .collect();
    keys.sort();
    keys.dedup();
    let changes: Vec<String> = keys
        .into_iter()
        .filter(|key| old.get(key.as_str()) != new.get(key.as_str()))
        .map(|key| {
            format!(
                "{key}: {} -> {}",
                show(old.get(key.as_str())),
                show(new.get(key.as_str()))
            )
        })
        .collect();
    changes.join("; ")
}

#[cfg(test)]
#[path = "changes_tests.rs"]
mod tests;
