//! The correlator's explicit factors: each judges one aspect of a change against an incident, as a score in 0..=1
//! and a phrase for the report's `reasons`.

use super::correlator_config::CorrelatorConfig;
use super::notice::{Category, ChangeNotice, ChangeOwner, ChangeStatus};
use crate::incident::{Affected, IncidentFacts, IncidentKind};
use crate::telemetry::{AlertCode, FailureReason, Srv};

/// One factor's score and the words for it.
#[derive(Clone, PartialEq, Debug)]
pub struct Factor {
    pub score: f64,
    pub reason: String,
}

impl Factor {
    fn new(score: f64, reason: impl Into<String>) -> Factor {
        Factor {
            score,
            reason: reason.into(),
        }
    }
}

/// How a change can reach the incident's Users at all.
#[derive(Copy, Clone, Eq, PartialEq, Debug)]
pub enum Relation {
    /// The User's own change.
    SameUser,
    /// Another User's device change, reaching this User through the devices' alerts.
    DevicePath,
    /// A User's change, that User being one of many in a network-wide incident.
    AmongUsersHit,
    /// Another User's change whose request storm began just before this backlog: the storm can saturate the
    /// DSP's shared delivery capacity, so other Users' queues grow without any delivery failing.
    SharedCapacity,
    Dcc,
}

/// Users hit at about the same time, counting a network-wide incident's own Users and never fewer than one.
pub fn users_hit(facts: &IncidentFacts) -> u32 {
    let listed = match facts.affected {
        Affected::Network => u32::try_from(facts.users.len()).unwrap_or(u32::MAX),
        Affected::User(_) => 1,
    };
    facts.concurrent_users.max(listed).max(1)
}

fn widespread(config: &CorrelatorConfig, facts: &IncidentFacts) -> bool {
    facts.affected == Affected::Network || users_hit(facts) as usize >= config.common_cause_users
}

/// `None` when the change has no known way to cause this incident: it is then no suspect at all.
pub fn relation(
    config: &CorrelatorConfig,
    notice: &ChangeNotice,
    facts: &IncidentFacts,
) -> Option<(Relation, Factor)> {
    let weights = &config.relation;
    let owner = match notice.owner {
        ChangeOwner::Dcc => {
            let score = if widespread(config, facts) {
                weights.dcc_widespread
            } else {
                weights.dcc_local
            };
            let reason = if shared_capacity_backlog(facts) {
                "DCC-led change affects every User; deliveries slowed without failing, as when shared DSP \
                 capacity falls (counts for)"
            } else {
                "DCC-led change affects every User"
            };
            return Some((Relation::Dcc, Factor::new(score, reason)));
        }
        ChangeOwner::User(owner) => owner,
    };
    if facts.affected == Affected::User(owner) {
        return Some((
            Relation::SameUser,
            Factor::new(weights.same_user, "same User"),
        ));
    }
    if notice.category == Category::Device && facts.kind == IncidentKind::AlertStorm {
        let what = if facts.alert_code == Some(AlertCode::new("AD1")) {
            "cut power to comms hubs and flood another User with power-outage alerts AD1"
        } else {
            "flood another User with alerts"
        };
        let reason = format!("device change by {owner} can {what} (known cross-User path)");
        return Some((
            Relation::DevicePath,
            Factor::new(weights.device_path, reason),
        ));
    }
    if let Some(storm) = storm_before(config, owner, facts) {
        let lead = facts.onset_ms.saturating_sub(storm.onset_ms);
        let when = if lead >= 0 {
            format!("{} before", duration(lead))
        } else {
            format!("{} after", duration(-lead))
        };
        let reason = format!(
            "shared DSP capacity: {owner}'s request storm began {when} this backlog, and deliveries slowed \
             without failing (counts for: a known cross-User path)"
        );
        return Some((
            Relation::SharedCapacity,
            Factor::new(weights.shared_capacity, reason),
        ));
    }
    if facts.affected == Affected::Network && facts.users.contains(&owner) {
        let reason = format!(
            "change by {owner}, one of the {} Users hit",
            facts.users.len()
        );
        return Some((
            Relation::AmongUsersHit,
            Factor::new(weights.among_users_hit, reason),
        ));
    }
    None
}

/// A backlog with no delivery failures at all: the queues grow because deliveries slowed or stopped DSP-side.
fn shared_capacity_backlog(facts: &IncidentFacts) -> bool {
    facts.kind == IncidentKind::Backlog && facts.failure_reason.is_none()
}

/// `owner`'s request storm that could have saturated shared capacity before this backlog began, if any.
fn storm_before(
    config: &CorrelatorConfig,
    owner: crate::telemetry::Eui64,
    facts: &IncidentFacts,
) -> Option<crate::incident::StormNear> {
    if !shared_capacity_backlog(facts) {
        return None;
    }
    let horizon_ms = config.storm_horizon_s.saturating_mul(1000);
    let slack_ms = config.storm_slack_s.saturating_mul(1000);
    facts
        .storms
        .iter()
        .filter(|storm| storm.user == owner)
        .filter(|storm| {
            let lead = facts.onset_ms.saturating_sub(storm.onset_ms);
            (-slack_ms..=horizon_ms).contains(&lead)
        })
        .min_by_key(|storm| (facts.onset_ms - storm.onset_ms).abs())
        .copied()
}

/// Half of `score` lost every `half_life_s`: smooth, no cliff anywhere.
fn decay(distance_ms: i64, half_life_s: i64) -> f64 {
    let half_life_ms = (half_life_s.max(1) as f64) * 1000.0;
    0.5_f64.powf(distance_ms.max(0) as f64 / half_life_ms)
}

/// The onset against the planned window, ends included. Outside it the score halves every half-life, so a window
/// that overran by minutes still leaves a strong suspect, and hours away leave next to nothing.
pub fn timing(config: &CorrelatorConfig, notice: &ChangeNotice, onset_ms: i64) -> Factor {
    if onset_ms < notice.start_ms {
        let lead = notice.start_ms.saturating_sub(onset_ms);
        let score = decay(lead, config.before_window_half_life_s);
        let reason = format!(
            "onset {} before the window opened: the window may be wrong (counts against)",
            duration(lead)
        );
        Factor::new(score, reason)
    } else if onset_ms <= notice.end_ms {
        let into = onset_ms.saturating_sub(notice.start_ms);
        let reason = if into == 0 {
            "onset as the window opened".to_owned()
        } else {
            format!("onset {} after the window opened", duration(into))
        };
        Factor::new(1.0, reason)
    } else {
        let late = onset_ms.saturating_sub(notice.end_ms);
        let score = decay(late, config.after_window_half_life_s);
        let weight = if score >= 0.75 {
            "counts a little against: work often overruns its window"
        } else {
            "counts against"
        };
        Factor::new(
            score,
            format!(
                "onset {} after the window closed ({weight})",
                duration(late)
            ),
        )
    }
}

/// How well what the category typically breaks matches the anomaly, refined by the delivery-failure reason. A fit
/// short of "fits" is evidence against the change, never a veto: when the change is the User's only one near the
/// onset (`alone`), part of the penalty is given back (a slow leak after the User's only change, an application
/// upgrade, was called unregistered at 0.49 while it "may cause" the partial failure).
pub fn category_fit(
    config: &CorrelatorConfig,
    notice: &ChangeNotice,
    facts: &IncidentFacts,
    relation: Relation,
    alone: bool,
) -> Factor {
    let fit = raw_category_fit(config, notice, facts, relation);
    let table = &config.category_fit;
    if !alone || fit.score >= table.fits || relation != Relation::SameUser {
        return fit;
    }
    let score = fit.score + (1.0 - fit.score) * table.alone_lift;
    let reason = format!(
        "{}, softened: it is the User's only change near the onset",
        fit.reason
    );
    Factor::new(score, reason)
}

fn raw_category_fit(
    config: &CorrelatorConfig,
    notice: &ChangeNotice,
    facts: &IncidentFacts,
    relation: Relation,
) -> Factor {
    use Category as C;
    use IncidentKind as K;
    let table = &config.category_fit;
    let category = notice.category;
    let label = category.label();
    if relation == Relation::SharedCapacity {
        // What saturated the capacity was the owner's request storm: the category is judged against that.
        let score = table.score(category, K::RequestStorm);
        let verb = fit_verb(table, score);
        return Factor::new(
            score,
            format!(
                "{label} change {verb} the request storm that took the capacity{}",
                fit_weight(table, score)
            ),
        );
    }
    let kind = facts.kind;
    let failure = facts.failure_reason.filter(|_| kind == K::Backlog);
    match (category, failure) {
        (C::Certificate, Some(FailureReason::Tls)) => {
            return Factor::new(1.0, "certificate change fits TLS delivery failures");
        }
        (C::Network, Some(FailureReason::Tls)) => {
            let reason = "network change, but deliveries fail with TLS errors, more typical of a certificate";
            return Factor::new(table.mismatched_failure, reason);
        }
        (C::Certificate, Some(reason @ (FailureReason::Refused | FailureReason::Timeout))) => {
            let reason = format!(
                "certificate change, but deliveries fail with `{}` rather than TLS errors",
                reason.as_str()
            );
            return Factor::new(table.mismatched_failure, reason);
        }
        _ => {}
    }
    let mut score = table.score(category, kind);
    if category == C::Application && kind == K::Backlog && facts.delivering {
        // A receive handler that loses some messages leaves the endpoint up: part delivers, part never does.
        let partial = table.application_partial_delivery.max(score);
        let verb = fit_verb(table, partial);
        return Factor::new(
            partial,
            format!(
                "{label} change {verb} a delivery failure where some deliveries still succeed{}",
                fit_weight(table, partial)
            ),
        );
    }
    score = score.clamp(0.0, 1.0);
    let anomaly = match kind {
        K::Backlog => "a delivery failure",
        K::RequestStorm => "a request storm",
        K::RejectStorm => "a reject storm",
        K::AlertStorm => "an alert storm",
    };
    let verb = fit_verb(table, score);
    let weight = fit_weight(table, score);
    Factor::new(score, format!("{label} change {verb} {anomaly}{weight}"))
}

fn fit_verb(table: &super::correlator_config::CategoryFit, score: f64) -> &'static str {
    if score >= table.fits {
        "fits"
    } else if score >= table.may_cause {
        "may cause"
    } else {
        "rarely causes"
    }
}

/// The plain words a weak fit needs: "fits" speaks for itself, the others say how much they count against.
fn fit_weight(table: &super::correlator_config::CategoryFit, score: f64) -> &'static str {
    if score >= table.fits {
        ""
    } else if score >= table.may_cause {
        " (counts a little against)"
    } else {
        " (counts against)"
    }
}

pub fn status(config: &CorrelatorConfig, notice: &ChangeNotice) -> Factor {
    let weights = &config.status;
    match notice.status {
        ChangeStatus::InProgress => Factor::new(weights.in_progress, "in progress"),
        ChangeStatus::Completed => Factor::new(weights.completed, "completed"),
        ChangeStatus::Planned => Factor::new(weights.planned, "still marked planned"),
        ChangeStatus::RolledBack => {
            Factor::new(weights.rolled_back, "rolled back, perhaps because of this")
        }
        ChangeStatus::Cancelled => Factor::new(
            weights.cancelled,
            "cancelled, so it should not have happened",
        ),
    }
}

pub fn srv_overlap(
    config: &CorrelatorConfig,
    notice: &ChangeNotice,
    facts: &IncidentFacts,
) -> Factor {
    let weights = &config.srvs;
    if notice.srvs.is_empty() || facts.srvs.is_empty() {
        return Factor::new(weights.not_compared, "no SRVs to compare");
    }
    // In the traffic's order, most frequent first, because that is the order an operator reads the evidence in.
    let shared: Vec<Srv> = facts
        .srvs
        .iter()
        .copied()
        .filter(|srv| notice.srvs.contains(srv))
        .collect();
    if shared.is_empty() {
        let reason = format!(
            "no SRV in common (change: {}; traffic: {})",
            srv_list(&notice.srvs),
            srv_list(&facts.srvs)
        );
        return Factor::new(weights.disjoint, reason);
    }
    let noun = if shared.len() == 1 { "SRV" } else { "SRVs" };
    Factor::new(
        weights.shared,
        format!("{noun} {} in both", srv_list(&shared)),
    )
}

fn srv_list(srvs: &[Srv]) -> String {
    const SHOWN: usize = 3;
    let mut text: Vec<String> = srvs.iter().take(SHOWN).map(Srv::to_string).collect();
    if srvs.len() > SHOWN {
        text.push("...".to_owned());
    }
    text.join(", ")
}

/// Many Users at once point away from one User's own change and towards a common, DCC-side cause.
pub fn users_at_once(
    config: &CorrelatorConfig,
    relation: Relation,
    facts: &IncidentFacts,
) -> Factor {
    let weights = &config.users_at_once;
    let hit = users_hit(facts);
    match relation {
        Relation::Dcc if widespread(config, facts) => Factor::new(
            1.0,
            format!("{hit} Users hit at once fits a DCC-side cause"),
        ),
        Relation::Dcc => {
            let who = if hit == 1 {
                "only this User".to_owned()
            } else {
                format!("only {hit} Users")
            };
            Factor::new(
                weights.dcc_few_users,
                format!("{who} hit, where a DCC-side cause usually hits many"),
            )
        }
        _ if hit <= 1 => Factor::new(1.0, "only this User affected"),
        Relation::SharedCapacity => Factor::new(
            1.0,
            format!("{hit} Users hit at once, as when shared capacity saturates (counts for)"),
        ),
        // One supplier's devices sit in many network operators' areas, so several Users hit is what it looks like.
        Relation::DevicePath => Factor::new(
            1.0,
            format!("{hit} Users hit at once, as one device change can reach several"),
        ),
        Relation::SameUser | Relation::AmongUsersHit => {
            let score = (weights.start - weights.per_user * f64::from(hit)).max(weights.floor);
            Factor::new(
                score,
                format!("{hit} Users hit at once suggests a common cause"),
            )
        }
    }
}

/// A duration as a person says it: `45 s`, `3 min`, `2 h 5 min`, `3 d 4 h`.
pub fn duration(ms: i64) -> String {
    let seconds = ms.max(0).saturating_add(500) / 1000;
    if seconds < 60 {
        return format!("{seconds} s");
    }
    let minutes = (seconds + 30) / 60;
    match (minutes / 60, minutes % 60) {
        (0, minutes) => format!("{minutes} min"),
        (hours @ 0..24, 0) => format!("{hours} h"),
        (hours @ 0..24, minutes) => format!("{hours} h {minutes} min"),
        (hours, _) if hours % 24 == 0 => format!("{} d", hours / 24),
        (hours, _) => format!("{} d {} h", hours / 24, hours % 24),
    }
}

#[cfg(test)]
#[path = "factors_tests.rs"]
mod tests;
