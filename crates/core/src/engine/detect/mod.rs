//! Detectors: one small pure type per anomaly kind, each turning a User's closed second into a reading.

pub mod backlog;
pub mod reject;
mod storm;
pub mod trend;

pub use backlog::{BacklogConfig, BacklogDetector};
pub use reject::{RejectStormConfig, RejectStormDetector};
pub use storm::{RateStormConfig, RateStormDetector};

use super::window::{FLOWS, Flow, SecondCounts};

/// Short-window length, in seconds, over which rates are judged: long enough to smooth per-second noise, short
/// enough to detect within seconds.
pub const SHORT_WINDOW_S: u64 = 10;

/// Models learn once per short window, from the window that ends at a second that is a multiple of its length:
/// windows that do not overlap, and a tenth of the work.
#[inline]
pub fn learns_now(second: i64) -> bool {
    second % SHORT_WINDOW_S as i64 == 0
}

/// How far back a queue is compared to tell that it has started draining: a few seconds, so that an endpoint that
/// recovers stops looking bad at once (not 10 s later) without one noisy second deciding it.
pub const DRAIN_LOOKBACK_S: i64 = 3;

/// What a detector sees of one User in one closed second.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct UserSecond {
    pub second: i64,
    pub now: SecondCounts,
    /// Sums over the last `SHORT_WINDOW_S` seconds, this one included.
    pub short: [u64; FLOWS],
    pub depth: u64,
    /// Queue depth `SHORT_WINDOW_S` seconds earlier.
    pub depth_before: u64,
    /// Queue depth `DRAIN_LOOKBACK_S` seconds earlier: a queue below it is draining now, whatever the longer
    /// comparison still says.
    #[serde(default)]
    pub depth_recent: u64,
    /// Age in seconds of the oldest message waiting in the User's queue (0 when empty).
    pub backlog_age_s: u64,
}

impl UserSecond {
    pub fn short_rate(&self, flow: Flow) -> f64 {
        self.short[flow as usize] as f64 / SHORT_WINDOW_S as f64
    }
}

/// One detector's judgement of one second.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Reading {
    /// The anomaly condition holds.
    pub bad: bool,
    /// The stricter all-clear holds (hysteresis: between the two, an open incident stays open).
    pub calm: bool,
    /// Extra conditions for opening hold (e.g. the backlog is deep enough to matter).
    pub may_open: bool,
    /// The judged quantity (a short-window rate, or a reject share).
    pub level: f64,
    /// Its baseline.
    pub baseline: f64,
}
