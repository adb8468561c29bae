//! The stored change register: notices as contract JSON plus indexed columns, each write with its audit row and
//! the coordination warnings the notice raised when it was written.

use rusqlite::types::Value as Sql;
use rusqlite::{Connection, OptionalExtension, Row, Transaction, params, params_from_iter};
use serde::Serialize;
use serde_json::{Map, Value};

use super::audit::{Audit, AuditAction, FieldChange, describe, diff, field_changes};
use super::register_cache::{Cached, RegisterCache, Undo};
use super::{StoreError, now_ms};
use stormwatch_core::changes::{
    ChangeNotice, ChangeOwner, ChangeRegister, ChangeStatus, CoordinationConfig, Warning,
    register_warnings,
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

#[derive(Clone, PartialEq, Debug, Serialize)]
pub struct UpsertOutcome {
    pub id: String,
    pub outcome: Upsert,
    /// The warnings stored with the notice: raised by this write, or kept from the last one when nothing changed.
    pub warnings: Vec<Warning>,
    /// For an update, each field it changed (before and after).
    pub changed: Vec<FieldChange>,
    /// The stored notice was replaced whole (`Registration::Replace` over an existing id): fields not given are gone.
    pub replaced: bool,
    /// The notice as stored after the write (merged over the stored one for a `Registration::Merge`).
    #[serde(skip)]
    pub notice: ChangeNotice,
}

/// A notice as registered: whole, replacing any stored notice with its id, or as the fields given, merged over the
/// stored notice (fields not given keep their stored values; `null` clears an optional one). A merge for an id
/// not yet stored must give every required field, as a new notice does.
#[derive(Clone, PartialEq, Debug)]
pub enum Registration {
    Replace(ChangeNotice),
    Merge(Map<String, Value>),
}

/// What a caller checks of each notice as it will be stored (after merging), besides the contract: `Err((field,
/// reason))` refuses the whole batch.
pub type CheckNotice = dyn Fn(&ChangeNotice) -> Result<(), (String, String)> + Send;
pub type NoticeCheck = Box<CheckNotice>;

/// The notice `fields` make over `stored` (or over nothing), through the contract's validation.
pub fn merged(
    stored: Option<&ChangeNotice>,
    fields: &Map<String, Value>,
) -> Result<ChangeNotice, stormwatch_core::changes::FieldError> {
    let mut object = stored
        .and_then(|notice| notice.to_json().ok())
        .and_then(|json| json.as_object().cloned())
        .unwrap_or_default();
    for (field, value) in fields {
        if value.is_null() {
            object.remove(field);
        } else {
            object.insert(field.clone(), value.clone());
        }
    }
    ChangeNotice::try_from(&Value::Object(object))
}

/// A notice as stored, with the wall-clock times (ms since the epoch) it was first and last written.
#[derive(Clone, PartialEq, Debug)]
pub struct StoredChange {
    pub notice: ChangeNotice,
    pub created_ms: i64,
    pub updated_ms: i64,
    /// The warnings raised when the notice was last registered or updated, against the register as it stood then
    /// (every `related` id included: callers redact for the viewer). `None` for a change stored before warnings
    /// were recorded (schema step 5).
    pub warnings: Option<Vec<Warning>>,
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
    /// At most this many, after skipping `offset` (in list order); `None`: all.
    pub limit: Option<usize>,
    pub offset: usize,
}

/// The notice after a status change, and the status it had before (equal when nothing changed).
#[derive(Clone, PartialEq, Debug)]
pub struct StatusChange {
    pub change: StoredChange,
    pub previous: ChangeStatus,
}

/// Notices written, then judged, this many at a time between progress reports: a bulk registration or import of
/// tens of thousands reports as it goes and holds at most one chunk's warnings in flight.
pub const CHUNK: usize = 500;

/// How far a bulk write has got: notices written, then notices judged, out of `total`.
#[derive(Copy, Clone, Eq, PartialEq, Debug)]
pub struct Progress {
    pub written: usize,
    pub judged: usize,
    pub total: usize,
}

/// All notices or none: an error on any row rolls the whole batch back. With `confined` set, every notice, and
/// every stored notice it would replace, must belong to that owner; the check runs inside the transaction, so
/// no write can slip between it and the update. Each notice written is then judged against the register with the
/// whole batch in it, and its warnings stored in the same transaction: what registration said stays on record.
/// The in-memory register is updated with the batch as it goes and put back if the transaction fails.
#[allow(clippy::too_many_arguments)]
pub(super) fn upsert(
    db: &mut Connection,
    cache: &RegisterCache,
    registrations: Vec<Registration>,
    actor: &str,
    confined: Option<ChangeOwner>,
    coordination: &CoordinationConfig,
    check: &CheckNotice,
    progress: &dyn Fn(Progress),
) -> Result<Vec<UpsertOutcome>, StoreError> {
    let mut cached = cache.current(db, read_register)?;
    let mut undo = Undo::new();
    let tx = db.transaction()?;
    let written = write_all(
        &tx,
        &mut cached,
        &mut undo,
        registrations,
        Writer {
            actor,
            confined,
            check,
        },
        coordination,
        progress,
    )
    .and_then(|outcomes| tx.commit().map(|()| outcomes).map_err(StoreError::from));
    if written.is_err() {
        cached.revert(undo);
    }
    written
}

/// Who writes, within what bounds.
struct Writer<'a> {
    actor: &'a str,
    confined: Option<ChangeOwner>,
    check: &'a CheckNotice,
}

fn write_all(
    tx: &Transaction<'_>,
    cached: &mut Cached,
    undo: &mut Undo,
    registrations: Vec<Registration>,
    writer: Writer<'_>,
    coordination: &CoordinationConfig,
    progress: &dyn Fn(Progress),
) -> Result<Vec<UpsertOutcome>, StoreError> {
    let now = now_ms();
    let total = registrations.len();
    let mut outcomes = Vec::with_capacity(total);
    for (index, registration) in registrations.into_iter().enumerate() {
        let outcome = register_one(tx, index, registration, &writer, now)?;
        if outcome.outcome != Upsert::Unchanged {
            cached.apply(outcome.notice.clone(), undo);
        }
        outcomes.push(outcome);
        if outcomes.len() % CHUNK == 0 || outcomes.len() == total {
            progress(Progress {
                written: outcomes.len(),
                judged: 0,
                total,
            });
        }
    }
    let register = &cached.register;
    let mut judged = 0;
    for chunk in outcomes.chunks_mut(CHUNK) {
        for outcome in chunk.iter_mut() {
            judged += 1;
            if outcome.outcome == Upsert::Unchanged {
                outcome.warnings = stored_warnings(tx, &outcome.id)?.unwrap_or_default();
                continue;
            }
            // The batch may name one id twice: the register holds the last, so judge that one.
            let Some(notice) = register.get(&outcome.id) else {
                continue;
            };
            outcome.warnings = register_warnings(notice, register, coordination);
            let json =
                serde_json::to_string(&outcome.warnings).map_err(|error| StoreError::Corrupt {
                    what: "change warnings",
                    id: outcome.id.clone(),
                    reason: error.to_string(),
                })?;
            tx.execute(
                "UPDATE changes SET warnings = ?2 WHERE id = ?1",
                params![outcome.id, json],
            )?;
        }
        progress(Progress {
            written: total,
            judged,
            total,
        });
    }
    Ok(outcomes)
}

fn stored_warnings(db: &Connection, id: &str) -> Result<Option<Vec<Warning>>, StoreError> {
    let text: Option<String> = db
        .query_row("SELECT warnings FROM changes WHERE id = ?1", [id], |row| {
            row.get(0)
        })
        .optional()?
        .flatten();
    text.map(|text| parse_warnings(id, &text)).transpose()
}

fn parse_warnings(id: &str, text: &str) -> Result<Vec<Warning>, StoreError> {
    serde_json::from_str(text).map_err(|error| StoreError::Corrupt {
        what: "change warnings",
        id: id.to_owned(),
        reason: error.to_string(),
    })
}

/// Resolves one registration against the stored notice with its id, checks it, and writes it.
fn register_one(
    tx: &Transaction<'_>,
    index: usize,
    registration: Registration,
    writer: &Writer<'_>,
    now: i64,
) -> Result<UpsertOutcome, StoreError> {
    let invalid = |field: String, reason: String| StoreError::Invalid {
        index,
        field,
        reason,
    };
    let (notice, stored, replace) = match registration {
        Registration::Replace(notice) => {
            let stored = fetch(tx, &notice.id)?;
            (notice, stored, true)
        }
        Registration::Merge(fields) => {
            let Some(id) = fields.get("id").and_then(Value::as_str) else {
                return Err(invalid(
                    "id".into(),
                    "field `id`: is missing or not a string".into(),
                ));
            };
            let stored = fetch(tx, id)?;
            let notice = merged(stored.as_ref().map(|s| &s.notice), &fields)
                .map_err(|error| invalid(error.field.clone(), error.to_string()))?;
            (notice, stored, false)
        }
    };
    (writer.check)(&notice).map_err(|(field, reason)| invalid(field, reason))?;
    upsert_one(tx, notice, stored, replace, writer, now)
}

fn upsert_one(
    tx: &Transaction<'_>,
    notice: ChangeNotice,
    stored: Option<StoredChange>,
    replace: bool,
    writer: &Writer<'_>,
    now: i64,
) -> Result<UpsertOutcome, StoreError> {
    let confined = writer.confined;
    check_owner(confined, &notice.id, notice.owner)?;
    let json = notice_json(&notice)?;
    let row = params![
        notice.id,
        notice.owner.to_string(),
        notice.category.as_str(),
        notice.start_ms,
        notice.end_ms,
        notice.status.as_str(),
        json.to_string(),
        now
    ];
    let mut audit = Audit {
        id: &notice.id,
        action: AuditAction::Create,
        actor: writer.actor,
        at_ms: now,
        before: None,
        after: Some(notice.status),
        detail: String::new(),
    };
    if let Some(old) = &stored {
        check_owner(confined, &notice.id, old.notice.owner)?;
    }
    let (outcome, changed) = match stored {
        None => {
            tx.execute(
                "INSERT INTO changes (id, owner, category, start_ms, end_ms, status, notice, created_ms, updated_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8)",
                row,
            )?;
            audit.detail = describe(&notice);
            (Upsert::Created, Vec::new())
        }
        Some(old) if old.notice == notice => {
            return Ok(UpsertOutcome {
                id: notice.id.clone(),
                outcome: Upsert::Unchanged,
                warnings: Vec::new(),
                changed: Vec::new(),
                replaced: false,
                notice,
            });
        }
        Some(old) => {
            tx.execute(
                "UPDATE changes SET owner = ?2, category = ?3, start_ms = ?4, end_ms = ?5, status = ?6,
                 notice = ?7, updated_ms = ?8 WHERE id = ?1",
                row,
            )?;
            audit.action = AuditAction::Update;
            audit.before = Some(old.notice.status);
            let changed = field_changes(&notice_json(&old.notice)?, &json);
            audit.detail = if replace {
                format!("replaced whole: {}", diff(&changed))
            } else {
                diff(&changed)
            };
            (Upsert::Updated, changed)
        }
    };
    audit.write(tx)?;
    Ok(UpsertOutcome {
        id: notice.id.clone(),
        outcome,
        warnings: Vec::new(),
        replaced: replace && outcome == Upsert::Updated,
        changed,
        notice,
    })
}

pub(super) fn set_status(
    db: &mut Connection,
    cache: &RegisterCache,
    id: &str,
    status: ChangeStatus,
    actor: &str,
    confined: Option<ChangeOwner>,
) -> Result<StatusChange, StoreError> {
    let mut cached = cache.current(db, read_register)?;
    let tx = db.transaction()?;
    let old = fetch(&tx, id)?.ok_or_else(|| not_found(id))?;
    check_owner(confined, id, old.notice.owner)?;
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
    Audit {
        id,
        action: AuditAction::Status,
        actor,
        at_ms: now,
        before: Some(previous),
        after: Some(status),
        detail: format!("status: {previous} -> {status}"),
    }
    .write(&tx)?;
    tx.commit()?;
    cached.register.upsert(notice.clone());
    Ok(StatusChange {
        change: StoredChange {
            notice,
            created_ms: old.created_ms,
            updated_ms: now,
            warnings: old.warnings,
        },
        previous,
    })
}

pub(super) fn get(db: &mut Connection, id: &str) -> Result<Option<StoredChange>, StoreError> {
    fetch(db, id)
}

pub(super) fn list(
    db: &Connection,
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
    let mut sql = String::from("SELECT id, notice, created_ms, updated_ms, warnings FROM changes");
    if !clauses.is_empty() {
        sql.push_str(" WHERE ");
        sql.push_str(&clauses.join(" AND "));
    }
    sql.push_str(" ORDER BY start_ms, id");
    super::page_clause(&mut sql, &mut values, filter.limit, filter.offset);
    let mut statement = db.prepare(&sql)?;
    let rows = statement.query_map(params_from_iter(values), raw_change)?;
    rows.map(|row| read_change(row?)).collect()
}

/// The whole register as the file holds it (the cache's source; everything else reads the cache).
pub(super) fn read_register(db: &Connection) -> Result<ChangeRegister, StoreError> {
    let all = list(db, &ChangeFilter::default())?;
    Ok(all.into_iter().map(|stored| stored.notice).collect())
}

/// Whether the register had to be re-read: another connection committed since it was.
pub(super) fn sync_register(
    db: &mut Connection,
    cache: &RegisterCache,
) -> Result<bool, StoreError> {
    let before = cache.version();
    let after = cache.current(db, read_register)?.version();
    Ok(before != after)
}

/// A copy of the register, current with every write (for the engine and the CLI).
pub(super) fn load_register(
    db: &mut Connection,
    cache: &RegisterCache,
) -> Result<ChangeRegister, StoreError> {
    Ok(cache.current(db, read_register)?.register.clone())
}

type RawChange = (String, String, i64, i64, Option<String>);

fn raw_change(row: &Row<'_>) -> rusqlite::Result<RawChange> {
    Ok((
        row.get(0)?,
        row.get(1)?,
        row.get(2)?,
        row.get(3)?,
        row.get(4)?,
    ))
}

fn fetch(db: &Connection, id: &str) -> Result<Option<StoredChange>, StoreError> {
    db.query_row(
        "SELECT id, notice, created_ms, updated_ms, warnings FROM changes WHERE id = ?1",
        [id],
        raw_change,
    )
    .optional()?
    .map(read_change)
    .transpose()
}

/// Read back through the contract's validation, so a stored notice is exactly what a file would have given.
fn read_change(
    (id, text, created_ms, updated_ms, warnings): RawChange,
) -> Result<StoredChange, StoreError> {
    let corrupt = |reason: String| StoreError::Corrupt {
        what: "change",
        id: id.clone(),
        reason,
    };
    let value: Value = serde_json::from_str(&text).map_err(|error| corrupt(error.to_string()))?;
    let notice = ChangeNotice::try_from(&value).map_err(|error| corrupt(error.to_string()))?;
    let warnings = warnings
        .map(|text| parse_warnings(&id, &text))
        .transpose()?;
    Ok(StoredChange {
        notice,
        created_ms,
        updated_ms,
        warnings,
    })
}

fn notice_json(notice: &ChangeNotice) -> Result<Value, StoreError> {
    notice.to_json().map_err(|error| StoreError::Constraint {
        field: "start".into(),
        reason: format!("notice `{}` cannot be written: {error}", notice.id),
    })
}

/// `NotYours` when a confined caller reaches for another owner's change. The error names only the change id the
/// caller gave, never the owner, so probing ids learns nothing about other Users.
fn check_owner(
    confined: Option<ChangeOwner>,
    id: &str,
    owner: ChangeOwner,
) -> Result<(), StoreError> {
    match confined {
        Some(allowed) if allowed != owner => Err(StoreError::NotYours { id: id.to_owned() }),
        _ => Ok(()),
    }
}

fn not_found(id: &str) -> StoreError {
    StoreError::NotFound {
        what: "change",
        id: id.to_owned(),
    }
}

#[cfg(test)]
#[path = "changes_tests.rs"]
mod tests;
