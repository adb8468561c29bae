//! Tests of the correlator on the incidents the engine exists for, with decoys, and of its verdicts.

use super::*;
use crate::changes::notice::{Category, ChangeStatus};
use crate::changes::test_support::*;
use crate::incident::{IncidentKind, TrafficDirection};
use crate::telemetry::{AlertCode, Eui64, FailureReason};

fn register(notices: Vec<ChangeNotice>) -> ChangeRegister {
    notices.into_iter().collect()
}

fn ids(correlation: &Correlation) -> Vec<&str> {
    correlation
        .suspects
        .iter()
        .map(|s| s.change.as_str())
        .collect()
}

fn user(owner: Eui64) -> ChangeOwner {
    ChangeOwner::User(owner)
}

#[test]
fn firewall_backlog_is_the_same_users_network_change() {
    let mut firewall = notice(
        "CHG-2026-0042",
        user(SUPPLIER_A),
        Category::Network,
        NINE,
        NINE + 60 * MINUTE,
    );
    firewall.status = ChangeStatus::InProgress;
    let mut backlog = facts(SUPPLIER_A, IncidentKind::Backlog, NINE + 3 * MINUTE);
    backlog.failure_reason = Some(FailureReason::Refused);
    let result = correlate(
        &CorrelatorConfig::default(),
        &backlog,
        &register(vec![firewall]),
    );
    assert_eq!(result.verdict, Verdict::RegisteredChange);
    let top = &result.suspects[0];
    assert_eq!(top.change, "CHG-2026-0042");
    assert_eq!(top.score, 0.9);
    assert_eq!(
        top.reasons,
        [
            "same User",
            "onset 3 min after the window opened",
            "network change fits a delivery failure",
            "in progress",
            "no SRVs to compare",
            "only this User affected",
        ]
    );
}

#[test]
fn a_suppliers_firmware_explains_a_network_operators_alert_storm() {
    let firmware = notice(
        "FW-77",
        user(SUPPLIER_A),
        Category::Device,
        NINE,
        NINE + 120 * MINUTE,
    );
    let unrelated = notice(
        "APP-1",
        user(SUPPLIER_C),
        Category::Application,
        NINE,
        NINE + 120 * MINUTE,
    );
    let mut storm = facts(
        NETWORK_OPERATOR_B,
        IncidentKind::AlertStorm,
        NINE + 20 * MINUTE,
    );
    storm.alert_code = Some(AlertCode::new("AD1"));
    storm.concurrent_users = 2;
    let result = correlate(
        &CorrelatorConfig::default(),
        &storm,
        &register(vec![firmware, unrelated]),
    );
    assert_eq!(result.verdict, Verdict::RegisteredChange);
    assert_eq!(ids(&result), ["FW-77"]);
    assert!(result.suspects[0].reasons[0].contains("power-outage alerts AD1"));
    assert!(result.suspects[0].score >= CorrelatorConfig::default().fit_threshold);
}

#[test]
fn dcc_maintenance_explains_a_network_wide_backlog() {
    let release = notice(
        "DCC-PM-2026-03",
        ChangeOwner::Dcc,
        Category::DccMaintenance,
        NINE,
        NINE + 120 * MINUTE,
    );
    let own = notice(
        "CHG-7",
        user(SUPPLIER_C),
        Category::Network,
        NINE,
        NINE + 60 * MINUTE,
    );
    let users = [SUPPLIER_A, SUPPLIER_C, NETWORK_OPERATOR_B];
    let backlog = network_facts(&users, IncidentKind::Backlog, NINE + 10 * MINUTE);
    let result = correlate(
        &CorrelatorConfig::default(),
        &backlog,
        &register(vec![own, release]),
    );
    assert_eq!(result.verdict, Verdict::DccChange);
    assert_eq!(ids(&result), ["DCC-PM-2026-03", "CHG-7"]);
    assert!(
        result.suspects[0]
            .reasons
            .contains(&"3 Users hit at once fits a DCC-side cause".to_owned())
    );
    assert!(result.suspects[1].score < CorrelatorConfig::default().fit_threshold);
}

#[test]
fn an_unregistered_backlog_is_said_to_be_one_even_with_decoys_about() {
    let onset = NINE + 5 * MINUTE;
    let decoys = vec![
        notice(
            "THEIRS-1",
            user(SUPPLIER_C),
            Category::Network,
            NINE,
            NINE + 60 * MINUTE,
        ),
        notice(
            "THEIRS-2",
            user(NETWORK_OPERATOR_B),
            Category::Certificate,
            NINE,
            NINE + 60 * MINUTE,
        ),
        notice(
            "MY-APP",
            user(SUPPLIER_A),
            Category::Application,
            NINE,
            NINE + 60 * MINUTE,
        ),
        notice(
            "LAST-WEEK",
            user(SUPPLIER_A),
            Category::Network,
            NINE - 7 * 1440 * MINUTE,
            NINE - 7 * 1440 * MINUTE,
        ),
        notice(
            "TOMORROW",
            user(SUPPLIER_A),
            Category::Network,
            NINE + 1440 * MINUTE,
            NINE + 1500 * MINUTE,
        ),
        notice(
            "DCC-NEXT-WEEK",
            ChangeOwner::Dcc,
            Category::DccMaintenance,
            NINE + 10_080 * MINUTE,
            NINE + 10_200 * MINUTE,
        ),
    ];
    let result = correlate(
        &CorrelatorConfig::default(),
        &facts(SUPPLIER_A, IncidentKind::Backlog, onset),
        &register(decoys),
    );
    assert_eq!(result.verdict, Verdict::UnregisteredChangeSuspected);
    // The same User's application change stays listed, with its weak fit said plainly: being the User's only
    // change near the onset softens the penalty, but a total outage is still not what it breaks.
    assert_eq!(ids(&result), ["MY-APP"]);
    assert!(
        result.suspects[0].reasons.contains(
            &"application change rarely causes a delivery failure (counts against), softened: it is the \
              User's only change near the onset"
                .to_owned()
        ),
        "{:?}",
        result.suspects[0].reasons
    );
}

fn campaign(rate_factor: f64) -> ChangeNotice {
    let mut campaign = notice(
        "CHG-2026-0043",
        user(SUPPLIER_A),
        Category::Campaign,
        NINE,
        NINE + 60 * MINUTE,
    );
    campaign.status = ChangeStatus::InProgress;
    campaign.expected = Some(Expected {
        direction: TrafficDirection::ToDsp,
        rate_factor,
    });
    campaign
}

#[test]
fn a_declared_campaign_within_its_rate_is_expected_impact_and_beyond_it_a_registered_change() {
    let mut storm = facts(SUPPLIER_A, IncidentKind::RequestStorm, NINE + 2 * MINUTE);
    storm.peak_ratio = 5.0;
    let result = correlate(
        &CorrelatorConfig::default(),
        &storm,
        &register(vec![campaign(8.0)]),
    );
    assert_eq!(result.verdict, Verdict::ExpectedImpact);
    assert_eq!(
        result.suspects[0].reasons.last().map(String::as_str),
        Some("within the declared 8x to_dsp traffic")
    );

    storm.peak_ratio = 10.0;
    assert_eq!(
        correlate(
            &CorrelatorConfig::default(),
            &storm,
            &register(vec![campaign(8.0)])
        )
        .verdict,
        Verdict::ExpectedImpact,
        "25 % slack"
    );

    storm.peak_ratio = 20.0;
    let result = correlate(
        &CorrelatorConfig::default(),
        &storm,
        &register(vec![campaign(8.0)]),
    );
    assert_eq!(result.verdict, Verdict::RegisteredChange);
    let last = result.suspects[0]
        .reasons
        .last()
        .cloned()
        .unwrap_or_default();
    assert_eq!(last, "peak 20x is beyond the declared 8x to_dsp traffic");
}

#[test]
fn declared_traffic_counts_only_in_its_direction_and_window() {
    let mut alerts = facts(SUPPLIER_A, IncidentKind::AlertStorm, NINE + 2 * MINUTE);
    alerts.peak_ratio = 2.0;
    let mut device = campaign(8.0);
    device.category = Category::Device;
    let result = correlate(
        &CorrelatorConfig::default(),
        &alerts,
        &register(vec![device.clone()]),
    );
    assert_eq!(
        result.verdict,
        Verdict::RegisteredChange,
        "declared to_dsp, the storm is to_user"
    );

    let mut storm = facts(SUPPLIER_A, IncidentKind::RequestStorm, NINE - 2 * MINUTE);
    storm.peak_ratio = 2.0;
    let result = correlate(
        &CorrelatorConfig::default(),
        &storm,
        &register(vec![campaign(8.0)]),
    );
    assert!(result.suspects[0].score >= CorrelatorConfig::default().fit_threshold);
    assert_eq!(
        result.verdict,
        Verdict::RegisteredChange,
        "onset before the declared window"
    );
}

#[test]
fn declared_volume_never_covers_a_reject_storm() {
    let mut rejects = facts(SUPPLIER_A, IncidentKind::RejectStorm, NINE + 2 * MINUTE);
    rejects.peak_ratio = 3.0;
    let mut application = campaign(8.0);
    application.category = Category::Application;
    let result = correlate(
        &CorrelatorConfig::default(),
        &rejects,
        &register(vec![application]),
    );
    assert_eq!(result.verdict, Verdict::RegisteredChange);
    let last = result.suspects[0]
        .reasons
        .last()
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        last,
        "declared 8x to_dsp traffic, which covers volume, not rejections"
    );
}

#[test]
fn a_cancelled_change_scores_low() {
    let mut firewall = notice(
        "CHG-1",
        user(SUPPLIER_A),
        Category::Network,
        NINE,
        NINE + 60 * MINUTE,
    );
    let backlog = facts(SUPPLIER_A, IncidentKind::Backlog, NINE + 3 * MINUTE);
    let planned = correlate(
        &CorrelatorConfig::default(),
        &backlog,
        &register(vec![firewall.clone()]),
    );
    firewall.status = ChangeStatus::Cancelled;
    let cancelled = correlate(
        &CorrelatorConfig::default(),
        &backlog,
        &register(vec![firewall]),
    );
    assert!(cancelled.suspects[0].score < CorrelatorConfig::default().fit_threshold);
    assert!(cancelled.suspects[0].score < planned.suspects[0].score / 4.0);
    assert_eq!(cancelled.verdict, Verdict::UnregisteredChangeSuspected);
}

#[test]
fn suspects_rank_by_score_then_id_and_stop_at_five() {
    let notices: Vec<ChangeNotice> = (0..8)
        .map(|n| {
            notice(
                &format!("CHG-{n}"),
                user(SUPPLIER_A),
                Category::Network,
                NINE,
                NINE + 60 * MINUTE,
            )
        })
        .rev()
        .collect();
    let mut best = notice(
        "CHG-9",
        user(SUPPLIER_A),
        Category::Network,
        NINE,
        NINE + 60 * MINUTE,
    );
    best.status = ChangeStatus::Completed;
    let mut all = notices;
    all.push(best);
    let result = correlate(
        &CorrelatorConfig::default(),
        &facts(SUPPLIER_A, IncidentKind::Backlog, NINE),
        &register(all),
    );
    assert_eq!(ids(&result), ["CHG-9", "CHG-0", "CHG-1", "CHG-2", "CHG-3"]);
    assert_eq!(
        result.suspects.len(),
        CorrelatorConfig::default().max_suspects
    );
}

#[test]
fn an_empty_register_suspects_an_unregistered_change() {
    let result = correlate(
        &CorrelatorConfig::default(),
        &facts(SUPPLIER_A, IncidentKind::RejectStorm, NINE),
        &ChangeRegister::new(),
    );
    assert_eq!(
        result,
        Correlation {
            suspects: vec![],
            verdict: Verdict::UnregisteredChangeSuspected
        }
    );
}

#[test]
fn ratios_print_without_trailing_zeros() {
    assert_eq!(ratio(8.0), "8");
    assert_eq!(ratio(1.5), "1.5");
    assert_eq!(ratio(2.345), "2.35");
    assert_eq!(ratio(10.0), "10");
}
