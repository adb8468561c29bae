//! The independent corpus' `truth.json` (`../shared/corpus`, written by its `gen.py`, judged by its `score.py`):
//! the fields its README documents, as data. Fields for people (`notes`, `names`) and those its scorer does not
//! judge by (`depth_series`, `peak_in_pause`) are read past.

use std::collections::BTreeMap;

use serde::Deserialize;

use stormwatch_core::incident::{IncidentKind, Verdict};

/// How far a reported onset may be from the true one when an incident sets no `onset_tolerance_ms` (score.py's
/// `ONSET_TOLERANCE_MS`).
pub const CORPUS_ONSET_TOLERANCE_MS: i64 = 180_000;

/// One scenario's truth.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct CorpusTruth {
    pub scenario: String,
    /// Exact number of valid lines in `events.ndjson`.
    pub valid_lines: u64,
    /// Exact number of malformed lines in it.
    pub malformed: u64,
    pub incidents: Vec<CorpusIncident>,
    /// Reported incidents that are not false although no truth incident matches them.
    #[serde(default)]
    pub allowed: Vec<Allowance>,
    /// More incidents than this for a User (any kind) count the excess as false.
    #[serde(default)]
    pub max_incidents_per_user: BTreeMap<String, usize>,
}

/// One incident the engine has to find.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct CorpusIncident {
    /// Upper-case hyphenated EUI-64, as the report writes it.
    pub user: String,
    /// Any of these kinds matches (a storm may be reported as a request or a reject storm); never empty.
    pub kinds: Vec<IncidentKind>,
    /// Milliseconds since the Unix epoch.
    pub onset: i64,
    /// The change the top suspect must be; `null` when none explains it.
    pub change: Option<String>,
    pub verdict: Verdict,
    /// One network-wide incident (User `*`) may stand for this one and the others that allow it.
    #[serde(default)]
    pub network_wide_ok: bool,
    /// How far the reported onset may be from `onset` (default [`CORPUS_ONSET_TOLERANCE_MS`]).
    #[serde(default)]
    pub onset_tolerance_ms: Option<i64>,
}

impl CorpusIncident {
    pub fn onset_tolerance_ms(&self) -> i64 {
        self.onset_tolerance_ms.unwrap_or(CORPUS_ONSET_TOLERANCE_MS)
    }
}

/// An incident that is not false although it matches no truth incident: one whose top suspect is `change`, or
/// one for `user` with `verdict` (score.py: both of `user` and `verdict` must be given for the second).
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
pub struct Allowance {
    #[serde(default)]
    pub change: Option<String>,
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub verdict: Option<Verdict>,
}

impl Allowance {
    /// Whether an incident of `user` with `verdict` and top suspect `top` is allowed by this entry.
    pub fn allows(&self, user: &str, verdict: Verdict, top: Option<&str>) -> bool {
        let by_change = self.change.is_some() && self.change.as_deref() == top;
        let by_user = self.user.as_deref() == Some(user) && self.verdict == Some(verdict);
        by_change || by_user
    }
}
