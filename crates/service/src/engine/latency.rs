//! Ingest-to-window latency: how long batches waited between arriving and being applied, as quantiles.

use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

/// Length of one latency window.
const LATENCY_WINDOW: Duration = Duration::from_secs(60);

/// Ingest-to-window latency in microseconds, this minute and the last: quantiles cover the last 1-2 minutes.
pub(super) struct IngestLatency {
    latency: Histogram<u64>,
    previous_latency: Histogram<u64>,
    latency_window_started: Instant,
}

impl IngestLatency {
    pub(super) fn new() -> Self {
        IngestLatency {
            // Microseconds, 1 us to 60 s: constant bounds that hdrhistogram accepts.
            latency: Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds"),
            previous_latency: Histogram::new_with_bounds(1, 60_000_000, 3)
                .expect("valid histogram bounds"),
            latency_window_started: Instant::now(),
        }
    }

    /// A batch received at `received` has just been applied.
    pub(super) fn record(&mut self, received: Instant) {
        let micros = received.elapsed().as_micros().min(u128::from(u64::MAX)) as u64;
        let _ = self.latency.record(micros.max(1));
    }

    /// The median, 99th and 99.9th percentiles in seconds, starting a new window when this one is over.
    pub(super) fn quantiles(&mut self) -> [(&'static str, f64); 3] {
        if self.latency_window_started.elapsed() >= LATENCY_WINDOW {
            self.latency_window_started = Instant::now();
            std::mem::swap(&mut self.latency, &mut self.previous_latency);
            self.latency.reset();
        }
        let mut recent = self.previous_latency.clone();
        let _ = recent.add(&self.latency);
        let quantile = |q: f64| recent.value_at_quantile(q) as f64 / 1e6;
        [
            ("0.5", quantile(0.5)),
            ("0.99", quantile(0.99)),
            ("0.999", quantile(0.999)),
        ]
    }
}
