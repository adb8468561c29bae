//! Readiness: what makes the live service unfit to serve (engine state still loading, an engine that stopped
//! ticking, failing snapshots, a snapshot that could not be read at start, an unwritable store, a store writer far
//! behind the engine). The engine thread and the store's writers report into it
//! with plain atomics; `/readyz` and a once-a-second watchdog on the HTTP side read it, so a stuck engine thread
//! is seen by something that is not stuck.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use metrics::{counter, gauge};

use crate::metrics::{
    ENGINE_TICK_AGE, HEALTH_CHECK, STORE_ENGINE_WAIT_SECONDS, STORE_ENGINE_WAITS,
    STORE_QUEUE_COALESCED, STORE_QUEUE_DEPTH, STORE_QUEUE_OLDEST_AGE,
};
use crate::store::write_queue::QueueStats;

/// One reason the service is not ready, as `/readyz` says it and as the `check` label of the health metric.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Check {
    /// The engine's state is still being restored.
    Restoring,
    /// The engine thread has not finished a tick for longer than the stall limit.
    EngineTick,
    /// The last engine snapshot could not be saved.
    Snapshot,
    /// The snapshot found at start could not be read, so the engine started without the state it held: until an
    /// operator acknowledges that, nothing else says the windows, baselines and open incidents were lost.
    SnapshotLost,
    /// The last write to the store failed (or its file is gone).
    Store,
    /// The journal found at start was damaged or missing, and applied telemetry is lost; until the next
    /// snapshot saves a state that no longer depends on it.
    Journal,
    /// The oldest of the engine's writes still queued for the store has waited longer than the stall limit: the
    /// API's stored incidents are that far behind the engine.
    StoreQueue,
}

impl Check {
    pub const ALL: [Check; 7] = [
        Check::Restoring,
        Check::EngineTick,
        Check::Snapshot,
        Check::SnapshotLost,
        Check::Store,
        Check::Journal,
        Check::StoreQueue,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Check::Restoring => "restoring",
            Check::EngineTick => "engine_tick",
            Check::Snapshot => "snapshot",
            Check::SnapshotLost => "snapshot_lost",
            Check::Store => "store",
            Check::Journal => "journal",
            Check::StoreQueue => "store_queue",
        }
    }
}

#[derive(Debug)]
pub struct Health {
    origin: Instant,
    restored: AtomicBool,
    /// Milliseconds after `origin` when the engine thread last finished a tick.
    last_tick_ms: AtomicU64,
    snapshot_failing: AtomicBool,
    /// Why the snapshot found at start could not be used, until acknowledged.
    snapshot_lost: Mutex<Option<String>>,
    /// The loss is recorded in the store, so an acknowledgement written there by the CLI clears it too.
    snapshot_lost_in_store: AtomicBool,
    store_failing: AtomicBool,
    /// What was wrong with the journal at start, and whether it lost applied telemetry (a torn tail does not).
    journal_finding: Mutex<Option<(String, bool)>>,
    stall_after: Duration,
    /// The engine's write queue (depth, oldest write, coalesced, engine waits).
    store_queue: Arc<QueueStats>,
}

impl Health {
    /// `stall_after`: how long the engine may go without finishing a tick before it counts as stalled. Its
    /// tick runs once a second between batches, so a few seconds is already far outside normal.
    pub fn new(stall_after: Duration) -> Health {
        Health {
            origin: Instant::now(),
            restored: AtomicBool::new(false),
            last_tick_ms: AtomicU64::new(0),
            snapshot_failing: AtomicBool::new(false),
            snapshot_lost: Mutex::new(None),
            snapshot_lost_in_store: AtomicBool::new(false),
            store_failing: AtomicBool::new(false),
            journal_finding: Mutex::new(None),
            stall_after,
            store_queue: Arc::default(),
        }
    }

    fn since_origin(&self) -> u64 {
        self.origin.elapsed().as_millis().min(u128::from(u64::MAX)) as u64
    }

    /// The engine has its state and starts serving (its first tick counts from now).
    pub fn engine_started(&self) {
        self.engine_ticked();
        self.restored.store(true, Ordering::Release);
    }

    pub fn engine_ticked(&self) {
        self.last_tick_ms
            .store(self.since_origin(), Ordering::Release);
    }

    pub fn snapshot_saved(&self, ok: bool) {
        self.snapshot_failing.store(!ok, Ordering::Release);
    }

    /// The snapshot found at start could not be used (`why`): not ready until [`Health::snapshot_loss_acknowledged`].
    pub fn snapshot_lost(&self, why: String) {
        *self.lost() = Some(why);
    }

    /// [`Health::snapshot_lost`], recorded in the store: [`probe_store`] clears it once the store's record is gone
    /// (`stormwatch health acknowledge-snapshot`).
    pub fn snapshot_lost_in_store(&self, why: String) {
        self.snapshot_lost(why);
        self.snapshot_lost_in_store.store(true, Ordering::Release);
    }

    /// An operator has seen that the state was lost (or the engine rebuilt it): returns the reason it cleared,
    /// `None` if nothing was pending.
    pub fn snapshot_loss_acknowledged(&self) -> Option<String> {
        self.snapshot_lost_in_store.store(false, Ordering::Release);
        self.lost().take()
    }

    /// A poisoned lock only means a writer panicked mid-assignment of an `Option`: its value is still whole.
    fn lost(&self) -> std::sync::MutexGuard<'_, Option<String>> {
        self.snapshot_lost
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn store_written(&self, ok: bool) {
        self.store_failing.store(!ok, Ordering::Release);
    }

    /// What opening the journal found: `/readyz` shows it, and fails while `lost` until `journal_settled`.
    pub fn journal_found(&self, what: String, lost: bool) {
        if let Ok(mut finding) = self.journal_finding.lock() {
            *finding = Some((what, lost));
        }
    }

    /// A snapshot holding the state after the damaged journal is saved: the damage is history, not a fault
    /// (the log and `stormwatch_journal_damage_total` keep it).
    pub fn journal_settled(&self) {
        if let Ok(mut finding) = self.journal_finding.lock() {
            *finding = None;
        }
    }

    /// A note for `/readyz` about a journal whose damage lost nothing (a torn tail), shown while ready.
    pub fn journal_note(&self) -> Option<String> {
        self.journal_finding
            .lock()
            .ok()?
            .as_ref()
            .filter(|(_, lost)| !lost)
            .map(|(what, _)| what.clone())
    }

    fn journal_loss(&self) -> Option<String> {
        self.journal_finding
            .lock()
            .ok()?
            .as_ref()
            .filter(|(_, lost)| *lost)
            .map(|(what, _)| what.clone())
    }

    /// The engine's write queue's figures, which the queue updates.
    pub fn store_queue(&self) -> &Arc<QueueStats> {
        &self.store_queue
    }

    /// One line on the engine's write queue for `/readyz` (`None` while nothing waits and the engine never
    /// had to wait): its backpressure, shown even while ready.
    pub fn store_queue_line(&self) -> Option<String> {
        let queue = &self.store_queue;
        if queue.depth() == 0 && queue.engine_waits() == 0 && queue.coalesced() == 0 {
            return None;
        }
        Some(format!(
            "engine writes: {} waiting for the store, oldest {:.1} s; {} coalesced; the engine waited {} times, {:.3} s in all",
            queue.depth(),
            queue.oldest_age().as_secs_f64(),
            queue.coalesced(),
            queue.engine_waits(),
            queue.engine_waited().as_secs_f64()
        ))
    }

    /// How long the engine may go without a tick; also how long a query waits for it.
    pub fn stall_after(&self) -> Duration {
        self.stall_after
    }

    /// Time since the engine last finished a tick (zero before it started).
    pub fn tick_age(&self) -> Duration {
        if !self.restored.load(Ordering::Acquire) {
            return Duration::ZERO;
        }
        let last = self.last_tick_ms.load(Ordering::Acquire);
        Duration::from_millis(self.since_origin().saturating_sub(last))
    }

    pub fn failing(&self, check: Check) -> bool {
        match check {
            Check::Restoring => !self.restored.load(Ordering::Acquire),
            Check::EngineTick => self.tick_age() > self.stall_after,
            Check::Snapshot => self.snapshot_failing.load(Ordering::Acquire),
            Check::SnapshotLost => self.lost().is_some(),
            Check::Store => self.store_failing.load(Ordering::Acquire),
            Check::Journal => self.journal_loss().is_some(),
            Check::StoreQueue => self.store_queue.oldest_age() > self.stall_after,
        }
    }

    /// Every failing check with a sentence for `/readyz`; empty when ready.
    pub fn problems(&self) -> Vec<(Check, String)> {
        Check::ALL
            .into_iter()
            .filter(|&check| self.failing(check))
            .map(|check| {
                let why = match check {
                    Check::Restoring => "restoring engine state".to_owned(),
                    Check::EngineTick => format!(
                        "the engine has not finished a tick for {:.0} s",
                        self.tick_age().as_secs_f64()
                    ),
                    Check::Snapshot => "the last engine snapshot could not be saved".to_owned(),
                    Check::SnapshotLost => format!(
                        "{}; the engine started without its windows, baselines and open incidents \
                         (incident IDs go on past the stored ones). Acknowledge with \
                         POST /api/v1/health/snapshot/acknowledge (ops token)",
                        self.lost()
                            .as_deref()
                            .unwrap_or("the snapshot could not be read")
                    ),
                    Check::Store => "the store cannot be written".to_owned(),
                    Check::Journal => self.journal_loss().unwrap_or_default(),
                    Check::StoreQueue => format!(
                        "the store's writer is {:.0} s behind the engine ({} writes waiting)",
                        self.store_queue.oldest_age().as_secs_f64(),
                        self.store_queue.depth()
                    ),
                };
                (check, why)
            })
            .collect()
    }

    /// Publishes the checks as gauges (1 passing, 0 failing) and logs each change of state once.
    pub fn publish(&self, previous: &mut [bool; Check::ALL.len()]) {
        gauge!(ENGINE_TICK_AGE).set(self.tick_age().as_secs_f64());
        let queue = &self.store_queue;
        gauge!(STORE_QUEUE_DEPTH).set(queue.depth() as f64);
        gauge!(STORE_QUEUE_OLDEST_AGE).set(queue.oldest_age().as_secs_f64());
        counter!(STORE_QUEUE_COALESCED).absolute(queue.coalesced());
        counter!(STORE_ENGINE_WAITS).absolute(queue.engine_waits());
        gauge!(STORE_ENGINE_WAIT_SECONDS).set(queue.engine_waited().as_secs_f64());
        for (index, check) in Check::ALL.into_iter().enumerate() {
            let failing = self.failing(check);
            gauge!(HEALTH_CHECK, "check" => check.label()).set(if failing { 0.0 } else { 1.0 });
            if failing != previous[index] {
                previous[index] = failing;
                match (check, failing) {
                    (Check::Restoring, _) => {}
                    (_, true) => tracing::error!(check = check.label(), "not ready"),
                    (_, false) => tracing::info!(check = check.label(), "healthy again"),
                }
            }
        }
    }

    /// Runs `publish` once a second for as long as the runtime lives.
    pub async fn watch(health: std::sync::Arc<Health>) {
        let mut previous = [false; Check::ALL.len()];
        let mut every = tokio::time::interval(Duration::from_secs(1));
        loop {
            every.tick().await;
            health.publish(&mut previous);
        }
    }
}

/// Rewrites the store's probe row every `every`: a read-only, full or deleted data directory fails the `store`
/// check within that time, whether or not anything else is being written. Also clears a lost snapshot that was
/// acknowledged in the store by another process (the CLI) within that time.
pub async fn probe_store(
    store: crate::store::Store,
    health: std::sync::Arc<Health>,
    every: Duration,
) {
    let mut tick = tokio::time::interval(every);
    let mut failing = false;
    loop {
        tick.tick().await;
        let outcome = store.probe_write_async().await;
        health.store_written(outcome.is_ok());
        if health.snapshot_lost_in_store.load(Ordering::Acquire)
            && matches!(store.snapshot_loss_async().await, Ok(None))
            && let Some(reason) = health.snapshot_loss_acknowledged()
        {
            tracing::warn!(
                %reason,
                "the lost engine snapshot was acknowledged in the store (stormwatch health acknowledge-snapshot)"
            );
        }
        match outcome {
            Err(error) if !failing => {
                failing = true;
                tracing::error!(%error, "the store cannot be written");
            }
            Ok(()) if failing => {
                failing = false;
                tracing::info!("the store can be written again");
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_failure_is_named_and_clears_when_fixed() {
        let health = Health::new(Duration::from_millis(50));
        assert_eq!(health.problems()[0].0, Check::Restoring);
        health.engine_started();
        assert!(health.problems().is_empty());
        health.snapshot_saved(false);
        health.store_written(false);
        let checks: Vec<_> = health.problems().into_iter().map(|p| p.0).collect();
        assert_eq!(checks, [Check::Snapshot, Check::Store]);
        health.snapshot_saved(true);
        health.store_written(true);
        assert!(health.problems().is_empty());
    }

    #[test]
    fn a_lost_snapshot_keeps_the_service_unready_with_its_reason_until_acknowledged() {
        let health = Health::new(Duration::from_secs(60));
        health.engine_started();
        health.snapshot_lost("engine snapshot is unreadable: EOF".to_owned());
        health.snapshot_saved(true);
        let problems = health.problems();
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].0, Check::SnapshotLost);
        assert!(
            problems[0].1.contains("unreadable: EOF"),
            "{}",
            problems[0].1
        );
        assert!(problems[0].1.contains("acknowledge"), "{}", problems[0].1);
        assert_eq!(
            health.snapshot_loss_acknowledged().as_deref(),
            Some("engine snapshot is unreadable: EOF")
        );
        assert!(health.problems().is_empty());
        assert_eq!(health.snapshot_loss_acknowledged(), None);
    }

    #[test]
    fn a_store_writer_behind_the_engine_fails_store_queue_until_it_takes_the_writes() {
        use crate::store::write_queue::{IncidentWrite, WriteQueue};
        let health = Health::new(Duration::from_millis(100));
        health.engine_started();
        assert_eq!(health.store_queue_line(), None, "nothing to say yet");
        let queue = WriteQueue::new(8, health.store_queue().clone());
        let record = crate::store::tests::record("INC-1", "90-B3-D5-1F-30-01-00-07", 1, None);
        queue.incident(IncidentWrite {
            record: record.clone(),
            extra: None,
        });
        queue.incident(IncidentWrite {
            record,
            extra: None,
        });
        std::thread::sleep(Duration::from_millis(150));
        health.engine_ticked();
        let problems = health.problems();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].0, Check::StoreQueue);
        assert!(
            problems[0].1.contains("1 writes waiting"),
            "{}",
            problems[0].1
        );
        let line = health.store_queue_line().unwrap();
        assert!(line.starts_with("engine writes: 1 waiting"), "{line}");
        assert!(line.contains("1 coalesced"), "{line}");
        let _batch = queue.take();
        assert!(health.problems().is_empty());
    }

    #[test]
    fn an_engine_that_stops_ticking_is_stalled_until_it_ticks_again() {
        let health = Health::new(Duration::from_millis(500));
        health.engine_started();
        std::thread::sleep(Duration::from_millis(600));
        assert_eq!(health.problems()[0].0, Check::EngineTick);
        assert!(health.problems()[0].1.contains("has not finished a tick"));
        health.engine_ticked();
        assert!(health.problems().is_empty());
    }
}
