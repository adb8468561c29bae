//! Incident vocabulary shared by the engine, the correlator and the report: kinds, verdicts, suspects and the facts the correlator judges.

use serde::{Deserialize, Serialize};

use crate::telemetry::{AlertCode, Eui64, FailureReason, Srv};

/// The four anomaly kinds of `docs/report.md`.
#[derive(Copy, Clone, Eq, PartialEq, Hash, Debug, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum IncidentKind {
    Backlog,
    RequestStorm,
    RejectStorm,
    AlertStorm,
}

impl IncidentKind {
    pub const ALL: [IncidentKind; 4] = [
        IncidentKind::Backlog,
        IncidentKind::RequestStorm,
        IncidentKind::RejectStorm,
        IncidentKind::AlertStorm,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            IncidentKind::Backlog => "backlog",
            IncidentKind::RequestStorm => "request_storm",
            IncidentKind::RejectStorm => "reject_storm",
            IncidentKind::AlertStorm => "alert_storm",
        }
    }

    /// The traffic direction an anomaly of this kind lives in, as a change's `expected` names it.
    pub fn direction(self) -> TrafficDirection {
        match self {
            IncidentKind::RequestStorm | IncidentKind::RejectStorm => TrafficDirection::ToDsp,
            IncidentKind::Backlog | IncidentKind::AlertStorm => TrafficDirection::ToUser,
        }
    }
}

/// Direction of traffic relative to the DSP.
#[derive(Copy, Clone, Eq, PartialEq, Hash, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrafficDirection {
    /// User -> DSP: service requests.
    ToDsp,
    /// DSP -> User: responses and alerts.
    ToUser,
}

/// Who an incident affects: one User, or many at once (`*` in the report).
#[derive(Copy, Clone, Eq, PartialEq, Hash, Debug)]
pub enum Affected {
    User(Eui64),
    Network,
}

impl Serialize for Affected {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Affected::User(user) => user.serialize(serializer),
            Affected::Network => serializer.serialize_str("*"),
        }
    }
}

impl<'de> Deserialize<'de> for Affected {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        if text == "*" {
            return Ok(Affected::Network);
        }
        Eui64::parse(&text).map(Affected::User).ok_or_else(|| {
            serde::de::Error::custom(format!("`{text}` is neither `*` nor an EUI-64"))
        })
    }
}

/// The correlator's conclusion about an incident's cause.
#[derive(Copy, Clone, Eq, PartialEq, Hash, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    RegisteredChange,
    DccChange,
    ExpectedImpact,
    UnregisteredChangeSuspected,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::RegisteredChange => "registered_change",
            Verdict::DccChange => "dcc_change",
            Verdict::ExpectedImpact => "expected_impact",
            Verdict::UnregisteredChangeSuspected => "unregistered_change_suspected",
        }
    }
}

/// One candidate change for an incident's cause.
#[derive(Clone, PartialEq, Debug, Serialize, Deserialize)]
pub struct Suspect {
    pub change: String,
    /// The change's title, so a person need not look it up.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub title: String,
    /// Who to ask about the change (the notice's `contact`), so a person need not look it up either.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub contact: String,
    /// 0..=1, the product of the factor scores.
    pub score: f64,
    /// One phrase per factor, in the order the factors are judged.
    pub reasons: Vec<String>,
}

/// Ranked suspects (best first) and the verdict.
#[derive(Clone, PartialEq, Debug, serde::Serialize, serde::Deserialize)]
pub struct Correlation {
    pub suspects: Vec<Suspect>,
    pub verdict: Verdict,
}

/// Everything the correlator needs to know about an incident. Built by the engine; pure data.
#[derive(Clone, PartialEq, Debug)]
pub struct IncidentFacts {
    pub affected: Affected,
    /// For a network-wide incident, every User in it; for a single-User one, that User.
    pub users: Vec<Eui64>,
    pub kind: IncidentKind,
    pub onset_ms: i64,
    /// How many Users showed the same kind of anomaly with an onset close to this one (1 = only this User).
    pub concurrent_users: u32,
    /// Peak short-window rate of the anomalous flow divided by its baseline (requests, rejects share, alerts, or
    /// queued inflow for a backlog).
    pub peak_ratio: f64,
    /// SRVs seen most in the anomalous traffic, most frequent first (may be empty).
    pub srvs: Vec<Srv>,
    /// For backlogs: the most frequent delivery-failure reason, if any failures were seen.
    pub failure_reason: Option<FailureReason>,
    /// For alert storms: the most frequent alert code, if alerts carried one.
    pub alert_code: Option<AlertCode>,
    /// For backlogs: some deliveries still succeed (`WARN`), so the endpoint works, just not for everything.
    pub delivering: bool,
    /// Other Users' request storms with onsets near this incident's: the mechanism by which one User's storm can
    /// saturate the DSP's shared delivery capacity and back up everyone else's queues. Empty when unknown.
    pub storms: Vec<StormNear>,
}

/// Another User's request storm, as the correlator sees it when judging a cross-User path.
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub struct StormNear {
    pub user: Eui64,
    pub onset_ms: i64,
}
