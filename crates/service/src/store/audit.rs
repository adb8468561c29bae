//! The audit trail of the change register: one row per create, update or status change, and how each is described.

use rusqlite::{Connection, Transaction, params};
use serde::Serialize;
use serde_json::Value;

use super::StoreError;
use stormwatch_core::changes::{ChangeNotice, ChangeStatus};

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

/// One audit row about to be written, in the transaction of the write it records.
pub(super) struct Audit<'a> {
    pub id: &'a str,
    pub action: AuditAction,
    pub actor: &'a str,
    pub at_ms: i64,
    pub before: Option<ChangeStatus>,
    pub after: Option<ChangeStatus>,
    pub detail: String,
}

impl Audit<'_> {
    pub(super) fn write(&self, tx: &Transaction<'_>) -> Result<(), StoreError> {
        tx.execute(
            "INSERT INTO change_audit (change_id, action, actor, at_ms, before_status, after_status, detail)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                self.id,
                self.action.as_str(),
                self.actor,
                self.at_ms,
                self.before.map(ChangeStatus::as_str),
                self.after.map(ChangeStatus::as_str),
                self.detail
            ],
        )?;
        Ok(())
    }
}

pub(super) fn trail(db: &mut Connection, id: &str) -> Result<Vec<AuditEntry>, StoreError> {
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

/// One line for the audit trail of a new notice.
pub(super) fn describe(notice: &ChangeNotice) -> String {
    let time = |ms| stormwatch_core::rfc3339::format_ms(ms).unwrap_or_else(|| ms.to_string());
    format!(
        "{} change by {}, {} .. {}: {}",
        notice.category,
        notice.owner,
        time(notice.start_ms),
        time(notice.end_ms),
        notice.title
    )
}

/// One top-level field of a notice that a write changed; `null` stands for absent.
#[derive(Clone, PartialEq, Debug, Serialize)]
pub struct FieldChange {
    pub field: String,
    pub before: Value,
    pub after: Value,
}

impl FieldChange {
    /// `field: old -> new`, absent shown as `-` and long values shortened, as the audit trail and the CLI say it.
    pub fn line(&self) -> String {
        const LONGEST: usize = 60;
        let show = |value: &Value| {
            let text = match value {
                Value::Null => "-".to_owned(),
                Value::String(text) => text.clone(),
                other => other.to_string(),
            };
            match text.char_indices().nth(LONGEST) {
                Some((cut, _)) => format!("{}...", &text[..cut]),
                None => text,
            }
        };
        format!(
            "{}: {} -> {}",
            self.field,
            show(&self.before),
            show(&self.after)
        )
    }
}

/// Each top-level field that differs between two notices' JSON, in field order.
pub fn field_changes(old: &Value, new: &Value) -> Vec<FieldChange> {
    let mut keys: Vec<&String> = old
        .as_object()
        .into_iter()
        .chain(new.as_object())
        .flat_map(|object| object.keys())
        .collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|key| old.get(key.as_str()) != new.get(key.as_str()))
        .map(|key| FieldChange {
            field: key.clone(),
            before: old.get(key.as_str()).cloned().unwrap_or(Value::Null),
            after: new.get(key.as_str()).cloned().unwrap_or(Value::Null),
        })
        .collect()
}

/// `field: old -> new; ...` for each top-level field that differs, absent fields shown as `-`.
pub fn diff(changes: &[FieldChange]) -> String {
    changes
        .iter()
        .map(FieldChange::line)
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    #[test]
    fn diff_names_each_changed_field_and_shortens_long_values() {
        let old = serde_json::json!({"id": "X", "title": "a", "contact": "c"});
        let new = serde_json::json!({"id": "X", "title": "b".repeat(100), "srvs": ["1.1.1"]});
        let text = super::diff(&super::field_changes(&old, &new));
        assert!(
            text.starts_with("contact: c -> -; srvs: - -> [\"1.1.1\"]; title: a -> bbb"),
            "{text}"
        );
        assert!(text.ends_with("..."), "{text}");
    }
}
