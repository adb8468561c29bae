//! Stored incidents (full report JSON plus indexed columns, upserted by id, never over a different incident)
//! and the engine's snapshot blob.

use rusqlite::types::Value as Sql;
use rusqlite::{Connection, OptionalExtension, Row, params, params_from_iter};
use serde_json::Value;

use super::changes::Upsert;
use super::history;
use super::incident_numbers::{StoredIdentity, refuse_other_incident};
use super::{StoreError, now_ms};
use stormwatch_core::incident::IncidentKind;
use stormwatch_core::report::IncidentRecord;
use stormwatch_core::telemetry::Eui64;

/// An incident as stored, with what the service attached to it and the wall-clock times it was written.
#[derive(Clone, PartialEq, Debug)]
pub struct StoredIncident {
    pub record: IncidentRecord,
    /// Free-form JSON from the service (e.g. the shard or partition that raised it).
    pub extra: Option<Value>,
    pub created_ms: i64,
    pub updated_ms: i64,
}

/// Which incidents `list_incidents` returns; every `None` matches all. Sorted by onset, then id.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct IncidentFilter {
    /// `Some(true)`: not yet resolved; `Some(false)`: resolved.
    pub open: Option<bool>,
    /// Incidents of this User, including `*` incidents that list it among their Users.
    pub user: Option<Eui64>,
    /// Only network-wide (`*`) incidents.
    pub network_only: bool,
    pub kind: Option<IncidentKind>,
    /// With `to_ms`: incidents whose `[onset, resolved]` (open ones: onset onwards) overlaps `[from_ms, to_ms]`.
    pub from_ms: Option<i64>,
    pub to_ms: Option<i64>,
    /// At most this many, after skipping `offset` (in list order); `None`: all.
    pub limit: Option<usize>,
    pub offset: usize,
}

pub(super) fn save(
    db: &mut Connection,
    record: &IncidentRecord,
    extra: Option<&Value>,
) -> Result<Upsert, StoreError> {
    let encode = |source| StoreError::Encode {
        what: "incident",
        cause: source,
    };
    let extra = extra
        .map(serde_json::to_string)
        .transpose()
        .map_err(encode)?;
    let tx = db.transaction()?;
    let found: Option<(String, Option<String>, StoredIdentity)> = tx
        .query_row(
            "SELECT record, extra, user, kind, detected FROM incidents WHERE id = ?1",
            [&record.id],
            |row| {
                Ok((
                    row.get(0)?,
                    row.get(1)?,
                    (row.get(2)?, row.get(3)?, row.get(4)?),
                ))
            },
        )
        .optional()?;
    if let Some((_, _, identity)) = &found {
        refuse_other_incident(record, &canonical(&record.user), identity)?;
    }
    let previous = found.map(|(record, extra, _)| (record, extra));
    let merged = previous
        .as_ref()
        .and_then(|(old, _)| with_earlier_users(record, old));
    let record = merged.as_ref().unwrap_or(record);
    let json = serde_json::to_string(record).map_err(encode)?;
    let outcome = match &previous {
        None => Upsert::Created,
        Some((old_json, old_extra)) if *old_json == json && *old_extra == extra => {
            return Ok(Upsert::Unchanged);
        }
        Some(_) => Upsert::Updated,
    };
    let now = now_ms();
    history::record(
        &tx,
        previous.as_ref().map(|(old, _)| old.as_str()),
        record,
        now,
    )?;
    tx.execute(
        "INSERT INTO incidents
             (id, user, kind, verdict, onset, detected, resolved, record, extra, created_ms, updated_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10)
         ON CONFLICT (id) DO UPDATE SET user = ?2, kind = ?3, verdict = ?4, onset = ?5, detected = ?6,
             resolved = ?7, record = ?8, extra = ?9, updated_ms = ?10",
        params![
            record.id,
            canonical(&record.user),
            record.kind.as_str(),
            record.verdict.as_str(),
            record.onset,
            record.detected,
            record.resolved,
            json,
            extra,
            now
        ],
    )?;
    tx.execute(
        "DELETE FROM incident_users WHERE incident_id = ?1",
        [&record.id],
    )?;
    let users = std::iter::once(&record.user)
        .chain(&record.users)
        .map(|user| canonical(user))
        .filter(|user| user != "*");
    for user in users {
        tx.execute(
            "INSERT OR IGNORE INTO incident_users (incident_id, user) VALUES (?1, ?2)",
            params![record.id, user],
        )?;
    }
    tx.commit()?;
    Ok(outcome)
}

pub(super) fn get(db: &mut Connection, id: &str) -> Result<Option<StoredIncident>, StoreError> {
    db.query_row(
        "SELECT id, record, extra, created_ms, updated_ms FROM incidents WHERE id = ?1",
        [id],
        raw_incident,
    )
    .optional()?
    .map(read_incident)
    .transpose()
}

pub(super) fn list(
    db: &mut Connection,
    filter: &IncidentFilter,
) -> Result<Vec<StoredIncident>, StoreError> {
    let mut clauses = Vec::new();
    let mut values = Vec::new();
    match filter.open {
        Some(true) => clauses.push("resolved IS NULL"),
        Some(false) => clauses.push("resolved IS NOT NULL"),
        None => {}
    }
    if let Some(user) = filter.user {
        clauses.push("id IN (SELECT incident_id FROM incident_users WHERE user = ?)");
        values.push(Sql::Text(user.to_string()));
    }
    if filter.network_only {
        clauses.push("user = '*'");
    }
    if let Some(kind) = filter.kind {
        clauses.push("kind = ?");
        values.push(Sql::Text(kind.as_str().to_owned()));
    }
    if let Some(to) = filter.to_ms {
        clauses.push("onset <= ?");
        values.push(Sql::Integer(to));
    }
    if let Some(from) = filter.from_ms {
        clauses.push("(resolved IS NULL OR resolved >= ?)");
        values.push(Sql::Integer(from));
    }
    let mut sql = String::from("SELECT id, record, extra, created_ms, updated_ms FROM incidents");
    if !clauses.is_empty() {
        sql.push_str(" WHERE ");
        sql.push_str(&clauses.join(" AND "));
    }
    sql.push_str(" ORDER BY onset, id");
    super::page_clause(&mut sql, &mut values, filter.limit, filter.offset);
    let mut statement = db.prepare(&sql)?;
    let rows = statement.query_map(params_from_iter(values), raw_incident)?;
    rows.map(|row| read_incident(row?)).collect()
}

/// A network-wide (`*`) incident's Users accumulate over writes: several instances that split the Users between
/// them (Kafka partitions) each report their share under one ID, and on one instance the list only grows anyway.
/// `None` when nothing is to be added.
fn with_earlier_users(record: &IncidentRecord, previous_json: &str) -> Option<IncidentRecord> {
    if record.user != "*" {
        return None;
    }
    let previous: IncidentRecord = serde_json::from_str(previous_json).ok()?;
    let missing: Vec<&String> = previous
        .users
        .iter()
        .filter(|u| !record.users.contains(u))
        .collect();
    if missing.is_empty() {
        return None;
    }
    let mut merged = record.clone();
    merged.users.extend(missing.into_iter().cloned());
    merged.users.sort();
    Some(merged)
}

/// One row, replaced in one statement: a crash leaves the old snapshot or the new one, never a mix. Durable when
/// this returns: the engine truncates its journal next, so the commit must survive a power cut. The store runs
/// WAL with `synchronous = NORMAL`, where a commit reaches the disk only at the next checkpoint; this one commit
/// runs with `FULL`, which syncs the WAL as it commits.
pub(super) fn save_snapshot(db: &mut Connection, data: &[u8]) -> Result<(), StoreError> {
    db.pragma_update(None, "synchronous", "FULL")?;
    let saved = db.execute(
        "INSERT OR REPLACE INTO snapshot (id, saved_ms, data) VALUES (1, ?1, ?2)",
        params![now_ms(), data],
    );
    let restored = db.pragma_update(None, "synchronous", "NORMAL");
    saved?;
    restored?;
    Ok(())
}

pub(super) fn load_snapshot(db: &mut Connection) -> Result<Option<Vec<u8>>, StoreError> {
    Ok(db
        .query_row("SELECT data FROM snapshot WHERE id = 1", [], |row| {
            row.get(0)
        })
        .optional()?)
}

/// The report's spelling of a User (upper-case, hyphens), whatever spelling the record came with.
fn canonical(user: &str) -> String {
    Eui64::parse(user).map_or_else(|| user.to_owned(), |eui| eui.to_string())
}

type RawIncident = (String, String, Option<String>, i64, i64);

fn raw_incident(row: &Row<'_>) -> rusqlite::Result<RawIncident> {
    Ok((
        row.get(0)?,
        row.get(1)?,
        row.get(2)?,
        row.get(3)?,
        row.get(4)?,
    ))
}

fn read_incident(
    (id, record, extra, created_ms, updated_ms): RawIncident,
) -> Result<StoredIncident, StoreError> {
    let corrupt = |error: serde_json::Error| StoreError::Corrupt {
        what: "incident",
        id: id.clone(),
        reason: error.to_string(),
    };
    Ok(StoredIncident {
        record: serde_json::from_str(&record).map_err(corrupt)?,
        extra: extra
            .map(|text| serde_json::from_str(&text))
            .transpose()
            .map_err(corrupt)?,
        created_ms,
        updated_ms,
    })
}

#[cfg(test)]
#[path = "incidents_tests.rs"]
mod tests;
