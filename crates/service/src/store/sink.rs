//! The engine's persistence in the service: incidents, charts and snapshots through the write queue into the
//! store (a writer thread drains it, so the engine never waits on the disk), notifications to the Alertmanager
//! sender.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam::channel::Sender;

use crate::alerts::AlertMessage;
use crate::engine::Persistence;
use crate::engine::incident_series::IncidentSeries;
use crate::health::Health;
use crate::log_limit::LogLimit;
use crate::store::write_queue::{
    Applied, DEFAULT_CAPACITY, IncidentWrite, SnapshotOutcome, WriteQueue,
};
use crate::store::{Store, Upsert};
use stormwatch_core::report::IncidentRecord;

/// What the service attaches to a stored incident (e.g. the Kafka partition of its User).
pub type IncidentExtra = Box<dyn Fn(&IncidentRecord) -> Option<serde_json::Value> + Send>;
/// Told of every incident written (not of unchanged ones), e.g. to replicate it to other instances.
pub type IncidentSaved = Box<dyn Fn(&IncidentRecord, Option<&serde_json::Value>) + Send>;

/// Everything the sink needs, handed over once at start (see [`StoreSink::start`]).
pub struct SinkParts {
    pub store: Store,
    pub alerts: Option<Sender<AlertMessage>>,
    /// Names the User in each alert.
    pub names: crate::user_directory::Names,
    pub extra: Option<IncidentExtra>,
    pub on_saved: Option<IncidentSaved>,
    /// Told whether each write succeeded: a store that cannot take incidents makes the service unready. Its
    /// `store_queue` figures are the write queue's.
    pub health: Arc<Health>,
    /// A store that refuses one incident refuses them all: log once a minute.
    pub errors: LogLimit,
}

/// The engine's side: queues writes (never waiting on the disk, except for the snapshot) and sends alerts.
pub struct StoreSink {
    store: Store,
    alerts: Option<Sender<AlertMessage>>,
    names: crate::user_directory::Names,
    extra: Option<IncidentExtra>,
    queue: Arc<WriteQueue>,
    writer: Option<JoinHandle<()>>,
    /// How long the engine waits for the writer to take its snapshot: half the stall limit, so a store that
    /// cannot keep up never makes the engine look stalled.
    snapshot_patience: Duration,
}

impl StoreSink {
    /// Starts the writer thread that drains the engine's write queue into `parts.store`.
    pub fn start(parts: SinkParts) -> std::io::Result<StoreSink> {
        let queue = Arc::new(WriteQueue::new(
            DEFAULT_CAPACITY,
            parts.health.store_queue().clone(),
        ));
        let snapshot_patience = parts.health.stall_after() / 2;
        let mut writer = Writer {
            store: parts.store.clone(),
            queue: queue.clone(),
            on_saved: parts.on_saved,
            health: parts.health,
            errors: parts.errors,
        };
        let thread = std::thread::Builder::new()
            .name("stormwatch-store-writer".into())
            .spawn(move || writer.run())?;
        Ok(StoreSink {
            store: parts.store,
            alerts: parts.alerts,
            names: parts.names,
            extra: parts.extra,
            queue,
            writer: Some(thread),
            snapshot_patience,
        })
    }
}

impl Drop for StoreSink {
    /// Every queued write reaches the store before the service stops.
    fn drop(&mut self) {
        self.queue.close();
        if let Some(writer) = self.writer.take()
            && writer.join().is_err()
        {
            tracing::error!("the store writer thread panicked");
        }
    }
}

impl Persistence for StoreSink {
    fn incident_changed(&mut self, record: &IncidentRecord) {
        let extra = self.extra.as_ref().and_then(|extra| extra(record));
        self.queue.incident(IncidentWrite {
            record: record.clone(),
            extra,
        });
    }

    fn save_snapshot(&mut self, bytes: Vec<u8>) -> bool {
        let size = bytes.len();
        match self.queue.snapshot(bytes, self.snapshot_patience) {
            SnapshotOutcome::Saved => {
                tracing::debug!(bytes = size, "engine snapshot saved");
                true
            }
            // The writer logged why.
            SnapshotOutcome::Failed => false,
            SnapshotOutcome::Withdrawn => {
                tracing::warn!(
                    patience_s = self.snapshot_patience.as_secs_f64(),
                    "engine snapshot not saved: the store's writer is still busy with earlier writes; the journal \
                     keeps what the engine applied until the next snapshot"
                );
                false
            }
        }
    }

    fn series_changed(&mut self, id: &str, series: &IncidentSeries) {
        match serde_json::to_string(series) {
            Ok(json) => self.queue.series(id, json),
            Err(error) => tracing::error!(%id, %error, "cannot encode the incident's chart"),
        }
    }

    fn stored_series(&mut self, id: &str) -> Option<IncidentSeries> {
        // A chart still on its way to the store is newer than the stored one.
        let text = match self.queue.unwritten_series(id) {
            Some(text) => text,
            None => self.store.get_series(id.to_owned()).ok()??,
        };
        match serde_json::from_str(&text) {
            Ok(series) => Some(series),
            Err(error) => {
                tracing::warn!(%id, %error, "the stored chart cannot be read; the incident's chart starts again");
                None
            }
        }
    }

    fn notify(&mut self, record: &IncidentRecord, resolved: bool) {
        if let Some(alerts) = &self.alerts
            && alerts
                .try_send(AlertMessage {
                    record: record.clone(),
                    resolved,
                    user_label: self.names.label(&record.user),
                })
                .is_err()
        {
            tracing::warn!(id = %record.id, "Alertmanager queue full; this update is skipped");
        }
    }
}

/// The writer thread: takes everything queued, writes it in one store job, reports the outcome.
struct Writer {
    store: Store,
    queue: Arc<WriteQueue>,
    on_saved: Option<IncidentSaved>,
    health: Arc<Health>,
    errors: LogLimit,
}

impl Writer {
    fn run(&mut self) {
        while let Some(batch) = self.queue.take() {
            let asked_snapshot = batch.snapshot.is_some();
            match self.store.write_engine_batch(batch) {
                Ok(applied) => self.report(applied),
                Err(error) => {
                    // The job never ran (the store is closed or its file gone): nothing of the batch was saved.
                    self.health.store_written(false);
                    if let Some(suppressed) = self.errors.allow() {
                        tracing::error!(%error, suppressed, "cannot write the engine's incidents, charts or snapshot");
                    }
                    if asked_snapshot {
                        tracing::error!(%error, "cannot save the engine snapshot");
                    }
                    self.queue.written(false);
                }
            }
        }
        tracing::debug!("store writer stopped: every queued write is in the store");
    }

    fn report(&mut self, applied: Applied) {
        let mut all_saved = true;
        for (write, saved) in applied.batch.incidents.iter().zip(&applied.incidents) {
            match saved {
                Ok(Upsert::Unchanged) => {}
                Ok(_) => {
                    if let Some(on_saved) = &self.on_saved {
                        on_saved(&write.record, write.extra.as_ref());
                    }
                }
                Err(error) => {
                    // A refused overwrite is the store doing its job (logged), not a store that cannot be written.
                    if !matches!(error, crate::store::StoreError::IncidentIdTaken { .. }) {
                        all_saved = false;
                    }
                    if let Some(suppressed) = self.errors.allow() {
                        tracing::error!(id = %write.record.id, %error, suppressed, "cannot save incident");
                    }
                }
            }
        }
        for ((id, _), saved) in applied.batch.series.iter().zip(&applied.series) {
            if let Err(error) = saved
                && let Some(suppressed) = self.errors.allow()
            {
                tracing::error!(%id, %error, suppressed, "cannot save the incident's chart");
            }
        }
        if !applied.incidents.is_empty() {
            self.health.store_written(all_saved);
        }
        let snapshot_saved = match &applied.snapshot {
            Some(Err(error)) => {
                tracing::error!(%error, "cannot save the engine snapshot");
                false
            }
            Some(Ok(())) | None => true,
        };
        self.queue.written(snapshot_saved);
    }
}
