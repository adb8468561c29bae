//! The engine's writes on their way to the store (incidents, charts, the snapshot): a bounded queue coalesced by
//! key, drained by one writer thread in one store job per round, so the engine's tick never waits on the disk.
//!
//! An incident written again before the writer took its previous version replaces it (the latest record is what
//! the store must hold; the replaced one is counted as coalesced); so does a chart. The queue holds at most
//! `capacity` distinct keys: only a new key beyond that makes the engine wait (counted), never a repeat of one
//! already waiting, and nothing is ever dropped, so an incident's final state always reaches the store.
//! The snapshot is the one write the engine waits for: its journal is cut only once the snapshot is durable,
//! and it is written in the same job as, and after, every incident queued before it. A writer too busy to take
//! the snapshot within the engine's patience gets it withdrawn (the journal then keeps growing until the next);
//! once taken, it is waited for to the end.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rusqlite::Connection;
use serde_json::Value;

use super::{StoreError, Upsert, incidents, series};
use stormwatch_core::report::IncidentRecord;

/// Distinct incidents and charts waiting at most. Far above what a healthy store ever holds (the engine writes
/// each open incident at most once a second and each chart every 10 s), low enough to bound memory.
pub const DEFAULT_CAPACITY: usize = 4_096;

/// The queue's figures, shared with `/readyz` and `/metrics` (plain atomics: readers never take the lock).
#[derive(Debug)]
pub struct QueueStats {
    origin: Instant,
    depth: AtomicU64,
    /// Milliseconds after `origin` + 1 when the oldest write still waiting was queued; 0 when none waits.
    oldest_since: AtomicU64,
    coalesced: AtomicU64,
    /// Times the engine waited: for room in a full queue, or for its snapshot to be written.
    waits: AtomicU64,
    wait_micros: AtomicU64,
}

impl Default for QueueStats {
    fn default() -> Self {
        QueueStats {
            origin: Instant::now(),
            depth: AtomicU64::new(0),
            oldest_since: AtomicU64::new(0),
            coalesced: AtomicU64::new(0),
            waits: AtomicU64::new(0),
            wait_micros: AtomicU64::new(0),
        }
    }
}

impl QueueStats {
    /// Writes waiting for the writer (distinct incidents and charts, and a snapshot).
    pub fn depth(&self) -> u64 {
        self.depth.load(Ordering::Relaxed)
    }

    /// How long the oldest waiting write has waited (zero when none waits).
    pub fn oldest_age(&self) -> Duration {
        match self.oldest_since.load(Ordering::Relaxed) {
            0 => Duration::ZERO,
            since => self
                .origin
                .elapsed()
                .saturating_sub(Duration::from_millis(since - 1)),
        }
    }

    /// Writes replaced by a later version of the same incident or chart before the writer took them.
    pub fn coalesced(&self) -> u64 {
        self.coalesced.load(Ordering::Relaxed)
    }

    pub fn engine_waits(&self) -> u64 {
        self.waits.load(Ordering::Relaxed)
    }

    pub fn engine_waited(&self) -> Duration {
        Duration::from_micros(self.wait_micros.load(Ordering::Relaxed))
    }

    fn waited(&self, since: Instant) {
        let micros = since.elapsed().as_micros().min(u128::from(u64::MAX)) as u64;
        self.waits.fetch_add(1, Ordering::Relaxed);
        self.wait_micros.fetch_add(micros, Ordering::Relaxed);
    }

    fn set_pending(&self, depth: usize, oldest: Option<Instant>) {
        self.depth.store(depth as u64, Ordering::Relaxed);
        let since = oldest.map_or(0, |at| {
            at.saturating_duration_since(self.origin).as_millis() as u64 + 1
        });
        self.oldest_since.store(since, Ordering::Relaxed);
    }
}

/// An incident as the engine last saw it, with what the service attaches to it.
#[derive(Clone, Debug)]
pub struct IncidentWrite {
    pub record: IncidentRecord,
    pub extra: Option<Value>,
}

/// What the writer takes in one round, written in one store job: incidents, then charts, then the snapshot.
#[derive(Debug, Default)]
pub struct Batch {
    pub incidents: Vec<IncidentWrite>,
    /// Chart JSON by incident id.
    pub series: Vec<(String, String)>,
    pub snapshot: Option<Vec<u8>>,
}

impl Batch {
    pub fn is_empty(&self) -> bool {
        self.incidents.is_empty() && self.series.is_empty() && self.snapshot.is_none()
    }

    fn keys(&self) -> usize {
        self.incidents.len() + self.series.len()
    }
}

/// What became of a snapshot handed to the queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SnapshotOutcome {
    /// Written: durable.
    Saved,
    /// The store refused it (or the queue closed first).
    Failed,
    /// The writer was still busy with earlier writes when the engine's patience ran out: not written.
    Withdrawn,
}

/// What the store made of a batch; the batch comes back so the writer can tell others what was saved.
#[derive(Debug)]
pub struct Applied {
    pub batch: Batch,
    pub incidents: Vec<Result<Upsert, StoreError>>,
    pub series: Vec<Result<(), StoreError>>,
    pub snapshot: Option<Result<(), StoreError>>,
}

/// The store job for one batch: each write is its own transaction, as when the engine wrote them one by one,
/// so one refused incident does not lose the others.
pub(super) fn apply(db: &mut Connection, batch: Batch) -> Applied {
    let incidents = batch
        .incidents
        .iter()
        .map(|write| incidents::save(db, &write.record, write.extra.as_ref()))
        .collect();
    let series = batch
        .series
        .iter()
        .map(|(id, json)| series::save(db, id, json))
        .collect();
    let snapshot = batch
        .snapshot
        .as_ref()
        .map(|bytes| incidents::save_snapshot(db, bytes));
    Applied {
        batch,
        incidents,
        series,
        snapshot,
    }
}

#[derive(Default)]
struct Pending {
    waiting: Batch,
    incident_at: HashMap<String, usize>,
    series_at: HashMap<String, usize>,
    oldest: Option<Instant>,
    /// Charts the writer has taken but not yet written: still the newest version for a reader of this queue.
    in_flight_series: HashMap<String, String>,
    /// Snapshots asked for and written so far (a ticket each), and whether the last one written was saved.
    snapshots_asked: u64,
    /// The last ticket in the batch being written (0: that batch holds no snapshot).
    snapshot_in_flight: u64,
    snapshots_done: u64,
    snapshot_saved: bool,
    closed: bool,
}

/// The queue between the engine thread (which adds) and the writer thread (which takes).
pub struct WriteQueue {
    pending: Mutex<Pending>,
    /// Wakes the writer: something was added, or the queue closed.
    added: Condvar,
    /// Wakes the engine: room was made, or a snapshot was written.
    taken: Condvar,
    capacity: usize,
    stats: Arc<QueueStats>,
}

impl WriteQueue {
    pub fn new(capacity: usize, stats: Arc<QueueStats>) -> WriteQueue {
        WriteQueue {
            pending: Mutex::new(Pending::default()),
            added: Condvar::new(),
            taken: Condvar::new(),
            capacity: capacity.max(1),
            stats,
        }
    }

    pub fn stats(&self) -> &Arc<QueueStats> {
        &self.stats
    }

    fn lock(&self) -> MutexGuard<'_, Pending> {
        // Nothing panics while holding the lock; a poisoned one still holds consistent data.
        self.pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Queues `write`, replacing a version of the same incident still waiting. Waits only when the incident is
    /// new and the queue already holds `capacity` distinct writes.
    pub fn incident(&self, write: IncidentWrite) {
        let mut pending = self.lock();
        if let Some(&at) = pending.incident_at.get(&write.record.id) {
            pending.waiting.incidents[at] = write;
            self.stats.coalesced.fetch_add(1, Ordering::Relaxed);
            return;
        }
        pending = self.room_for_one(pending);
        let at = pending.waiting.incidents.len();
        pending.incident_at.insert(write.record.id.clone(), at);
        pending.waiting.incidents.push(write);
        self.added_one(&mut pending);
    }

    /// Queues an incident's chart (JSON), replacing a version still waiting.
    pub fn series(&self, id: &str, json: String) {
        let mut pending = self.lock();
        if let Some(&at) = pending.series_at.get(id) {
            pending.waiting.series[at].1 = json;
            self.stats.coalesced.fetch_add(1, Ordering::Relaxed);
            return;
        }
        pending = self.room_for_one(pending);
        let at = pending.waiting.series.len();
        pending.series_at.insert(id.to_owned(), at);
        pending.waiting.series.push((id.to_owned(), json));
        self.added_one(&mut pending);
    }

    /// The newest chart of `id` not yet in the store (waiting or being written), if any.
    pub fn unwritten_series(&self, id: &str) -> Option<String> {
        let pending = self.lock();
        match pending.series_at.get(id) {
            Some(&at) => Some(pending.waiting.series[at].1.clone()),
            None => pending.in_flight_series.get(id).cloned(),
        }
    }

    /// Queues the snapshot after everything already waiting and waits until the writer has written it. A writer
    /// that has not taken it within `patience` (busy with a slow write) gets it withdrawn: the engine carries on
    /// and its journal keeps everything since the last snapshot. Once taken, it is waited for to the end.
    pub fn snapshot(&self, bytes: Vec<u8>, patience: Duration) -> SnapshotOutcome {
        let since = Instant::now();
        let mut pending = self.lock();
        if pending.closed {
            return SnapshotOutcome::Failed;
        }
        pending.waiting.snapshot = Some(bytes);
        pending.snapshots_asked += 1;
        let ticket = pending.snapshots_asked;
        self.added_one(&mut pending);
        let deadline = since + patience;
        while pending.snapshots_done < ticket && !pending.closed {
            let taken = pending.snapshot_in_flight >= ticket;
            let now = Instant::now();
            if !taken && now >= deadline {
                pending.waiting.snapshot = None;
                let depth = pending.waiting.keys();
                if depth == 0 {
                    pending.oldest = None;
                }
                self.stats.set_pending(depth, pending.oldest);
                self.stats.waited(since);
                return SnapshotOutcome::Withdrawn;
            }
            pending = if taken {
                self.taken
                    .wait(pending)
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
            } else {
                self.taken
                    .wait_timeout(pending, deadline - now)
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .0
            };
        }
        self.stats.waited(since);
        match pending.snapshots_done >= ticket && pending.snapshot_saved {
            true => SnapshotOutcome::Saved,
            false => SnapshotOutcome::Failed,
        }
    }

    fn room_for_one<'a>(&'a self, mut pending: MutexGuard<'a, Pending>) -> MutexGuard<'a, Pending> {
        if pending.waiting.keys() < self.capacity || pending.closed {
            return pending;
        }
        let since = Instant::now();
        while pending.waiting.keys() >= self.capacity && !pending.closed {
            pending = self
                .taken
                .wait(pending)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
        self.stats.waited(since);
        pending
    }

    fn added_one(&self, pending: &mut Pending) {
        pending.oldest.get_or_insert_with(Instant::now);
        let depth = pending.waiting.keys() + usize::from(pending.waiting.snapshot.is_some());
        self.stats.set_pending(depth, pending.oldest);
        self.added.notify_one();
    }

    /// Writer side: waits for writes and takes all of them; `None` once the queue is closed and empty.
    pub fn take(&self) -> Option<Batch> {
        let mut pending = self.lock();
        while pending.waiting.is_empty() && !pending.closed {
            pending = self
                .added
                .wait(pending)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
        if pending.waiting.is_empty() {
            return None;
        }
        let batch = std::mem::take(&mut pending.waiting);
        pending.incident_at.clear();
        pending.series_at.clear();
        pending.oldest = None;
        pending.in_flight_series = batch.series.iter().cloned().collect();
        pending.snapshot_in_flight = if batch.snapshot.is_some() {
            pending.snapshots_asked
        } else {
            0
        };
        self.stats.set_pending(0, None);
        self.taken.notify_all();
        Some(batch)
    }

    /// Writer side: the batch taken last is written; `snapshot_saved` tells whether the snapshot it held (if
    /// any) was saved.
    pub fn written(&self, snapshot_saved: bool) {
        let mut pending = self.lock();
        pending.in_flight_series.clear();
        if pending.snapshot_in_flight > 0 {
            pending.snapshots_done = pending.snapshot_in_flight;
            pending.snapshot_in_flight = 0;
            pending.snapshot_saved = snapshot_saved;
        }
        self.taken.notify_all();
    }

    /// No more writes: the writer finishes what is queued and stops; a snapshot still waiting is answered.
    pub fn close(&self) {
        let mut pending = self.lock();
        pending.closed = true;
        self.added.notify_all();
        self.taken.notify_all();
    }
}

#[cfg(test)]
#[path = "write_queue_tests.rs"]
mod tests;
