//! Test-only oracle: the brief's detector rules, simplified, run on the simulation's lines. It checks the
//! generator's own promise (normal life stays well inside the thresholds, every injected anomaly is unmistakable)
//! without the engine. It is deliberately cruder than the engine and is not its specification.

use std::collections::VecDeque;

use super::line::{Line, LineEvent, QueuedKind};
use stormwatch_core::engine::EngineConfig;
use stormwatch_core::engine::detect::SHORT_WINDOW_S;
use stormwatch_core::incident::IncidentKind;

/// Seconds in the detectors' short window.
const WINDOW: usize = SHORT_WINDOW_S as usize;

/// The brief's storm rule, which the oracle keeps whatever the engine's test is: a short-window rate above 4x
/// its baseline and baseline + 5/s; calm again under 2x.
const STORM_FACTOR: f64 = 4.0;
const STORM_FLOOR: f64 = 5.0;
const CALM_FACTOR: f64 = 2.0;
/// The brief's reject rule: a share above 25 % and 3x the usual share, at 3 or more rejects/s; calm under 15 %.
const REJECT_SHARE: f64 = 0.25;
const REJECT_FACTOR: f64 = 3.0;
const REJECTS_PER_S: f64 = 3.0;
const REJECT_CALM_SHARE: f64 = 0.15;

/// One second of one User's traffic.
#[derive(Copy, Clone, Default, Debug)]
struct Second {
    requests: u64,
    rejected: u64,
    alerts: u64,
    queued: u64,
    departed: u64,
    delivered: u64,
    sample: Option<u64>,
}

#[derive(Default)]
struct Rule {
    run: u32,
    onset: i64,
    open: bool,
}

#[derive(Default)]
struct UserOracle {
    window: VecDeque<Second>,
    depths: VecDeque<u64>,
    depth: u64,
    baseline: Option<(f64, f64, f64)>,
    rules: [Rule; 4],
}

/// A detection: User index, kind, onset (Unix seconds).
pub(crate) type Detection = (usize, IncidentKind, i64);

pub(crate) struct Oracle {
    /// The engine's default thresholds, which the rules below restate in their crude form.
    config: EngineConfig,
    users: Vec<UserOracle>,
    current: Vec<Second>,
    pub detections: Vec<Detection>,
}

impl Oracle {
    pub fn new(users: usize) -> Oracle {
        Oracle {
            config: EngineConfig::default(),
            users: (0..users).map(|_| UserOracle::default()).collect(),
            current: vec![Second::default(); users],
            detections: Vec::new(),
        }
    }

    /// Feeds second `t`'s lines (all stamped in `t`, as the simulation makes them).
    pub fn second(&mut self, t: i64, lines: &[Line]) {
        for line in lines {
            let s = &mut self.current[line.user as usize];
            match line.event {
                LineEvent::Request => {
                    s.requests += line.count;
                    if line.code.is_some_and(|c| c.starts_with('E')) {
                        s.rejected += line.count;
                    }
                }
                LineEvent::Queued(kind) => {
                    s.queued += line.count;
                    if kind != QueuedKind::Response {
                        s.alerts += line.count;
                    }
                }
                LineEvent::Delivered => {
                    s.departed += line.count;
                    s.delivered += line.count;
                }
                LineEvent::Expired => s.departed += line.count,
                LineEvent::Depth => s.sample = Some(line.count),
                LineEvent::DeliveryFailed => {}
            }
        }
        for user in 0..self.users.len() {
            let second = std::mem::take(&mut self.current[user]);
            self.step(user, t, second);
        }
    }

    fn step(&mut self, user: usize, t: i64, second: Second) {
        let detectors = &self.config.detectors;
        // Storms open after the storm lifecycle's wait; a backlog once its oldest message is old enough and the
        // backlog lifecycle's wait has passed.
        let storm_sustain = detectors.storm_lifecycle.open_after_s;
        let backlog_sustain =
            detectors.backlog.min_age_s as u32 + detectors.backlog_lifecycle.open_after_s;
        let alpha = 1.0 / detectors.baselines.time_constant_s;
        let u = &mut self.users[user];
        if let Some(sample) = second.sample {
            u.depth = sample;
        }
        u.depth = (u.depth + second.queued).saturating_sub(second.departed);
        u.window.push_back(second);
        u.depths.push_back(u.depth);
        if u.window.len() > WINDOW {
            u.window.pop_front();
        }
        if u.depths.len() > WINDOW + 1 {
            u.depths.pop_front();
        }
        if u.window.len() < WINDOW {
            return;
        }
        let sum = |f: fn(&Second) -> u64| u.window.iter().map(f).sum::<u64>() as f64;
        let requests = sum(|s| s.requests) / WINDOW as f64;
        let rejected = sum(|s| s.rejected) / WINDOW as f64;
        let alerts = sum(|s| s.alerts) / WINDOW as f64;
        let share = if requests > 0.0 {
            rejected / requests
        } else {
            0.0
        };
        let Some((base_requests, base_share, base_alerts)) = u.baseline else {
            u.baseline = Some((requests, share, alerts));
            return;
        };
        let storm = |value: f64, base: f64| value > (STORM_FACTOR * base).max(base + STORM_FLOOR);
        let bad_delivery = sum(|s| s.delivered) < 0.5 * sum(|s| s.queued)
            || (second.delivered == 0 && u.depth > 0);
        let rising = u.depths.len() == WINDOW + 1 && u.depths.back() > u.depths.front();
        let conditions = [
            (
                IncidentKind::RequestStorm,
                storm(requests, base_requests),
                storm_sustain,
                true,
            ),
            (
                IncidentKind::RejectStorm,
                share > REJECT_SHARE.max(REJECT_FACTOR * base_share) && rejected >= REJECTS_PER_S,
                storm_sustain,
                true,
            ),
            (
                IncidentKind::AlertStorm,
                storm(alerts, base_alerts),
                storm_sustain,
                true,
            ),
            (
                IncidentKind::Backlog,
                bad_delivery && rising,
                backlog_sustain,
                u.depth >= 100,
            ),
        ];
        for (rule, (kind, holds, sustain, enough)) in u.rules.iter_mut().zip(conditions) {
            if holds {
                if rule.run == 0 {
                    // Storm onsets: the window's first second; backlog: the first bad second.
                    rule.onset = if kind == IncidentKind::Backlog {
                        t
                    } else {
                        t - WINDOW as i64 + 1
                    };
                }
                rule.run += 1;
                if rule.run >= sustain && enough && !rule.open {
                    rule.open = true;
                    self.detections.push((user, kind, rule.onset));
                }
            } else if !rule.open {
                rule.run = 0;
            } else {
                // One anomaly is one incident: an open one closes only once it is well gone.
                let recovered = match kind {
                    IncidentKind::RequestStorm => requests < CALM_FACTOR * base_requests.max(1.0),
                    IncidentKind::AlertStorm => alerts < CALM_FACTOR * base_alerts.max(1.0),
                    IncidentKind::RejectStorm => share < REJECT_CALM_SHARE,
                    IncidentKind::Backlog => u.depth < 100,
                };
                if recovered {
                    *rule = Rule::default();
                }
            }
        }
        let quiet = u.rules.iter().all(|r| r.run == 0 && !r.open);
        if quiet {
            u.baseline = Some((
                base_requests + alpha * (requests - base_requests),
                if requests > 0.0 {
                    base_share + alpha * (share - base_share)
                } else {
                    base_share
                },
                base_alerts + alpha * (alerts - base_alerts),
            ));
        }
    }

    /// Detections with same-kind onsets of at least `min_users` Users and `min_share` of them within the onset
    /// window merged into one network-wide detection (`None` for the User), as the engine's network config says.
    pub fn incidents(&self) -> Vec<(Option<usize>, IncidentKind, i64)> {
        let network = &self.config.network;
        let mut out = Vec::new();
        let mut taken = vec![false; self.detections.len()];
        for (i, &(user, kind, onset)) in self.detections.iter().enumerate() {
            if taken[i] {
                continue;
            }
            let group: Vec<usize> = (i..self.detections.len())
                .filter(|&j| {
                    !taken[j]
                        && self.detections[j].1 == kind
                        && (self.detections[j].2 - onset).abs() <= network.onset_window_s
                })
                .collect();
            if group.len() >= network.min_users
                && group.len() as f64 >= network.min_share * self.users.len() as f64
            {
                for &j in &group {
                    taken[j] = true;
                }
                out.push((None, kind, onset));
            } else {
                taken[i] = true;
                out.push((Some(user), kind, onset));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generator::{GenOptions, Scenario, layout, population, shape, sim, stream};

    /// (user or `*`, kind, onset in s).
    type Found = (String, IncidentKind, i64);

    /// Runs the plan and the simulation of `options` through the oracle; returns (truth, found), each as
    /// (user or `*`, kind, onset in s), sorted.
    fn compare(options: &GenOptions) -> (Vec<Found>, Vec<Found>) {
        let shape = shape::DailyShape::new();
        let mut users = population::build(
            options.users,
            options.scale,
            &shape,
            &mut stream(options.seed, 1),
        );
        let plan =
            layout::lay_out(options, &mut users, &shape, &mut stream(options.seed, 2)).unwrap();
        let ids: Vec<String> = users.iter().map(|u| u.id.to_string()).collect();
        let mut oracle = Oracle::new(users.len());
        let mut sim = sim::Sim::new(users, shape, &plan, stream(options.seed, 3));
        let mut lines = Vec::new();
        for t in plan.start_s..plan.end_s {
            sim.second(t, &mut lines);
            oracle.second(t, &lines);
            lines.clear();
        }
        let truth = plan
            .incidents
            .iter()
            .map(|i| (i.truth.user.clone(), i.truth.kind, i.truth.onset / 1000))
            .collect();
        let found = oracle
            .incidents()
            .into_iter()
            .map(|(user, kind, onset)| {
                (
                    user.map_or_else(|| "*".to_owned(), |u| ids[u].clone()),
                    kind,
                    onset,
                )
            })
            .collect();
        (truth, found)
    }

    fn assert_matches(
        label: &str,
        truth: &[(String, IncidentKind, i64)],
        found: &[(String, IncidentKind, i64)],
    ) {
        let matched = |a: &Found, b: &Found| a.0 == b.0 && a.1 == b.1 && (a.2 - b.2).abs() <= 60;
        for t in truth {
            assert!(
                found.iter().any(|f| matched(t, f)),
                "{label}: missed {t:?}; found {found:?}"
            );
        }
        for f in found {
            assert!(
                truth.iter().any(|t| matched(t, f)),
                "{label}: false {f:?}; truth {truth:?}"
            );
        }
    }

    /// Scenarios built to defeat the one-minute rule this crude oracle keeps: a flapping endpoint never stays
    /// down a minute; a slow leak's and a refused SRV family's onsets are dated by a depth trend, a ramp's by a
    /// rate trend, which the oracle does not fit (nor does its baseline slow down under a climb). The engine finds
    /// them, the oracle cannot, by design.
    fn oracle_sees(scenario: Scenario) -> bool {
        !matches!(
            scenario,
            Scenario::Flapping | Scenario::SlowLeak | Scenario::PartialSrv | Scenario::Ramp
        )
    }

    #[test]
    fn every_scenario_is_found_and_nothing_else() {
        // One seed here, and one the sweep does not start with; many seeds in the ignored test below.
        for scenario in Scenario::ALL.into_iter().filter(|s| oracle_sees(*s)) {
            let mut options = GenOptions::new("unused");
            options.seed = 3;
            options.users = 8;
            options.scenarios = vec![scenario];
            let (truth, found) = compare(&options);
            assert_matches(scenario.name(), &truth, &found);
        }
    }

    /// The sweep's population over many seeds: `cargo test --release --lib oracle -- --ignored`.
    #[test]
    #[ignore = "minutes in a debug build"]
    fn every_scenario_over_twenty_seeds() {
        sweep(8, 1.0, 1..=20);
        sweep(40, 1.0, 1..=3);
        sweep(20, 5.0, 1..=3);
    }

    fn sweep(users: usize, scale: f64, seeds: std::ops::RangeInclusive<u64>) {
        let mut failures = Vec::new();
        for scenario in Scenario::ALL.into_iter().filter(|s| oracle_sees(*s)) {
            for seed in seeds.clone() {
                let mut options = GenOptions::new("unused");
                options.seed = seed;
                options.users = users;
                options.scale = scale;
                options.scenarios = vec![scenario];
                let (truth, found) = compare(&options);
                let label = format!(
                    "{} seed {seed} users {users} scale {scale}",
                    scenario.name()
                );
                if let Err(e) = std::panic::catch_unwind(|| assert_matches(&label, &truth, &found))
                {
                    failures.push(e.downcast_ref::<String>().cloned().unwrap_or_default());
                }
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn a_quiet_day_has_no_incident() {
        let mut options = GenOptions::new("unused");
        options.seed = 9;
        options.users = 5;
        options.duration_s = Some(86_400);
        options.scenarios = vec![Scenario::Hiccups, Scenario::SmallCampaign, Scenario::Decoys];
        let (truth, found) = compare(&options);
        assert!(truth.is_empty());
        assert!(found.is_empty(), "{found:?}");
    }

    #[test]
    fn scale_five_keeps_the_margins() {
        let mut options = GenOptions::new("unused");
        options.seed = 4;
        options.users = 16;
        options.scale = 5.0;
        options.scenarios = Scenario::ALL
            .into_iter()
            .filter(|s| oracle_sees(*s))
            .collect();
        let (truth, found) = compare(&options);
        assert_eq!(truth.len(), 10);
        assert_matches("all at scale 5", &truth, &found);
    }
}
