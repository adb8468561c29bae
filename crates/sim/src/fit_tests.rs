//! Unit tests of the weight fit: candidates, the score it climbs, and the search on a known optimum.

use super::*;
use crate::evaluate::Match;
use crate::generator::TruthIncident;
use stormwatch_core::incident::{IncidentKind, Verdict};

fn found(right_score: Option<f64>, best_other_score: f64, attributed: bool) -> Match {
    Match {
        truth: TruthIncident {
            user: "90-B3-D5-1F-30-01-00-07".into(),
            kind: IncidentKind::Backlog,
            onset: 0,
            verdict: Verdict::RegisteredChange,
            top_suspect: right_score.map(|_| "CHG-1".to_owned()),
            min_peak_depth: None,
        },
        report_id: "INC-1".into(),
        attributed,
        attribution: String::new(),
        top_right: right_score.map(|right| right > best_other_score),
        peak_ok: true,
        reported_peak: 0,
        delay_ms: 0,
        watch_delay_ms: None,
        onset_error_ms: 0,
        timed: true,
        right_score,
        best_other_score,
    }
}

fn run(matches: Vec<Match>) -> RunScore {
    RunScore {
        matches,
        missed: vec![],
        false_incidents: vec![],
        events: (0, 0),
        malformed: (0, 0),
        user_days: 0.0,
    }
}

#[test]
fn candidates_stay_in_bounds_on_the_grain_and_never_repeat_the_current_value() {
    let weights = weights();
    let dcc_local = weights
        .iter()
        .find(|w| w.name == "relation.dcc_local")
        .unwrap();
    assert_eq!(dcc_local.candidates(0.5), vec![0.3, 0.4, 0.63, 0.75]);
    // At the top bound the upward steps collapse onto 1.0, which is the current value.
    assert_eq!(dcc_local.candidates(1.0), vec![0.6, 0.8]);
    let before = weights
        .iter()
        .find(|w| w.name == "before_window_half_life_s")
        .unwrap();
    assert_eq!(before.candidates(600.0), vec![360.0, 480.0, 780.0, 900.0]);
    assert_eq!(before.candidates(60.0), vec![120.0]);
}

#[test]
fn every_weight_reads_and_writes_its_own_field() {
    for weight in weights() {
        let mut config = CorrelatorConfig::default();
        let before = weight.get(&config);
        let value = weight.candidates(before)[0];
        weight.set(&mut config, value);
        assert_eq!(weight.get(&config), value, "{}", weight.name);
        let others_unchanged = weights()
            .iter()
            .filter(|w| w.name != weight.name)
            .all(|w| w.get(&config) == w.get(&CorrelatorConfig::default()));
        assert!(others_unchanged, "{} wrote another field", weight.name);
    }
}

#[test]
fn the_margin_rewards_clear_calls_caps_them_and_counts_wrong_ones_fully() {
    let runs = [run(vec![
        // Right change at 0.9, next suspect 0.2: margin min(0.7, 0.4) = 0.4, capped at 0.25.
        found(Some(0.9), 0.2, true),
        // Right change at 0.6 just over the threshold 0.5: margin 0.1.
        found(Some(0.6), 0.3, true),
        // Unregistered truth, top suspect 0.45 under the threshold: margin 0.05.
        found(None, 0.45, true),
        // Wrong: another change outranks the right one by 0.3.
        found(Some(0.5), 0.8, false),
    ])];
    let score = FitScore::of(&runs, 0.5);
    assert_eq!((score.found, score.attributed), (4, 3));
    assert_eq!((score.named, score.top_hits), (3, 2));
    assert!(
        (score.margin - (0.25 + 0.1 + 0.05 - 0.3)).abs() < 1e-9,
        "{score:?}"
    );
    assert!(
        score.summary().contains("HR@1 2/3 = 0.667"),
        "{}",
        score.summary()
    );
}

#[test]
fn more_attributed_beats_any_margin_and_ties_keep_the_incumbent() {
    let many = FitScore {
        attributed: 10,
        margin: -3.0,
        ..FitScore::default()
    };
    let fewer = FitScore {
        attributed: 9,
        margin: 2.0,
        ..FitScore::default()
    };
    assert!(many.beats(&fewer));
    assert!(!fewer.beats(&many));
    assert!(!many.beats(&many));
}

#[test]
fn the_search_finds_a_better_value_and_leaves_indifferent_weights_alone() {
    // A made-up sweep whose margin peaks with dcc_local at 0.3 and does not care about anything else.
    let judge = |config: &CorrelatorConfig| -> Result<FitScore, ()> {
        Ok(FitScore {
            found: 1,
            attributed: 1,
            margin: -(config.relation.dcc_local - 0.3).abs(),
            ..FitScore::default()
        })
    };
    let mut heard = 0;
    let fitted = fit(&CorrelatorConfig::default(), 3, judge, |_, _, _| heard += 1).unwrap();
    assert_eq!(fitted.config.relation.dcc_local, 0.3);
    assert_eq!(fitted.steps.len(), 1, "{:?}", fitted.steps);
    assert_eq!(fitted.steps[0].from, 0.5);
    let mut expected = CorrelatorConfig::default();
    expected.relation.dcc_local = 0.3;
    assert_eq!(fitted.config, expected, "only dcc_local may move");
    assert_eq!(fitted.judged, heard + 1);
    assert!(fitted.score.beats(&fitted.start));
    let toml = changed_weights_toml(&fitted.config, &CorrelatorConfig::default());
    assert_eq!(toml, "[engine.correlator]\nrelation.dcc_local = 0.3\n");
}

#[test]
fn a_judge_that_fails_stops_the_search_with_its_error() {
    let mut calls = 0;
    let result = fit(
        &CorrelatorConfig::default(),
        2,
        |_| {
            calls += 1;
            if calls > 3 {
                Err("replay failed")
            } else {
                Ok(FitScore::default())
            }
        },
        |_, _, _| {},
    );
    assert_eq!(result.unwrap_err(), "replay failed");
}
