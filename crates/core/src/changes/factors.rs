//! The correlator's explicit factors: each judges one aspect of a change against an incident, as a score in 0..=1
//! and a phrase for the report's `reasons`.

use super::notice::{Category, ChangeNotice, ChangeOwner, ChangeStatus};
use crate::incident::{Affected, IncidentFacts, IncidentKind};
use crate::telemetry::{AlertCode, FailureReason, Srv};

/// From this many Users hit at once, a DCC-side cause is the natural explanation.
pub const DCC_WIDE_USERS: u32 = 3;
/// An onset this long before a window opens rules the change out: a window may be a little wrong, not that wrong.
pub const LEAD_MS: i64 = 30 * MINUTE_MS;
/// Timing score just after a window closed, halved every [`AFTER_END_HALF_LIFE_MS`], zero past [`AFTER_END_LIMIT_MS`].
pub const AFTER_END_SCORE: f64 = 0.8;
pub const AFTER_END_HALF_LIFE_MS: i64 = 60 * MINUTE_MS;
pub const AFTER_END_LIMIT_MS: i64 = 6 * 60 * MINUTE_MS;

const MINUTE_MS: i64 = 60_000;

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

fn widespread(facts: &IncidentFacts) -> bool {
    facts.affected == Affected::Network || users_hit(facts) >= DCC_WIDE_USERS
}

/// `None` when the change has no known way to cause this incident: it is then no suspect at all.
pub fn relation(notice: &ChangeNotice, facts: &IncidentFacts) -> Option<(Relation, Factor)> {
    let owner = match notice.owner {
        ChangeOwner::Dcc => {
            let score = if widespread(facts) { 1.0 } else { 0.5 };
            let factor = Factor::new(score, "DCC-led change affects every User");
            return Some((Relation::Dcc, factor));
        }
        ChangeOwner::User(owner) => owner,
    };
    if facts.affected == Affected::User(owner) {
        return Some((Relation::SameUser, Factor::new(1.0, "same User")));
    }
    if notice.category == Category::Device && facts.kind == IncidentKind::AlertStorm {
        let what = if facts.alert_code == Some(AlertCode::new("AD1")) {
            "cut power to comms hubs and flood another User with power-outage alerts AD1"
        } else {
            "flood another User with alerts"
        };
        let reason = format!("device change by {owner} can {what} (known cross-User path)");
        return Some((Relation::DevicePath, Factor::new(0.8, reason)));
    }
    if facts.affected == Affected::Network && facts.users.contains(&owner) {
        let reason = format!(
            "change by {owner}, one of the {} Users hit",
            facts.users.len()
        );
        return Some((Relation::AmongUsersHit, Factor::new(0.4, reason)));
    }
    None
}

/// The onset against the planned window, ends included.
pub fn timing(notice: &ChangeNotice, onset_ms: i64) -> Factor {
    if onset_ms < notice.start_ms {
        let lead = notice.start_ms.saturating_sub(onset_ms);
        let score = (1.0 - lead as f64 / LEAD_MS as f64).max(0.0);
        let reason = format!(
            "onset {} before the window opened: the window may be wrong",
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
        let score = if late > AFTER_END_LIMIT_MS {
            0.0
        } else {
            AFTER_END_SCORE * 0.5_f64.powf(late as f64 / AFTER_END_HALF_LIFE_MS as f64)
        };
        Factor::new(
            score,
            format!("onset {} after the window closed", duration(late)),
        )
    }
}

/// How well what the category typically breaks matches the anomaly, refined by the delivery-failure reason.
pub fn category_fit(notice: &ChangeNotice, facts: &IncidentFacts) -> Factor {
    use Category as C;
    use IncidentKind as K;
    let category = notice.category;
    let kind = facts.kind;
    let failure = facts.failure_reason.filter(|_| kind == K::Backlog);
    let label = category.label();
    match (category, failure) {
        (C::Certificate, Some(FailureReason::Tls)) => {
            return Factor::new(1.0, "certificate change fits TLS delivery failures");
        }
        (C::Network, Some(FailureReason::Tls)) => {
            let reason = "network change, but deliveries fail with TLS errors, more typical of a certificate";
            return Factor::new(0.7, reason);
        }
        (C::Certificate, Some(reason @ (FailureReason::Refused | FailureReason::Timeout))) => {
            let reason = format!(
                "certificate change, but deliveries fail with `{}` rather than TLS errors",
                reason.as_str()
            );
            return Factor::new(0.7, reason);
        }
        _ => {}
    }
    let score = match (category, kind) {
        (C::Network | C::Certificate | C::Endpoint | C::DccMaintenance, K::Backlog) => 1.0,
        (C::Network | C::Certificate | C::Endpoint, _) => 0.2,
        (C::DccMaintenance, _) => 0.6,
        (C::Application, K::RequestStorm | K::RejectStorm) => 1.0,
        (C::Application, K::Backlog) => 0.3,
        (C::Application, K::AlertStorm) => 0.2,
        (C::Device, K::AlertStorm) => 1.0,
        (C::Device, _) => 0.2,
        (C::Campaign, K::RequestStorm) => 0.9,
        (C::Campaign, _) => 0.3,
        (C::Other, _) => 0.5,
    };
    let anomaly = match kind {
        K::Backlog => "a delivery failure",
        K::RequestStorm => "a request storm",
        K::RejectStorm => "a reject storm",
        K::AlertStorm => "an alert storm",
    };
    let verb = if score >= 0.9 {
        "fits"
    } else if score >= 0.5 {
        "may cause"
    } else {
        "rarely causes"
    };
    Factor::new(score, format!("{label} change {verb} {anomaly}"))
}

pub fn status(notice: &ChangeNotice) -> Factor {
    match notice.status {
        ChangeStatus::InProgress => Factor::new(1.0, "in progress"),
        ChangeStatus::Completed => Factor::new(1.0, "completed"),
        ChangeStatus::Planned => Factor::new(0.9, "still marked planned"),
        ChangeStatus::RolledBack => Factor::new(0.8, "rolled back, perhaps because of this"),
        ChangeStatus::Cancelled => Factor::new(0.2, "cancelled, so it should not have happened"),
    }
}

pub fn srv_overlap(notice: &ChangeNotice, facts: &IncidentFacts) -> Factor {
    if notice.srvs.is_empty() || facts.srvs.is_empty() {
        return Factor::new(0.9, "no SRVs to compare");
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
        return Factor::new(0.6, reason);
    }
    let noun = if shared.len() == 1 { "SRV" } else { "SRVs" };
    Factor::new(1.0, format!("{noun} {} in both", srv_list(&shared)))
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
pub fn users_at_once(relation: Relation, facts: &IncidentFacts) -> Factor {
    let hit = users_hit(facts);
    match relation {
        Relation::Dcc if widespread(facts) => Factor::new(
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
                0.6,
                format!("{who} hit, where a DCC-side cause usually hits many"),
            )
        }
        _ if hit <= 1 => Factor::new(1.0, "only this User affected"),
        // One supplier's devices sit in many network operators' areas, so several Users hit is what it looks like.
        Relation::DevicePath => Factor::new(
            1.0,
            format!("{hit} Users hit at once, as one device change can reach several"),
        ),
        Relation::SameUser | Relation::AmongUsersHit => {
            let score = (1.1 - 0.15 * f64::from(hit)).max(0.4);
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
