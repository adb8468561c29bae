//! The once-a-second tick, publishing the state for other threads, and incident changes to the store and alerts.

use std::collections::HashSet;
use std::time::Instant;

use super::charts::SAVE_CHARTS_EVERY;
use super::{EngineLoop, wall_ms};
use crate::metrics::Publisher;
use stormwatch_core::engine::IncidentUpdate;
use stormwatch_core::report::IncidentRecord;

impl EngineLoop {
    /// Once a second: close quiet seconds by the wall clock, publish gauges, snapshot when due.
    pub(super) fn tick(&mut self) {
        if let Some(numbers) = &mut self.numbers {
            numbers.top_up(&mut self.engine);
        }
        let now = wall_ms();
        self.engine.set_now_bound(Some(now));
        if let (Some(last_wall), Some(max_ts)) = (self.last_event_wall, self.engine.max_ts()) {
            let quiet_ms = now - last_wall;
            // When nothing at all arrives, the seconds still open (the lateness window) are closed by the wall
            // clock so the last data is evaluated, but event time goes no further: a feed that stops entirely
            // is missing data (an exporter outage, a network cut, a restart), not a network where nothing is
            // delivered, and must not open incidents by itself. A User that alone goes quiet is still evaluated,
            // since the others' events move the watermark.
            let to = max_ts + quiet_ms.min(self.lateness_ms + 1_000);
            if quiet_ms > self.lateness_ms && !self.source_behind && to > self.idle_advanced_to {
                self.idle_advanced_to = to;
                if let Some(journal) = &mut self.journal {
                    journal.advance(to);
                }
                self.engine.advance_to(to);
                self.settle_held();
                self.handle_updates();
            }
        }
        let lag = self
            .engine
            .watermark_ms()
            .map_or(0.0, |w| (now - w) as f64 / 1000.0);
        let latency = self.latency.quantiles();
        let evicted = self.engine.evicted_total();
        if evicted > self.evicted_logged {
            tracing::info!(
                evicted = evicted - self.evicted_logged,
                users = self.engine.user_count(),
                idle_s = self.engine.config().evict_idle_after_s,
                "idle Users evicted from memory"
            );
            self.evicted_logged = evicted;
        }
        let open = self.engine.open_incidents();
        self.publisher.tick(&self.engine, &open, lag, latency);
        self.sources.pace(&self.engine, None);
        let sources = self.sources.rows(&self.engine);
        self.publisher.sources(&sources);
        if let Some(published) = &self.published {
            published.set_sources(sources);
        }
        self.publish(Some(&open));
        self.refresh_open(&open);
        self.feed_charts(&open);
        if self.charts_saved.elapsed() >= SAVE_CHARTS_EVERY {
            self.save_charts();
        }
        self.malformed.flush();
        // Closed incidents are in the store already; the engine only needs the recent ones.
        self.engine
            .prune_closed(self.engine.config().keep_resolved_s);
        if self.last_snapshot.elapsed() >= self.snapshot_every {
            self.snapshot();
        }
        self.health.engine_ticked();
    }

    /// Publishes the state for readers on other threads; `open`: the open incidents, when already listed.
    pub(super) fn publish(&mut self, open: Option<&[IncidentRecord]>) {
        let Some(published) = &self.published else {
            self.publish_pending = false;
            return;
        };
        let started = Instant::now();
        match open {
            Some(open) => published.publish(&self.engine, open),
            None => published.publish(&self.engine, &self.engine.open_incidents()),
        }
        self.last_published = Instant::now();
        self.publish_cost = started.elapsed();
        self.publish_pending = false;
    }

    /// Publishes now unless the last publication was too recent for its cost (then the loop wakes for it).
    pub(super) fn publish_when_allowed(&mut self) {
        if self.last_published.elapsed() >= self.publish_cost * 10 {
            self.publish(None);
        }
    }

    /// Writes each open incident whose figures, verdict or suspects moved since it was last written, and tells
    /// the alert sender (which pushes at once only when what a person acts on changed). Forgets closed ones.
    pub(super) fn refresh_open(&mut self, open: &[IncidentRecord]) {
        let still_open: HashSet<&str> = open.iter().map(|record| record.id.as_str()).collect();
        self.written
            .retain(|id, _| still_open.contains(id.as_str()));
        for record in open {
            if self.written.get(&record.id) == Some(record) {
                continue;
            }
            self.persistence.incident_changed(record);
            if !self.quiet {
                self.persistence.notify(record, false);
            }
            self.written.insert(record.id.clone(), record.clone());
        }
    }

    pub(super) fn handle_updates(&mut self) {
        let updates: Vec<IncidentUpdate> = self.engine.drain_updates().collect();
        for update in updates {
            let (index, resolved) = match update {
                IncidentUpdate::Opened(index) => (index, false),
                IncidentUpdate::Resolved(index) => (index, true),
                IncidentUpdate::Merged(index, _) => (index, true),
            };
            if let Some(record) = self.engine.incident_record(index) {
                if resolved {
                    self.written.remove(&record.id);
                    self.feed_chart(&record);
                    if let Some(chart) = self.charts.remove(&record.id) {
                        self.persistence.series_changed(&record.id, &chart);
                    }
                } else {
                    self.written.insert(record.id.clone(), record.clone());
                }
                if self.quiet {
                    self.persistence.incident_changed(&record);
                    continue;
                }
                if matches!(update, IncidentUpdate::Opened(_)) {
                    Publisher::incident_opened(record.kind);
                    tracing::warn!(id = %record.id, user = %record.user, kind = record.kind.as_str(), verdict = record.verdict.as_str(), "incident opened");
                }
                self.persistence.incident_changed(&record);
                self.persistence.notify(&record, resolved);
            }
        }
    }

    /// After the register moved and every incident was re-correlated: resolved incidents' new verdicts reach the
    /// store, and open ones reach the store and Alertmanager now, not at the next tick.
    pub(super) fn changes_moved(&mut self) {
        for record in self.engine.incident_records() {
            if record.resolved.is_some() {
                self.persistence.incident_changed(&record);
            }
        }
        let open = self.engine.open_incidents();
        self.refresh_open(&open);
    }
}
