//! Unit tests of the scoring, on hand-built truths and reports.

use super::*;
use crate::generator::GeneratorInfo;
use stormwatch_core::incident::{IncidentKind, Suspect, Verdict};
use stormwatch_core::report::{Evidence, Summary};

const USER: &str = "90-B3-D5-1F-30-01-00-07";
const OTHER: &str = "4C-E1-73-00-00-00-11-02";
const T0: i64 = 1_773_137_000_000;

fn truth_incident(
    user: &str,
    kind: IncidentKind,
    onset: i64,
    verdict: Verdict,
    top: Option<&str>,
) -> TruthIncident {
    TruthIncident {
        user: user.to_owned(),
        kind,
        onset,
        verdict,
        top_suspect: top.map(str::to_owned),
        min_peak_depth: None,
    }
}

fn truth(incidents: Vec<TruthIncident>) -> Truth {
    Truth {
        generator: GeneratorInfo {
            seed: 7,
            scenarios: vec![],
            args: "gen --seed 7".into(),
        },
        events: 1000,
        malformed: 3,
        incidents,
    }
}

fn record(
    id: &str,
    user: &str,
    kind: IncidentKind,
    onset: i64,
    verdict: Verdict,
    top: Option<&str>,
) -> IncidentRecord {
    IncidentRecord {
        id: id.to_owned(),
        user: user.to_owned(),
        kind,
        onset,
        detected: onset + 80_000,
        resolved: None,
        peak_depth: 0,
        verdict,
        suspects: top
            .map(|change| Suspect {
                title: String::new(),
                contact: String::new(),
                change: change.to_owned(),
                score: 0.9,
                reasons: vec!["same User".into()],
            })
            .into_iter()
            .collect(),
        peak_rate: 0.0,
        baseline_rate: 0.0,
        peak_ratio: 0.0,
        users: vec![],
        evidence: Evidence::default(),
    }
}

fn report(incidents: Vec<IncidentRecord>) -> Report {
    Report {
        summary: Summary {
            events: 1000,
            malformed: 3,
            late: 0,
            users: 2,
            first_ts: Some(T0),
            last_ts: Some(T0 + 3_600_000),
            elapsed_s: 0.5,
            quarantine: None,
            changes_loaded: 2,
            changes_rejected: vec![],
            out_of_range: 0,
            clock_offsets: vec![],
        },
        incidents,
    }
}

#[test]
fn a_perfect_report_is_clean() {
    let t = truth(vec![
        truth_incident(
            USER,
            IncidentKind::Backlog,
            T0,
            Verdict::RegisteredChange,
            Some("CHG-2026-0042"),
        ),
        truth_incident(
            OTHER,
            IncidentKind::AlertStorm,
            T0 + 600_000,
            Verdict::UnregisteredChangeSuspected,
            None,
        ),
    ]);
    let r = report(vec![
        record(
            "INC-000002",
            OTHER,
            IncidentKind::AlertStorm,
            T0 + 601_000,
            Verdict::UnregisteredChangeSuspected,
            Some("CHG-X"),
        ),
        record(
            "INC-000001",
            USER,
            IncidentKind::Backlog,
            T0 - 2_000,
            Verdict::RegisteredChange,
            Some("CHG-2026-0042"),
        ),
    ]);
    let score = score(&t, &r);
    assert!(score.is_clean(), "{:?}", score.problems());
    assert_eq!(score.expected(), 2);
    assert_eq!(score.attributed(), 2);
    // Sorted by true onset; a null top suspect accepts any suspect.
    assert_eq!(score.matches[0].report_id, "INC-000001");
    assert_eq!(score.matches[0].onset_error_ms, 2_000);
    assert_eq!(score.matches[0].delay_ms, 78_000);
    assert_eq!(score.matches[1].delay_ms, 81_000);
}

#[test]
fn user_kind_and_onset_window_decide_a_match() {
    let t = truth(vec![truth_incident(
        USER,
        IncidentKind::Backlog,
        T0,
        Verdict::RegisteredChange,
        None,
    )]);
    for wrong in [
        record(
            "A",
            OTHER,
            IncidentKind::Backlog,
            T0,
            Verdict::RegisteredChange,
            None,
        ),
        record(
            "B",
            USER,
            IncidentKind::RequestStorm,
            T0,
            Verdict::RegisteredChange,
            None,
        ),
        record(
            "C",
            USER,
            IncidentKind::Backlog,
            T0 + ONSET_TOLERANCE_MS + 1,
            Verdict::RegisteredChange,
            None,
        ),
    ] {
        let score = score(&t, &report(vec![wrong]));
        assert_eq!(
            (
                score.matches.len(),
                score.missed.len(),
                score.false_incidents.len()
            ),
            (0, 1, 1)
        );
        assert!(!score.is_clean());
    }
    let edge = record(
        "D",
        USER,
        IncidentKind::Backlog,
        T0 - ONSET_TOLERANCE_MS,
        Verdict::RegisteredChange,
        None,
    );
    assert!(score(&t, &report(vec![edge])).is_clean());
}

#[test]
fn a_duplicate_report_is_one_match_and_one_false_incident() {
    let t = truth(vec![truth_incident(
        USER,
        IncidentKind::Backlog,
        T0,
        Verdict::RegisteredChange,
        None,
    )]);
    let r = report(vec![
        record(
            "FAR",
            USER,
            IncidentKind::Backlog,
            T0 + 50_000,
            Verdict::RegisteredChange,
            None,
        ),
        record(
            "NEAR",
            USER,
            IncidentKind::Backlog,
            T0 + 5_000,
            Verdict::RegisteredChange,
            None,
        ),
    ]);
    let score = score(&t, &r);
    assert_eq!(score.matches.len(), 1);
    assert_eq!(score.matches[0].report_id, "NEAR");
    assert_eq!(score.false_incidents[0].id, "FAR");
}

#[test]
fn attribution_needs_the_verdict_and_the_named_top_suspect() {
    let t = truth(vec![truth_incident(
        USER,
        IncidentKind::Backlog,
        T0,
        Verdict::RegisteredChange,
        Some("CHG-1"),
    )]);
    let wrong_top = record(
        "A",
        USER,
        IncidentKind::Backlog,
        T0,
        Verdict::RegisteredChange,
        Some("CHG-2"),
    );
    let no_suspect = record(
        "B",
        USER,
        IncidentKind::Backlog,
        T0,
        Verdict::RegisteredChange,
        None,
    );
    let wrong_verdict = record(
        "C",
        USER,
        IncidentKind::Backlog,
        T0,
        Verdict::UnregisteredChangeSuspected,
        Some("CHG-1"),
    );
    for (r, top_right) in [
        (wrong_top, false),
        (no_suspect, false),
        (wrong_verdict, true),
    ] {
        let score = score(&t, &report(vec![r]));
        assert_eq!(score.matches.len(), 1);
        // HR@1 looks at the top suspect only: the wrong verdict still named the right change first.
        assert_eq!(score.matches[0].top_right, Some(top_right));
        assert_eq!(score.attributed(), 0);
        assert!(!score.is_clean());
        assert!(
            score.problems()[0].starts_with("misattributed"),
            "{:?}",
            score.problems()
        );
    }
}

#[test]
fn counts_and_peak_depth_are_checked() {
    let mut t = truth(vec![truth_incident(
        USER,
        IncidentKind::Backlog,
        T0,
        Verdict::RegisteredChange,
        None,
    )]);
    t.incidents[0].min_peak_depth = Some(1_400_000);
    let mut r = report(vec![record(
        "A",
        USER,
        IncidentKind::Backlog,
        T0,
        Verdict::RegisteredChange,
        None,
    )]);
    r.incidents[0].peak_depth = 1_399_999;
    assert_eq!(score(&t, &r).peaks_short(), 1);
    r.incidents[0].peak_depth = 1_500_000;
    assert!(score(&t, &r).is_clean());
    r.summary.malformed = 4;
    let s = score(&t, &r);
    assert!(!s.counts_match() && !s.is_clean());
    assert_eq!(
        s.problems(),
        vec!["malformed: expected 3, report 4".to_owned()]
    );
}

#[test]
fn totals_summarise_runs_in_one_line() {
    let t = truth(vec![
        truth_incident(
            USER,
            IncidentKind::Backlog,
            T0,
            Verdict::RegisteredChange,
            None,
        ),
        truth_incident(
            OTHER,
            IncidentKind::AlertStorm,
            T0,
            Verdict::RegisteredChange,
            None,
        ),
    ]);
    let mut r = report(vec![record(
        "A",
        USER,
        IncidentKind::Backlog,
        T0 + 1_000,
        Verdict::RegisteredChange,
        None,
    )]);
    r.incidents[0].detected = T0 + 76_000;
    r.incidents[0].evidence.watched = Some(T0 + 11_000);
    let mut totals = Totals::default();
    totals.add(&score(&t, &r));
    totals.add(&score(&truth(vec![]), &report(vec![])));
    assert_eq!(
        totals.summary_line("sweep"),
        "sweep: 2 runs, 2 incidents expected, 1 found, 1 missed, 0 false, 1 attributed, \
         watch median 11 s max 11 s, delay median 76 s max 76 s, onset error median 1 s max 1 s, \
         0.00 false per 100 User-days (0.2 User-days)"
    );
    assert!(!totals.is_clean());
    let mut clean = Totals::default();
    clean.add(&score(&truth(vec![]), &report(vec![])));
    assert!(clean.is_clean());
    assert!(clean.summary_line("x").ends_with(
        "watch n/a, delay n/a, onset error n/a, 0.00 false per 100 User-days (0.1 User-days)"
    ));
    clean.add_failure();
    assert!(!clean.is_clean());
    assert!(clean.summary_line("x").ends_with(", 1 runs failed"));
}

#[test]
fn hit_rate_at_1_counts_only_incidents_whose_truth_names_a_change() {
    let t = truth(vec![
        truth_incident(
            USER,
            IncidentKind::Backlog,
            T0,
            Verdict::RegisteredChange,
            Some("CHG-1"),
        ),
        truth_incident(
            OTHER,
            IncidentKind::Backlog,
            T0,
            Verdict::UnregisteredChangeSuspected,
            None,
        ),
    ]);
    let r = report(vec![
        record(
            "A",
            USER,
            IncidentKind::Backlog,
            T0,
            Verdict::RegisteredChange,
            Some("CHG-2"),
        ),
        record(
            "B",
            OTHER,
            IncidentKind::Backlog,
            T0,
            Verdict::UnregisteredChangeSuspected,
            None,
        ),
    ]);
    let mut totals = Totals::default();
    assert_eq!(totals.hit_rate_at_1(), None);
    totals.add(&score(&t, &r));
    assert_eq!((totals.top_hits, totals.named), (0, 1));
    assert_eq!(totals.hit_rate_at_1(), Some(0.0));
    assert!(
        totals
            .summary_line("x")
            .contains(", HR@1 0/1 = 0.000, 0.00 false per 100 User-days")
    );
}

#[test]
fn false_incidents_are_counted_per_100_user_days_of_traffic() {
    let mut totals = Totals::default();
    assert_eq!(totals.false_per_100_user_days(), None);
    // Two Users for a day, one false backlog: 1 per 2 User-days.
    let mut r = report(vec![record(
        "A",
        USER,
        IncidentKind::Backlog,
        T0,
        Verdict::UnregisteredChangeSuspected,
        None,
    )]);
    r.summary.last_ts = Some(T0 + 86_400_000);
    let run = score(&truth(vec![]), &r);
    assert!((run.user_days - 2.0).abs() < 1e-9);
    totals.add(&run);
    assert_eq!(totals.false_per_100_user_days(), Some(50.0));
    assert!(
        totals
            .summary_line("x")
            .ends_with(", 50.00 false per 100 User-days (2.0 User-days)")
    );
    r.summary.first_ts = None;
    assert_eq!(user_days(&r), 0.0);
}

#[test]
fn median_takes_the_lower_middle() {
    assert_eq!(median(&[]), None);
    assert_eq!(median(&[5]), Some(5));
    assert_eq!(median(&[9, 1, 5, 3]), Some(3));
    assert_eq!(median(&[9, 1, 5]), Some(5));
}
