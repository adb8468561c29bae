//! Scoring a replay's report against the independent corpus' truth by the corpus' own rules (its `score.py`), into
//! the same [`RunScore`] as a generated run, so `evaluate` prints both alike. Pure: no I/O.
//!
//! The rules, as score.py has them: a reported incident is a candidate for a true one when its User is the true
//! one's (or `*` where the truth says `network_wide_ok`), its kind is among the true `kinds`, and its onset is
//! within `onset_tolerance_ms` (default 180 s). Of the candidates, the one detected first is the match; every
//! candidate is spent (none of them is false). Attributed: the verdict is the truth's and, when the truth names a
//! change, the top suspect is it; when it names none, a listed suspect is fine only under the verdict
//! `unregistered_change_suspected`. One `*` incident may match several true ones; after the first, each further one
//! is found and attributed when its top suspect and verdict are the truth's, and its delays and onset error are
//! not counted again. A reported incident no truth incident matched is false unless its verdict is
//! `expected_impact` or an `allowed` entry covers it; a User's incidents beyond `max_incidents_per_user` are false
//! too.

use std::collections::BTreeSet;

use crate::corpus_truth::{CorpusIncident, CorpusTruth};
use crate::evaluate::{Match, RunScore, suspect_scores, user_days};
use crate::generator::TruthIncident;
use stormwatch_core::incident::Verdict;
use stormwatch_core::report::{IncidentRecord, Report};

/// The report's User for an incident spanning many Users.
const NETWORK_WIDE: &str = "*";

/// Scores `report` against the corpus scenario's `truth`.
pub fn score(truth: &CorpusTruth, report: &Report) -> RunScore {
    let incidents = &report.incidents;
    let mut used = BTreeSet::new();
    let mut network_wide_done = false;
    let mut matches = Vec::new();
    let mut missed = Vec::new();
    for t in &truth.incidents {
        let candidates: Vec<usize> = incidents
            .iter()
            .enumerate()
            .filter(|(_, r)| is_candidate(t, r))
            .map(|(i, _)| i)
            .collect();
        // The first of the earliest detected, as Python's `min` picks.
        let Some(&best) = candidates.iter().min_by_key(|&&i| incidents[i].detected) else {
            missed.push(as_truth_incident(t, None));
            continue;
        };
        used.extend(candidates);
        let r = &incidents[best];
        let top = top(r);
        let repeat = r.user == NETWORK_WIDE && network_wide_done;
        network_wide_done |= r.user == NETWORK_WIDE;
        let attributed = if repeat {
            top == t.change.as_deref() && r.verdict == t.verdict
        } else {
            let mut ok =
                r.verdict == t.verdict && t.change.as_deref().is_none_or(|c| top == Some(c));
            if t.change.is_none() && top.is_some() {
                ok &= r.verdict == Verdict::UnregisteredChangeSuspected;
            }
            ok
        };
        matches.push(found(t, r, attributed, !repeat));
    }
    matches.sort_by_key(|m| (m.truth.onset, m.truth.user.clone()));

    let mut false_index: BTreeSet<usize> = incidents
        .iter()
        .enumerate()
        .filter(|&(i, r)| {
            !used.contains(&i)
                && r.verdict != Verdict::ExpectedImpact
                && !truth
                    .allowed
                    .iter()
                    .any(|a| a.allows(&r.user, r.verdict, top(r)))
        })
        .map(|(i, _)| i)
        .collect();
    // Pages beyond a User's limit: its latest incidents not false already.
    for (user, &limit) in &truth.max_incidents_per_user {
        let mine: Vec<usize> = (0..incidents.len())
            .filter(|&i| incidents[i].user == *user)
            .collect();
        let already = mine.iter().filter(|i| false_index.contains(i)).count();
        let extra = mine.len().saturating_sub(limit + already);
        let excess: Vec<usize> = mine
            .iter()
            .rev()
            .filter(|i| !false_index.contains(i))
            .take(extra)
            .copied()
            .collect();
        false_index.extend(excess);
    }

    RunScore {
        matches,
        missed,
        false_incidents: false_index
            .into_iter()
            .map(|i| incidents[i].clone())
            .collect(),
        events: (truth.valid_lines, report.summary.events),
        malformed: (truth.malformed, report.summary.malformed),
        user_days: user_days(report),
    }
}

fn top(r: &IncidentRecord) -> Option<&str> {
    r.suspects.first().map(|s| s.change.as_str())
}

fn is_candidate(t: &CorpusIncident, r: &IncidentRecord) -> bool {
    let user_ok = r.user == t.user || (t.network_wide_ok && r.user == NETWORK_WIDE);
    user_ok && t.kinds.contains(&r.kind) && (r.onset - t.onset).abs() <= t.onset_tolerance_ms()
}

/// The true incident in our shape: the matched kind (the first listed when missed), the named change as the top
/// suspect, no peak depth to reach.
fn as_truth_incident(t: &CorpusIncident, matched: Option<&IncidentRecord>) -> TruthIncident {
    TruthIncident {
        user: t.user.clone(),
        kind: matched.map_or(t.kinds[0], |r| r.kind),
        onset: t.onset,
        verdict: t.verdict,
        top_suspect: t.change.clone(),
        min_peak_depth: None,
    }
}

fn found(t: &CorpusIncident, r: &IncidentRecord, attributed: bool, timed: bool) -> Match {
    let top = top(r);
    let want = t.change.as_deref();
    let (right_score, best_other_score) = suspect_scores(r, want);
    Match {
        truth: as_truth_incident(t, Some(r)),
        report_id: r.id.clone(),
        attributed,
        attribution: format!("{} {}", r.verdict.as_str(), top.unwrap_or("(no suspect)")),
        top_right: want.map(|want| top == Some(want)),
        peak_ok: true,
        reported_peak: r.peak_depth,
        delay_ms: r.detected - t.onset,
        watch_delay_ms: r.evidence.watched.map(|w| w - t.onset),
        onset_error_ms: (r.onset - t.onset).abs(),
        timed,
        right_score,
        best_other_score,
    }
}

#[cfg(test)]
#[path = "corpus_score_tests.rs"]
mod tests;
