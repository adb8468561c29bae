//! Retention: resolved incidents (with their users, history, triage actions and chart) and change audit rows older
//! than the retention period are deleted, a bounded batch per call, so the store of a service left running for
//! years stays the size of its retention period and no single delete holds the owner thread for long.

use rusqlite::{Connection, params};
use serde::Serialize;

use super::StoreError;

/// What one call deleted. A batch that deleted its full `batch` of either means more may be due.
#[derive(Copy, Clone, Default, Eq, PartialEq, Debug, Serialize)]
pub struct Pruned {
    pub incidents: usize,
    pub audit_rows: usize,
}

/// Deletes at most `batch` incidents that resolved (event time) before `before_ms`, everything kept beside them,
/// and at most `batch` change audit rows written (wall clock) before `before_ms`. Open incidents and the changes
/// themselves are never touched. One transaction: a failure deletes nothing.
pub(super) fn prune(
    db: &mut Connection,
    before_ms: i64,
    batch: usize,
) -> Result<Pruned, StoreError> {
    let limit = i64::try_from(batch).unwrap_or(i64::MAX);
    let tx = db.transaction()?;
    let ids: Vec<String> = {
        let mut statement =
            tx.prepare("SELECT id FROM incidents WHERE resolved < ?1 ORDER BY resolved LIMIT ?2")?;
        statement
            .query_map(params![before_ms, limit], |row| row.get(0))?
            .collect::<Result<_, _>>()?
    };
    for id in &ids {
        for sql in [
            "DELETE FROM incident_users WHERE incident_id = ?1",
            "DELETE FROM incident_actions WHERE incident_id = ?1",
            "DELETE FROM incident_history WHERE incident_id = ?1",
            "DELETE FROM incident_series WHERE incident_id = ?1",
            "DELETE FROM incidents WHERE id = ?1",
        ] {
            tx.execute(sql, [id])?;
        }
    }
    let audit_rows = tx.execute(
        "DELETE FROM change_audit WHERE seq IN
            (SELECT seq FROM change_audit WHERE at_ms < ?1 ORDER BY seq LIMIT ?2)",
        params![before_ms, limit],
    )?;
    tx.commit()?;
    Ok(Pruned {
        incidents: ids.len(),
        audit_rows,
    })
}
