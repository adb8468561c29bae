//! The engine's persistence in the service: incidents and snapshots into the store, notifications to the
//! Alertmanager sender.

use std::sync::Arc;

use crossbeam::channel::Sender;

use crate::alerts::AlertMessage;
use crate::engine::Persistence;
use crate::engine::incident_series::IncidentSeries;
use crate::health::Health;
use crate::log_limit::LogLimit;
use crate::store::{Store, Upsert};
use stormwatch_core::report::IncidentRecord;

/// What the service attaches to a stored incident (e.g. the Kafka partition of its User).
pub type IncidentExtra = Box<dyn Fn(&IncidentRecord) -> Option<serde_json::Value> + Send>;
/// Told of every incident written (not of unchanged ones), e.g. to replicate it to other instances.
pub type IncidentSaved = Box<dyn Fn(&IncidentRecord, Option<&serde_json::Value>) + Send>;

pub struct StoreSink {
    pub store: Store,
    pub alerts: Option<Sender<AlertMessage>>,
    /// Names the User in each alert.
    pub names: crate::user_directory::Names,
    pub extra: Option<IncidentExtra>,
    pub on_saved: Option<IncidentSaved>,
    /// Told whether each write succeeded: a store that cannot take incidents makes the service unready.
    pub health: Arc<Health>,
    /// A store that refuses one incident refuses them all: log once a minute.
    pub errors: LogLimit,
}

impl Persistence for StoreSink {
    fn incident_changed(&mut self, record: &IncidentRecord) {
        let extra = self.extra.as_ref().and_then(|extra| extra(record));
        let saved = self.store.save_incident(record.clone(), extra.clone());
        // A refused overwrite is the store doing its job (logged below), not a store that cannot be written.
        self.health.store_written(
            saved.is_ok() || matches!(saved, Err(crate::store::StoreError::IncidentIdTaken { .. })),
        );
        match saved {
            Ok(Upsert::Unchanged) => {}
            Ok(_) => {
                if let Some(saved) = &self.on_saved {
                    saved(record, extra.as_ref());
                }
            }
            Err(error) => {
                if let Some(suppressed) = self.errors.allow() {
                    tracing::error!(id = %record.id, %error, suppressed, "cannot save incident");
                }
            }
        }
    }

    fn save_snapshot(&mut self, bytes: Vec<u8>) -> bool {
        let size = bytes.len();
        match self.store.save_snapshot(bytes) {
            Ok(()) => {
                tracing::debug!(bytes = size, "engine snapshot saved");
                true
            }
            Err(error) => {
                tracing::error!(%error, "cannot save the engine snapshot");
                false
            }
        }
    }

    fn series_changed(&mut self, id: &str, series: &IncidentSeries) {
        let saved = serde_json::to_string(series)
            .map_err(|e| e.to_string())
            .and_then(|json| {
                self.store
                    .save_series(id.to_owned(), json)
                    .map_err(|e| e.to_string())
            });
        if let Err(error) = saved
            && let Some(suppressed) = self.errors.allow()
        {
            tracing::error!(%id, %error, suppressed, "cannot save the incident's chart");
        }
    }

    fn stored_series(&mut self, id: &str) -> Option<IncidentSeries> {
        let text = self.store.get_series(id.to_owned()).ok()??;
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
