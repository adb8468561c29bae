//! Unit tests of the corpus' scoring rules, on hand-built truths and reports.

use super::*;
use crate::corpus_truth::Allowance;
use crate::evaluate::Totals;
use stormwatch_core::incident::{IncidentKind, Suspect};
use stormwatch_core::report::{Evidence, Summary};

const USER: &str = "00-DB-12-FE-99-BD-9A-81";
const OTHER: &str = "90-B3-D5-AA-16-C6-27-41";
const THIRD: &str = "90-B3-D5-42-84-FA-FA-D1";
const T0: i64 = 1_770_732_210_000;

fn truth_incident(
    user: &str,
    kinds: &[IncidentKind],
    onset: i64,
    change: Option<&str>,
    verdict: Verdict,
) -> CorpusIncident {
    CorpusIncident {
        user: user.to_owned(),
        kinds: kinds.to_vec(),
        onset,
        change: change.map(str::to_owned),
        verdict,
        network_wide_ok: false,
        onset_tolerance_ms: None,
    }
}

fn truth(incidents: Vec<CorpusIncident>) -> CorpusTruth {
    CorpusTruth {
        scenario: "unit".into(),
        valid_lines: 1000,
        malformed: 3,
        incidents,
        allowed: vec![],
        max_incidents_per_user: Default::default(),
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
        detected: onset + 60_000,
        resolved: None,
        peak_depth: 0,
        verdict,
        suspects: top
            .map(|change| Suspect {
                title: String::new(),
                contact: String::new(),
                change: change.to_owned(),
                score: 0.9,
                reasons: vec![],
            })
            .into_iter()
            .collect(),
        peak_rate: 0.0,
        baseline_rate: 0.0,
        peak_ratio: 0.0,
        users: vec![],
        evidence: Evidence {
            watched: Some(onset + 20_000),
            ..Evidence::default()
        },
    }
}

fn report(incidents: Vec<IncidentRecord>) -> Report {
    Report {
        summary: Summary {
            events: 1000,
            malformed: 3,
            late: 0,
            users: 12,
            first_ts: Some(T0),
            last_ts: Some(T0 + 7_200_000),
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

fn ids(records: &[IncidentRecord]) -> Vec<&str> {
    records.iter().map(|r| r.id.as_str()).collect()
}

#[test]
fn any_listed_kind_within_the_tolerance_matches_and_the_earliest_detected_is_judged() {
    let storm = [IncidentKind::RequestStorm, IncidentKind::RejectStorm];
    let mut slow_leak = truth_incident(
        OTHER,
        &[IncidentKind::Backlog],
        T0,
        Some("CHG-2"),
        Verdict::RegisteredChange,
    );
    slow_leak.onset_tolerance_ms = Some(900_000);
    let t = truth(vec![
        truth_incident(USER, &storm, T0, Some("CHG-1"), Verdict::RegisteredChange),
        slow_leak,
        truth_incident(
            THIRD,
            &[IncidentKind::Backlog],
            T0,
            None,
            Verdict::UnregisteredChangeSuspected,
        ),
    ]);
    let mut late_reject = record(
        "INC-2",
        USER,
        IncidentKind::RejectStorm,
        T0 + 170_000,
        Verdict::ExpectedImpact,
        Some("CHG-9"),
    );
    late_reject.detected = T0 + 400_000;
    let r = report(vec![
        late_reject,
        // 179 s early: inside the default 180 s; the earlier detection of the two candidates is judged.
        record(
            "INC-1",
            USER,
            IncidentKind::RequestStorm,
            T0 - 179_000,
            Verdict::RegisteredChange,
            Some("CHG-1"),
        ),
        // 10 minutes late: inside this incident's own 15-minute tolerance.
        record(
            "INC-3",
            OTHER,
            IncidentKind::Backlog,
            T0 + 600_000,
            Verdict::RegisteredChange,
            Some("CHG-2"),
        ),
        // Right User, wrong kind: false, and the truth missed.
        record(
            "INC-4",
            THIRD,
            IncidentKind::AlertStorm,
            T0,
            Verdict::UnregisteredChangeSuspected,
            None,
        ),
    ]);
    let run = score(&t, &r);
    assert_eq!(ids(&run.false_incidents), ["INC-4"]);
    assert_eq!(run.missed.len(), 1);
    assert_eq!(run.missed[0].user, THIRD);
    assert_eq!(run.missed[0].kind, IncidentKind::Backlog);
    let found: Vec<(&str, bool)> = run
        .matches
        .iter()
        .map(|m| (m.report_id.as_str(), m.attributed))
        .collect();
    assert_eq!(found, [("INC-1", true), ("INC-3", true)]);
    assert_eq!(run.matches[0].truth.kind, IncidentKind::RequestStorm);
    assert_eq!(run.matches[0].onset_error_ms, 179_000);
    assert_eq!(run.matches[0].delay_ms, -119_000);
    assert_eq!(run.matches[0].watch_delay_ms, Some(-159_000));
    assert_eq!(run.user_days, 1.0);
    assert!(run.counts_match());
}

#[test]
fn one_network_wide_incident_stands_for_several_and_is_timed_once() {
    let backlog = |user: &str| {
        let mut t = truth_incident(
            user,
            &[IncidentKind::Backlog],
            T0,
            Some("DCC-1"),
            Verdict::DccChange,
        );
        t.network_wide_ok = true;
        t
    };
    let t = truth(vec![backlog(USER), backlog(OTHER), backlog(THIRD)]);
    let r = report(vec![record(
        "INC-7",
        "*",
        IncidentKind::Backlog,
        T0 + 5_000,
        Verdict::DccChange,
        Some("DCC-1"),
    )]);
    let run = score(&t, &r);
    assert!(run.is_clean(), "{:?}", run.problems());
    assert_eq!(run.matches.len(), 3);
    assert_eq!(run.matches.iter().filter(|m| m.timed).count(), 1);
    let mut totals = Totals::default();
    totals.add(&run);
    assert_eq!((totals.found, totals.attributed), (3, 3));
    assert_eq!(totals.delays_ms, [65_000]);
    assert_eq!(totals.onset_errors_ms, [5_000]);
    assert_eq!(totals.hit_rate_at_1(), Some(1.0));

    // A `*` incident the truth does not allow is no match: three missed, one false.
    let mut strict = t.clone();
    for i in &mut strict.incidents {
        i.network_wide_ok = false;
    }
    let run = score(&strict, &r);
    assert_eq!((run.matches.len(), run.missed.len()), (0, 3));
    assert_eq!(ids(&run.false_incidents), ["INC-7"]);
}

#[test]
fn attribution_follows_the_verdict_and_the_named_change() {
    let t = truth(vec![
        truth_incident(
            USER,
            &[IncidentKind::Backlog],
            T0,
            Some("CHG-1"),
            Verdict::RegisteredChange,
        ),
        truth_incident(
            OTHER,
            &[IncidentKind::Backlog],
            T0,
            None,
            Verdict::UnregisteredChangeSuspected,
        ),
    ]);
    let r = report(vec![
        record(
            "INC-1",
            USER,
            IncidentKind::Backlog,
            T0,
            Verdict::RegisteredChange,
            Some("CHG-2"),
        ),
        // No change named: a listed suspect is fine under the unregistered verdict.
        record(
            "INC-2",
            OTHER,
            IncidentKind::Backlog,
            T0,
            Verdict::UnregisteredChangeSuspected,
            Some("CHG-OLD"),
        ),
    ]);
    let run = score(&t, &r);
    assert_eq!(run.attributed(), 1);
    assert!(!run.matches[0].attributed);
    assert_eq!(run.matches[0].attribution, "registered_change CHG-2");
    assert_eq!(run.matches[0].top_right, Some(false));
    assert_eq!(run.matches[1].top_right, None);
    assert!(run.false_incidents.is_empty());
}

#[test]
fn what_is_not_false_and_what_a_user_limit_adds() {
    let mut t = truth(vec![truth_incident(
        USER,
        &[IncidentKind::Backlog],
        T0,
        Some("CHG-1"),
        Verdict::RegisteredChange,
    )]);
    t.allowed = vec![
        Allowance {
            change: Some("CHG-FSC".into()),
            ..Allowance::default()
        },
        Allowance {
            user: Some(THIRD.into()),
            verdict: Some(Verdict::DccChange),
            ..Allowance::default()
        },
        // A User without a verdict allows nothing (as score.py reads it).
        Allowance {
            user: Some(OTHER.into()),
            ..Allowance::default()
        },
    ];
    let later = |id: &str, minutes: i64| {
        record(
            id,
            USER,
            IncidentKind::AlertStorm,
            T0 + minutes * 60_000,
            Verdict::UnregisteredChangeSuspected,
            None,
        )
    };
    let r = report(vec![
        record(
            "INC-1",
            USER,
            IncidentKind::Backlog,
            T0,
            Verdict::RegisteredChange,
            Some("CHG-1"),
        ),
        // A second candidate for the same truth: spent, not false.
        record(
            "INC-2",
            USER,
            IncidentKind::Backlog,
            T0 + 120_000,
            Verdict::RegisteredChange,
            Some("CHG-1"),
        ),
        record(
            "INC-3",
            OTHER,
            IncidentKind::Backlog,
            T0,
            Verdict::ExpectedImpact,
            None,
        ),
        record(
            "INC-4",
            OTHER,
            IncidentKind::Backlog,
            T0,
            Verdict::RegisteredChange,
            Some("CHG-FSC"),
        ),
        record(
            "INC-5",
            THIRD,
            IncidentKind::Backlog,
            T0,
            Verdict::DccChange,
            None,
        ),
        record(
            "INC-6",
            OTHER,
            IncidentKind::Backlog,
            T0,
            Verdict::DccChange,
            None,
        ),
        later("INC-7", 30),
        later("INC-8", 60),
    ]);
    let run = score(&t, &r);
    assert_eq!(ids(&run.false_incidents), ["INC-6", "INC-7", "INC-8"]);

    // USER has four incidents; at most two wanted: two over, both false already (INC-7, INC-8).
    t.max_incidents_per_user.insert(USER.into(), 2);
    assert_eq!(
        ids(&score(&t, &r).false_incidents),
        ["INC-6", "INC-7", "INC-8"]
    );
    // At most one: three over, two false already, so one more: the latest not false yet.
    t.max_incidents_per_user.insert(USER.into(), 1);
    assert_eq!(
        ids(&score(&t, &r).false_incidents),
        ["INC-2", "INC-6", "INC-7", "INC-8"]
    );
    let mut totals = Totals::default();
    totals.add(&score(&t, &r));
    assert_eq!(totals.false_incidents, 4);
    assert_eq!(totals.false_per_100_user_days(), Some(400.0));
}
