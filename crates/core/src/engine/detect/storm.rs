//! Rate storms: a User's requests (`request_storm`) or queued alerts (`alert_storm`) far above their baseline.

use super::{Reading, UserSecond};
use crate::engine::baseline::{Baseline, BaselineConfig};
use crate::engine::window::Flow;

#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateStormConfig {
    /// Bad when the short-window rate exceeds `factor` x baseline ...
    pub factor: f64,
    /// ... and baseline + `floor` per second (so that small Users' noise never pages).
    pub floor: f64,
    /// Calm again below `calm_factor` x baseline (and baseline + floor / 2).
    pub calm_factor: f64,
    /// While the rate runs above `slow_learn_factor` x baseline (yet not bad), the baseline learns
    /// `slow_learn_divisor` times slower: a climb to many times normal over ten minutes is not followed as if it
    /// were the waking day (which rises far more gently). 0 turns it off.
    pub slow_learn_factor: f64,
    pub slow_learn_divisor: f64,
}

impl Default for RateStormConfig {
    fn default() -> Self {
        RateStormConfig {
            factor: 4.0,
            floor: 5.0,
            calm_factor: 2.0,
            slow_learn_factor: 1.5,
            slow_learn_divisor: 10.0,
        }
    }
}

/// Detects a sustained step in one flow's rate.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RateStormDetector {
    flows: [Flow; 2],
    baseline: Baseline,
}

impl RateStormDetector {
    /// Watches the sum of `flows` (use the same flow twice for one).
    pub fn new(flows: [Flow; 2]) -> Self {
        RateStormDetector {
            flows,
            baseline: Baseline::default(),
        }
    }

    pub fn requests() -> Self {
        Self::new([Flow::Requests, Flow::Requests])
    }

    pub fn alerts() -> Self {
        Self::new([Flow::QueuedAlerts, Flow::QueuedAlerts])
    }

    fn per_second(&self, view: &UserSecond) -> f64 {
        let [a, b] = self.flows;
        if a == b {
            view.now.get(a) as f64
        } else {
            (view.now.get(a) + view.now.get(b)) as f64
        }
    }

    fn short_rate(&self, view: &UserSecond) -> f64 {
        let [a, b] = self.flows;
        if a == b {
            view.short_rate(a)
        } else {
            view.short_rate(a) + view.short_rate(b)
        }
    }

    /// `learning` is false while an anomaly is pending or open, so a storm is not learned as normal.
    pub fn observe(
        &mut self,
        view: &UserSecond,
        learning: bool,
        config: &RateStormConfig,
        baselines: &BaselineConfig,
    ) -> Reading {
        let level = self.short_rate(view);
        if learning {
            let climbing = config.slow_learn_factor > 0.0
                && self.baseline.is_warm(baselines)
                && level > config.slow_learn_factor * self.baseline.rate() + config.floor / 2.0;
            let slowdown = if climbing {
                config.slow_learn_divisor.max(1.0)
            } else {
                1.0
            };
            self.baseline
                .learn_slower(self.per_second(view), baselines, slowdown);
        }
        let base = self.baseline.rate();
        let warm = self.baseline.is_warm(baselines);
        Reading {
            bad: warm && level > (config.factor * base).max(base + config.floor),
            calm: level < (config.calm_factor * base).max(base + config.floor / 2.0),
            may_open: true,
            level,
            baseline: base,
        }
    }

    /// The first second of the step: the earliest second of the short window before `pending_since` whose own
    /// rate was already above `calm_factor` x baseline.
    pub fn onset(
        &self,
        per_second: impl Fn(i64) -> f64,
        pending_since: i64,
        config: &RateStormConfig,
    ) -> i64 {
        let base = self.baseline.rate();
        let threshold = (config.calm_factor * base).max(base + config.floor / 2.0);
        let window = super::SHORT_WINDOW_S as i64;
        (pending_since - window + 1..=pending_since)
            .find(|&s| per_second(s) > threshold)
            .unwrap_or(pending_since)
    }

    /// Reads one second's rate of the watched flows from counts.
    pub fn rate_of(&self, counts: &crate::engine::window::SecondCounts) -> f64 {
        let [a, b] = self.flows;
        if a == b {
            counts.get(a) as f64
        } else {
            (counts.get(a) + counts.get(b)) as f64
        }
    }

    pub fn baseline(&self) -> &Baseline {
        &self.baseline
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::detect::SHORT_WINDOW_S;

    /// Feeds per-second request counts and returns the readings, with a true sliding window.
    pub(crate) fn feed(detector: &mut RateStormDetector, counts: &[u64]) -> Vec<Reading> {
        let config = RateStormConfig::default();
        let baselines = BaselineConfig {
            warmup_s: 30,
            ..BaselineConfig::default()
        };
        let mut readings = Vec::new();
        for (second, &count) in counts.iter().enumerate() {
            let mut view = UserSecond {
                second: second as i64,
                ..UserSecond::default()
            };
            view.now.flows[Flow::Requests as usize] = count;
            let start = (second + 1).saturating_sub(SHORT_WINDOW_S as usize);
            view.short[Flow::Requests as usize] = counts[start..=second].iter().sum();
            let learning = !readings.last().is_some_and(|r: &Reading| r.bad);
            readings.push(detector.observe(&view, learning, &config, &baselines));
        }
        readings
    }

    #[test]
    fn steady_traffic_is_never_bad() {
        let counts: Vec<u64> = (0..600).map(|s| 100 + (s * 7919 % 23)).collect();
        let readings = feed(&mut RateStormDetector::requests(), &counts);
        assert!(readings.iter().all(|r| !r.bad));
    }

    #[test]
    fn tenfold_step_is_bad_within_seconds_and_baseline_holds() {
        let mut counts = vec![100u64; 120];
        counts.extend(vec![1_000u64; 60]);
        let mut detector = RateStormDetector::requests();
        let readings = feed(&mut detector, &counts);
        let first_bad = readings.iter().position(|r| r.bad).unwrap();
        assert!(
            (120..126).contains(&first_bad),
            "first bad second {first_bad}"
        );
        assert!(readings[120..].iter().skip(6).all(|r| r.bad));
        assert!(detector.baseline().rate() < 110.0);
        let onset = detector.onset(
            |s| counts[s as usize] as f64,
            first_bad as i64,
            &RateStormConfig::default(),
        );
        assert_eq!(onset, 120);
    }

    #[test]
    fn small_user_noise_stays_under_the_floor() {
        // A User averaging 0.5/s with bursts of 4 in one second.
        let counts: Vec<u64> = (0..900)
            .map(|s| {
                if s % 13 == 0 {
                    4
                } else {
                    u64::from(s % 3 == 0)
                }
            })
            .collect();
        assert!(
            feed(&mut RateStormDetector::requests(), &counts)
                .iter()
                .all(|r| !r.bad)
        );
    }

    #[test]
    fn daily_ramp_is_followed_not_flagged() {
        // Triples over 30 minutes.
        let counts: Vec<u64> = (0..3_600u64)
            .map(|s| 50 + s.min(1_800) * 100 / 1_800)
            .collect();
        assert!(
            feed(&mut RateStormDetector::requests(), &counts)
                .iter()
                .all(|r| !r.bad)
        );
    }
}
