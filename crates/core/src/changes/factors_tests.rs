//! Tests of each correlation factor on its own, with hand-built notices and facts.

use super::*;
use crate::changes::test_support::*;
use crate::incident::Affected;

fn close(actual: f64, expected: f64) -> bool {
    (actual - expected).abs() < 1e-9
}

#[test]
fn relation_same_user_dcc_device_path_and_strangers() {
    let backlog = facts(SUPPLIER_A, IncidentKind::Backlog, NINE);
    let own = notice(
        "OWN",
        ChangeOwner::User(SUPPLIER_A),
        Category::Network,
        NINE,
        NINE,
    );
    let (relation_kind, factor) = relation(&CorrelatorConfig::default(), &own, &backlog).unwrap();
    assert_eq!(
        (relation_kind, factor.score, factor.reason.as_str()),
        (Relation::SameUser, 1.0, "same User")
    );

    let dcc = notice(
        "DCC",
        ChangeOwner::Dcc,
        Category::DccMaintenance,
        NINE,
        NINE,
    );
    assert_eq!(
        relation(&CorrelatorConfig::default(), &dcc, &backlog)
            .unwrap()
            .1
            .score,
        0.5
    );
    let mut three = backlog.clone();
    three.concurrent_users = 3;
    assert_eq!(
        relation(&CorrelatorConfig::default(), &dcc, &three)
            .unwrap()
            .1
            .score,
        1.0
    );
    let network = network_facts(&[SUPPLIER_A, SUPPLIER_C], IncidentKind::Backlog, NINE);
    let (relation_kind, factor) = relation(&CorrelatorConfig::default(), &dcc, &network).unwrap();
    assert_eq!((relation_kind, factor.score), (Relation::Dcc, 1.0));
    assert_eq!(
        factor.reason,
        "DCC-led change affects every User; deliveries slowed without failing, as when shared DSP capacity \
         falls (counts for)"
    );

    let stranger = notice(
        "OTHER",
        ChangeOwner::User(SUPPLIER_C),
        Category::Network,
        NINE,
        NINE,
    );
    assert!(relation(&CorrelatorConfig::default(), &stranger, &backlog).is_none());
    let (relation_kind, factor) =
        relation(&CorrelatorConfig::default(), &stranger, &network).unwrap();
    assert_eq!(
        (relation_kind, factor.score),
        (Relation::AmongUsersHit, 0.4)
    );
}

#[test]
fn relation_a_device_change_reaches_another_users_alerts() {
    let firmware = notice(
        "FW",
        ChangeOwner::User(SUPPLIER_A),
        Category::Device,
        NINE,
        NINE,
    );
    let mut storm = facts(NETWORK_OPERATOR_B, IncidentKind::AlertStorm, NINE);
    let (relation_kind, factor) =
        relation(&CorrelatorConfig::default(), &firmware, &storm).unwrap();
    assert_eq!((relation_kind, factor.score), (Relation::DevicePath, 0.9));
    assert!(!factor.reason.contains("AD1"), "{}", factor.reason);
    storm.alert_code = Some(AlertCode::new("AD1"));
    let reason = relation(&CorrelatorConfig::default(), &firmware, &storm)
        .unwrap()
        .1
        .reason;
    assert_eq!(
        reason,
        "device change by 90-B3-D5-1F-30-01-00-07 can cut power to comms hubs and flood another User with \
         power-outage alerts AD1 (known cross-User path)"
    );
    // The path is for alerts only: the same change cannot fill another User's queue by failing deliveries.
    let backlog = facts(NETWORK_OPERATOR_B, IncidentKind::Backlog, NINE);
    assert!(relation(&CorrelatorConfig::default(), &firmware, &backlog).is_none());
}

#[test]
fn timing_inside_before_and_after_the_window() {
    let change = notice(
        "C",
        ChangeOwner::Dcc,
        Category::Network,
        NINE,
        NINE + 60 * MINUTE,
    );
    let at = |onset: i64| timing(&CorrelatorConfig::default(), &change, onset);
    assert_eq!(
        at(NINE + 3 * MINUTE),
        Factor::new(1.0, "onset 3 min after the window opened")
    );
    assert_eq!(at(NINE).reason, "onset as the window opened");
    assert_eq!(at(NINE + 60 * MINUTE).score, 1.0);

    // Before the window: half the score lost every 10 minutes, smoothly, with no cliff.
    let early = at(NINE - 10 * MINUTE);
    assert!(close(early.score, 0.5));
    assert_eq!(
        early.reason,
        "onset 10 min before the window opened: the window may be wrong (counts against)"
    );
    assert!(close(at(NINE - 20 * MINUTE).score, 0.25));
    assert!(at(NINE - 1000).score > 0.99);
    assert!(at(NINE - 10 * 60 * MINUTE).score < 1e-9);

    // After it: a window that overran by minutes leaves a strong suspect; half lost every 56 minutes.
    let end = NINE + 60 * MINUTE;
    assert!(at(end + 1).score > 0.999);
    let overran = at(end + 8 * MINUTE);
    assert!(overran.score > 0.85, "{}", overran.score);
    assert_eq!(
        overran.reason,
        "onset 8 min after the window closed (counts a little against: work often overruns its window)"
    );
    let late = at(end + 56 * MINUTE);
    assert!(close(late.score, 0.5));
    assert_eq!(
        late.reason,
        "onset 56 min after the window closed (counts against)"
    );
    assert!(close(at(end + 112 * MINUTE).score, 0.25));
    // Every step of a minute costs little: no threshold anywhere makes the score jump.
    let mut previous = 1.0;
    for minute in 0..600 {
        let score = at(end + minute * MINUTE).score;
        assert!(
            score <= previous && previous - score < 0.02,
            "minute {minute}"
        );
        previous = score;
    }
}

#[test]
fn category_fit_follows_the_kind_by_category_table() {
    use Category as C;
    use IncidentKind as K;
    let table = [
        (C::Network, K::Backlog, 1.0),
        (C::Certificate, K::Backlog, 1.0),
        (C::Endpoint, K::Backlog, 1.0),
        (C::Network, K::RequestStorm, 0.2),
        (C::Endpoint, K::AlertStorm, 0.2),
        (C::DccMaintenance, K::Backlog, 1.0),
        (C::DccMaintenance, K::RejectStorm, 0.6),
        (C::Application, K::RequestStorm, 1.0),
        (C::Application, K::RejectStorm, 1.0),
        (C::Application, K::Backlog, 0.3),
        (C::Application, K::AlertStorm, 0.2),
        (C::Device, K::AlertStorm, 1.0),
        (C::Device, K::Backlog, 0.2),
        (C::Campaign, K::RequestStorm, 0.9),
        (C::Campaign, K::Backlog, 0.3),
        (C::Other, K::AlertStorm, 0.5),
    ];
    for (category, kind, score) in table {
        let change = notice("C", ChangeOwner::Dcc, category, NINE, NINE);
        let fit = category_fit(
            &CorrelatorConfig::default(),
            &change,
            &facts(SUPPLIER_A, kind, NINE),
            Relation::SameUser,
            false,
        );
        assert_eq!(fit.score, score, "{category:?} x {kind:?}");
    }
    let network = notice("C", ChangeOwner::Dcc, C::Network, NINE, NINE);
    let reason = category_fit(
        &CorrelatorConfig::default(),
        &network,
        &facts(SUPPLIER_A, K::Backlog, NINE),
        Relation::SameUser,
        false,
    )
    .reason;
    assert_eq!(reason, "network change fits a delivery failure");
    let device = notice("C", ChangeOwner::Dcc, C::Device, NINE, NINE);
    let reason = category_fit(
        &CorrelatorConfig::default(),
        &device,
        &facts(SUPPLIER_A, K::Backlog, NINE),
        Relation::SameUser,
        false,
    )
    .reason;
    assert_eq!(
        reason,
        "device change rarely causes a delivery failure (counts against)"
    );
}

#[test]
fn category_fit_is_refined_by_the_delivery_failure_reason() {
    let mut backlog = facts(SUPPLIER_A, IncidentKind::Backlog, NINE);
    let certificate = notice("C", ChangeOwner::Dcc, Category::Certificate, NINE, NINE);
    let network = notice("N", ChangeOwner::Dcc, Category::Network, NINE, NINE);
    backlog.failure_reason = Some(FailureReason::Tls);
    let fit = category_fit(
        &CorrelatorConfig::default(),
        &certificate,
        &backlog,
        Relation::SameUser,
        false,
    );
    assert_eq!(
        fit,
        Factor::new(1.0, "certificate change fits TLS delivery failures")
    );
    assert_eq!(
        category_fit(
            &CorrelatorConfig::default(),
            &network,
            &backlog,
            Relation::SameUser,
            false
        )
        .score,
        0.7
    );
    for reason in [FailureReason::Refused, FailureReason::Timeout] {
        backlog.failure_reason = Some(reason);
        assert_eq!(
            category_fit(
                &CorrelatorConfig::default(),
                &certificate,
                &backlog,
                Relation::SameUser,
                false
            )
            .score,
            0.7
        );
        assert_eq!(
            category_fit(
                &CorrelatorConfig::default(),
                &network,
                &backlog,
                Relation::SameUser,
                false
            )
            .score,
            1.0
        );
    }
    backlog.failure_reason = Some(FailureReason::Http5xx);
    assert_eq!(
        category_fit(
            &CorrelatorConfig::default(),
            &certificate,
            &backlog,
            Relation::SameUser,
            false
        )
        .score,
        1.0
    );
}

#[test]
fn status_scores() {
    let mut change = notice("C", ChangeOwner::Dcc, Category::Network, NINE, NINE);
    let cases = [
        (ChangeStatus::InProgress, 1.0),
        (ChangeStatus::Completed, 1.0),
        (ChangeStatus::Planned, 0.95),
        (ChangeStatus::RolledBack, 0.8),
        (ChangeStatus::Cancelled, 0.2),
    ];
    for (value, score) in cases {
        change.status = value;
        assert_eq!(
            status(&CorrelatorConfig::default(), &change).score,
            score,
            "{value:?}"
        );
    }
    assert_eq!(
        status(&CorrelatorConfig::default(), &change).reason,
        "cancelled, so it should not have happened"
    );
}

#[test]
fn srv_overlap_compares_only_when_both_sides_name_srvs() {
    let mut change = notice("C", ChangeOwner::Dcc, Category::Application, NINE, NINE);
    let mut storm = facts(SUPPLIER_A, IncidentKind::RequestStorm, NINE);
    assert_eq!(
        srv_overlap(&CorrelatorConfig::default(), &change, &storm),
        Factor::new(0.9, "no SRVs to compare")
    );
    storm.srvs = vec![srv("4.1.1"), srv("8.1.1")];
    assert_eq!(
        srv_overlap(&CorrelatorConfig::default(), &change, &storm).score,
        0.9
    );
    change.srvs = vec![srv("8.1.1"), srv("4.1.1")];
    assert_eq!(
        srv_overlap(&CorrelatorConfig::default(), &change, &storm),
        Factor::new(1.0, "SRVs 4.1.1, 8.1.1 in both")
    );
    change.srvs = vec![srv("4.1.1")];
    assert_eq!(
        srv_overlap(&CorrelatorConfig::default(), &change, &storm),
        Factor::new(1.0, "SRV 4.1.1 in both")
    );
    change.srvs = vec![srv("1.1.1")];
    let disjoint = srv_overlap(&CorrelatorConfig::default(), &change, &storm);
    assert_eq!(
        disjoint,
        Factor::new(
            0.6,
            "no SRV in common (change: 1.1.1; traffic: 4.1.1, 8.1.1)"
        )
    );
}

#[test]
fn users_hit_at_once_weighs_against_one_users_change_and_for_the_dccs() {
    let mut incident = facts(SUPPLIER_A, IncidentKind::Backlog, NINE);
    let own =
        |f: &IncidentFacts| users_at_once(&CorrelatorConfig::default(), Relation::SameUser, f);
    assert_eq!(own(&incident), Factor::new(1.0, "only this User affected"));
    assert_eq!(
        users_at_once(&CorrelatorConfig::default(), Relation::Dcc, &incident).score,
        0.6
    );
    incident.concurrent_users = 0;
    assert_eq!(
        own(&incident).score,
        1.0,
        "an unset count means this User alone"
    );

    let expected = [(2, 0.8), (3, 0.65), (4, 0.5), (5, 0.4), (40, 0.4)];
    for (users, score) in expected {
        incident.concurrent_users = users;
        assert!(close(own(&incident).score, score), "{users}");
        assert_eq!(
            users_at_once(
                &CorrelatorConfig::default(),
                Relation::DevicePath,
                &incident
            )
            .score,
            1.0
        );
    }
    incident.concurrent_users = 2;
    assert_eq!(
        own(&incident).reason,
        "2 Users hit at once suggests a common cause"
    );
    assert_eq!(
        users_at_once(&CorrelatorConfig::default(), Relation::Dcc, &incident).reason,
        "only 2 Users hit, where a DCC-side cause usually hits many"
    );
    incident.concurrent_users = 3;
    let dcc = users_at_once(&CorrelatorConfig::default(), Relation::Dcc, &incident);
    assert_eq!(
        dcc,
        Factor::new(1.0, "3 Users hit at once fits a DCC-side cause")
    );

    let network = IncidentFacts {
        concurrent_users: 0,
        ..network_facts(&[SUPPLIER_A, SUPPLIER_C], IncidentKind::Backlog, NINE)
    };
    assert_eq!(network.affected, Affected::Network);
    assert_eq!(users_hit(&network), 2);
    assert_eq!(
        users_at_once(&CorrelatorConfig::default(), Relation::Dcc, &network).score,
        1.0
    );
}

#[test]
fn durations_read_as_a_person_says_them() {
    let cases = [
        (0, "0 s"),
        (44_600, "45 s"),
        (59_400, "59 s"),
        (60_000, "1 min"),
        (3 * MINUTE + 20_000, "3 min"),
        (59 * MINUTE + 40_000, "1 h"),
        (125 * MINUTE, "2 h 5 min"),
        (24 * 60 * MINUTE, "1 d"),
        (28 * 60 * MINUTE + 10 * MINUTE, "1 d 4 h"),
        (-5, "0 s"),
    ];
    for (ms, text) in cases {
        assert_eq!(duration(ms), text, "{ms}");
    }
}
