use super::*;
use crate::engine::detect::DRAIN_LOOKBACK_S;
use crate::engine::queue_age::QueueHistory;
use crate::engine::window::FLOWS;

/// One second of a User's queue: messages queued, delivered and failed.
#[derive(Clone, Copy)]
struct Second {
    queued: u64,
    delivered: u64,
    failed: u64,
}

/// Runs the detector over `seconds`, keeping the depth, the oldest message's age and the short windows as the
/// engine does, learning only while nothing is on watch. Returns each second's reading.
fn run(seconds: &[Second]) -> Vec<Reading> {
    let (config, baselines) = (BacklogConfig::default(), BaselineConfig::default());
    let mut detector = BacklogDetector::default();
    let mut history = QueueHistory::default();
    let (mut depth, mut cumulative) = (0u64, 0i64);
    let mut depths = Vec::new();
    let mut readings: Vec<Reading> = Vec::new();
    for (t, s) in seconds.iter().enumerate() {
        depth = (depth + s.queued).saturating_sub(s.delivered);
        cumulative += s.queued as i64;
        history.record(t as i64, cumulative);
        depths.push(depth);
        let from = (t + 1).saturating_sub(SHORT_WINDOW_S as usize);
        let mut short = [0u64; FLOWS];
        for earlier in &seconds[from..=t] {
            short[Flow::QueuedResponses as usize] += earlier.queued;
            short[Flow::Delivered as usize] += earlier.delivered;
            short[Flow::Failed as usize] += earlier.failed;
        }
        let back = |lag: usize| depths[t.saturating_sub(lag)];
        let mut view = UserSecond {
            second: t as i64,
            short,
            depth,
            depth_before: back(SHORT_WINDOW_S as usize),
            depth_recent: back(DRAIN_LOOKBACK_S as usize),
            backlog_age_s: history.oldest_age(depth),
            ..UserSecond::default()
        };
        view.now.flows[Flow::QueuedResponses as usize] = s.queued;
        view.now.flows[Flow::Delivered as usize] = s.delivered;
        view.now.flows[Flow::Failed as usize] = s.failed;
        let learning = !readings.last().is_some_and(|r| r.bad);
        readings.push(detector.observe(&view, learning, &config, &baselines));
    }
    readings
}

/// `seconds` of an endpoint refusing everything: `rate` messages a second queued, none delivered.
fn refusing(rate: u64, seconds: usize) -> impl Iterator<Item = Second> {
    (0..seconds).map(move |_| Second {
        queued: rate,
        delivered: 0,
        failed: rate,
    })
}

/// `rate` messages a second, all delivered within the second but for a little jitter.
fn healthy(rate: u64, seconds: usize) -> Vec<Second> {
    (0..seconds as u64)
        .map(|t| {
            let jitter = (t * 7919 % 5) as i64 - 2;
            let queued = (rate as i64 + jitter).max(0) as u64;
            Second {
                queued,
                delivered: queued,
                failed: 0,
            }
        })
        .collect()
}

#[test]
fn a_healthy_queue_is_never_bad() {
    let readings = run(&healthy(20, 1_800));
    assert!(readings.iter().all(|r| !r.bad));
}

#[test]
fn an_outage_is_bad_from_ten_seconds_and_stays_bad() {
    let mut seconds = healthy(20, 900);
    seconds.extend(refusing(20, 120));
    let readings = run(&seconds);
    let first_bad = readings.iter().position(|r| r.bad).unwrap();
    assert!(
        (905..=912).contains(&first_bad),
        "first bad second {first_bad}"
    );
    assert!(
        readings[first_bad..]
            .iter()
            .all(|r| r.bad && !r.calm && r.may_open)
    );
}

#[test]
fn messages_held_for_retry_after_a_hiccup_are_not_a_backlog() {
    // 30 s of refusals, then new messages flow again while the 600 failed ones wait minutes for their retry.
    let mut seconds = healthy(20, 900);
    seconds.extend(refusing(20, 30));
    seconds.extend(healthy(20, 240));
    // The retries land: the held messages drain over two minutes.
    seconds.extend((0..120).map(|_| Second {
        queued: 20,
        delivered: 25,
        failed: 0,
    }));
    seconds.extend(healthy(20, 300));
    let readings = run(&seconds);
    let bad: Vec<usize> = (0..readings.len()).filter(|&t| readings[t].bad).collect();
    assert!(!bad.is_empty(), "the hiccup itself goes on watch");
    let last_bad = *bad.last().unwrap();
    assert!(
        last_bad < 935,
        "still bad at {last_bad}, after the endpoint answered again at 930"
    );
    // The oldest message does stay old while the held messages wait: that alone is no backlog.
    assert!(readings[1_000..1_100].iter().all(|r| !r.bad && !r.calm));
}

#[test]
fn a_user_gone_silent_is_a_gap_in_the_data_not_a_stall() {
    let mut seconds = healthy(20, 900);
    seconds.extend(refusing(20, 60));
    seconds.extend((0..30).map(|_| Second {
        queued: 0,
        delivered: 0,
        failed: 0,
    }));
    let readings = run(&seconds);
    assert!(readings[950].bad);
    assert!(
        readings[975..].iter().all(|r| !r.bad),
        "no line of any kind for the whole window: unknown, not bad"
    );
}

#[test]
fn a_slow_leak_is_building_once_its_floor_has_risen_minute_after_minute() {
    // 100 messages a second, 2 % never acknowledged: the queue gains 2 a second against a jitter of 2.
    let mut seconds = healthy(100, 900);
    seconds.extend((0..600u64).map(|t| {
        let queued = 100 + t * 7919 % 5 - 2;
        Second {
            queued,
            delivered: queued - 2,
            failed: 0,
        }
    }));
    let readings = run(&seconds);
    let first_bad = readings.iter().position(|r| r.bad).unwrap();
    assert!(
        (900 + 180..900 + 330).contains(&first_bad),
        "first bad second {first_bad}"
    );
    assert!(readings[first_bad..].iter().filter(|r| r.bad).count() > 250);
}

#[test]
fn a_tiny_backlog_waits_but_does_not_open() {
    let mut seconds: Vec<Second> = (0..900u64)
        .map(|t| {
            let one = u64::from(t % 2 == 0);
            Second {
                queued: one,
                delivered: one,
                failed: 0,
            }
        })
        .collect();
    seconds.extend((0..60u64).map(|t| Second {
        queued: u64::from(t % 2 == 0),
        delivered: 0,
        failed: u64::from(t % 2 == 0),
    }));
    let readings = run(&seconds);
    let last = readings.last().unwrap();
    assert!(
        last.bad && !last.may_open,
        "30 stuck messages wait, but do not open an incident"
    );
}

#[test]
fn delivery_state_follows_burrow() {
    assert_eq!(DeliveryState::judge(0, 0), DeliveryState::Stop);
    assert_eq!(DeliveryState::judge(0, 12), DeliveryState::Stall);
    assert_eq!(DeliveryState::judge(5, 12), DeliveryState::Warn);
    assert_eq!(
        BacklogDetector::onset(&UserSecond {
            second: 1_000,
            backlog_age_s: 75,
            ..UserSecond::default()
        }),
        925
    );
}

#[test]
fn a_stray_failure_beside_slowed_deliveries_is_no_failure_reason() {
    use crate::telemetry::FailureReason;
    let mut failures = [0u64; 6];
    failures[FailureReason::Timeout as usize] = 3;
    assert_eq!(failing_reason(&failures, 50_000, 0.01), None);
    failures[FailureReason::Tls as usize] = 900;
    assert_eq!(
        failing_reason(&failures, 50_000, 0.01),
        Some(FailureReason::Tls)
    );
    assert_eq!(failing_reason(&[0; 6], 0, 0.01), None);
}
