//! Backlogs: deliveries falling short of arrivals for longer than a hiccup lasts, caught while the queue is small.
//!
//! A backlog is judged by what the queue does, not by its shape: messages arrive (`queued`) and leave
//! (`delivered`, `expired`); the gap between the two is the queue's growth, and by Little's law the time messages
//! wait grows with it. A User's queue is *building* in a second when
//!
//! - nothing has left it for the short window while messages arrived or attempts failed (STOP or STALL), or
//! - it grew over the short window by more than `growth_z` standard deviations of the growth this User's healthy
//!   queue shows over the same window (learned, below), and is still rising over the last few seconds, or
//! - the floors of its depth and of its wait (the lowest of each minute's depth, and of its depth / arrival rate,
//!   Little's law) rose in each of the last `RISING_MINUTES` minutes, by more than chance allows in total, and
//!   have not fallen since: a slow leak or a slight shortfall, too slow to stand out in ten seconds. Both: a queue
//!   holding a second of traffic in flight grows with the traffic (its depth rises, its wait does not), and
//!   messages held for retry after a hiccup wait longer whenever traffic eases (the wait rises, the depth does
//!   not); neither is a backlog.
//!
//! The anomaly is bad (on watch) while the queue is building and its oldest message has waited longer than this
//! User's healthy queue lets messages wait (`min_age_s` at least). It opens after the backlog lifecycle's
//! `open_after_s` of building: an outage that ends within a minute (a hiccup, normal life per domain.md) never
//! opens, whatever its failure reason. After a hiccup the DSP retries the failed messages within 300 s while new
//! ones flow past them, so the depth stays up, flat, for minutes and the oldest message looks old: that queue is
//! not building, and is not a backlog.
//!
//! The healthy growth scale is learned per User (an exponentially weighted mean square of the short-window
//! growth while no backlog is tracked, each sample clipped at `CLIP_SIGMAS` deviations so that a hiccup does not
//! teach it), so a 200 messages/s User and a one-message-a-second User are judged by the same rule.

use super::{Reading, SHORT_WINDOW_S, UserSecond, learns_now};
use crate::engine::baseline::{BaselineConfig, RateModel};
use crate::engine::window::Flow;
use crate::telemetry::FailureReason;

/// Minutes in a row whose lowest depth must have risen for a slow rise to count as building.
pub const RISING_MINUTES: usize = 3;

/// A healthy sample beyond this many deviations is clipped before it is learned.
const CLIP_SIGMAS: f64 = 4.0;

/// Seconds a step of the healthy age's quantile tracker moves it, once a window (see
/// [`BacklogDetector::normal_age_s`]).
const AGE_STEP_S: f64 = 0.02;

/// Arrivals per second below which the wait is judged as if one message a minute arrived: a User heard from
/// this rarely has no rate to divide by.
const MIN_WAIT_RATE: f64 = 1.0 / 60.0;

/// The growth scale never goes below one message: a queue that moves by a message is not news.
const MIN_GROWTH_SCALE: f64 = 1.0;

#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BacklogConfig {
    /// Seconds: the oldest waiting message must have waited at least this long (and longer than this User's
    /// healthy queue normally lets a message wait, see [`BacklogDetector::normal_age_s`]) for a building queue
    /// to be on watch.
    pub min_age_s: u64,
    /// Messages: opening also needs this many waiting. The smallest backlog worth a page: a handful stuck for a
    /// tiny User is not an incident.
    pub min_depth: u64,
    /// Calm (the all-clear an open backlog needs to resolve) once the oldest message has waited less than
    /// `calm_age_s` seconds, or at most `calm_depth` messages wait.
    pub calm_age_s: u64,
    pub calm_depth: u64,
    /// Standard deviations (one-sided): the short-window growth must exceed the User's healthy growth by this
    /// many deviations to count as building. 3 gives about 1 in 740 healthy seconds under a normal law; the
    /// lifecycle's persistence requirement makes a page from noise alone far rarer.
    pub growth_z: f64,
    /// A share of delivery attempts: a backlog's deliveries count as failing, and the most frequent failure reason
    /// as its mechanism, when failed attempts since its onset are at least this share of all attempts. Below it,
    /// deliveries slowed without failing (the DSP's shared capacity, a pause), and the odd timeout is noise.
    pub failing_share: f64,
}

impl Default for BacklogConfig {
    fn default() -> Self {
        BacklogConfig {
            min_age_s: 10,
            min_depth: 50,
            calm_age_s: 5,
            calm_depth: 5,
            growth_z: 3.0,
            failing_share: 0.01,
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BacklogDetector {
    /// The model of messages queued per second (absent from snapshots before the model, whose `inflow` was a
    /// baseline: it then starts cold).
    #[serde(default)]
    inflow_model: RateModel,
    /// Mean square of the short-window growth while healthy (messages²).
    #[serde(default)]
    growth_ms: f64,
    #[serde(default)]
    growth_seen: u32,
    /// Its square root, kept so each second reads it without one.
    #[serde(default)]
    growth_sd: f64,
    /// The 99th percentile of the oldest message's age while healthy (s), tracked by stochastic approximation.
    #[serde(default)]
    age_q99: f64,
    /// The verdict of the last second that carried queue information: a second with no queued, delivered,
    /// failed or expired message in the short window says nothing new about deliveries.
    #[serde(default)]
    building: bool,
    /// The minute being recorded, its lowest (depth, wait) so far (messages; seconds: depth / arrivals per second),
    /// and the lowest of the minutes before it (newest first).
    #[serde(default)]
    minute: i64,
    #[serde(default)]
    minute_floor: (f64, f64),
    #[serde(default)]
    floors: [(f64, f64); RISING_MINUTES + 1],
    #[serde(default)]
    floors_seen: u8,
}

impl BacklogDetector {
    pub fn observe(
        &mut self,
        view: &UserSecond,
        learning: bool,
        config: &BacklogConfig,
        baselines: &BaselineConfig,
    ) -> Reading {
        let growth = view.depth as f64 - view.depth_before as f64;
        let arrived =
            view.short[Flow::QueuedResponses as usize] + view.short[Flow::QueuedAlerts as usize];
        self.inflow_model.observe(
            view.now.queued() as f64,
            arrived as f64,
            view.second,
            learning,
            baselines,
        );
        if learning && learns_now(view.second) {
            self.learn_healthy(view, growth, baselines);
        }
        let rate = (arrived as f64 / SHORT_WINDOW_S as f64).max(MIN_WAIT_RATE);
        let depth = view.depth as f64;
        self.record_floor(view.second, (depth, depth / rate));
        // Nothing at all heard of the User for the whole short window (no request, queued, delivery or failure
        // line) is a gap in the data, not a stall: its exporter or the network to it stopped, and missing data
        // is unknown. A real outage still queues new messages, or fails attempts, and so is heard.
        let heard = view.short.iter().any(|&n| n > 0);
        let left = view.short[Flow::Delivered as usize] + view.short[Flow::Expired as usize];
        let failed = view.short[Flow::Failed as usize];
        // A floor that rose minute after minute is held up by messages that have waited minutes, whatever the
        // first-in-first-out age says (a leak's stuck messages are not the oldest by arrival).
        let rising = heard && self.floor_rising(view, config);
        let building = if !heard {
            false
        } else if arrived + left + failed == 0 {
            self.building
        } else {
            let stalled = left == 0 && view.depth > 0;
            let growing =
                growth > config.growth_z * self.growth_scale() && view.depth > view.depth_recent;
            stalled || growing
        };
        self.building = building;
        let waited = view.backlog_age_s >= self.watch_age_s(config);
        Reading {
            bad: view.depth > 0 && (rising || (building && waited)),
            calm: view.depth <= config.calm_depth || view.backlog_age_s < config.calm_age_s,
            may_open: view.depth >= config.min_depth,
            level: view.short_rate(Flow::QueuedResponses) + view.short_rate(Flow::QueuedAlerts),
            baseline: self.inflow_model.expected(view.second),
        }
    }

    /// Learns the healthy growth scale and age from a window in which no backlog is tracked (once per window:
    /// the windows' growths do not overlap).
    fn learn_healthy(&mut self, view: &UserSecond, growth: f64, baselines: &BaselineConfig) {
        self.growth_seen = self.growth_seen.saturating_add(1);
        let windows = baselines.time_constant_s.max(1.0) / SHORT_WINDOW_S as f64;
        let alpha = windows.min(f64::from(self.growth_seen)).recip();
        let clip = CLIP_SIGMAS * self.growth_scale();
        let sample = growth.clamp(-clip, clip);
        self.growth_ms += alpha * (sample * sample - self.growth_ms);
        self.growth_sd = self.growth_ms.sqrt();
        // Robbins-Monro quantile: up by 0.99 steps when exceeded, down by 0.01 steps otherwise. Slow on purpose
        // (a few seconds an hour at most): a leak growing for minutes must not teach it that waiting is normal.
        if view.backlog_age_s as f64 > self.age_q99 {
            self.age_q99 += AGE_STEP_S * 0.99;
        } else {
            self.age_q99 = (self.age_q99 - AGE_STEP_S * 0.01).max(0.0);
        }
    }

    /// Standard deviation of the healthy short-window growth (messages).
    pub fn growth_scale(&self) -> f64 {
        self.growth_sd.max(MIN_GROWTH_SCALE)
    }

    /// Seconds the oldest message of this User's healthy queue waits at most, 99 times in 100.
    pub fn normal_age_s(&self) -> f64 {
        self.age_q99
    }

    fn watch_age_s(&self, config: &BacklogConfig) -> u64 {
        (config.min_age_s as f64).max(self.normal_age_s().ceil()) as u64
    }

    fn record_floor(&mut self, second: i64, floor: (f64, f64)) {
        // The minute in progress, with a comparison: its number is worked out only when a new one begins.
        if self.floors_seen > 0 && (self.minute * 60..self.minute * 60 + 60).contains(&second) {
            self.minute_floor.0 = self.minute_floor.0.min(floor.0);
            self.minute_floor.1 = self.minute_floor.1.min(floor.1);
            return;
        }
        let minute = second.div_euclid(60);
        if self.floors_seen == 0 {
            self.minute = minute;
            self.minute_floor = floor;
            self.floors_seen = 1;
            return;
        }
        // A gap of whole minutes breaks the series: their floors are unknown.
        let contiguous = minute == self.minute + 1;
        self.floors.copy_within(0..RISING_MINUTES, 1);
        self.floors[0] = self.minute_floor;
        self.floors_seen = if contiguous {
            self.floors_seen
                .saturating_add(1)
                .min(RISING_MINUTES as u8 + 2)
        } else {
            1
        };
        self.minute = minute;
        self.minute_floor = floor;
    }

    /// The floors of depth and wait rose in each of the last `RISING_MINUTES` whole minutes, the depth's in all by
    /// more than `growth_z` deviations of the healthy growth and the wait's by more than the User's normal wait,
    /// and the minute in progress has not fallen below the last floors.
    fn floor_rising(&self, view: &UserSecond, config: &BacklogConfig) -> bool {
        if usize::from(self.floors_seen) < RISING_MINUTES + 2 {
            return false;
        }
        let rising = self
            .floors
            .windows(2)
            .all(|pair| pair[0].0 > pair[1].0 && pair[0].1 > pair[1].1);
        let (newest, oldest) = (self.floors[0], self.floors[RISING_MINUTES]);
        // Significant in messages (against the healthy growth), and in time: messages now wait longer than this
        // User's healthy queue ever keeps one (a flood that fills the pipe to capacity keeps the wait under a
        // second).
        rising
            && newest.0 - oldest.0
                > config.growth_z * self.growth_scale() * (RISING_MINUTES as f64).sqrt()
            && newest.1 - oldest.1 > self.normal_age_s().max(1.0)
            && self.minute_floor.0 >= newest.0
            && self.minute_floor.1 >= newest.1
            && view.depth >= view.depth_recent
    }

    /// The model of messages queued per second.
    pub fn inflow_model(&self) -> &RateModel {
        &self.inflow_model
    }

    /// The onset is when the oldest waiting message was queued: deliveries have not kept up since then.
    pub fn onset(view: &UserSecond) -> i64 {
        view.second - view.backlog_age_s as i64
    }
}

/// The most frequent reason among `failures` (by reason), when failures are at least `min_share` of the attempts
/// (`failures` plus `delivered`); ties go to the reason listed first.
pub fn failing_reason(
    failures: &[u64; 6],
    delivered: u64,
    min_share: f64,
) -> Option<FailureReason> {
    let failed: u64 = failures.iter().sum();
    if failed == 0 || (failed as f64) < min_share * (failed + delivered) as f64 {
        return None;
    }
    FailureReason::ALL
        .iter()
        .map(|&reason| (reason, failures[reason as usize]))
        .filter(|&(_, count)| count > 0)
        .max_by_key(|&(reason, count)| (count, std::cmp::Reverse(reason)))
        .map(|(reason, _)| reason)
}

/// The short window's length, for the reader of [`BacklogDetector::growth_scale`].
pub const GROWTH_WINDOW_S: u64 = SHORT_WINDOW_S;

/// Burrow-style state of a User's deliveries over a recent window.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum DeliveryState {
    /// No delivery attempts at all while messages wait.
    Stop,
    /// Attempts fail and nothing is delivered.
    Stall,
    /// Delivering, but not keeping up.
    Warn,
}

impl DeliveryState {
    pub fn judge(delivered: u64, failed: u64) -> DeliveryState {
        match (delivered, failed) {
            (0, 0) => DeliveryState::Stop,
            (0, _) => DeliveryState::Stall,
            _ => DeliveryState::Warn,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Stop => "STOP",
            DeliveryState::Stall => "STALL",
            DeliveryState::Warn => "WARN",
        }
    }
}

#[cfg(test)]
#[path = "backlog_tests.rs"]
mod tests;
