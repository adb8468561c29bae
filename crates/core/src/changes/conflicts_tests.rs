//! Unit tests of conflict checking between change notices.
use super::*;
use crate::changes::notice::Expected;
use crate::changes::test_support::*;
use crate::incident::TrafficDirection;
use crate::telemetry::Eui64;

/// 2026-03-10T11:00:00Z: clear of the morning peak and the overnight reads.
const ELEVEN: i64 = NINE + 120 * MINUTE;

fn kinds(found: &[Warning]) -> Vec<WarningKind> {
    found.iter().map(|w| w.kind).collect()
}

fn user(n: u64) -> ChangeOwner {
    ChangeOwner::User(Eui64(0x90B3_D51F_3001_0000 + n))
}

#[test]
fn a_quiet_well_declared_change_raises_nothing() {
    let config = CoordinationConfig::default();
    let change = notice(
        "CHG-1",
        user(1),
        Category::Network,
        ELEVEN,
        ELEVEN + 90 * MINUTE,
    );
    assert_eq!(warnings(&change, [&change], &config), vec![]);
}

#[test]
fn overlapping_dcc_maintenance_and_bcdr_tests_are_told_apart() {
    let config = CoordinationConfig::default();
    let change = notice(
        "CHG-1",
        user(1),
        Category::Network,
        ELEVEN,
        ELEVEN + 90 * MINUTE,
    );
    let mut release = notice(
        "DCC-REL",
        ChangeOwner::Dcc,
        Category::DccMaintenance,
        ELEVEN + 60 * MINUTE,
        ELEVEN + 240 * MINUTE,
    );
    release.title = "DSP release 4.2".into();
    let mut bcdr = notice(
        "DCC-7",
        ChangeOwner::Dcc,
        Category::DccMaintenance,
        ELEVEN - 60 * MINUTE,
        ELEVEN + 10 * MINUTE,
    );
    bcdr.title = "Annual bcdr failover test".into();
    let far = notice(
        "DCC-9",
        ChangeOwner::Dcc,
        Category::DccMaintenance,
        ELEVEN + 600 * MINUTE,
        ELEVEN + 700 * MINUTE,
    );
    let found = warnings(&change, [&release, &bcdr, &far], &config);
    assert_eq!(
        kinds(&found),
        [
            WarningKind::BcdrTestOverlap,
            WarningKind::DccMaintenanceOverlap
        ]
    );
    assert_eq!(found[0].related, ["DCC-7"]);
    assert_eq!(found[1].related, ["DCC-REL"]);
    assert!(
        found[1].message.contains("DSP release 4.2"),
        "{}",
        found[1].message
    );
    // The DCC's own change is not warned about itself, nor about other DCC work.
    assert!(warnings(&release, [&bcdr], &config).is_empty());
}

#[test]
fn cancelled_changes_neither_warn_nor_count() {
    let config = CoordinationConfig::default();
    let mut release = notice(
        "DCC-REL",
        ChangeOwner::Dcc,
        Category::DccMaintenance,
        ELEVEN,
        ELEVEN + 240 * MINUTE,
    );
    release.status = ChangeStatus::Cancelled;
    let change = notice(
        "CHG-1",
        user(1),
        Category::Network,
        ELEVEN,
        ELEVEN + 90 * MINUTE,
    );
    assert!(warnings(&change, [&release], &config).is_empty());
    let mut cancelled = change.clone();
    cancelled.status = ChangeStatus::Cancelled;
    cancelled.end_ms = cancelled.start_ms;
    assert!(warnings(&cancelled, [&release], &config).is_empty());
}

#[test]
fn a_pile_up_counts_concurrent_high_risk_changes_only() {
    let config = CoordinationConfig {
        max_concurrent_high_risk: 3,
        ..CoordinationConfig::default()
    };
    let change = notice(
        "CHG-0",
        user(0),
        Category::Certificate,
        ELEVEN,
        ELEVEN + 120 * MINUTE,
    );
    // Three more high-risk changes overlap the window but only two at any one moment; an application change and
    // a cancelled network change do not count.
    let a = notice(
        "A",
        user(1),
        Category::Network,
        ELEVEN - 30 * MINUTE,
        ELEVEN + 30 * MINUTE,
    );
    let b = notice(
        "B",
        user(2),
        Category::Endpoint,
        ELEVEN + 10 * MINUTE,
        ELEVEN + 50 * MINUTE,
    );
    let c = notice(
        "C",
        user(3),
        Category::Network,
        ELEVEN + 60 * MINUTE,
        ELEVEN + 90 * MINUTE,
    );
    let app = notice(
        "APP",
        user(4),
        Category::Application,
        ELEVEN,
        ELEVEN + 120 * MINUTE,
    );
    let mut gone = notice(
        "GONE",
        user(5),
        Category::Network,
        ELEVEN,
        ELEVEN + 120 * MINUTE,
    );
    gone.status = ChangeStatus::Cancelled;
    assert!(warnings(&change, [&a, &b, &c, &app, &gone], &config).is_empty());
    // A fourth that runs with A and B makes four at once: more than three.
    let d = notice(
        "D",
        user(6),
        Category::Endpoint,
        ELEVEN + 20 * MINUTE,
        ELEVEN + 25 * MINUTE,
    );
    let found = warnings(&change, [&a, &b, &c, &d, &app], &config);
    assert_eq!(kinds(&found), [WarningKind::HighRiskPileUp]);
    assert_eq!(found[0].related, ["A", "B", "D"]);
    assert!(
        found[0].message.starts_with("4 high-risk changes"),
        "{}",
        found[0].message
    );
    // The application change itself is not high-risk: no pile-up warning for it.
    assert!(warnings(&app, [&a, &b, &c, &d, &change], &config).is_empty());
}

#[test]
fn daily_windows_and_short_windows_and_undeclared_impact() {
    let config = CoordinationConfig::default();
    let peak = notice(
        "P",
        user(1),
        Category::Network,
        NINE - 30 * MINUTE,
        NINE + 60 * MINUTE,
    );
    assert_eq!(
        kinds(&warnings(&peak, [], &config)),
        [WarningKind::MorningPeak]
    );
    let midnight = notice(
        "M",
        user(1),
        Category::Network,
        NINE - 10 * 60 * MINUTE,
        NINE - 8 * 60 * MINUTE,
    );
    assert_eq!(
        kinds(&warnings(&midnight, [], &config)),
        [WarningKind::ScheduledReads]
    );
    let short = notice(
        "S",
        user(1),
        Category::Certificate,
        ELEVEN,
        ELEVEN + 5 * MINUTE,
    );
    let found = warnings(&short, [], &config);
    assert_eq!(kinds(&found), [WarningKind::ShortWindow]);
    assert!(found[0].message.contains("5 min"), "{}", found[0].message);
    let mut firmware = notice(
        "F",
        user(1),
        Category::Device,
        ELEVEN,
        ELEVEN + 300 * MINUTE,
    );
    assert_eq!(
        kinds(&warnings(&firmware, [], &config)),
        [WarningKind::UndeclaredImpact]
    );
    firmware.expected = Some(Expected {
        direction: TrafficDirection::ToUser,
        rate_factor: 3.0,
    });
    assert!(warnings(&firmware, [], &config).is_empty());
}

#[test]
fn a_window_ending_before_it_starts_or_spanning_days_does_not_panic() {
    let config = CoordinationConfig::default();
    let long = notice(
        "L",
        user(1),
        Category::Campaign,
        ELEVEN,
        ELEVEN + 30 * 24 * 60 * MINUTE,
    );
    let found = kinds(&warnings(&long, [], &config));
    assert!(
        found.contains(&WarningKind::MorningPeak) && found.contains(&WarningKind::ScheduledReads)
    );
    let odd = notice("O", user(1), Category::Network, i64::MAX - 10, i64::MAX);
    let _ = warnings(&odd, [&long], &config);
    let early = notice("E", user(1), Category::Network, i64::MIN, i64::MIN + 10);
    let _ = warnings(&early, [&long], &config);
}

/// The pile-up peak as it was first written: every candidate moment against every high-risk change (k²).
fn naive_peak<'a>(notice: &ChangeNotice, others: &[&'a ChangeNotice]) -> Vec<&'a ChangeNotice> {
    let risky: Vec<&ChangeNotice> = others
        .iter()
        .copied()
        .filter(|o| is_high_risk(o.category))
        .collect();
    let starts = std::iter::once(notice.start_ms)
        .chain(risky.iter().map(|o| o.start_ms))
        .filter(|&t| notice.window_contains(t));
    let mut peak: Vec<&ChangeNotice> = Vec::new();
    for t in starts {
        let running: Vec<&ChangeNotice> = risky
            .iter()
            .copied()
            .filter(|o| o.window_contains(t))
            .collect();
        if running.len() > peak.len() {
            peak = running;
        }
    }
    peak
}

fn random_register(windows: &[(i64, i64, bool, bool)]) -> ChangeRegister {
    windows
        .iter()
        .enumerate()
        .map(|(n, &(start, length, risky, dcc))| {
            let category = if risky {
                Category::Network
            } else {
                Category::Application
            };
            let owner = if dcc {
                ChangeOwner::Dcc
            } else {
                user(n as u64 % 5)
            };
            notice(
                &format!("CHG-{n}"),
                owner,
                category,
                ELEVEN + start * MINUTE,
                ELEVEN + (start + length) * MINUTE,
            )
        })
        .collect()
}

proptest::proptest! {
    /// The sweep finds the same peak as the k² scan, and warnings through the time index equal warnings read
    /// from every notice of the register.
    #[test]
    fn indexed_warnings_match_the_naive_scan(
        windows in proptest::collection::vec((0_i64..600, 0_i64..240, proptest::bool::ANY, proptest::bool::ANY), 1..40),
    ) {
        let config = CoordinationConfig::default();
        let register = random_register(&windows);
        for judged in register.iter() {
            let others: Vec<&ChangeNotice> = register
                .iter()
                .filter(|o| o.id != judged.id && o.start_ms <= judged.end_ms && judged.start_ms <= o.end_ms)
                .collect();
            let swept: Vec<&str> = peak_high_risk(judged, &others).iter().map(|o| o.id.as_str()).collect();
            let scanned: Vec<&str> = naive_peak(judged, &others).iter().map(|o| o.id.as_str()).collect();
            proptest::prop_assert_eq!(swept, scanned);
            proptest::prop_assert_eq!(
                register_warnings(judged, &register, &config),
                warnings(judged, register.iter(), &config)
            );
        }
    }
}

#[test]
fn thousands_of_overlapping_changes_make_one_bounded_warning_each() {
    let config = CoordinationConfig::default();
    let windows: Vec<(i64, i64, bool, bool)> = (0..2_000)
        .map(|n| (n % 60, 120, true, n % 2 == 0))
        .collect();
    let register = random_register(&windows);
    let judged = register.get("CHG-1").expect("registered");
    let found = register_warnings(judged, &register, &config);
    let pile = found
        .iter()
        .find(|w| w.kind == WarningKind::HighRiskPileUp)
        .expect("a pile-up");
    assert_eq!(pile.related.len(), MAX_RELATED);
    let dcc = found
        .iter()
        .find(|w| w.kind == WarningKind::DccMaintenanceOverlap)
        .expect("DCC overlaps");
    assert_eq!(dcc.related.len(), MAX_RELATED);
    assert!(dcc.message.contains("(1000 in all)"), "{}", dcc.message);
}
