//! Open incidents' charts: fed from the engine's windows as event time moves, saved to the store.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use super::EngineLoop;
use crate::engine::incident_series::{IncidentSeries, MAX_USERS, SeriesPoint};
use stormwatch_core::engine::window::RING_SECONDS;
use stormwatch_core::report::IncidentRecord;
use stormwatch_core::telemetry::Eui64;

/// How often open incidents' charts are written to the store (and when they close).
pub(super) const SAVE_CHARTS_EVERY: Duration = Duration::from_secs(10);
/// Charts are fed between ticks once event time has moved this far, so a fast replay never closes more seconds
/// between two feeds than the engine's per-second ring holds.
const FEED_CHARTS_AFTER_MS: i64 = (RING_SECONDS as i64 / 2) * 1000;

impl EngineLoop {
    /// During a fast catch-up a batch can span more event time than the engine's ring holds: the charts are
    /// fed (and saved, so the API's live tail joins them) whenever event time has moved far enough.
    pub(super) fn catch_up_charts(&mut self) {
        if self
            .engine
            .watermark_ms()
            .is_some_and(|w| w.saturating_sub(self.charts_fed_ms) >= FEED_CHARTS_AFTER_MS)
        {
            let open = self.engine.open_incidents();
            self.feed_charts(&open);
            self.save_charts();
        }
    }

    pub(super) fn save_charts(&mut self) {
        self.charts_saved = Instant::now();
        for (id, chart) in &self.charts {
            self.persistence.series_changed(id, chart);
        }
    }

    /// Adds the seconds closed since the last feed to each open incident's chart; forgets closed ones' charts.
    pub(super) fn feed_charts(&mut self, open: &[IncidentRecord]) {
        self.charts_fed_ms = self.engine.watermark_ms().unwrap_or(i64::MIN);
        let still_open: HashSet<&str> = open.iter().map(|record| record.id.as_str()).collect();
        self.charts.retain(|id, _| still_open.contains(id.as_str()));
        for record in open {
            self.feed_chart(record);
        }
    }

    /// Adds what the engine's windows hold of `record`'s Users since its chart was last fed.
    pub(super) fn feed_chart(&mut self, record: &IncidentRecord) {
        let chart = match self.charts.get_mut(&record.id) {
            Some(chart) => chart,
            None => {
                let chart = self
                    .persistence
                    .stored_series(&record.id)
                    .unwrap_or_else(|| IncidentSeries::new(record.onset, record.detected));
                self.charts.entry(record.id.clone()).or_insert(chart)
            }
        };
        let users: Vec<Eui64> = std::iter::once(&record.user)
            .chain(&record.users)
            .filter_map(|u| Eui64::parse(u))
            .take(MAX_USERS)
            .collect();
        for user in users {
            let Some(state) = self.engine.user_by_id(user) else {
                continue;
            };
            let Some(closed) = state.window.closed_through() else {
                continue;
            };
            let name = user.to_string();
            let Some(next) = chart.user_mut(&name).map(|series| series.next_second) else {
                continue;
            };
            let Some(index) = chart.users.iter().position(|u| u.user == name) else {
                continue;
            };
            let from = next.max(closed - RING_SECONDS as i64 + 1);
            for second in from..=closed {
                chart.push(
                    index,
                    SeriesPoint::of_second(second, &state.window.read(second)),
                );
            }
        }
    }
}
