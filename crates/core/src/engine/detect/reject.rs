//! Reject storms: an unusual share of a User's requests rejected by the DSP.
//!
//! A sequential test (CUSUM) on the binomial share: each second with n requests of which k were rejected adds
//! the log-likelihood ratio of "the share is p0 + `design_shift`" against "the share is p0", p0 being the User's
//! normal share (its model of rejects over its model of requests):
//!
//! `evidence = max(0, evidence + k ln(p1 / p0) + (n - k) ln((1 - p1) / (1 - p0)))`
//!
//! Bad once the evidence reaches `evidence_nats` and rejects run `min_excess_per_s` above what the normal share
//! gives. The normal share is a ratio of two exponentially weighted means (requests and rejects per second, the
//! model's time constant), learned while nothing is on watch: a share does not follow the time of day as rates
//! do. So a quiet shift (a User at 3.5 requests/s whose share goes from 1 % to 38 %) is found in seconds,
//! while a few rejected requests of a small User are not a storm. The onset is the change point.

use super::storm::{Evidence, MIN_EXPECTED_PER_S};
use super::{Reading, SHORT_WINDOW_S, UserSecond, learns_now};
use crate::engine::baseline::BaselineConfig;
use crate::engine::window::Flow;

#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RejectStormConfig {
    /// A share of requests: the rise of the rejected share the test is built to catch soonest (its alternative is
    /// the normal share plus this).
    pub design_shift: f64,
    /// Rejects per second: the smallest excess of rejects over what the normal share gives that is worth a page.
    pub min_excess_per_s: f64,
}

impl Default for RejectStormConfig {
    fn default() -> Self {
        RejectStormConfig {
            design_shift: 0.25,
            min_excess_per_s: 1.0,
        }
    }
}

/// Lowest normal share the test assumes, so a User that never had rejects gets a finite ratio; and the highest.
pub const SHARE_FLOOR: f64 = 0.01;
const SHARE_CEILING: f64 = 0.5;

#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RejectStormDetector {
    /// Exponentially weighted means of requests and of rejected requests per second, and the seconds learned
    /// (absent from snapshots before the model, whose `requests` and `rejected` were baselines: it starts cold).
    #[serde(default)]
    requests_per_s: f64,
    #[serde(default)]
    rejected_per_s: f64,
    #[serde(default)]
    seen: u32,
    #[serde(default)]
    evidence: Evidence,
    /// The test's weights (nats per reject, per accepted request) for the normal share they were worked out at:
    /// worked out again only when that share moves by a thousandth of itself. Derived: not kept in snapshots.
    #[serde(skip)]
    weights: (f64, f64, f64, f64),
}

impl RejectStormDetector {
    /// The normal share of rejected requests (0 before any request was learned).
    pub fn baseline_share(&self) -> f64 {
        if self.requests_per_s <= f64::EPSILON {
            0.0
        } else {
            self.rejected_per_s / self.requests_per_s
        }
    }

    pub fn observe(
        &mut self,
        view: &UserSecond,
        learning: bool,
        config: &RejectStormConfig,
        baselines: &BaselineConfig,
        evidence_nats: f64,
    ) -> Reading {
        let requests = view.now.get(Flow::Requests) as f64;
        let rejected = (view.now.get(Flow::Rejected) as f64).min(requests);
        let p0 = self.baseline_share().clamp(SHARE_FLOOR, SHARE_CEILING);
        let warm = self.seen >= baselines.warmup_s;
        if warm && requests > 0.0 {
            let (per_reject, per_accepted) = self.weights(p0, config.design_shift);
            let llr = rejected * per_reject + (requests - rejected) * per_accepted;
            self.evidence.add(llr, view.second, evidence_nats);
        }
        if learning && learns_now(view.second) {
            self.seen = self.seen.saturating_add(SHORT_WINDOW_S as u32);
            let windows = f64::from(self.seen) / SHORT_WINDOW_S as f64;
            let alpha = windows
                .min(baselines.time_constant_s.max(1.0) / SHORT_WINDOW_S as f64)
                .recip();
            let per_second = (SHORT_WINDOW_S as f64).recip();
            let (requests, rejected) = (
                view.short[Flow::Requests as usize] as f64 * per_second,
                view.short[Flow::Rejected as usize] as f64 * per_second,
            );
            self.requests_per_s += alpha * (requests - self.requests_per_s);
            self.rejected_per_s += alpha * (rejected - self.rejected_per_s);
        }
        let short_requests = view.short[Flow::Requests as usize] as f64;
        let short_rejected = view.short[Flow::Rejected as usize] as f64;
        let share = if short_requests > 0.0 {
            short_rejected / short_requests
        } else {
            0.0
        };
        let excess_per_s = (short_rejected - p0 * short_requests) / super::SHORT_WINDOW_S as f64;
        Reading {
            bad: warm
                && self.evidence.nats >= evidence_nats
                && excess_per_s >= config.min_excess_per_s,
            calm: self.evidence.nats <= 0.0,
            may_open: true,
            level: share,
            baseline: p0.max(MIN_EXPECTED_PER_S),
        }
    }

    /// Nats per reject and per accepted request for normal share `p0` against `p0 + shift`.
    fn weights(&mut self, p0: f64, shift: f64) -> (f64, f64) {
        let (cached_p0, cached_shift, per_reject, per_accepted) = self.weights;
        if (p0 - cached_p0).abs() <= 1e-3 * p0 && shift == cached_shift {
            return (per_reject, per_accepted);
        }
        let p1 = (p0 + shift).min(0.99);
        let weights = ((p1 / p0).ln(), ((1.0 - p1) / (1.0 - p0)).ln());
        self.weights = (p0, shift, weights.0, weights.1);
        weights
    }

    /// The second the evidence last left zero.
    pub fn change_point(&self) -> Option<i64> {
        self.evidence.since
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    const T0: i64 = 1_773_100_800;

    fn feed(requests: &[u64], rejected: &[u64]) -> (Vec<Reading>, RejectStormDetector) {
        let mut detector = RejectStormDetector::default();
        let config = RejectStormConfig::default();
        let baselines = BaselineConfig {
            warmup_s: 30,
            ..BaselineConfig::default()
        };
        let mut readings: Vec<Reading> = Vec::new();
        for second in 0..requests.len() {
            let mut view = UserSecond {
                second: T0 + second as i64,
                ..UserSecond::default()
            };
            view.now.flows[Flow::Requests as usize] = requests[second];
            view.now.flows[Flow::Rejected as usize] = rejected[second];
            let start = (second + 1).saturating_sub(SHORT_WINDOW_S as usize);
            view.short[Flow::Requests as usize] = requests[start..=second].iter().sum();
            view.short[Flow::Rejected as usize] = rejected[start..=second].iter().sum();
            let learning = !readings.last().is_some_and(|r| r.bad);
            readings.push(detector.observe(&view, learning, &config, &baselines, 13.8));
        }
        (readings, detector)
    }

    #[test]
    fn forty_percent_rejects_is_bad_two_percent_is_not() {
        let requests = vec![200u64; 400];
        let mut rejected = vec![4u64; 300];
        rejected.extend(vec![80u64; 100]);
        let (readings, detector) = feed(&requests, &rejected);
        assert!(readings[..300].iter().all(|r| !r.bad));
        assert!(readings[302..].iter().all(|r| r.bad));
        assert_eq!(detector.change_point(), Some(T0 + 300));
    }

    #[test]
    fn a_quiet_shift_at_low_volume_is_found() {
        // 3.5 requests a second (alternately 3 and 4), 1 in 100 rejected; then 38 % (issue 22).
        let requests: Vec<u64> = (0..1_200).map(|s| 3 + s % 2).collect();
        let rejected: Vec<u64> = (0..1_200u64)
            .map(|s| {
                if s < 600 {
                    u64::from(s % 29 == 0)
                } else {
                    1 + u64::from(s % 3 == 0)
                }
            })
            .collect();
        let (readings, _) = feed(&requests, &rejected);
        assert!(readings[..600].iter().all(|r| !r.bad));
        let first_bad = readings.iter().position(|r| r.bad).unwrap();
        assert!(
            (600..640).contains(&first_bad),
            "first bad second {first_bad}"
        );
    }

    #[test]
    fn a_small_user_with_a_few_rejects_is_not_a_storm() {
        let requests: Vec<u64> = (0..600).map(|s| u64::from(s % 2 == 0)).collect();
        let rejected: Vec<u64> = (0..600).map(|s| u64::from(s % 4 == 0)).collect();
        assert!(feed(&requests, &rejected).0.iter().all(|r| !r.bad));
    }
}
