//! Tests of the calibrated correlator on the cases that fooled a hard-rule one: a slow leak after the User's only
//! change, windows that overran, and other Users' queues backed up by one User's request storm.

use super::*;
use crate::changes::notice::{Category, ChangeStatus};
use crate::changes::test_support::*;
use crate::incident::{IncidentKind, StormNear};
use crate::telemetry::{Eui64, FailureReason};

fn register(notices: Vec<ChangeNotice>) -> ChangeRegister {
    notices.into_iter().collect()
}

fn top(correlation: &Correlation) -> Option<&str> {
    correlation.suspects.first().map(|s| s.change.as_str())
}

fn user(owner: Eui64) -> ChangeOwner {
    ChangeOwner::User(owner)
}

fn in_progress(mut notice: ChangeNotice) -> ChangeNotice {
    notice.status = ChangeStatus::InProgress;
    notice
}

#[test]
fn a_slow_leak_after_the_users_only_change_blames_that_application_change() {
    let upgrade = in_progress(notice(
        "CHG-HANDLER",
        user(SUPPLIER_A),
        Category::Application,
        NINE,
        NINE + 30 * MINUTE,
    ));
    let mut leak = facts(SUPPLIER_A, IncidentKind::Backlog, NINE + 20 * MINUTE);
    leak.failure_reason = Some(FailureReason::Timeout);
    leak.delivering = true;
    let result = correlate(
        &CorrelatorConfig::default(),
        &leak,
        &register(vec![upgrade.clone()]),
    );
    assert_eq!(result.verdict, Verdict::RegisteredChange, "{result:?}");
    assert_eq!(top(&result), Some("CHG-HANDLER"));

    // The same change beside a total outage (nothing delivered) stays ruled out: the fit is evidence, and here it
    // is strong evidence against.
    leak.delivering = false;
    let outage = correlate(
        &CorrelatorConfig::default(),
        &leak,
        &register(vec![upgrade]),
    );
    assert_eq!(outage.verdict, Verdict::UnregisteredChangeSuspected);
}

#[test]
fn a_poor_fit_is_softened_only_for_the_users_only_change_near_the_onset() {
    let app = in_progress(notice(
        "APP",
        user(SUPPLIER_A),
        Category::Application,
        NINE,
        NINE + 30 * MINUTE,
    ));
    let other = in_progress(notice(
        "NET",
        user(SUPPLIER_A),
        Category::Network,
        NINE - 5 * MINUTE,
        NINE + 30 * MINUTE,
    ));
    let backlog = facts(SUPPLIER_A, IncidentKind::Backlog, NINE + 10 * MINUTE);
    let config = CorrelatorConfig::default();
    assert!(only_change_near(&config, &app, &backlog, [&app]));
    assert!(!only_change_near(&config, &app, &backlog, [&app, &other]));
    let alone = judge(&config, &app, &backlog, true).unwrap();
    let crowded = judge(&config, &app, &backlog, false).unwrap();
    assert!(alone.score > crowded.score);
    // A cancelled neighbour is no neighbour.
    let mut cancelled = other.clone();
    cancelled.status = ChangeStatus::Cancelled;
    assert!(only_change_near(
        &config,
        &app,
        &backlog,
        [&app, &cancelled]
    ));
}

#[test]
fn a_window_that_overran_by_minutes_still_explains_the_backlog() {
    let rotation = in_progress(notice(
        "CHG-ROTATE",
        user(SUPPLIER_A),
        Category::Certificate,
        NINE,
        NINE + 30 * MINUTE,
    ));
    // The same User's earlier network change, well before: it must rank lower.
    let earlier = in_progress(notice(
        "CHG-DNS",
        user(SUPPLIER_A),
        Category::Network,
        NINE - 120 * MINUTE,
        NINE - 90 * MINUTE,
    ));
    let mut backlog = facts(SUPPLIER_A, IncidentKind::Backlog, NINE + 42 * MINUTE);
    backlog.failure_reason = Some(FailureReason::Tls);
    let result = correlate(
        &CorrelatorConfig::default(),
        &backlog,
        &register(vec![rotation, earlier]),
    );
    assert_eq!(result.verdict, Verdict::RegisteredChange, "{result:?}");
    assert_eq!(top(&result), Some("CHG-ROTATE"));
    assert!(result.suspects[0].score > 0.7);
}

fn storm_by_a() -> ChangeNotice {
    let mut mdm = in_progress(notice(
        "CHG-MDM",
        user(SUPPLIER_A),
        Category::Application,
        NINE - 10 * MINUTE,
        NINE + 120 * MINUTE,
    ));
    mdm.srvs = vec![srv("4.1.1")];
    mdm
}

#[test]
fn other_users_backlogs_without_failures_blame_the_storming_users_change() {
    let users = [SUPPLIER_C, NETWORK_OPERATOR_B];
    let mut backlog = network_facts(&users, IncidentKind::Backlog, NINE + 2 * MINUTE);
    backlog.delivering = true;
    let register = register(vec![storm_by_a()]);
    let config = CorrelatorConfig::default();

    // Nearby is not enough: without a storm there is no mechanism, and no suspect.
    let unexplained = correlate(&config, &backlog, &register);
    assert_eq!(unexplained.verdict, Verdict::UnregisteredChangeSuspected);
    assert_eq!(top(&unexplained), None);

    backlog.storms = vec![StormNear {
        user: SUPPLIER_A,
        onset_ms: NINE + MINUTE,
    }];
    let result = correlate(&config, &backlog, &register);
    assert_eq!(result.verdict, Verdict::RegisteredChange, "{result:?}");
    assert_eq!(top(&result), Some("CHG-MDM"));
    let reasons = &result.suspects[0].reasons;
    assert!(
        reasons[0].starts_with(&format!(
            "shared DSP capacity: {SUPPLIER_A}'s request storm began 1 min before this backlog"
        )),
        "{reasons:?}"
    );
    assert!(reasons[0].contains("counts for"), "{reasons:?}");

    // Delivery failures mean the Users' own endpoints fail: the storm is no longer a mechanism.
    backlog.failure_reason = Some(FailureReason::Refused);
    let failing = correlate(&config, &backlog, &register);
    assert_eq!(top(&failing), None);
}

#[test]
fn a_storm_long_before_or_well_after_the_backlog_is_no_mechanism() {
    let mut backlog = facts(SUPPLIER_C, IncidentKind::Backlog, NINE + 60 * MINUTE);
    let register = register(vec![storm_by_a()]);
    let config = CorrelatorConfig::default();
    for storm_onset in [NINE + 60 * MINUTE - 2 * 3_600_000, NINE + 70 * MINUTE] {
        backlog.storms = vec![StormNear {
            user: SUPPLIER_A,
            onset_ms: storm_onset,
        }];
        assert_eq!(top(&correlate(&config, &backlog, &register)), None);
    }
}
