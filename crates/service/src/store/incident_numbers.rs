//! Incident numbers reserved in blocks (`incident_sequence`), the rule that one ID names one incident (a
//! numbered ID already stored for a different incident is never overwritten), and the record of a snapshot lost
//! at start until an operator acknowledges it (`snapshot_loss`).

use std::ops::Range;

use rusqlite::{Connection, OptionalExtension};
use tokio::sync::oneshot;

use super::{Store, StoreError};
use stormwatch_core::report::IncidentRecord;

/// A reservation asked for without waiting (see [`Store::reserve_incident_numbers_later`]).
pub type PendingNumbers = oneshot::Receiver<Result<Range<u64>, StoreError>>;

impl Store {
    /// [`Store::reserve_incident_numbers`] for the engine thread, which must never wait on the store: the block
    /// arrives on the returned receiver (poll it with `try_recv`).
    pub fn reserve_incident_numbers_later(
        &self,
        floor: u64,
        count: u64,
    ) -> Result<PendingNumbers, StoreError> {
        self.owner.submit(move |db| reserve(db, floor, count))
    }
}

/// `count` numbers from the first one past every reservation, every stored `INC-nnnnnn` and `floor`.
pub(super) fn reserve(
    db: &mut Connection,
    floor: u64,
    count: u64,
) -> Result<Range<u64>, StoreError> {
    let tx = db.transaction()?;
    let reserved: Option<i64> = tx
        .query_row(
            "SELECT reserved_until FROM incident_sequence WHERE id = 1",
            [],
            |row| row.get(0),
        )
        .optional()?;
    // Rows written by a build that numbered from its snapshot, or copied in by hand, count too.
    let past_stored = past_stored_in(&tx)?;
    let start = [reserved.unwrap_or(1), past_stored, to_sql(floor)?, 1]
        .into_iter()
        .max()
        .unwrap_or(1);
    let end = start.saturating_add(to_sql(count)?);
    tx.execute(
        "INSERT INTO incident_sequence (id, reserved_until) VALUES (1, ?1)
         ON CONFLICT (id) DO UPDATE SET reserved_until = excluded.reserved_until",
        [end],
    )?;
    tx.commit()?;
    Ok(start as u64..end as u64)
}

/// The first number past every stored `INC-nnnnnn` (1 when none is stored).
pub(super) fn past_stored(db: &mut Connection) -> Result<u64, StoreError> {
    Ok(past_stored_in(db)? as u64)
}

fn past_stored_in(db: &Connection) -> Result<i64, StoreError> {
    let stored: Option<i64> = db.query_row(
        "SELECT MAX(CAST(substr(id, 5) AS INTEGER)) FROM incidents
         WHERE id GLOB 'INC-[0-9]*' AND substr(id, 5) NOT GLOB '*[^0-9]*'",
        [],
        |row| row.get(0),
    )?;
    Ok(stored.map_or(1, |n| n.saturating_add(1)).max(1))
}

/// Records that the snapshot could not be read (the first reason stands until acknowledged).
pub(super) fn record_snapshot_loss(db: &mut Connection, reason: &str) -> Result<(), StoreError> {
    db.execute(
        "INSERT OR IGNORE INTO snapshot_loss (id, reason, at_ms) VALUES (1, ?1, ?2)",
        rusqlite::params![reason, super::now_ms()],
    )?;
    Ok(())
}

/// The lost snapshot not yet acknowledged, with when it was found (ms since the epoch).
pub(super) fn snapshot_loss(db: &mut Connection) -> Result<Option<(String, i64)>, StoreError> {
    Ok(db
        .query_row(
            "SELECT reason, at_ms FROM snapshot_loss WHERE id = 1",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .optional()?)
}

/// Forgets the lost snapshot; `true` if one was recorded.
pub(super) fn acknowledge_snapshot_loss(db: &mut Connection) -> Result<bool, StoreError> {
    Ok(db.execute("DELETE FROM snapshot_loss WHERE id = 1", [])? > 0)
}

fn to_sql(n: u64) -> Result<i64, StoreError> {
    i64::try_from(n).map_err(|_| StoreError::Constraint {
        field: "reserved_until".to_owned(),
        reason: format!("{n} is past the largest incident number the store can hold"),
    })
}

/// What the store keeps of an incident's identity: its indexed `user`, `kind` and `detected` columns.
pub(super) type StoredIdentity = (String, String, i64);

/// Refuses `record` when its ID is a number (`INC-000042`) already stored for an incident of another User,
/// kind or detection time. Stable IDs (`INC-backlog-<User>-<onset>`) name what they are, so instances sharing
/// a Kafka topic may each write theirs.
pub(super) fn refuse_other_incident(
    record: &IncidentRecord,
    user: &str,
    stored: &StoredIdentity,
) -> Result<(), StoreError> {
    let numbered = record
        .id
        .strip_prefix("INC-")
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
    let (stored_user, stored_kind, stored_detected) = stored;
    let same = stored_user == user
        && stored_kind == record.kind.as_str()
        && *stored_detected == record.detected;
    if !numbered || same {
        return Ok(());
    }
    let describe = |user: &str, kind: &str, detected: i64| {
        let at = stormwatch_core::rfc3339::format_ms(detected)
            .unwrap_or_else(|| format!("at {detected} ms"));
        format!("{kind} of {user} detected {at}")
    };
    Err(StoreError::IncidentIdTaken {
        id: record.id.clone(),
        stored: describe(stored_user, stored_kind, *stored_detected),
        offered: describe(user, record.kind.as_str(), record.detected),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::schema;

    fn db() -> (tempfile::TempDir, Connection) {
        let dir = tempfile::tempdir().unwrap();
        let db = schema::open(&dir.path().join("s.db"), true).unwrap();
        (dir, db)
    }

    #[test]
    fn blocks_follow_each_other_and_never_overlap() {
        let (_dir, mut db) = db();
        assert_eq!(reserve(&mut db, 0, 100).unwrap(), 1..101);
        assert_eq!(reserve(&mut db, 0, 100).unwrap(), 101..201);
        // An engine that ran past its reservation asks from where it got to.
        assert_eq!(reserve(&mut db, 250, 10).unwrap(), 250..260);
        assert_eq!(reserve(&mut db, 0, 10).unwrap(), 260..270);
    }

    #[test]
    fn a_reservation_starts_past_every_stored_numbered_incident() {
        let (_dir, mut db) = db();
        for id in [
            "INC-000007",
            "INC-000041",
            "INC-backlog-NET-1773133500",
            "INC-9x",
        ] {
            db.execute(
                "INSERT INTO incidents (id, user, kind, verdict, onset, detected, record, created_ms, updated_ms)
                 VALUES (?1, 'U', 'backlog', 'v', 0, 0, '{}', 0, 0)",
                [id],
            )
            .unwrap();
        }
        assert_eq!(reserve(&mut db, 0, 5).unwrap(), 42..47);
    }

    #[test]
    fn a_snapshot_loss_is_kept_until_acknowledged() {
        let (_dir, mut db) = db();
        assert_eq!(snapshot_loss(&mut db).unwrap(), None);
        record_snapshot_loss(&mut db, "first").unwrap();
        record_snapshot_loss(&mut db, "second").unwrap();
        assert_eq!(snapshot_loss(&mut db).unwrap().unwrap().0, "first");
        assert!(acknowledge_snapshot_loss(&mut db).unwrap());
        assert!(!acknowledge_snapshot_loss(&mut db).unwrap());
        assert_eq!(snapshot_loss(&mut db).unwrap(), None);
    }

    #[test]
    fn the_migration_starts_the_sequence_past_incidents_stored_before_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        drop(schema::open(&path, true).unwrap());
        let db = Connection::open(&path).unwrap();
        db.execute_batch(
            "DROP TABLE incident_sequence; DROP TABLE snapshot_loss; DROP TABLE event_clock; PRAGMA user_version = 6;
             INSERT INTO incidents (id, user, kind, verdict, onset, detected, record, created_ms, updated_ms)
             VALUES ('INC-000012', 'U', 'backlog', 'v', 0, 0, '{}', 0, 0);",
        )
        .unwrap();
        drop(db);
        let mut db = schema::open(&path, false).unwrap();
        let reserved: i64 = db
            .query_row("SELECT reserved_until FROM incident_sequence", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(reserved, 13);
        assert_eq!(reserve(&mut db, 0, 1).unwrap(), 13..14);
    }
}
