//! Unit tests of change outcomes.
use super::*;
use crate::changes::notice::{Category, ChangeOwner};
use crate::changes::test_support::*;

const HOUR: i64 = 60 * MINUTE;
const GRACE: i64 = HOUR;

fn incident(
    id: &str,
    user: &str,
    verdict: Verdict,
    onset_ms: i64,
    suspects: &[&str],
) -> JudgedIncident {
    JudgedIncident {
        id: id.into(),
        user: user.into(),
        verdict,
        onset_ms,
        detected_ms: onset_ms + 30_000,
        acknowledged_ms: None,
        stored_ms: None,
        suspects: suspects.iter().map(|s| (*s).to_owned()).collect(),
        confirmed: vec![],
        rejected: vec![],
    }
}

fn a() -> String {
    SUPPLIER_A.to_string()
}

#[test]
fn outcomes_follow_the_verdict_the_top_suspect_and_the_operators() {
    let change = notice(
        "CHG-1",
        ChangeOwner::User(SUPPLIER_A),
        Category::Network,
        NINE,
        NINE + HOUR,
    );
    let after = NINE + 3 * HOUR;
    let caused = incident(
        "INC-1",
        &a(),
        Verdict::RegisteredChange,
        NINE + 10 * MINUTE,
        &["CHG-1"],
    );
    let second = incident(
        "INC-2",
        &a(),
        Verdict::RegisteredChange,
        NINE + 10 * MINUTE,
        &["CHG-0", "CHG-1"],
    );
    let declared = incident(
        "INC-3",
        &a(),
        Verdict::ExpectedImpact,
        NINE + 10 * MINUTE,
        &["CHG-1"],
    );
    let unexplained = incident(
        "INC-4",
        &a(),
        Verdict::UnregisteredChangeSuspected,
        NINE,
        &[],
    );
    let outcome = |list: &[JudgedIncident], now| change_outcome(&change, list, now, GRACE);

    let attributed = outcome(&[caused.clone(), second.clone()], after);
    assert_eq!(attributed.outcome, Outcome::Attributed);
    assert_eq!(attributed.attributed, ["INC-1"]);
    assert_eq!(attributed.suspected, ["INC-2"]);
    // Attributed is known at once; everything else waits for the window and the grace to pass.
    assert_eq!(
        outcome(std::slice::from_ref(&caused), NINE + 20 * MINUTE).outcome,
        Outcome::Attributed
    );
    assert_eq!(
        outcome(std::slice::from_ref(&second), NINE + 90 * MINUTE).outcome,
        Outcome::Pending
    );
    assert_eq!(
        outcome(std::slice::from_ref(&second), after).outcome,
        Outcome::Suspected
    );
    assert_eq!(
        outcome(std::slice::from_ref(&declared), after).outcome,
        Outcome::ExpectedImpact
    );
    assert_eq!(
        outcome(std::slice::from_ref(&unexplained), after).outcome,
        Outcome::Clean
    );

    // An operator rejecting the correlator's top suspect clears the change; confirming a lower one convicts it.
    let mut overruled = caused.clone();
    overruled.rejected = vec!["CHG-1".into()];
    assert_eq!(outcome(&[overruled], after).outcome, Outcome::Clean);
    let mut convicted = second.clone();
    convicted.confirmed = vec!["CHG-1".into()];
    assert_eq!(outcome(&[convicted], after).outcome, Outcome::Attributed);
    // Confirming another change demotes the top suspect to suspected.
    let mut elsewhere = caused;
    elsewhere.confirmed = vec!["CHG-9".into()];
    assert_eq!(outcome(&[elsewhere], after).outcome, Outcome::Suspected);

    let mut cancelled = change.clone();
    cancelled.status = ChangeStatus::Cancelled;
    assert_eq!(
        change_outcome(&cancelled, &[], after, GRACE).outcome,
        Outcome::Cancelled
    );
}

#[test]
fn per_owner_figures_over_a_window() {
    let owner = ChangeOwner::User(SUPPLIER_A);
    let other = SUPPLIER_C.to_string();
    let changes = [
        notice("CHG-1", owner, Category::Network, NINE, NINE + HOUR),
        notice(
            "CHG-2",
            owner,
            Category::Certificate,
            NINE + 2 * HOUR,
            NINE + 3 * HOUR,
        ),
        notice(
            "CHG-3",
            owner,
            Category::Endpoint,
            NINE + 4 * HOUR,
            NINE + 5 * HOUR,
        ),
        // Still running at `now`: pending, not in the rate.
        notice(
            "CHG-4",
            owner,
            Category::Network,
            NINE + 9 * HOUR,
            NINE + 11 * HOUR,
        ),
        notice(
            "DCC-1",
            ChangeOwner::Dcc,
            Category::DccMaintenance,
            NINE,
            NINE + HOUR,
        ),
        // Before the window: not counted at all.
        notice(
            "CHG-OLD",
            owner,
            Category::Network,
            NINE - 48 * HOUR,
            NINE - 47 * HOUR,
        ),
    ];
    let mut acked = incident(
        "INC-1",
        &a(),
        Verdict::RegisteredChange,
        NINE + 10 * MINUTE,
        &["CHG-1"],
    );
    // Replayed history: the service stored the incident a year after its event time, and an operator acknowledged
    // it 5 minutes after that. The delay is onset to detection (30 s, event time) plus those 5 minutes (wall
    // clock), not the year between the two clocks.
    let stored = NINE + 365 * 24 * HOUR;
    acked.stored_ms = Some(stored);
    acked.acknowledged_ms = Some(stored + 5 * MINUTE);
    // Acknowledged but with no stored time: not in the acknowledgement medians at all.
    let mut unknown = incident(
        "INC-6",
        &a(),
        Verdict::RegisteredChange,
        NINE + 11 * MINUTE,
        &["CHG-1"],
    );
    unknown.acknowledged_ms = Some(NINE);
    let incidents = [
        acked,
        unknown,
        incident(
            "INC-2",
            &a(),
            Verdict::UnregisteredChangeSuspected,
            NINE + 6 * HOUR,
            &[],
        ),
        incident(
            "INC-3",
            &other,
            Verdict::UnregisteredChangeSuspected,
            NINE + 6 * HOUR,
            &[],
        ),
        incident(
            "INC-4",
            &other,
            Verdict::DccChange,
            NINE + 30 * MINUTE,
            &["DCC-1"],
        ),
        incident(
            "INC-5",
            "*",
            Verdict::DccChange,
            NINE + 30 * MINUTE,
            &["DCC-1"],
        ),
    ];
    let rows = summarize(
        &changes,
        &incidents,
        (NINE - HOUR, NINE + 12 * HOUR),
        NINE + 10 * HOUR,
        GRACE,
    );
    let owners: Vec<&str> = rows.iter().map(|r| r.owner.as_str()).collect();
    assert_eq!(owners, ["*", &a(), &other, "DCC"]);
    let supplier = &rows[1];
    assert_eq!(
        (
            supplier.changes_registered,
            supplier.changes_decided,
            supplier.changes_attributed
        ),
        (4, 3, 1)
    );
    assert_eq!(supplier.change_failure_rate, Some(1.0 / 3.0));
    assert_eq!(
        (supplier.incidents, supplier.unregistered_change_suspected),
        (3, 1)
    );
    assert_eq!(supplier.median_onset_to_detection_s, Some(30.0));
    assert_eq!(supplier.median_detection_to_acknowledgement_s, Some(300.0));
    assert_eq!(supplier.median_onset_to_acknowledgement_s, Some(330.0));
    assert_eq!(supplier.acknowledged, 1);
    let dcc = &rows[3];
    assert_eq!((dcc.changes_decided, dcc.changes_attributed), (1, 1));
    assert_eq!(dcc.change_failure_rate, Some(1.0));
    assert_eq!(rows[2].change_failure_rate, None);
    assert_eq!(rows[2].median_onset_to_acknowledgement_s, None);
    assert_eq!(rows[0].incidents, 1);
}

#[test]
fn medians_take_the_middle_pair_for_even_counts() {
    assert_eq!(median_s(vec![]), None);
    assert_eq!(median_s(vec![3_000, 1_000, 2_000]), Some(2.0));
    assert_eq!(median_s(vec![4_000, 1_000, 2_000, 3_000]), Some(2.5));
}
