//! The retention task: once at start and then hourly, deletes resolved incidents and change audit rows older than
//! `retention_days`, in batches of [`BATCH`] rows so the store's other work (the engine's writes, API reads) runs
//! between them.

use std::time::Duration;

use crate::store::{Pruned, Store};

/// Rows of each kind deleted per store operation.
pub const BATCH: usize = 1_000;
/// How often the retention runs after the first time (at start).
const EVERY: Duration = Duration::from_secs(3_600);
const DAY_MS: i64 = 86_400_000;

/// Runs forever; `days == 0` keeps everything and returns at once.
pub async fn prune_periodically(store: Store, days: u32) {
    if days == 0 {
        tracing::info!(
            "retention_days = 0: resolved incidents and change audit rows are kept forever"
        );
        return;
    }
    let mut every = tokio::time::interval(EVERY);
    loop {
        every.tick().await;
        let before_ms = crate::store::now_ms().saturating_sub(i64::from(days) * DAY_MS);
        match prune_all(&store, before_ms).await {
            Ok(total) if total == Pruned::default() => {}
            Ok(total) => tracing::info!(
                incidents = total.incidents,
                audit_rows = total.audit_rows,
                retention_days = days,
                "deleted resolved incidents and change audit rows past retention"
            ),
            Err(error) => {
                tracing::warn!(%error, "retention could not delete old rows; will try again")
            }
        }
    }
}

/// Deletes everything due, one bounded batch at a time.
pub async fn prune_all(store: &Store, before_ms: i64) -> Result<Pruned, crate::store::StoreError> {
    let mut total = Pruned::default();
    loop {
        let pruned = store.prune_async(before_ms, BATCH).await?;
        total.incidents += pruned.incidents;
        total.audit_rows += pruned.audit_rows;
        if pruned.incidents < BATCH && pruned.audit_rows < BATCH {
            return Ok(total);
        }
        tokio::task::yield_now().await;
    }
}
