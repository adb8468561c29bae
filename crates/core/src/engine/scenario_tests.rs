//! Engine-level tests on hand-built per-second traffic: whole incidents from first bad second to verdict.

use super::*;
use crate::changes::{Category, ChangeStatus};
use crate::changes::{ChangeNotice, ChangeOwner, ChangeRegister};
use crate::incident::Verdict;
use crate::telemetry::{Event, EventKind};

const T0: i64 = 1_773_100_800_000;

fn user(n: u64) -> Eui64 {
    Eui64(0x90B3_D51F_3001_0000 + n)
}

/// Per-second traffic of one User: `rate` responses queued; delivered unless `down(second)`.
struct Traffic {
    user: Eui64,
    rate: u64,
    requests: u64,
}

fn run(
    users: &[Traffic],
    seconds: i64,
    down: impl Fn(usize, i64) -> bool,
    changes: ChangeRegister,
) -> Engine {
    run_failing(
        users,
        seconds,
        down,
        changes,
        crate::telemetry::FailureReason::Other,
    )
}

/// [`run`], with the failed deliveries' reason.
fn run_failing(
    users: &[Traffic],
    seconds: i64,
    down: impl Fn(usize, i64) -> bool,
    changes: ChangeRegister,
    reason: crate::telemetry::FailureReason,
) -> Engine {
    let mut engine = Engine::new(EngineConfig::default(), changes);
    let mut waiting = vec![0u64; users.len()];
    for second in 0..seconds {
        let ts = T0 + second * 1000;
        for (index, traffic) in users.iter().enumerate() {
            let mut send = |kind, value| {
                engine
                    .ingest(&Event::new(ts + 100, traffic.user, kind, value))
                    .unwrap()
            };
            send(EventKind::Request, traffic.requests);
            send(EventKind::QueuedResponse, traffic.rate);
            waiting[index] += traffic.rate;
            if down(index, second) {
                let mut failed = Event::new(
                    ts + 100,
                    traffic.user,
                    EventKind::DeliveryFailed,
                    traffic.rate,
                );
                failed.reason = reason;
                engine.ingest(&failed).unwrap();
            } else {
                // A healthy endpoint drains at twice the inbound rate.
                let delivered = waiting[index].min(traffic.rate * 2);
                waiting[index] -= delivered;
                send(EventKind::Delivered, delivered);
            }
        }
    }
    engine.finish();
    engine
}

fn notice(
    id: &str,
    owner: ChangeOwner,
    category: Category,
    start_s: i64,
    end_s: i64,
) -> ChangeNotice {
    let (start, end) = (T0 + start_s * 1000, T0 + end_s * 1000);
    ChangeNotice {
        title: id.to_owned(),
        status: ChangeStatus::InProgress,
        ..ChangeNotice::planned(id, owner, category, start, end)
    }
}

fn population() -> Vec<Traffic> {
    (1..=5)
        .map(|n| Traffic {
            user: user(n),
            rate: 20 * n,
            requests: 20 * n,
        })
        .collect()
}

#[test]
fn firewall_backlog_is_one_incident_with_its_change() {
    let mut changes = ChangeRegister::new();
    changes.upsert(notice(
        "CHG-FW",
        ChangeOwner::User(user(3)),
        Category::Network,
        1_150,
        1_300,
    ));
    changes.upsert(notice(
        "CHG-OTHER",
        ChangeOwner::User(user(1)),
        Category::Network,
        1_150,
        1_300,
    ));
    let engine = run(
        &population(),
        4_800,
        |u, s| u == 2 && (1_200..2_400).contains(&s),
        changes,
    );
    let incidents = engine.incident_records();
    assert_eq!(incidents.len(), 1, "{incidents:#?}");
    let incident = &incidents[0];
    assert_eq!(
        (incident.user.as_str(), incident.kind),
        ("90-B3-D5-1F-30-01-00-03", IncidentKind::Backlog)
    );
    assert!(
        (incident.onset - (T0 + 1_200_000)).abs() <= 5_000,
        "onset {}",
        incident.onset - T0
    );
    assert!(incident.detected - incident.onset <= 90_000);
    assert!(
        incident.peak_depth >= 60 * 1_200 - 200,
        "peak {}",
        incident.peak_depth
    );
    assert!(incident.resolved.is_some());
    assert_eq!(incident.evidence.delivery_state.as_deref(), Some("STALL"));
    assert_eq!(incident.verdict, Verdict::RegisteredChange);
    assert_eq!(incident.suspects[0].change, "CHG-FW");
}

#[test]
fn an_outage_just_under_a_minute_is_still_a_hiccup() {
    // Whatever the failure reason: a TLS or 4xx refusal that clears by itself within a minute is normal life too.
    for reason in crate::telemetry::FailureReason::ALL {
        let engine = run_failing(
            &population(),
            1_800,
            |u, s| u == 4 && (900..959).contains(&s),
            ChangeRegister::new(),
            reason,
        );
        assert!(
            engine.incident_records().is_empty(),
            "{reason:?}: {:#?}",
            engine.incident_records()
        );
    }
}

#[test]
fn a_hiccup_under_a_minute_is_not_an_incident() {
    let engine = run(
        &population(),
        1_800,
        |u, s| u == 4 && (900..950).contains(&s),
        ChangeRegister::new(),
    );
    assert!(
        engine.incident_records().is_empty(),
        "{:#?}",
        engine.incident_records()
    );
}

#[test]
fn everyone_paused_at_once_is_one_common_cause_with_the_dcc_change() {
    let mut changes = ChangeRegister::new();
    changes.upsert(notice(
        "DCC-PM",
        ChangeOwner::Dcc,
        Category::DccMaintenance,
        1_000,
        2_500,
    ));
    let engine = run(
        &population(),
        3_600,
        |_, s| (1_200..2_400).contains(&s),
        changes,
    );
    let incidents = engine.incident_records();
    assert_eq!(incidents.len(), 1, "{incidents:#?}");
    assert_eq!(incidents[0].user, "*");
    assert_eq!(incidents[0].users.len(), 5);
    assert_eq!(incidents[0].verdict, Verdict::DccChange);
    assert!((incidents[0].onset - (T0 + 1_200_000)).abs() <= 10_000);
}

#[test]
fn request_storm_without_a_change_is_unregistered() {
    let mut users = population();
    users.push(Traffic {
        user: user(9),
        rate: 10,
        requests: 10,
    });
    let storm = Traffic {
        user: user(9),
        rate: 0,
        requests: 150,
    };
    let mut engine = Engine::new(EngineConfig::default(), ChangeRegister::new());
    for second in 0..2_400i64 {
        let ts = T0 + second * 1000;
        let requests = if (1_000..1_600).contains(&second) {
            storm.requests
        } else {
            10
        };
        engine
            .ingest(&Event::new(ts, user(9), EventKind::Request, requests))
            .unwrap();
    }
    engine.finish();
    let incidents = engine.incident_records();
    assert_eq!(incidents.len(), 1, "{incidents:#?}");
    assert_eq!(incidents[0].kind, IncidentKind::RequestStorm);
    assert_eq!(incidents[0].onset, T0 + 1_000_000);
    assert!(incidents[0].peak_ratio > 10.0);
    assert_eq!(incidents[0].verdict, Verdict::UnregisteredChangeSuspected);
    let resolved = incidents[0].resolved.unwrap();
    assert!(
        (resolved - (T0 + 1_600_000)).abs() <= 15_000,
        "resolved {}",
        resolved - T0
    );
}

#[test]
fn depth_samples_correct_the_running_sum_and_depth_never_goes_negative() {
    let mut engine = Engine::new(EngineConfig::default(), ChangeRegister::new());
    let u = user(1);
    engine
        .ingest(&Event::new(T0, u, EventKind::Delivered, 500))
        .unwrap();
    engine
        .ingest(&Event::new(T0 + 1_000, u, EventKind::Depth, 40))
        .unwrap();
    engine
        .ingest(&Event::new(T0 + 1_500, u, EventKind::QueuedResponse, 2))
        .unwrap();
    engine
        .ingest(&Event::new(T0 + 20_000, u, EventKind::Request, 1))
        .unwrap();
    engine.finish();
    let window = first_user(&engine).window.clone();
    assert_eq!(window.read(T0 / 1000).depth_end, 0);
    assert_eq!(window.read(T0 / 1000 + 1).depth_end, 42);
}

mod depth_model {
    use super::*;
    use proptest::prelude::*;

    /// Queue movements and samples for one User, one per second, in time order.
    fn step() -> impl Strategy<Value = (EventKind, u64)> {
        prop_oneof![
            (Just(EventKind::QueuedResponse), 1u64..50),
            (Just(EventKind::QueuedAlert), 1u64..50),
            (Just(EventKind::Delivered), 1u64..80),
            (Just(EventKind::Expired), 1u64..20),
            (Just(EventKind::Depth), 0u64..100),
            (Just(EventKind::Request), 1u64..5),
        ]
    }

    proptest! {
        #[test]
        fn depth_follows_the_running_sum_and_samples_and_is_never_negative(steps in proptest::collection::vec(step(), 1..300)) {
            let mut engine = Engine::new(EngineConfig::default(), ChangeRegister::new());
            let id = user(1);
            let mut expected = Vec::new();
            let mut depth: i64 = 0;
            for (second, &(kind, value)) in steps.iter().enumerate() {
                engine.ingest(&Event::new(T0 + second as i64 * 1000, id, kind, value)).unwrap();
                depth = match kind {
                    EventKind::Depth => value as i64,
                    EventKind::QueuedResponse | EventKind::QueuedAlert => depth + value as i64,
                    EventKind::Delivered | EventKind::Expired => (depth - value as i64).max(0),
                    _ => depth,
                };
                expected.push(depth as u64);
            }
            engine.finish();
            let window = first_user(&engine).window.clone();
            for (second, &want) in expected.iter().enumerate() {
                prop_assert_eq!(window.read(T0 / 1000 + second as i64).depth_end, want, "second {}", second);
            }
        }
    }
}

#[test]
fn a_restored_snapshot_continues_exactly_where_the_engine_stopped() {
    let mut changes = ChangeRegister::new();
    changes.upsert(notice(
        "CHG-FW",
        ChangeOwner::User(user(3)),
        Category::Network,
        1_150,
        1_300,
    ));
    let traffic = population();
    let events: Vec<Event> = (0..3_000i64)
        .flat_map(|second| {
            let ts = T0 + second * 1000;
            traffic.iter().enumerate().flat_map(move |(index, t)| {
                let down = index == 2 && (1_200..2_000).contains(&second);
                let outcome = if down {
                    EventKind::DeliveryFailed
                } else {
                    EventKind::Delivered
                };
                [
                    Event::new(ts, t.user, EventKind::QueuedResponse, t.rate),
                    Event::new(ts + 500, t.user, outcome, t.rate),
                ]
            })
        })
        .collect();
    let mut straight = Engine::new(EngineConfig::default(), changes.clone());
    for event in &events {
        straight.ingest(event).unwrap();
    }
    straight.finish();

    // Stop in the middle of the open backlog, as a kill -9 after the last snapshot would.
    let cut = events.len() * 3 / 5;
    let mut first = Engine::new(EngineConfig::default(), changes.clone());
    for event in &events[..cut] {
        first.ingest(event).unwrap();
    }
    assert_eq!(
        first.incident_records().len(),
        1,
        "the backlog is open at the cut"
    );
    let bytes = first.snapshot().unwrap();
    let mut resumed = Engine::restore(&bytes, EngineConfig::default(), changes).unwrap();
    for event in &events[cut..] {
        resumed.ingest(event).unwrap();
    }
    resumed.finish();
    assert_eq!(resumed.incident_records(), straight.incident_records());
    assert_eq!(resumed.stats(), straight.stats());
}

#[test]
fn late_lines_are_counted_and_still_move_the_queue() {
    let mut engine = Engine::new(EngineConfig::default(), ChangeRegister::new());
    let u = user(1);
    engine
        .ingest(&Event::new(T0, u, EventKind::QueuedResponse, 10))
        .unwrap();
    // Network time is established by a line a second (a lone line 20 s ahead would be held as doubtful).
    for second in 1..=20 {
        engine
            .ingest(&Event::new(T0 + second * 1_000, u, EventKind::Request, 1))
            .unwrap();
    }
    // 3 s out of order: within the default 5 s lateness, counts in its own second.
    engine
        .ingest(&Event::new(T0 + 17_000, u, EventKind::Request, 4))
        .unwrap();
    // 15 s late: past the lateness, its second is closed.
    engine
        .ingest(&Event::new(T0 + 5_000, u, EventKind::QueuedResponse, 7))
        .unwrap();
    engine
        .ingest(&Event::new(T0 + 5_000, u, EventKind::Request, 2))
        .unwrap();
    engine.finish();
    assert_eq!(engine.stats().late, 2);
    assert_eq!(engine.stats().events, 24);
    let window = first_user(&engine).window.clone();
    assert_eq!(window.read(T0 / 1000 + 17).get(window::Flow::Requests), 5);
    assert_eq!(
        window.read(T0 / 1000 + 5).get(window::Flow::Requests),
        1,
        "a late line is not counted in a closed second (only the on-time one is)"
    );
    assert_eq!(window.depth(), 17, "but its queue movement is applied");
}

#[test]
fn pruned_incidents_leave_ids_and_open_incidents_untouched() {
    // Two outages of the same User, an hour apart.
    let down =
        |u: usize, s: i64| u == 2 && ((600..900).contains(&s) || (3_000..3_300).contains(&s));
    let engine = run(&population(), 5_000, down, ChangeRegister::new());
    let all = engine.incident_records();
    assert_eq!(
        all.iter().map(|i| i.id.as_str()).collect::<Vec<_>>(),
        ["INC-000001", "INC-000002"]
    );
    let mut engine = engine;
    // Event time is now ~5,000 s; the first closed near 1,000 s, the second near 3,600 s.
    assert_eq!(
        engine.prune_closed(2_000),
        1,
        "only the first closed long enough ago"
    );
    let kept = engine.incident_records();
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0], all[1]);
    assert_eq!(engine.incident_record(1), Some(all[1].clone()));
    assert_eq!(engine.incident_record(0), None);
}

#[test]
fn a_flapping_endpoint_is_one_backlog_dated_from_its_first_outage() {
    // Down 40 s in every 120 s for 30 minutes from second 1,200: no outage lasts a minute.
    let down = |u: usize, s: i64| u == 2 && (1_200..3_000).contains(&s) && (s - 1_200) % 120 < 40;
    let engine = run(&population(), 3_600, down, ChangeRegister::new());
    let incidents = engine.incident_records();
    assert_eq!(incidents.len(), 1, "{incidents:#?}");
    let incident = &incidents[0];
    assert_eq!(incident.kind, IncidentKind::Backlog);
    assert_eq!(incident.user, user(3).to_string());
    assert!(
        (incident.onset - (T0 + 1_200_000)).abs() <= 15_000,
        "onset {} s",
        (incident.onset - T0) / 1000
    );
}

#[test]
fn outages_under_a_minute_minutes_apart_are_still_normal_life() {
    // The same 40 s outages, but 5 minutes apart: hiccups, never an incident.
    let down = |u: usize, s: i64| u == 2 && (1_200..3_000).contains(&s) && (s - 1_200) % 300 < 40;
    let engine = run(&population(), 3_600, down, ChangeRegister::new());
    assert!(engine.incident_records().is_empty());
}

/// Found by the service's security review: 4,096 made-up User IDs filled the table for good. With a directory,
/// unlisted Users are refused as unknown and take no slot, so a listed User always gets in.
#[test]
fn a_user_directory_keeps_made_up_users_from_locking_out_real_ones() {
    let config = EngineConfig {
        max_users: 2,
        ..EngineConfig::default()
    };
    let mut engine = Engine::new(config, ChangeRegister::new());
    let listed: FxHashSet<Eui64> = (0..3).map(user).collect();
    engine.set_directory(Some(listed));
    for n in 1_000..1_100 {
        let refused = engine.ingest(&Event::new(T0, user(n), EventKind::Request, 1));
        assert_eq!(refused, Err(IngestError::UnknownUser(user(n))));
    }
    for n in 0..3 {
        engine
            .ingest(&Event::new(T0, user(n), EventKind::Request, 1))
            .expect("a listed User is always taken");
    }
    // Replay anchors network time on its first lines: Users are created as their held lines are placed.
    engine.finish();
    assert_eq!(engine.user_count(), 3, "the table grew to the directory");
}

fn crowd(users: u64) -> Vec<Traffic> {
    (1..=users)
        .map(|n| Traffic {
            user: user(n),
            rate: 5,
            requests: 5,
        })
        .collect()
}

#[test]
fn twenty_five_of_150_users_failing_in_the_same_second_are_one_incident() {
    // 17 % of Users: under the 30 % share, but far too many to start together by chance.
    let engine = run(
        &crowd(150),
        1_500,
        |u, s| u < 25 && (900..1_300).contains(&s),
        ChangeRegister::new(),
    );
    let incidents = engine.incident_records();
    assert_eq!(incidents.len(), 1, "{incidents:#?}");
    assert_eq!(incidents[0].user, "*");
    assert_eq!(incidents[0].users.len(), 25);
}

#[test]
fn two_coincident_independent_outages_among_150_users_stay_apart() {
    let engine = run(
        &crowd(150),
        1_500,
        |u, s| (u == 3 || u == 77) && (900..1_300).contains(&s),
        ChangeRegister::new(),
    );
    let incidents = engine.incident_records();
    assert_eq!(incidents.len(), 2, "{incidents:#?}");
    assert!(incidents.iter().all(|i| i.user != "*"));
}

#[test]
fn every_failure_reason_keeps_the_one_minute_rule() {
    use crate::telemetry::FailureReason;
    let outage = |u: usize, s: i64| u == 4 && (900..1_500).contains(&s);
    for reason in [
        FailureReason::Tls,
        FailureReason::Http4xx,
        FailureReason::Timeout,
    ] {
        let engine = run_failing(&population(), 1_800, outage, ChangeRegister::new(), reason);
        let incidents = engine.incident_records();
        assert_eq!(incidents.len(), 1, "{reason:?}: {incidents:#?}");
        let delay_s = (incidents[0].detected - (T0 + 900_000)) / 1000;
        assert!(
            (60..=62).contains(&delay_s),
            "{reason:?} opened {delay_s} s after onset"
        );
        // Opening a minute after the onset, the last deliveries before it must not read as "some still succeed".
        assert_eq!(
            incidents[0].evidence.delivery_state.as_deref(),
            Some("STALL"),
            "{reason:?}"
        );
        assert!(
            incidents[0]
                .evidence
                .watched
                .is_some_and(|w| w - (T0 + 900_000) <= 15_000)
        );
    }
}

#[test]
fn a_new_users_models_say_they_are_cold_until_warmed_up_on_its_own_traffic() {
    use crate::engine::baseline::ModelState;
    let config = EngineConfig::default().detectors.baselines;
    let states = |seconds: i64| {
        let engine = run(
            &population()[..1],
            seconds,
            |_, _| false,
            ChangeRegister::new(),
        );
        first_user(&engine).model_states(&config)
    };
    let early = states(200);
    assert!(
        early.iter().all(|(_, state, _)| *state == ModelState::Cold),
        "{early:?}"
    );
    let later = states(900);
    // Requests and queued messages learned; a User that never queued an alert learned that too (zero is normal).
    assert!(
        later
            .iter()
            .all(|(_, state, learned)| *state == ModelState::Level && *learned >= 300),
        "{later:?}"
    );
    assert_eq!(
        later.map(|(flow, _, _)| flow),
        ["requests", "queued_alerts", "queued"]
    );
}

#[test]
fn detectors_snapshotted_before_the_model_load_and_start_cold() {
    use crate::engine::baseline::ModelState;
    // The shape the engine wrote before the model (issue 22): EWMA baselines of `mean` and `seen`.
    let old = r#"{
        "backlog": {"inflow": {"mean": 40.0, "seen": 300}},
        "requests": {"flows": ["Requests", "Requests"], "baseline": {"mean": 20.0, "seen": 300}},
        "rejects": {"requests": {"mean": 20.0, "seen": 300}, "rejected": {"mean": 0.4, "seen": 300}},
        "alerts": {"flows": ["QueuedAlerts", "QueuedAlerts"], "baseline": {"mean": 5.0, "seen": 300}}
    }"#;
    let detectors: crate::engine::user::Detectors = serde_json::from_str(old).unwrap();
    let config = EngineConfig::default().detectors.baselines;
    let cold = |model: &crate::engine::baseline::RateModel| model.state_at(T0 / 1000, &config);
    assert_eq!(cold(detectors.requests.model()), ModelState::Cold);
    assert_eq!(cold(detectors.alerts.model()), ModelState::Cold);
    assert_eq!(cold(detectors.backlog.inflow_model()), ModelState::Cold);
    assert_eq!(detectors.rejects.baseline_share(), 0.0);
}

/// The first User in the table (these tests have one).
fn first_user(engine: &Engine) -> &user::UserState {
    engine.users().next().expect("a User").1
}
