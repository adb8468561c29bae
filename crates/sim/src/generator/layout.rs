//! Laying out the run: scenarios one after another in time, then the background of normal life (hiccups, weather
//! bursts) kept clear of them.

use rand::Rng;
use rand::rngs::StdRng;

use super::GenError;
use super::builder;
use super::options::{GenOptions, Scenario};
use super::plan::{DETECT_MARGIN_S, Effect, HICCUP_REASONS, Plan};
use super::population::{Profile, Role};
use super::shape::DailyShape;

/// Baselines need time to settle before anything is injected.
pub(crate) const WARMUP_S: i64 = 30 * 60;
/// Quiet time between one scenario's recovery and the next scenario.
const GAP_S: i64 = 10 * 60;
const MIN_DEFAULT_DURATION_S: i64 = 90 * 60;

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
