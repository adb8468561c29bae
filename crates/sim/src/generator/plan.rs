//! The run's plan: scenarios laid out one after another in time, their effects on the simulation, their change
//! notices and truth, and the background of normal life (hiccups, weather bursts) kept clear of them.

use rand::Rng;
use rand::rngs::StdRng;

use super::GenError;
use super::builder;
use super::options::{GenOptions, Scenario};
use super::population::{Profile, Role};
use super::shape::DailyShape;
use super::truth::TruthIncident;
use stormwatch_core::changes::ChangeNotice;
use stormwatch_core::telemetry::FailureReason;

/// Baselines need time to settle before anything is injected.
pub(crate) const WARMUP_S: i64 = 30 * 60;
/// Quiet time between one scenario's recovery and the next scenario.
const GAP_S: i64 = 10 * 60;
/// An anomaly must leave this much input after it for the engine to detect it.
pub(crate) const DETECT_MARGIN_S: i64 = 10 * 60;
const MIN_DEFAULT_DURATION_S: i64 = 90 * 60;

/// Something that changes a User's traffic for a while. Times are Unix seconds, `from` inclusive, `until`
/// exclusive.
#[derive(Clone, Debug)]
pub(crate) enum Effect {
    /// The User's endpoint fails every delivery attempt. With `stop_at_depth`, it comes back once the backlog
    /// reaches that depth.
    Outage {
        user: usize,
        from: i64,
        until: i64,
        stop_at_depth: Option<u64>,
        reasons: &'static [FailureReason],
    },
    /// DSP-side: no delivery attempts for any User.
    Pause { from: i64, until: i64 },
    /// Requests multiplied by `factor`; `reject_share` replaces the User's normal share.
    Surge {
        user: usize,
        from: i64,
        until: i64,
        factor: f64,
        reject_share: Option<f64>,
        srv: &'static str,
    },
    /// Extra device alerts with code `alert`, at `factor` times the User's normal alert rate.
    Flood {
        user: usize,
        from: i64,
        until: i64,
        factor: f64,
        alert: &'static str,
    },
    /// A network operator's weather burst: alerts rise smoothly to `factor` times normal and back.
    Burst {
        user: usize,
        from: i64,
        until: i64,
        factor: f64,
    },
}

/// A truth entry, and for backlogs the User and interval whose true peak depth sets `min_peak_depth`.
#[derive(Clone, Debug)]
pub(crate) struct PlannedIncident {
    pub truth: TruthIncident,
    pub peak_watch: Option<(usize, i64, i64)>,
}

#[derive(Clone, Debug, Default)]
pub(crate) struct Plan {
    pub start_s: i64,
    pub end_s: i64,
    pub effects: Vec<Effect>,
    pub changes: Vec<ChangeNotice>,
    pub incidents: Vec<PlannedIncident>,
    /// Intervals kept free of background hiccups and bursts.
    pub quiet: Vec<(i64, i64)>,
    /// Users whose exporter clock is off, by how many ms (positive: fast), for the whole run.
    pub skews: Vec<(usize, i64)>,
}

/// How long one scenario needs: the anomaly itself, then time to recover.
#[derive(Copy, Clone, Debug)]
pub(crate) struct Slot {
    pub anomaly_s: i64,
    pub recovery_s: i64,
}

/// Lays out the scenarios and the background. Capacities of storm Users may be raised (their endpoints must take
/// the extra responses), so the population is mutable.
pub(crate) fn lay_out(
    options: &GenOptions,
    users: &mut [Profile],
    shape: &DailyShape,
    rng: &mut StdRng,
) -> Result<Plan, GenError> {
    let start_s = options.start_ms.div_euclid(1000);
    let fixed_end = options
        .duration_s
        .map(|d| start_s.saturating_add(i64::try_from(d).unwrap_or(i64::MAX)));
    let reserve = options.scenarios.contains(&Scenario::FirewallBacklog);
    let mut builder = builder::Builder::new(users, shape, rng, start_s, reserve);
    let storylines: Vec<Scenario> = options
        .scenarios
        .iter()
        .copied()
        .filter(|s| *s != Scenario::Decoys)
        .collect();
    let mut at = start_s + WARMUP_S;
    for (index, &scenario) in storylines.iter().enumerate() {
        let last = index + 1 == storylines.len();
        let budget = fixed_end.map(|end| end - at);
        let slot = builder.build(scenario, at, budget)?;
        if let Some(end) = fixed_end {
            let needed = at
                + slot.anomaly_s
                + if last {
                    DETECT_MARGIN_S
                } else {
                    slot.recovery_s
                };
            if needed > end {
                return Err(GenError::Plan(format!(
                    "--duration is too short for scenario {} (it would end {} min after the input); \
                     leave --duration out to get a long enough run",
                    scenario.name(),
                    (needed - end + 59) / 60
                )));
            }
        }
        builder
            .plan
            .quiet
            .push((at - 300, at + slot.anomaly_s + slot.recovery_s));
        at += slot.anomaly_s + slot.recovery_s + GAP_S;
    }
    let end_s = match fixed_end {
        Some(end) => end,
        None => {
            let needed = (at - GAP_S).max(start_s + MIN_DEFAULT_DURATION_S) - start_s;
            start_s + (needed + 1799) / 1800 * 1800
        }
    };
    builder.decoys(options.scenarios.contains(&Scenario::Decoys), end_s);
    let mut plan = builder.finish(start_s, end_s);
    background(&mut plan, users, rng);
    Ok(plan)
}

fn quiet_at(plan: &Plan, from: i64, until: i64) -> bool {
    plan.quiet.iter().any(|&(a, b)| from < b && a < until)
}

/// Normal life: each User's endpoint hiccups about every six hours (15-45 s), and network operators get weather
/// bursts of up to 2.5x for a few minutes about every four hours.
fn background(plan: &mut Plan, users: &[Profile], rng: &mut StdRng) {
    for (index, user) in users.iter().enumerate() {
        let mut at = plan.start_s;
        loop {
            at += (rng.random::<f64>().max(1e-12).ln() * -6.0 * 3600.0) as i64 + 60;
            if at >= plan.end_s {
                break;
            }
            let until = at + rng.random_range(15..=45);
            if !quiet_at(plan, at - 120, until + 300) {
                let reasons = HICCUP_REASONS[rng.random_range(0..HICCUP_REASONS.len())];
                plan.effects.push(Effect::Outage {
                    user: index,
                    from: at,
                    until,
                    stop_at_depth: None,
                    reasons,
                });
            }
        }
        if user.role != Role::NetworkOperator {
            continue;
        }
        let mut at = plan.start_s;
        loop {
            at += (rng.random::<f64>().max(1e-12).ln() * -4.0 * 3600.0) as i64 + 600;
            if at >= plan.end_s {
                break;
            }
            let until = at + rng.random_range(120..=360);
            if !quiet_at(plan, at - 300, until + 300) {
                let factor = rng.random_range(1.5..super::population::MAX_BURST);
                plan.effects.push(Effect::Burst {
                    user: index,
                    from: at,
                    until,
                    factor,
                });
            }
        }
    }
}

/// Why brief outages fail.
pub(crate) const HICCUP_REASONS: [&[FailureReason]; 3] = [
    &[FailureReason::Timeout],
    &[FailureReason::Refused],
    &[FailureReason::Http5xx, FailureReason::Timeout],
];
