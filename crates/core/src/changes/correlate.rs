//! The correlator: an incident against the change register, giving ranked suspects with reasons and a verdict.

use super::correlator_config::CorrelatorConfig;
use super::factors::{self, Factor};
use super::notice::{ChangeNotice, ChangeOwner, ChangeStatus, Expected, direction_name};
use super::register::ChangeRegister;
use crate::incident::{Correlation, IncidentFacts, IncidentKind, Suspect, Verdict};

/// Judges every notice against the incident. Pure: the same facts and register give the same answer.
pub fn correlate(
    config: &CorrelatorConfig,
    facts: &IncidentFacts,
    register: &ChangeRegister,
) -> Correlation {
    // One pass for the changes near the onset, so that "the owner's only change" costs O(n), not O(n^2).
    let near: Vec<&ChangeNotice> = register
        .iter()
        .filter(|notice| near_onset(config, notice, facts))
        .collect();
    let mut ranked: Vec<(Suspect, &ChangeNotice)> = register
        .iter()
        .filter_map(|notice| {
            let alone = only_change_near(config, notice, facts, near.iter().copied());
            judge(config, notice, facts, alone).map(|suspect| (suspect, notice))
        })
        .filter(|(suspect, _)| suspect.score >= config.min_suspect_score)
        .collect();
    ranked.sort_by(|(a, _), (b, _)| {
        b.score
            .total_cmp(&a.score)
            .then_with(|| a.change.cmp(&b.change))
    });
    ranked.truncate(config.max_suspects);

    let verdict = match ranked.first_mut() {
        Some((top, notice)) if top.score >= config.fit_threshold => {
            match declared_impact(config, notice, facts) {
                Some((within, reason)) => {
                    top.reasons.push(reason);
                    if within {
                        Verdict::ExpectedImpact
                    } else {
                        owner_verdict(notice)
                    }
                }
                None => owner_verdict(notice),
            }
        }
        _ => Verdict::UnregisteredChangeSuspected,
    };
    Correlation {
        suspects: ranked.into_iter().map(|(suspect, _)| suspect).collect(),
        verdict,
    }
}

/// Whether `notice` is its owner's only change near the incident's onset among `all` (cancelled ones aside).
pub fn only_change_near<'a>(
    config: &CorrelatorConfig,
    notice: &ChangeNotice,
    facts: &IncidentFacts,
    all: impl IntoIterator<Item = &'a ChangeNotice>,
) -> bool {
    all.into_iter()
        .filter(|other| other.id != notice.id && other.owner == notice.owner)
        .all(|other| !near_onset(config, other, facts))
}

/// A change that counts as a neighbour of the onset: not cancelled, and timed close enough.
fn near_onset(config: &CorrelatorConfig, notice: &ChangeNotice, facts: &IncidentFacts) -> bool {
    notice.status != ChangeStatus::Cancelled
        && factors::timing(config, notice, facts.onset_ms).score >= config.alone_min_timing
}

/// The notice as a suspect, or `None` when it has no way to reach the incident's Users. `alone`: it is its
/// owner's only change near the onset (see [`only_change_near`]).
pub fn judge(
    config: &CorrelatorConfig,
    notice: &ChangeNotice,
    facts: &IncidentFacts,
    alone: bool,
) -> Option<Suspect> {
    let (relation, related) = factors::relation(config, notice, facts)?;
    let judged: [Factor; 6] = [
        related,
        factors::timing(config, notice, facts.onset_ms),
        factors::category_fit(config, notice, facts, relation, alone),
        factors::status(config, notice),
        factors::srv_overlap(config, notice, facts),
        factors::users_at_once(config, relation, facts),
    ];
    let product: f64 = judged.iter().map(|factor| factor.score).product();
    // Rounded so that reports compare equal across runs and platforms, and ties fall to the id.
    let score = (product * 100.0).round() / 100.0;
    let reasons = judged.into_iter().map(|factor| factor.reason).collect();
    Some(Suspect {
        change: notice.id.clone(),
        title: notice.title.clone(),
        contact: notice.contact.clone().unwrap_or_default(),
        score,
        reasons,
    })
}

fn owner_verdict(notice: &ChangeNotice) -> Verdict {
    match notice.owner {
        ChangeOwner::Dcc => Verdict::DccChange,
        ChangeOwner::User(_) => Verdict::RegisteredChange,
    }
}

/// For a notice that declared traffic in the incident's direction: whether the incident stays within it, and why.
fn declared_impact(
    config: &CorrelatorConfig,
    notice: &ChangeNotice,
    facts: &IncidentFacts,
) -> Option<(bool, String)> {
    let Expected {
        direction,
        rate_factor,
    } = notice.expected?;
    if direction != facts.kind.direction() {
        return None;
    }
    let declared = format!("{}x {}", ratio(rate_factor), direction_name(direction));
    // A declared rate is about volume; a rising share of rejections is never what a change announced.
    if facts.kind == IncidentKind::RejectStorm {
        let reason = format!("declared {declared} traffic, which covers volume, not rejections");
        return Some((false, reason));
    }
    if !notice.window_contains(facts.onset_ms) {
        return Some((
            false,
            format!("declared {declared} traffic, but not at this time"),
        ));
    }
    // NaN (no baseline) never counts as within: an unmeasured anomaly should still be looked at.
    if facts.peak_ratio <= rate_factor * config.expected_tolerance {
        return Some((true, format!("within the declared {declared} traffic")));
    }
    let peak = ratio(facts.peak_ratio);
    Some((
        false,
        format!("peak {peak}x is beyond the declared {declared} traffic"),
    ))
}

/// A rate ratio with at most two decimals and no trailing zeros: `8`, `1.5`.
fn ratio(value: f64) -> String {
    let text = format!("{value:.2}");
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

#[cfg(test)]
#[path = "correlate_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "calibration_tests.rs"]
mod calibration_tests;
