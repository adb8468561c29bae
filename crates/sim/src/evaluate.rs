//! Scoring a replay's report against a generated run's truth: which incidents were found, missed or invented,
//! whether each was attributed to the right change, how fast, and whether the line counts agree. Pure: no I/O.

use std::fmt::Write as _;

use crate::generator::{Truth, TruthIncident};
use stormwatch_core::report::{IncidentRecord, Report};

/// A reported incident matches a true one with the same User and kind and an onset this close.
pub const ONSET_TOLERANCE_MS: i64 = 60_000;

/// A true incident and the reported incident that matched it.
#[derive(Clone, Debug, PartialEq)]
pub struct Match {
    pub truth: TruthIncident,
    pub report_id: String,
    /// Verdict equal and, when the truth names one, the same top suspect.
    pub attributed: bool,
    /// What the report said instead, when not attributed.
    pub attribution: String,
    /// When the truth names a change: whether the report's top suspect is that change (HR@1), whatever the verdict.
    pub top_right: Option<bool>,
    /// `peak_depth` reached the truth's `min_peak_depth` (true when the truth sets none).
    pub peak_ok: bool,
    pub reported_peak: u64,
    /// Detected minus true onset.
    pub delay_ms: i64,
    /// Went on watch (pending, before opening) minus true onset, when the report says.
    pub watch_delay_ms: Option<i64>,
    /// |reported onset - true onset|.
    pub onset_error_ms: i64,
    /// Whether the delays and onset error above count in the medians: false for a network-wide (`*`) incident the
    /// corpus' rules let stand for another true incident after the first (one detection, timed once).
    pub timed: bool,
    /// The correlator's score for the change the truth names (0 when it is not among the suspects); `None` when the
    /// truth names none.
    pub right_score: Option<f64>,
    /// The best score of any other suspect (of every suspect when the truth names no change); 0 when none.
    pub best_other_score: f64,
}

/// The score of one run.
#[derive(Clone, Debug, PartialEq)]
pub struct RunScore {
    pub matches: Vec<Match>,
    pub missed: Vec<TruthIncident>,
    pub false_incidents: Vec<IncidentRecord>,
    /// (truth, report)
    pub events: (u64, u64),
    /// (truth, report)
    pub malformed: (u64, u64),
    /// Users seen times the span of event time, in days: the traffic the false incidents are counted against.
    pub user_days: f64,
}

impl RunScore {
    pub fn expected(&self) -> usize {
        self.matches.len() + self.missed.len()
    }

    pub fn attributed(&self) -> usize {
        self.matches.iter().filter(|m| m.attributed).count()
    }

    pub fn peaks_short(&self) -> usize {
        self.matches.iter().filter(|m| !m.peak_ok).count()
    }

    pub fn counts_match(&self) -> bool {
        self.events.0 == self.events.1 && self.malformed.0 == self.malformed.1
    }

    /// Nothing missed, invented, misattributed, short or miscounted.
    pub fn is_clean(&self) -> bool {
        self.missed.is_empty()
            && self.false_incidents.is_empty()
            && self.attributed() == self.matches.len()
            && self.peaks_short() == 0
            && self.counts_match()
    }

    /// One line per problem, for a person.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        for t in &self.missed {
            out.push(format!(
                "missed {} {} onset {}",
                t.user,
                t.kind.as_str(),
                t.onset
            ));
        }
        for r in &self.false_incidents {
            out.push(format!(
                "false {} {} {} onset {} verdict {}",
                r.id,
                r.user,
                r.kind.as_str(),
                r.onset,
                r.verdict.as_str()
            ));
        }
        for m in &self.matches {
            if !m.attributed {
                out.push(format!(
                    "misattributed {} {} {}: expected {} {}, got {}",
                    m.report_id,
                    m.truth.user,
                    m.truth.kind.as_str(),
                    m.truth.verdict.as_str(),
                    m.truth.top_suspect.as_deref().unwrap_or("(any suspect)"),
                    m.attribution
                ));
            }
            if !m.peak_ok {
                out.push(format!(
                    "peak depth short {} {}: {} < {}",
                    m.report_id,
                    m.truth.user,
                    m.reported_peak,
                    m.truth.min_peak_depth.unwrap_or(0)
                ));
            }
        }
        if self.events.0 != self.events.1 {
            out.push(format!(
                "events: expected {}, report {}",
                self.events.0, self.events.1
            ));
        }
        if self.malformed.0 != self.malformed.1 {
            out.push(format!(
                "malformed: expected {}, report {}",
                self.malformed.0, self.malformed.1
            ));
        }
        out
    }
}

/// Scores `report` against `truth`. Each true and each reported incident takes part in at most one match;
/// closest onsets are paired first.
pub fn score(truth: &Truth, report: &Report) -> RunScore {
    let mut pairs = Vec::new();
    for (ti, t) in truth.incidents.iter().enumerate() {
        for (ri, r) in report.incidents.iter().enumerate() {
            let error = (r.onset - t.onset).abs();
            if r.user == t.user && r.kind == t.kind && error <= ONSET_TOLERANCE_MS {
                pairs.push((error, ti, ri));
            }
        }
    }
    pairs.sort_unstable();
    let mut truth_taken = vec![false; truth.incidents.len()];
    let mut report_taken = vec![false; report.incidents.len()];
    let mut matches = Vec::new();
    for (error, ti, ri) in pairs {
        if truth_taken[ti] || report_taken[ri] {
            continue;
        }
        truth_taken[ti] = true;
        report_taken[ri] = true;
        let t = &truth.incidents[ti];
        let r = &report.incidents[ri];
        let top = r.suspects.first().map(|s| s.change.as_str());
        let want = t.top_suspect.as_deref();
        let (right_score, best_other_score) = suspect_scores(r, want);
        let attributed = r.verdict == t.verdict
            && t.top_suspect
                .as_deref()
                .is_none_or(|want| top == Some(want));
        matches.push(Match {
            truth: t.clone(),
            report_id: r.id.clone(),
            attributed,
            attribution: format!("{} {}", r.verdict.as_str(), top.unwrap_or("(no suspect)")),
            top_right: t.top_suspect.as_deref().map(|want| top == Some(want)),
            peak_ok: t.min_peak_depth.is_none_or(|min| r.peak_depth >= min),
            reported_peak: r.peak_depth,
            delay_ms: r.detected - t.onset,
            watch_delay_ms: r.evidence.watched.map(|w| w - t.onset),
            onset_error_ms: error,
            timed: true,
            right_score,
            best_other_score,
        });
    }
    matches.sort_by_key(|m| (m.truth.onset, m.truth.user.clone()));
    RunScore {
        matches,
        missed: truth
            .incidents
            .iter()
            .zip(&truth_taken)
            .filter(|p| !*p.1)
            .map(|p| p.0.clone())
            .collect(),
        false_incidents: report
            .incidents
            .iter()
            .zip(&report_taken)
            .filter(|p| !*p.1)
            .map(|p| p.0.clone())
            .collect(),
        events: (truth.events, report.summary.events),
        malformed: (truth.malformed, report.summary.malformed),
        user_days: user_days(report),
    }
}

/// The correlator's scores for an incident whose truth names `want`: that change's score (0 when it is no
/// suspect; `None` when the truth names none) and the best score of any other change, for the fit's margins.
pub fn suspect_scores(r: &IncidentRecord, want: Option<&str>) -> (Option<f64>, f64) {
    let right = want.map(|want| {
        r.suspects
            .iter()
            .find(|s| s.change == want)
            .map_or(0.0, |s| s.score)
    });
    let best_other = r
        .suspects
        .iter()
        .filter(|s| Some(s.change.as_str()) != want)
        .map(|s| s.score)
        .fold(0.0, f64::max);
    (right, best_other)
}

/// Users seen times the span from the first to the last event, in days.
pub fn user_days(report: &Report) -> f64 {
    let summary = &report.summary;
    match (summary.first_ts, summary.last_ts) {
        (Some(first), Some(last)) if last > first => {
            summary.users as f64 * (last - first) as f64 / 86_400_000.0
        }
        _ => 0.0,
    }
}

/// Scores added up over many runs.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Totals {
    pub runs: usize,
    pub expected: usize,
    pub found: usize,
    pub missed: usize,
    pub false_incidents: usize,
    pub attributed: usize,
    pub peaks_short: usize,
    /// Runs whose event or malformed count differed.
    pub miscounted: usize,
    /// Runs that could not be scored at all (generation or replay failed).
    pub failed: usize,
    pub delays_ms: Vec<i64>,
    pub watch_delays_ms: Vec<i64>,
    pub onset_errors_ms: Vec<i64>,
    /// Found incidents whose truth names a change, and those whose top suspect is it (HR@1 = hits / named).
    pub named: usize,
    pub top_hits: usize,
    /// User-days of traffic scored (see [`RunScore::user_days`]).
    pub user_days: f64,
}

impl Totals {
    pub fn add(&mut self, run: &RunScore) {
        self.runs += 1;
        self.expected += run.expected();
        self.found += run.matches.len();
        self.missed += run.missed.len();
        self.false_incidents += run.false_incidents.len();
        self.attributed += run.attributed();
        self.peaks_short += run.peaks_short();
        self.miscounted += usize::from(!run.counts_match());
        self.user_days += run.user_days;
        let timed = || run.matches.iter().filter(|m| m.timed);
        self.delays_ms.extend(timed().map(|m| m.delay_ms));
        self.watch_delays_ms
            .extend(timed().filter_map(|m| m.watch_delay_ms));
        self.onset_errors_ms
            .extend(timed().map(|m| m.onset_error_ms));
        for judged in run.matches.iter().filter_map(|m| m.top_right) {
            self.named += 1;
            self.top_hits += usize::from(judged);
        }
    }

    /// Top suspect right among found incidents whose truth names a change; `None` when none does.
    pub fn hit_rate_at_1(&self) -> Option<f64> {
        (self.named > 0).then(|| self.top_hits as f64 / self.named as f64)
    }

    /// False incidents per 100 User-days of traffic; `None` before any traffic was scored.
    pub fn false_per_100_user_days(&self) -> Option<f64> {
        (self.user_days > 0.0).then(|| self.false_incidents as f64 * 100.0 / self.user_days)
    }

    /// A run that produced no report counts as failed.
    pub fn add_failure(&mut self) {
        self.runs += 1;
        self.failed += 1;
    }

    pub fn is_clean(&self) -> bool {
        self.failed == 0
            && self.missed == 0
            && self.false_incidents == 0
            && self.attributed == self.found
            && self.peaks_short == 0
            && self.miscounted == 0
    }

    /// `LABEL: 180 runs, 200 incidents expected, 200 found, 0 missed, 0 false, 200 attributed, watch median
    /// 11 s max 30 s, delay median 76 s max 92 s, onset error median 1 s max 9 s, HR@1 ..., 0.00 false per 100
    /// User-days (41.2 User-days)` (problems with counts, peaks and failures appended when there are any). Watch is when the anomaly was first shown as pending, delay when
    /// the incident opened, both from the true onset.
    pub fn summary_line(&self, label: &str) -> String {
        let mut line = format!(
            "{label}: {} runs, {} incidents expected, {} found, {} missed, {} false, {} attributed, watch {}, delay {}, onset error {}",
            self.runs,
            self.expected,
            self.found,
            self.missed,
            self.false_incidents,
            self.attributed,
            spread(&self.watch_delays_ms),
            spread(&self.delays_ms),
            spread(&self.onset_errors_ms),
        );
        if let Some(rate) = self.hit_rate_at_1() {
            let _ = write!(
                line,
                ", HR@1 {}/{} = {:.3}",
                self.top_hits, self.named, rate
            );
        }
        if let Some(rate) = self.false_per_100_user_days() {
            let _ = write!(
                line,
                ", {rate:.2} false per 100 User-days ({:.1} User-days)",
                self.user_days
            );
        }
        if self.miscounted > 0 {
            let _ = write!(line, ", {} runs miscounted", self.miscounted);
        }
        if self.peaks_short > 0 {
            let _ = write!(line, ", {} peak depths short", self.peaks_short);
        }
        if self.failed > 0 {
            let _ = write!(line, ", {} runs failed", self.failed);
        }
        line
    }
}

/// `median 76 s max 92 s`, or `n/a` without values.
fn spread(values_ms: &[i64]) -> String {
    match (median(values_ms), values_ms.iter().max()) {
        (Some(median), Some(&max)) => {
            format!("median {} s max {} s", seconds(median), seconds(max))
        }
        _ => "n/a".to_owned(),
    }
}

fn seconds(ms: i64) -> String {
    if ms % 1000 == 0 {
        (ms / 1000).to_string()
    } else {
        format!("{:.1}", ms as f64 / 1000.0)
    }
}

/// The median (the lower middle one for an even count, so it is always a value that occurred).
pub fn median(values: &[i64]) -> Option<i64> {
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    sorted.get(sorted.len().saturating_sub(1) / 2).copied()
}

#[cfg(test)]
#[path = "evaluate_tests.rs"]
mod tests;
