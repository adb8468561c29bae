//! The User directory's API edits (each a name and role, or a deletion that hides a file entry) and their audit
//! trail; the directory file itself is read at start and never written.

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use super::{StoreError, now_ms};
use crate::user_directory::{Entry, PartyRole};
use stormwatch_core::telemetry::Eui64;

/// One audited write to the directory.
#[derive(Clone, Eq, PartialEq, Debug, Serialize)]
pub struct DirectoryAudit {
    pub user: String,
    /// `put` or `delete`.
    pub action: String,
    pub actor: String,
    pub at_ms: i64,
    /// `name: old -> new; role: old -> new`, or what was deleted.
    pub detail: String,
}

fn describe(entry: Option<&Entry>) -> (String, String) {
    match entry {
        None => ("(none)".to_owned(), "(none)".to_owned()),
        Some(entry) => (
            format!("{:?}", entry.name),
            entry.role.map_or("(none)", PartyRole::as_str).to_owned(),
        ),
    }
}

/// Every edit, oldest last wins (one row per User).
pub(super) fn edits(db: &mut Connection) -> Result<Vec<(Eui64, Option<Entry>)>, StoreError> {
    let mut statement = db.prepare("SELECT user, name, role FROM user_directory ORDER BY user")?;
    let rows = statement.query_map([], |row| {
        Ok((
            row.get::<_, String>(0)?,
            row.get::<_, Option<String>>(1)?,
            row.get::<_, Option<String>>(2)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (user, name, role) = row?;
        // Written only by `put` from parsed values: a row that no longer parses is skipped, not fatal.
        let Some(user) = Eui64::parse(&user) else {
            continue;
        };
        let entry = name.map(|name| Entry {
            user,
            name,
            role: role.as_deref().and_then(PartyRole::parse),
        });
        out.push((user, entry));
    }
    Ok(out)
}

/// Writes an edit (`None` deletes) with its audit row, unless it changes nothing; returns whether it did.
/// `before` is the entry the caller saw (file or earlier edit), for the audit detail.
pub(super) fn put(
    db: &mut Connection,
    user: Eui64,
    entry: Option<&Entry>,
    before: Option<&Entry>,
    actor: &str,
) -> Result<bool, StoreError> {
    let tx = db.transaction()?;
    let stored: Option<(Option<String>, Option<String>)> = tx
        .query_row(
            "SELECT name, role FROM user_directory WHERE user = ?1",
            [user.to_string()],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .optional()?;
    let wanted = (
        entry.map(|e| e.name.clone()),
        entry.and_then(|e| e.role).map(|r| r.as_str().to_owned()),
    );
    let unchanged_edit = stored.as_ref() == Some(&wanted);
    let same_as_before = before == entry;
    if unchanged_edit || (stored.is_none() && same_as_before) {
        return Ok(false);
    }
    let at_ms = now_ms();
    tx.execute(
        "INSERT INTO user_directory (user, name, role, updated_ms) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (user) DO UPDATE SET name = excluded.name, role = excluded.role,
                                          updated_ms = excluded.updated_ms",
        params![user.to_string(), wanted.0, wanted.1, at_ms],
    )?;
    let (old_name, old_role) = describe(before);
    let (new_name, new_role) = describe(entry);
    let detail = format!("name: {old_name} -> {new_name}; role: {old_role} -> {new_role}");
    tx.execute(
        "INSERT INTO user_directory_audit (user, action, actor, at_ms, detail) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            user.to_string(),
            if entry.is_some() { "put" } else { "delete" },
            actor,
            at_ms,
            detail
        ],
    )?;
    tx.commit()?;
    Ok(true)
}

pub(super) fn audit(db: &mut Connection, user: Eui64) -> Result<Vec<DirectoryAudit>, StoreError> {
    let mut statement = db.prepare(
        "SELECT user, action, actor, at_ms, detail FROM user_directory_audit WHERE user = ?1 ORDER BY seq",
    )?;
    let rows = statement.query_map([user.to_string()], |row| {
        Ok(DirectoryAudit {
            user: row.get(0)?,
            action: row.get(1)?,
            actor: row.get(2)?,
            at_ms: row.get(3)?,
            detail: row.get(4)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}
