//! Rate storms: a User's requests (`request_storm`) or queued alerts (`alert_storm`) far above what its model of
//! normal expects now.
//!
//! A sequential test (CUSUM) on the per-second counts: each second adds the log-likelihood ratio of "the rate is
//! `design_multiple` x expected" against "the rate is as expected", negative-binomial counts approximated by
//! dividing the Poisson ratio by the variance inflation 1 + phi m:
//!
//! `evidence = max(0, evidence + (n ln rho - (rho - 1) m) / (1 + phi m))`
//!
//! The storm is bad once the evidence reaches `evidence_nats` (normal traffic alone reaches it with a probability
//! of about e^-h per excursion: Wald's bound) and the short window's rate exceeds the expected one by
//! `min_excess_per_s`. A step is caught within seconds, and a ramp once it outruns the model's level (which may
//! rise only a few deviations per time constant, see `baseline`); rates under (rho - 1) / ln rho times normal
//! (3.9 for rho = 10) spend evidence, so 30-second bursts of 3x and minutes of 2.5x stay normal life. The onset
//! is the change point: the second the evidence last left zero.

use super::{Reading, SHORT_WINDOW_S, UserSecond};
use crate::engine::baseline::{BaselineConfig, RateModel};
use crate::engine::window::Flow;

#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateStormConfig {
    /// A multiple of the expected rate: the storm the test is built to catch soonest. Rates above
    /// (rho - 1) / ln rho times normal (3.9 for 10) add evidence, lower ones spend it: bursts of 3x (normal life)
    /// spend it, with a margin for the Poisson noise of a User at a few messages a second.
    pub design_multiple: f64,
    /// Messages per second: the smallest excess over the expected rate worth a page. Below it a small User's
    /// noise and batch jobs never page, whatever their multiple.
    pub min_excess_per_s: f64,
}

impl Default for RateStormConfig {
    fn default() -> Self {
        RateStormConfig {
            design_multiple: 10.0,
            min_excess_per_s: 5.0,
        }
    }
}

/// Evidence is kept at most this many times `evidence_nats`: a storm of an hour must not take an hour of normal
/// traffic to be spent once it ends.
pub const EVIDENCE_CAP: f64 = 2.0;

/// The lowest expected rate a test divides by: one message an hour.
pub const MIN_EXPECTED_PER_S: f64 = 1.0 / 3_600.0;

/// A one-sided CUSUM's state: the evidence, and the second it last left zero (the change point).
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Evidence {
    pub nats: f64,
    pub since: Option<i64>,
}

impl Evidence {
    /// Adds `llr` nats at `second`, never below zero nor above the cap.
    pub fn add(&mut self, llr: f64, second: i64, threshold: f64) {
        let before = self.nats;
        self.nats = (self.nats + llr).clamp(0.0, EVIDENCE_CAP * threshold);
        if self.nats <= 0.0 {
            self.since = None;
        } else if before <= 0.0 {
            self.since = Some(second);
        }
    }
}

/// Detects a sustained rise in one flow's rate.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RateStormDetector {
    flows: [Flow; 2],
    /// Absent from snapshots of the engine before the model (they had a `baseline`): it then starts cold.
    #[serde(default)]
    model: RateModel,
    #[serde(default)]
    evidence: Evidence,
    /// (design multiple, its logarithm), so the logarithm is taken once. Derived: not kept in snapshots.
    #[serde(skip)]
    log_multiple: (f64, f64),
}

impl RateStormDetector {
    /// Watches the sum of `flows` (use the same flow twice for one).
    pub fn new(flows: [Flow; 2]) -> Self {
        RateStormDetector {
            flows,
            model: RateModel::default(),
            evidence: Evidence::default(),
            log_multiple: (0.0, 0.0),
        }
    }

    pub fn requests() -> Self {
        Self::new([Flow::Requests, Flow::Requests])
    }

    pub fn alerts() -> Self {
        Self::new([Flow::QueuedAlerts, Flow::QueuedAlerts])
    }

    fn short_rate(&self, view: &UserSecond) -> f64 {
        let [a, b] = self.flows;
        if a == b {
            view.short_rate(a)
        } else {
            view.short_rate(a) + view.short_rate(b)
        }
    }

    /// `learning` is false while an anomaly is pending or open, or the User is silent, so a storm or missing data
    /// is not learned as normal.
    pub fn observe(
        &mut self,
        view: &UserSecond,
        learning: bool,
        config: &RateStormConfig,
        baselines: &BaselineConfig,
        evidence_nats: f64,
    ) -> Reading {
        let count = self.rate_of(&view.now);
        let expected = self.model.expected(view.second).max(MIN_EXPECTED_PER_S);
        let warm = self.model.is_warm(baselines);
        // A second without a message cannot add evidence: with none to spend either, there is nothing to do.
        if warm && (count > 0.0 || self.evidence.nats > 0.0) {
            let rho = config.design_multiple.max(1.0 + 1e-6);
            if self.log_multiple.0 != rho {
                self.log_multiple = (rho, rho.ln());
            }
            let inflation = 1.0 + self.model.dispersion_floored(baselines) * expected;
            let llr = (count * self.log_multiple.1 - (rho - 1.0) * expected) / inflation;
            self.evidence.add(llr, view.second, evidence_nats);
        }
        let level = self.short_rate(view);
        self.model.observe(
            count,
            level * SHORT_WINDOW_S as f64,
            view.second,
            learning,
            baselines,
        );
        Reading {
            bad: warm
                && self.evidence.nats >= evidence_nats
                && level - expected >= config.min_excess_per_s,
            calm: self.evidence.nats <= 0.0,
            may_open: true,
            level,
            baseline: expected,
        }
    }

    /// The second the evidence last left zero: where the storm began, for a step.
    pub fn change_point(&self) -> Option<i64> {
        self.evidence.since
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

    pub fn model(&self) -> &RateModel {
        &self.model
    }
}

#[cfg(test)]
#[path = "storm_tests.rs"]
mod tests;
