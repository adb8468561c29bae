//! What "now" is for the time-scoped views (the schedule, change outcomes, the upcoming-conflicts gauge): event
//! time, the engine's watermark, once the service holds telemetry, so replayed or generated history is seen as of
//! its own time (a live feed's watermark follows the wall clock); the wall clock before any telemetry. The event
//! time is recorded in the store every few seconds, so the command line judges as of the same time.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::published::Published;
use crate::store::Store;

/// How often the event time reached is written to the store while it moves.
const RECORD_EVERY: Duration = Duration::from_secs(5);

/// Which clock a view's "now" is read from.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Clock {
    /// The telemetry's own time: the watermark of the data the service holds.
    EventTime,
    /// No telemetry yet: the machine's clock.
    WallClock,
}

/// A view's "now", in ms since the epoch, and where it was read.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ViewNow {
    pub ms: i64,
    pub clock: Clock,
}

impl ViewNow {
    /// Event time when there is one, else the wall clock.
    pub fn of(event_ms: Option<i64>) -> ViewNow {
        match event_ms {
            Some(ms) => ViewNow {
                ms,
                clock: Clock::EventTime,
            },
            None => ViewNow {
                ms: crate::store::now_ms(),
                clock: Clock::WallClock,
            },
        }
    }

    /// `{"now": RFC 3339, "clock": "event_time" | "wall_clock"}`, which every time-scoped answer carries.
    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "now": stormwatch_core::rfc3339::format_seconds(self.ms).unwrap_or_default(),
            "clock": self.clock,
        })
    }
}

/// The views' "now" as of the engine's last published state.
pub fn now(published: &Published) -> ViewNow {
    ViewNow::of(published.load().as_of)
}

/// Writes the event time reached to the store whenever it has moved, every [`RECORD_EVERY`].
pub async fn record(store: Store, published: Arc<Published>) {
    let mut every = tokio::time::interval(RECORD_EVERY);
    let mut recorded = None;
    loop {
        every.tick().await;
        let Some(event_ms) = published.load().as_of else {
            continue;
        };
        if recorded == Some(event_ms) {
            continue;
        }
        match store.record_event_time_async(event_ms).await {
            Ok(()) => recorded = Some(event_ms),
            // The store's probe reports an unwritable store in /readyz; this only waits for the next round.
            Err(error) => tracing::debug!(%error, "cannot record the event time reached"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_time_wins_and_the_wall_clock_stands_in_without_it() {
        let replayed = ViewNow::of(Some(1_773_133_200_000));
        assert_eq!(replayed.clock, Clock::EventTime);
        assert_eq!(replayed.json()["now"], "2026-03-10T09:00:00Z");
        assert_eq!(replayed.json()["clock"], "event_time");
        let fresh = ViewNow::of(None);
        assert_eq!(fresh.clock, Clock::WallClock);
        assert!(fresh.ms > 1_773_133_200_000);
    }
}
