//! Backlogs: a User's outbound queue holding messages that are not being delivered, caught while it is still small.
//!
//! The signal is the age of the oldest waiting message (first in, first out), not the depth: a healthy endpoint
//! takes messages within a second or two whatever the volume, so messages waiting tens of seconds mean
//! deliveries fail, stall or stopped, for a large User or a small one alike. A queue that is draining is
//! recovering, not failing: after a short outage the oldest message stays old while the backlog empties.

use super::{Reading, UserSecond};
use crate::engine::baseline::{Baseline, BaselineConfig};
use crate::engine::window::Flow;

#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BacklogConfig {
    /// Bad while the oldest waiting message is at least this old.
    pub min_age_s: u64,
    /// Opening also needs this many messages waiting: a handful stuck for a tiny User is not an incident.
    pub min_depth: u64,
    /// Calm once the oldest message is younger than this, or the queue is nearly empty.
    pub calm_age_s: u64,
    pub calm_depth: u64,
    /// Evidence that rules out a sub-minute hiccup (the backlog then opens after the lifecycle's
    /// `open_early_after_s`): at least `persistent_min_failures` failures over the last 10 s, and at least
    /// `persistent_share` of recent failures are configuration faults (TLS, HTTP 4xx: an endpoint that refuses for
    /// such a reason stays refusing until someone fixes it) ...
    pub persistent_share: f64,
    pub persistent_min_failures: u32,
    /// ... or more messages waiting than `urgent_inflow_s` seconds of the User's baseline inflow, with the oldest
    /// at least `urgent_min_age_s` old: a sub-minute outage cannot queue that much unless inflow surged too.
    /// 0 turns this off.
    pub urgent_inflow_s: f64,
    pub urgent_min_age_s: u64,
}

impl Default for BacklogConfig {
    fn default() -> Self {
        BacklogConfig {
            min_age_s: 10,
            min_depth: 50,
            calm_age_s: 5,
            calm_depth: 5,
            persistent_share: 0.8,
            persistent_min_failures: 10,
            // Twice the most a 30 s x3 burst landing inside a 59 s hiccup could queue.
            urgent_inflow_s: 180.0,
            urgent_min_age_s: 30,
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BacklogDetector {
    inflow: Baseline,
}

impl BacklogDetector {
    pub fn observe(
        &mut self,
        view: &UserSecond,
        learning: bool,
        config: &BacklogConfig,
        baselines: &BaselineConfig,
    ) -> Reading {
        if learning {
            self.inflow.learn(view.now.queued() as f64, baselines);
        }
        let refused = Self::refused(view, config);
        // A queue growing while the endpoint refuses for a configuration fault is bad before its oldest message
        // is old: with the rest of the traffic delivered (one SRV family refused), the age reads only
        // depth / inflow and would take minutes.
        // Nothing at all heard of the User for the whole short window (no request, queued, delivery or failure
        // line) is a gap in the data, not a stall: its exporter or the network to it stopped, and missing data
        // is unknown. A real outage still queues new messages, or fails attempts, and so is heard.
        let heard = view.short.iter().any(|&n| n > 0);
        let bad = heard
            && view.depth > 0
            && view.depth >= view.depth_before
            && view.depth >= view.depth_recent
            && (view.backlog_age_s >= config.min_age_s
                || (refused && view.depth > view.depth_before));
        Reading {
            bad,
            calm: view.depth <= config.calm_depth || view.backlog_age_s < config.calm_age_s,
            may_open: view.depth >= config.min_depth,
            urgent: bad && self.no_hiccup(view, config, baselines),
            level: view.short_rate(Flow::QueuedResponses) + view.short_rate(Flow::QueuedAlerts),
            baseline: self.inflow.rate(),
        }
    }

    /// The failures say the endpoint refuses for a reason that does not clear by itself (whether or not the rest
    /// of the User's traffic gets through), or more is waiting than a sub-minute outage could have queued.
    fn no_hiccup(
        &self,
        view: &UserSecond,
        config: &BacklogConfig,
        baselines: &BaselineConfig,
    ) -> bool {
        let inflow = self.inflow.rate();
        let overfull = config.urgent_inflow_s > 0.0
            && self.inflow.is_warm(baselines)
            && inflow > 0.0
            && view.backlog_age_s >= config.urgent_min_age_s
            && view.depth as f64 >= config.urgent_inflow_s * inflow;
        Self::refused(view, config) || overfull
    }

    /// Recent failures are mostly configuration faults (TLS, HTTP 4xx), enough of them to matter.
    /// The count comes from the closed seconds' window; the reason mix from the recent tally, which may already
    /// include lines of seconds not yet closed (a mix, not a timing).
    fn refused(view: &UserSecond, config: &BacklogConfig) -> bool {
        view.short[Flow::Failed as usize] >= u64::from(config.persistent_min_failures)
            && view.recent_failed > 0
            && f64::from(view.recent_persistent)
                >= config.persistent_share * f64::from(view.recent_failed)
    }

    /// Baseline of messages queued per second.
    pub fn inflow_rate(&self) -> f64 {
        self.inflow.rate()
    }

    /// The onset is when the oldest waiting message was queued: deliveries have not kept up since then.
    pub fn onset(view: &UserSecond) -> i64 {
        view.second - view.backlog_age_s as i64
    }
}

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
mod tests {
    use super::*;

    /// A second of a User still heard from: some messages queued for it in the short window.
    fn view(second: i64, depth: u64, age: u64) -> UserSecond {
        let mut short = [0; crate::engine::window::FLOWS];
        short[Flow::QueuedResponses as usize] = 3;
        UserSecond {
            second,
            depth,
            backlog_age_s: age,
            short,
            ..UserSecond::default()
        }
    }

    #[test]
    fn old_waiting_messages_are_bad_fresh_ones_are_not() {
        let mut detector = BacklogDetector::default();
        let (config, baselines) = (BacklogConfig::default(), BaselineConfig::default());
        assert!(
            !detector
                .observe(&view(0, 300, 1), true, &config, &baselines)
                .bad
        );
        let stuck = detector.observe(&view(1, 300, 40), true, &config, &baselines);
        assert!(stuck.bad && stuck.may_open && !stuck.calm);
        let tiny = detector.observe(&view(2, 3, 400), true, &config, &baselines);
        assert!(
            tiny.bad && !tiny.may_open,
            "a few stuck messages wait, but do not open an incident"
        );
        assert!(
            detector
                .observe(&view(3, 0, 0), true, &config, &baselines)
                .calm
        );
        assert_eq!(BacklogDetector::onset(&view(1_000, 300, 75)), 925);
    }

    #[test]
    fn a_user_gone_silent_is_a_gap_in_the_data_not_a_stall() {
        let mut detector = BacklogDetector::default();
        let (config, baselines) = (BacklogConfig::default(), BaselineConfig::default());
        assert!(
            detector
                .observe(&view(1, 300, 40), true, &config, &baselines)
                .bad,
            "messages still queue while nothing is delivered: a stall"
        );
        let mut silent = view(2, 300, 41);
        silent.short = [0; crate::engine::window::FLOWS];
        let silent = detector.observe(&silent, true, &config, &baselines);
        assert!(
            !silent.bad && !silent.calm,
            "no line of any kind for the whole window: unknown, neither bad nor calm"
        );
    }

    #[test]
    fn delivery_state_follows_burrow() {
        assert_eq!(DeliveryState::judge(0, 0), DeliveryState::Stop);
        assert_eq!(DeliveryState::judge(0, 12), DeliveryState::Stall);
        assert_eq!(DeliveryState::judge(5, 12), DeliveryState::Warn);
    }
}
