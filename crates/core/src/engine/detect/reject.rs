//! Reject storms: an unusual share of a User's requests rejected by the DSP.

use super::{Reading, UserSecond};
use crate::engine::baseline::{Baseline, BaselineConfig};
use crate::engine::window::Flow;

#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RejectStormConfig {
    /// Bad when the short-window reject share exceeds `min_share` and `factor` x the baseline share ...
    pub min_share: f64,
    pub factor: f64,
    /// ... and rejects run at least this many per second (a few rejected requests from a small User are noise).
    pub min_rejects_per_s: f64,
    /// Calm below this share (and `calm_factor` x baseline share), or below half the minimum reject rate.
    pub calm_share: f64,
    pub calm_factor: f64,
}

impl Default for RejectStormConfig {
    fn default() -> Self {
        RejectStormConfig {
            min_share: 0.25,
            factor: 3.0,
            min_rejects_per_s: 3.0,
            calm_share: 0.15,
            calm_factor: 2.0,
        }
    }
}

/// Lowest baseline share used as a divisor, so a User that never had rejects gets a finite ratio.
pub const SHARE_FLOOR: f64 = 0.01;

#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RejectStormDetector {
    requests: Baseline,
    rejected: Baseline,
}

impl RejectStormDetector {
    pub fn baseline_share(&self) -> f64 {
        if self.requests.rate() <= f64::EPSILON {
            0.0
        } else {
            self.rejected.rate() / self.requests.rate()
        }
    }

    pub fn observe(
        &mut self,
        view: &UserSecond,
        learning: bool,
        config: &RejectStormConfig,
        baselines: &BaselineConfig,
    ) -> Reading {
        if learning {
            self.requests
                .learn(view.now.get(Flow::Requests) as f64, baselines);
            self.rejected
                .learn(view.now.get(Flow::Rejected) as f64, baselines);
        }
        let requests = view.short[Flow::Requests as usize];
        let rejects_per_s = view.short_rate(Flow::Rejected);
        let share = if requests == 0 {
            0.0
        } else {
            view.short[Flow::Rejected as usize] as f64 / requests as f64
        };
        let base = self.baseline_share();
        let warm = self.requests.is_warm(baselines);
        Reading {
            bad: warm
                && rejects_per_s >= config.min_rejects_per_s
                && share > config.min_share.max(config.factor * base),
            calm: share < config.calm_share.max(config.calm_factor * base)
                || rejects_per_s < config.min_rejects_per_s / 2.0,
            may_open: true,
            level: share,
            baseline: base.max(SHARE_FLOOR),
        }
    }

    /// The first second of the short window before `pending_since` whose own reject share was already bad.
    pub fn onset(
        &self,
        share_at: impl Fn(i64) -> f64,
        pending_since: i64,
        config: &RejectStormConfig,
    ) -> i64 {
        let threshold = config
            .calm_share
            .max(config.calm_factor * self.baseline_share());
        let window = super::SHORT_WINDOW_S as i64;
        (pending_since - window + 1..=pending_since)
            .find(|&s| share_at(s) > threshold)
            .unwrap_or(pending_since)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::detect::SHORT_WINDOW_S;

    fn feed(requests: &[u64], rejected: &[u64]) -> Vec<Reading> {
        let mut detector = RejectStormDetector::default();
        let config = RejectStormConfig::default();
        let baselines = BaselineConfig {
            warmup_s: 30,
            ..BaselineConfig::default()
        };
        let mut readings: Vec<Reading> = Vec::new();
        for second in 0..requests.len() {
            let mut view = UserSecond {
                second: second as i64,
                ..UserSecond::default()
            };
            view.now.flows[Flow::Requests as usize] = requests[second];
            view.now.flows[Flow::Rejected as usize] = rejected[second];
            let start = (second + 1).saturating_sub(SHORT_WINDOW_S as usize);
            view.short[Flow::Requests as usize] = requests[start..=second].iter().sum();
            view.short[Flow::Rejected as usize] = rejected[start..=second].iter().sum();
            let learning = !readings.last().is_some_and(|r| r.bad);
            readings.push(detector.observe(&view, learning, &config, &baselines));
        }
        readings
    }

    #[test]
    fn forty_percent_rejects_is_bad_two_percent_is_not() {
        let requests = vec![200u64; 200];
        let mut rejected = vec![4u64; 100];
        rejected.extend(vec![80u64; 100]);
        let readings = feed(&requests, &rejected);
        assert!(readings[..100].iter().all(|r| !r.bad));
        assert!(readings[110..].iter().all(|r| r.bad));
    }

    #[test]
    fn a_small_user_with_a_few_rejects_is_not_a_storm() {
        let requests: Vec<u64> = (0..300).map(|s| u64::from(s % 2 == 0)).collect();
        let rejected: Vec<u64> = (0..300).map(|s| u64::from(s % 4 == 0)).collect();
        assert!(feed(&requests, &rejected).iter().all(|r| !r.bad));
    }
}
