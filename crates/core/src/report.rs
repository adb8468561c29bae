//! The incident report of `docs/report.md`: its JSON shape, and the triage table printed for a person.

use serde::{Deserialize, Serialize};

use crate::incident::{Affected, IncidentFacts, IncidentKind, Suspect, Verdict};
use crate::telemetry::{AlertCode, Eui64, FailureReason, Srv};

/// The whole report `stormwatch replay` writes.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Report {
    pub summary: Summary,
    pub incidents: Vec<IncidentRecord>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Summary {
    /// Valid lines.
    pub events: u64,
    /// Malformed lines, each counted once.
    pub malformed: u64,
    /// Lines that arrived past the allowed lateness (still counted in `events`).
    pub late: u64,
    /// Distinct Users seen.
    pub users: u64,
    pub first_ts: Option<i64>,
    pub last_ts: Option<i64>,
    /// Wall-clock seconds the replay took: the only field that differs between two runs on the same input.
    pub elapsed_s: f64,
    /// Where the malformed lines were written, if any were.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quarantine: Option<String>,
    /// Change notices loaded, and those rejected with their reasons.
    #[serde(default)]
    pub changes_loaded: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changes_rejected: Vec<String>,
    /// Lines refused because their event time was far ahead of the network's (also counted in `malformed` and
    /// quarantined).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub out_of_range: u64,
    /// Users whose clocks were recognised as running at an offset from network time.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub clock_offsets: Vec<ClockOffset>,
}

/// One User's recognised clock offset.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ClockOffset {
    pub user: String,
    /// Seconds the clock runs ahead of its source's event time (negative: behind).
    pub offset_s: i64,
    /// Which of the User's lines that clock stamps: `requests`, `queue` or `depth` (absent in older reports).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lines: Option<String>,
    /// The live service's source number, when not the default one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<u32>,
}

fn is_zero(value: &u64) -> bool {
    *value == 0
}

/// One incident, with the contract's fields first and Stormwatch's extra evidence after them.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct IncidentRecord {
    pub id: String,
    /// Upper-case hyphenated EUI-64, or `*` for one incident spanning many Users.
    pub user: String,
    pub kind: IncidentKind,
    pub onset: i64,
    pub detected: i64,
    pub resolved: Option<i64>,
    pub peak_depth: u64,
    pub verdict: Verdict,
    pub suspects: Vec<Suspect>,
    /// Peak short-window rate of the anomalous flow, per second.
    pub peak_rate: f64,
    /// The User's baseline rate of that flow when the anomaly began, per second.
    pub baseline_rate: f64,
    /// `peak_rate / baseline_rate` (for reject storms: peak reject share against the baseline share).
    pub peak_ratio: f64,
    /// For `*` incidents: every User in it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub users: Vec<String>,
    /// What the engine saw: delivery state, failures, backlog age, SRVs, alert codes.
    pub evidence: Evidence,
}

impl IncidentRecord {
    /// The correlator's input, rebuilt from the record, so that a stored incident can be judged again after the
    /// engine forgot it. (The engine builds the same facts from its live state, unrounded.)
    pub fn facts(&self) -> IncidentFacts {
        let record = self;
        let users: Vec<Eui64> = std::iter::once(&record.user)
            .chain(&record.users)
            .filter_map(|u| Eui64::parse(u))
            .collect();
        let evidence = &record.evidence;
        IncidentFacts {
            affected: match Eui64::parse(&record.user) {
                Some(user) => Affected::User(user),
                None => Affected::Network,
            },
            users,
            kind: record.kind,
            onset_ms: record.onset,
            concurrent_users: evidence.concurrent_users,
            peak_ratio: record.peak_ratio,
            srvs: evidence.srvs.iter().filter_map(|s| Srv::parse(s)).collect(),
            failure_reason: evidence.failure_reason.as_deref().map(FailureReason::parse),
            alert_code: evidence.alert_code.as_deref().map(AlertCode::new),
            delivering: evidence.delivery_state.as_deref() == Some("WARN"),
            // Other Users' storms are not in a stored record: a re-judged incident loses the shared-capacity path.
            storms: Vec::new(),
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Default)]
pub struct Evidence {
    /// For backlogs: Burrow-style state when detected: `STOP` (no delivery attempts), `STALL` (attempts fail,
    /// nothing delivered) or `WARN` (delivering, but the queue keeps growing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery_state: Option<String>,
    /// Failed delivery attempts while the incident was active.
    #[serde(default)]
    pub failed_deliveries: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_reason: Option<String>,
    /// Event time of the last successful delivery before the onset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_delivery: Option<i64>,
    /// Age, in seconds, of the oldest waiting message at the backlog's peak.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peak_backlog_age_s: Option<u64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub srvs: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alert_code: Option<String>,
    /// Messages waiting when the incident was detected (for a `*` incident, summed over its Users then).
    #[serde(default)]
    pub depth_at_detection: u64,
    /// Users hit by the same kind of anomaly at about the same time (including this one).
    #[serde(default)]
    pub concurrent_users: u32,
    /// Event time the anomaly was first on watch (pending, before the incident opened): how early an operator
    /// could have seen it coming.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watched: Option<i64>,
}
