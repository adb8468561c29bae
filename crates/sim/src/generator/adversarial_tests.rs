//! The adversarial scenarios' plans: what each promises the engine must get right.

use super::super::{GenOptions, Scenario, layout, population, shape, stream};
use stormwatch_core::changes::ChangeStatus;
use stormwatch_core::incident::{IncidentKind, Verdict};

fn plan(scenario: Scenario, users: usize, seed: u64) -> super::super::plan::Plan {
    let mut options = GenOptions::new("unused");
    options.users = users;
    options.seed = seed;
    options.scenarios = vec![scenario];
    let shape = shape::DailyShape::new();
    let mut people = population::build(users, 1.0, &shape, &mut stream(seed, 1));
    match layout::lay_out(&options, &mut people, &shape, &mut stream(seed, 2)) {
        Ok(plan) => plan,
        Err(error) => panic!("{}: {error}", scenario.name()),
    }
}

#[test]
fn a_reregistered_notice_is_written_twice_and_the_later_times_cover_the_onset() {
    for seed in 1..=3 {
        let plan = plan(Scenario::ReregisteredNotice, 8, seed);
        let truth = &plan.incidents[0].truth;
        let id = truth.top_suspect.clone().unwrap();
        let records: Vec<_> = plan.changes.iter().filter(|c| c.id == id).collect();
        assert_eq!(records.len(), 2);
        let (first, last) = (records[0], records[1]);
        assert!(!first.window_contains(truth.onset));
        assert!(last.window_contains(truth.onset));
        // A cancelled change of the same category sits inside the window: it must not win.
        assert!(
            plan.changes
                .iter()
                .any(|c| c.status == ChangeStatus::Cancelled
                    && c.owner == last.owner
                    && c.window_contains(truth.onset))
        );
    }
}

#[test]
fn an_overrun_window_closed_before_the_onset_it_must_still_explain() {
    let plan = plan(Scenario::OverranWindow, 8, 1);
    let truth = &plan.incidents[0].truth;
    let id = truth.top_suspect.as_deref().unwrap();
    let change = plan.changes.iter().find(|c| c.id == id).unwrap();
    assert!(change.end_ms < truth.onset);
    assert!(truth.onset - change.end_ms <= 15 * 60_000);
}

#[test]
fn shared_capacity_blames_the_storming_users_change_for_one_network_backlog() {
    let plan = plan(Scenario::SharedCapacity, 8, 1);
    let backlog = plan
        .incidents
        .iter()
        .find(|i| i.truth.kind == IncidentKind::Backlog)
        .unwrap();
    assert_eq!(backlog.truth.user, "*");
    assert_eq!(backlog.truth.verdict, Verdict::RegisteredChange);
    let storm = plan
        .incidents
        .iter()
        .find(|i| i.truth.kind == IncidentKind::RequestStorm)
        .unwrap();
    assert_eq!(backlog.truth.top_suspect, storm.truth.top_suspect);
    assert!(backlog.truth.onset > storm.truth.onset);
}

#[test]
fn device_decoys_are_other_suppliers_device_changes_that_lose_on_status_or_time() {
    let plan = plan(Scenario::DeviceDecoys, 8, 1);
    let truth = &plan.incidents[0].truth;
    let devices = plan
        .changes
        .iter()
        .filter(|c| c.category == stormwatch_core::changes::Category::Device)
        .count();
    assert_eq!(devices, 4);
    assert_eq!(truth.kind, IncidentKind::AlertStorm);
}

#[test]
fn large_network_needs_its_users_and_says_so() {
    let mut options = GenOptions::new("unused");
    options.users = 8;
    options.scenarios = vec![Scenario::LargeNetwork];
    let shape = shape::DailyShape::new();
    let mut people = population::build(8, 1.0, &shape, &mut stream(1, 1));
    let error = layout::lay_out(&options, &mut people, &shape, &mut stream(1, 2))
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(error.contains("--users 120"), "{error}");
    assert_eq!(Scenario::LargeNetwork.min_users(), 120);
    let plan = plan(Scenario::LargeNetwork, 120, 1);
    assert_eq!(plan.incidents.len(), 2);
}

#[test]
fn duplicate_lines_ask_for_doubles_and_nothing_else_does() {
    assert!(plan(Scenario::DuplicateLines, 8, 1).duplicates > 0.0);
    assert_eq!(plan(Scenario::CertificateFailure, 8, 1).duplicates, 0.0);
}
