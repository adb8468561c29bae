//! The event time the service has reached (the engine's watermark), kept in one row so the command line, which has
//! no engine, judges outcomes and windows as of the same time as the API.

use rusqlite::{Connection, OptionalExtension, params};

use super::{StoreError, now_ms};

pub(super) fn record(db: &mut Connection, event_ms: i64) -> Result<(), StoreError> {
    db.execute(
        "INSERT INTO event_clock (id, event_ms, recorded_ms) VALUES (1, ?1, ?2)
         ON CONFLICT (id) DO UPDATE SET event_ms = excluded.event_ms, recorded_ms = excluded.recorded_ms",
        params![event_ms, now_ms()],
    )?;
    Ok(())
}

pub(super) fn read(db: &mut Connection) -> Result<Option<i64>, StoreError> {
    Ok(db
        .query_row("SELECT event_ms FROM event_clock WHERE id = 1", [], |row| {
            row.get(0)
        })
        .optional()?)
}
