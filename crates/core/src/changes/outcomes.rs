//! Change outcomes: after its window, whether a change ran clean, caused incidents (attributed), or is only
//! suspected; and per owner over a time window, DORA's change failure rate beside the incidents nobody registered
//! a change for (DP083's measure) and the median times from onset to detection and to acknowledgement. Pure: the
//! caller gives the notices, the incidents and the time.
//!
//! Two clocks meet here. Onset and detection are event time (the telemetry's); an acknowledgement is an operator's
//! click, on the wall clock. Subtracting one from the other means nothing on replayed history, so the
//! acknowledgement delay is measured on the wall clock from when the service stored the incident (its detection
//! as people saw it), and onset-to-acknowledgement is the event-time onset-to-detection plus that wall-clock
//! detection-to-acknowledgement.

use serde::Serialize;

use super::notice::{ChangeNotice, ChangeStatus};
use crate::incident::Verdict;
use crate::report::IncidentRecord;

/// What a change turned out to do.
#[derive(Copy, Clone, Eq, PartialEq, Hash, Debug, Serialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The window (plus the grace for late incidents) has not passed, and nothing is attributed yet.
    Pending,
    /// Cancelled: it never ran, and counts for nothing.
    Cancelled,
    /// Over, and no incident names it.
    Clean,
    /// It caused only the traffic it declared (`expected_impact` incidents): not a failure.
    ExpectedImpact,
    /// Among an incident's suspects, but not its established cause.
    Suspected,
    /// The established cause of at least one incident: a failed change.
    Attributed,
}

/// An incident as outcomes see it: the record's verdict and suspects, with the operators' triage.
#[derive(Clone, Debug, PartialEq)]
pub struct JudgedIncident {
    pub id: String,
    /// EUI-64, or `*` for a network-wide incident.
    pub user: String,
    pub verdict: Verdict,
    pub onset_ms: i64,
    pub detected_ms: i64,
    /// The first acknowledgement, if any (wall clock).
    pub acknowledged_ms: Option<i64>,
    /// When the service first stored the incident (wall clock): where the acknowledgement delay starts.
    pub stored_ms: Option<i64>,
    /// Suspects' change ids, best first.
    pub suspects: Vec<String>,
    /// Changes operators confirmed as, or rejected as, the cause: they override the correlator.
    pub confirmed: Vec<String>,
    pub rejected: Vec<String>,
}

impl JudgedIncident {
    pub fn from_record(record: &IncidentRecord) -> JudgedIncident {
        JudgedIncident {
            id: record.id.clone(),
            user: record.user.clone(),
            verdict: record.verdict,
            onset_ms: record.onset,
            detected_ms: record.detected,
            acknowledged_ms: None,
            stored_ms: None,
            suspects: record.suspects.iter().map(|s| s.change.clone()).collect(),
            confirmed: Vec::new(),
            rejected: Vec::new(),
        }
    }

    /// How this incident relates to change `id`, if at all.
    fn relation(&self, id: &str) -> Option<Outcome> {
        let named = |list: &[String]| list.iter().any(|c| c == id);
        if named(&self.confirmed) {
            return Some(Outcome::Attributed);
        }
        if named(&self.rejected) || !named(&self.suspects) {
            return None;
        }
        let top = self.suspects.first().is_some_and(|c| c == id) && self.confirmed.is_empty();
        Some(match self.verdict {
            Verdict::RegisteredChange | Verdict::DccChange if top => Outcome::Attributed,
            Verdict::ExpectedImpact if top => Outcome::ExpectedImpact,
            _ => Outcome::Suspected,
        })
    }
}

/// A change's outcome and the incidents behind it (the other half of the link: incidents list their suspects).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ChangeOutcome {
    pub change: String,
    pub owner: String,
    pub outcome: Outcome,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub attributed: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub expected: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub suspected: Vec<String>,
}

/// The outcome of `notice` at `now_ms`; incidents opening up to `grace_ms` after the window still count.
pub fn change_outcome(
    notice: &ChangeNotice,
    incidents: &[JudgedIncident],
    now_ms: i64,
    grace_ms: i64,
) -> ChangeOutcome {
    let mut outcome = ChangeOutcome {
        change: notice.id.clone(),
        owner: notice.owner.to_string(),
        outcome: Outcome::Clean,
        attributed: Vec::new(),
        expected: Vec::new(),
        suspected: Vec::new(),
    };
    for incident in incidents {
        match incident.relation(&notice.id) {
            Some(Outcome::Attributed) => outcome.attributed.push(incident.id.clone()),
            Some(Outcome::ExpectedImpact) => outcome.expected.push(incident.id.clone()),
            Some(_) => outcome.suspected.push(incident.id.clone()),
            None => {}
        }
    }
    outcome.outcome = if notice.status == ChangeStatus::Cancelled {
        Outcome::Cancelled
    } else if !outcome.attributed.is_empty() {
        Outcome::Attributed
    } else if now_ms < notice.end_ms.saturating_add(grace_ms) {
        Outcome::Pending
    } else if !outcome.suspected.is_empty() {
        Outcome::Suspected
    } else if !outcome.expected.is_empty() {
        Outcome::ExpectedImpact
    } else {
        Outcome::Clean
    };
    outcome
}

/// One owner's figures over a window: a User (EUI-64), `DCC`, or `*` for network-wide incidents.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct OwnerOutcomes {
    pub owner: String,
    /// Changes whose window starts in the period, cancelled ones included.
    pub changes_registered: u64,
    /// Of those, how many have an outcome (not pending, not cancelled): the failure rate's denominator.
    pub changes_decided: u64,
    pub changes_attributed: u64,
    pub changes_suspected: u64,
    /// `changes_attributed / changes_decided`; absent with nothing decided.
    pub change_failure_rate: Option<f64>,
    /// The owner's incidents with onset in the period.
    pub incidents: u64,
    /// Of those, how many no registered change explains: the changes DP083 asks Users to register.
    pub unregistered_change_suspected: u64,
    /// Event time: the estimated onset to the second the engine declared the incident.
    pub median_onset_to_detection_s: Option<f64>,
    /// Wall clock: from when the service stored the incident to the first operator acknowledgement.
    pub median_detection_to_acknowledgement_s: Option<f64>,
    /// Each incident's event-time onset-to-detection plus its wall-clock detection-to-acknowledgement (never the
    /// wall-clock acknowledgement minus the event-time onset, meaningless on replayed history).
    pub median_onset_to_acknowledgement_s: Option<f64>,
    /// Incidents acknowledged, the sample of both acknowledgement medians.
    pub acknowledged: u64,
}

impl OwnerOutcomes {
    fn new(owner: String) -> OwnerOutcomes {
        OwnerOutcomes {
            owner,
            changes_registered: 0,
            changes_decided: 0,
            changes_attributed: 0,
            changes_suspected: 0,
            change_failure_rate: None,
            incidents: 0,
            unregistered_change_suspected: 0,
            median_onset_to_detection_s: None,
            median_detection_to_acknowledgement_s: None,
            median_onset_to_acknowledgement_s: None,
            acknowledged: 0,
        }
    }
}

/// Every owner's figures for changes starting and incidents beginning in `[from_ms, to_ms]`, judged at `now_ms`,
/// in owner order (`*`, then EUI-64s, then `DCC`).
pub fn summarize(
    notices: &[ChangeNotice],
    incidents: &[JudgedIncident],
    (from_ms, to_ms): (i64, i64),
    now_ms: i64,
    grace_ms: i64,
) -> Vec<OwnerOutcomes> {
    type Rows = std::collections::BTreeMap<String, OwnerOutcomes>;
    fn row<'a>(rows: &'a mut Rows, owner: &str) -> &'a mut OwnerOutcomes {
        rows.entry(owner.to_owned())
            .or_insert_with(|| OwnerOutcomes::new(owner.to_owned()))
    }
    let mut rows = Rows::new();
    for notice in notices
        .iter()
        .filter(|n| (from_ms..=to_ms).contains(&n.start_ms))
    {
        let outcome = change_outcome(notice, incidents, now_ms, grace_ms);
        let entry = row(&mut rows, &outcome.owner);
        entry.changes_registered += 1;
        match outcome.outcome {
            Outcome::Pending | Outcome::Cancelled => {}
            decided => {
                entry.changes_decided += 1;
                entry.changes_attributed += u64::from(decided == Outcome::Attributed);
                entry.changes_suspected += u64::from(decided == Outcome::Suspected);
            }
        }
    }
    type Delays = (Vec<i64>, Vec<i64>, Vec<i64>);
    let mut delays: std::collections::BTreeMap<String, Delays> = Default::default();
    for incident in incidents
        .iter()
        .filter(|i| (from_ms..=to_ms).contains(&i.onset_ms))
    {
        let entry = row(&mut rows, &incident.user);
        entry.incidents += 1;
        entry.unregistered_change_suspected +=
            u64::from(incident.verdict == Verdict::UnregisteredChangeSuspected);
        let (detection, acknowledgement, onset_to_ack) =
            delays.entry(incident.user.clone()).or_default();
        let detect = incident.detected_ms - incident.onset_ms;
        detection.push(detect);
        if let (Some(acked), Some(stored)) = (incident.acknowledged_ms, incident.stored_ms) {
            // An acknowledgement cannot come before the incident exists; clock steps make it look so.
            let wait = (acked - stored).max(0);
            acknowledgement.push(wait);
            onset_to_ack.push(detect + wait);
        }
    }
    for (owner, (detection, acknowledgement, onset_to_ack)) in delays {
        let entry = row(&mut rows, &owner);
        entry.acknowledged = acknowledgement.len() as u64;
        entry.median_onset_to_detection_s = median_s(detection);
        entry.median_detection_to_acknowledgement_s = median_s(acknowledgement);
        entry.median_onset_to_acknowledgement_s = median_s(onset_to_ack);
    }
    rows.into_values()
        .map(|mut entry| {
            entry.change_failure_rate = (entry.changes_decided > 0)
                .then(|| entry.changes_attributed as f64 / entry.changes_decided as f64);
            entry
        })
        .collect()
}

/// The median of millisecond durations, in seconds (the mean of the middle two for an even count).
fn median_s(mut values: Vec<i64>) -> Option<f64> {
    values.sort_unstable();
    let n = values.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(values[n / 2] as f64 / 1000.0),
        _ => Some((values[n / 2 - 1] as f64 + values[n / 2] as f64) / 2000.0),
    }
}

#[cfg(test)]
#[path = "outcomes_tests.rs"]
mod tests;
