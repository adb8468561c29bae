//! Each incident's chart (`IncidentSeries` as JSON), one row per incident beside it, rewritten as it grows.

use rusqlite::{Connection, OptionalExtension, params};

use super::{StoreError, now_ms};

pub(super) fn save(db: &mut Connection, id: &str, series: &str) -> Result<(), StoreError> {
    db.execute(
        "INSERT INTO incident_series (incident_id, series, updated_ms) VALUES (?1, ?2, ?3)
         ON CONFLICT (incident_id) DO UPDATE SET series = excluded.series, updated_ms = excluded.updated_ms",
        params![id, series, now_ms()],
    )?;
    Ok(())
}

pub(super) fn get(db: &mut Connection, id: &str) -> Result<Option<String>, StoreError> {
    Ok(db
        .query_row(
            "SELECT series FROM incident_series WHERE incident_id = ?1",
            [id],
            |row| row.get(0),
        )
        .optional()?)
}
