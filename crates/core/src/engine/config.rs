//! Engine settings: event-time lateness, detector thresholds, lifecycle timings, common-cause grouping and the
//! correlator's weights. Every number the engine decides by is here (or in the nested configs it names), with what
//! it means; the service loads them from its TOML config (`[engine]`) and `serve --print-config` shows them.
//!
//! Not settings: `detect::SHORT_WINDOW_S` and `window::RING_SECONDS` size the per-User rings, and
//! `detect::reject::SHARE_FLOOR` keeps ratios finite.

use super::baseline::BaselineConfig;
use super::clock::ClockConfig;
use super::detect::{BacklogConfig, RateStormConfig, RejectStormConfig};
use super::lifecycle::LifecycleConfig;
use crate::changes::CorrelatorConfig;
use crate::incident::IncidentKind;

/// Settings of earlier versions that the engine no longer reads, as dotted paths under `[engine]`, with what took
/// their place. A config file that still sets one loads (the key is ignored) with a warning naming it, so an
/// upgrade never fails on an old file; any other unknown key is still an error.
pub const RETIRED_KEYS: &[(&str, &str)] = &[
    (
        "detectors.backlog.persistent_share",
        "a backlog opens only once deliveries have fallen short for longer than a hiccup, whatever the failure reason",
    ),
    (
        "detectors.backlog.persistent_min_failures",
        "a backlog opens only once deliveries have fallen short for longer than a hiccup, whatever the failure reason",
    ),
    (
        "detectors.backlog.urgent_inflow_s",
        "a backlog opens only once deliveries have fallen short for longer than a hiccup, however deep",
    ),
    (
        "detectors.backlog.urgent_min_age_s",
        "a backlog opens only once deliveries have fallen short for longer than a hiccup, however deep",
    ),
    (
        "detectors.backlog_lifecycle.open_early_after_s",
        "no early opening: `open_after_s` applies to every backlog",
    ),
    (
        "detectors.storm_lifecycle.open_early_after_s",
        "it never applied to storms",
    ),
    (
        "detectors.baselines.clip_factor",
        "a second moves the model's level by at most `baselines.max_step_sigmas` standard deviations",
    ),
    (
        "detectors.baselines.clip_floor",
        "a second moves the model's level by at most `baselines.max_step_sigmas` standard deviations",
    ),
    (
        "detectors.rate_storm.factor",
        "storms are a sequential test: `rate_storm.design_multiple` and `detectors.evidence_nats`",
    ),
    (
        "detectors.rate_storm.floor",
        "replaced by `rate_storm.min_excess_per_s`",
    ),
    (
        "detectors.rate_storm.calm_factor",
        "calm is the test's evidence spent",
    ),
    (
        "detectors.rate_storm.slow_learn_factor",
        "the model's level rises at most `baselines.max_step_sigmas` deviations a second, so ramps outrun it",
    ),
    (
        "detectors.rate_storm.slow_learn_divisor",
        "the model's level rises at most `baselines.max_step_sigmas` deviations a second, so ramps outrun it",
    ),
    (
        "detectors.reject_storm.min_share",
        "reject storms are a sequential test: `reject_storm.design_shift` and `detectors.evidence_nats`",
    ),
    (
        "detectors.reject_storm.factor",
        "reject storms are a sequential test: `reject_storm.design_shift` and `detectors.evidence_nats`",
    ),
    (
        "detectors.reject_storm.min_rejects_per_s",
        "replaced by `reject_storm.min_excess_per_s`",
    ),
    (
        "detectors.reject_storm.calm_share",
        "calm is the test's evidence spent",
    ),
    (
        "detectors.reject_storm.calm_factor",
        "calm is the test's evidence spent",
    ),
];

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EngineConfig {
    /// How far behind the newest event time a line may arrive and still count in its own second. Set by the
    /// `lateness` setting (`--lateness`), not in this table.
    #[serde(skip)]
    pub allowed_lateness_ms: i64,
    /// Users tracked at most; lines for further Users are refused (and quarantined by the caller), so that a flood
    /// of bogus User IDs cannot grow memory without bound.
    pub max_users: usize,
    /// Seconds of event time after a User's last line before it leaves the User table, freeing its slot and its
    /// memory, provided nothing needs it: no queued messages, no anomaly on watch or open, no incident still in
    /// the engine naming it. Its baselines are relearned if it comes back (see `engine::evict`). 0 never evicts.
    pub evict_idle_after_s: i64,
    pub detectors: DetectorConfig,
    pub network: NetworkConfig,
    /// Event-time admission: held lines, clock offsets, jumps and the out-of-range rule.
    pub clock: ClockConfig,
    /// Name incidents by what they are (kind, User, onset) instead of by the order they opened, so that two
    /// engines fed the same User's events (a partition handed from one instance to another) name the same
    /// incident alike. Replay keeps the contract's `INC-000001` numbering. Set by the Kafka source, not in this
    /// table.
    #[serde(skip)]
    pub stable_ids: bool,
    /// Seconds of event time a resolved incident stays in the live engine (and its memory) before only the store
    /// keeps it.
    pub keep_resolved_s: i64,
    /// The correlator's weights; read them through [`EngineConfig::correlator`], which completes them.
    pub correlator: CorrelatorConfig,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            allowed_lateness_ms: 5_000,
            max_users: 4_096,
            evict_idle_after_s: 3_600,
            detectors: DetectorConfig::default(),
            network: NetworkConfig::default(),
            clock: ClockConfig::default(),
            stable_ids: false,
            keep_resolved_s: 3_600,
            correlator: CorrelatorConfig::default(),
        }
    }
}

impl EngineConfig {
    /// The correlator's settings as the engine uses them: with the network grouping's User count, which both
    /// judge "many Users at once" by.
    pub fn correlator(&self) -> CorrelatorConfig {
        CorrelatorConfig {
            common_cause_users: self.network.min_users,
            ..self.correlator.clone()
        }
    }

    pub fn lifecycle(&self, kind: IncidentKind) -> LifecycleConfig {
        match kind {
            IncidentKind::Backlog => self.detectors.backlog_lifecycle,
            _ => self.detectors.storm_lifecycle,
        }
    }
}

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DetectorConfig {
    /// The model of each User's normal traffic, per flow (`baseline`).
    pub baselines: BaselineConfig,
    /// Nats (natural-log likelihood ratio, anomaly against normal) a sequential test must gather before a storm is
    /// bad: normal traffic alone gets that far with a probability of about e^-h per excursion (Wald), 1e-6 for
    /// 13.8. Shared by the request, reject and alert storm tests.
    pub evidence_nats: f64,
    pub rate_storm: RateStormConfig,
    pub reject_storm: RejectStormConfig,
    pub backlog: BacklogConfig,
    pub storm_lifecycle: LifecycleConfig,
    /// A backlog becomes pending once its oldest message waits `backlog.min_age_s`, and opens `open_after_s` later,
    /// when that message has waited a minute: a delivery hiccup clearing within a minute never opens one, and an
    /// outage that has lasted a minute is no hiccup.
    pub backlog_lifecycle: LifecycleConfig,
    /// Seconds of event time between halvings of each User's SRV and alert-code tallies (the evidence of which
    /// SRVs and alerts an incident is about).
    pub tally_half_life_s: i64,
}

impl Default for DetectorConfig {
    fn default() -> Self {
        DetectorConfig {
            baselines: BaselineConfig::default(),
            evidence_nats: 13.8,
            rate_storm: RateStormConfig::default(),
            reject_storm: RejectStormConfig::default(),
            backlog: BacklogConfig::default(),
            storm_lifecycle: LifecycleConfig {
                open_after_s: 15,
                pending_gap_s: 3,
                resolve_after_s: 120,
                flap_episodes: 0,
                flap_gap_s: 0,
            },
            backlog_lifecycle: LifecycleConfig {
                open_after_s: 51,
                pending_gap_s: 5,
                resolve_after_s: 60,
                // An endpoint down for under a minute every couple of minutes: the third such outage in a row opens
                // one incident. Normal-life hiccups come hours apart.
                flap_episodes: 3,
                flap_gap_s: 150,
            },
            tally_half_life_s: 30,
        }
    }
}

/// When Users hit at once are one common cause.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NetworkConfig {
    /// Onsets this close together count as "at once".
    pub onset_window_s: i64,
    /// A User whose anomaly starts up to this long after an open common-cause incident's onset joins it.
    pub join_window_s: i64,
    /// At least this many Users ...
    pub min_users: usize,
    /// ... and at least this share of the Users active recently.
    pub min_share: f64,
    /// A User is active if it had traffic this recently.
    pub active_window_s: i64,
    /// Also one common cause, whatever their share: at least `min_users` Users whose onsets fall within
    /// `coincidence_window_s` of each other, when that many independent incidents starting so close together
    /// would have a chance under `max_coincidence_probability`. Independent, each active User starts an incident
    /// in any given window with probability `incidents_per_user_day` x window / 1 day (a deliberately high rate,
    /// so ordinary coincidences stay separate).
    pub coincidence_window_s: i64,
    pub incidents_per_user_day: f64,
    pub max_coincidence_probability: f64,
}

impl Default for NetworkConfig {
    fn default() -> Self {
        NetworkConfig {
            onset_window_s: 120,
            join_window_s: 300,
            min_users: 3,
            min_share: 0.3,
            active_window_s: 300,
            coincidence_window_s: 10,
            incidents_per_user_day: 6.0,
            max_coincidence_probability: 1e-6,
        }
    }
}

impl NetworkConfig {
    /// The chance that at least `k` of `n` independent Users start an incident within one coincidence window.
    pub fn coincidence_probability(&self, n: usize, k: usize) -> f64 {
        let p = (self.incidents_per_user_day * (2 * self.coincidence_window_s + 1) as f64
            / 86_400.0)
            .clamp(0.0, 1.0);
        binomial_tail(n, k, p)
    }
}

/// P(X >= k) for X ~ Binomial(n, p), summed in log space so that 150 Users stay finite.
fn binomial_tail(n: usize, k: usize, p: f64) -> f64 {
    if k == 0 {
        return 1.0;
    }
    if k > n || p <= 0.0 {
        return 0.0;
    }
    if p >= 1.0 {
        return 1.0;
    }
    let ln_choose =
        |i: usize| -> f64 { (1..=i).map(|j| ((n - i + j) as f64 / j as f64).ln()).sum() };
    (k..=n)
        .map(|i| (ln_choose(i) + i as f64 * p.ln() + (n - i) as f64 * (1.0 - p).ln()).exp())
        .sum::<f64>()
        .min(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_crowd_in_one_moment_is_improbable_a_couple_is_not() {
        let network = NetworkConfig::default();
        let threshold = network.max_coincidence_probability;
        assert!(network.coincidence_probability(150, 25) < threshold);
        assert!(network.coincidence_probability(150, 2) > threshold);
        assert!(network.coincidence_probability(150, 3) > threshold);
        assert!((binomial_tail(4, 2, 0.5) - 11.0 / 16.0).abs() < 1e-12);
        assert_eq!(binomial_tail(3, 4, 0.5), 0.0);
    }

    #[test]
    fn the_correlator_judges_many_users_by_the_network_grouping_count() {
        let mut config = EngineConfig::default();
        assert_eq!(config.correlator().common_cause_users, 3);
        config.network.min_users = 7;
        assert_eq!(config.correlator().common_cause_users, 7);
    }
}
