//! The incident chart's tiers and bounds.

use super::*;

fn second(ts_s: i64, depth: u64) -> SeriesPoint {
    SeriesPoint {
        ts: ts_s * 1000,
        step_s: 1,
        seconds: 1,
        depth,
        requests: 5,
        ..SeriesPoint::default()
    }
}

/// Issue 13: the chart vanished a quarter of an hour into a backlog. Two days of seconds keep every tier, the
/// onset's seconds included, within the stated bound.
#[test]
fn two_days_of_seconds_keep_the_onset_and_stay_bounded() {
    let (onset, detected) = (10_000, 10_075);
    let mut series = IncidentSeries::new(onset * 1000, detected * 1000);
    let user = "90-B3-D5-1F-30-01-00-07";
    let index = series.users.len();
    assert!(series.user_mut(user).is_some());
    for s in series.first_second()..detected + 2 * 86_400 {
        series.push(index, second(s, (s - onset).max(0) as u64));
    }
    let (_, points) = &series.charts()[0];
    let steps = |step: u32| points.iter().filter(|p| p.step_s == step).count();
    assert_eq!(
        steps(1) as i64,
        detected + FINE_AFTER_DETECTION_S - series.first_second()
    );
    // Tier edges need not fall on a 10 s boundary: one partial point at each.
    let tens = (TEN_S_UNTIL_S - FINE_AFTER_DETECTION_S) / 10;
    assert!(
        (tens..=tens + 1).contains(&(steps(10) as i64)),
        "{}",
        steps(10)
    );
    assert_eq!(
        steps(60),
        MAX_MINUTE_POINTS + 1,
        "a day of whole minutes and the one filling"
    );
    assert_eq!(
        points[0].ts,
        (onset - BEFORE_ONSET_S) * 1000,
        "the run-up is kept"
    );
    assert!(points.windows(2).all(|w| w[0].ts < w[1].ts), "in order");
    // A minute sums its flows and keeps its deepest queue.
    let last_full = &points[points.len() - 2];
    assert_eq!(last_full.requests, 300);
    assert_eq!(last_full.depth, (last_full.ts / 1000 + 59 - onset) as u64);
}

#[test]
fn a_second_given_twice_counts_once_and_a_network_incident_charts_at_most_ten_users() {
    let mut series = IncidentSeries::new(1_000_000, 1_030_000);
    for n in 0..MAX_USERS + 3 {
        let present = series.user_mut(&format!("U{n}")).is_some();
        assert_eq!(present, n < MAX_USERS);
    }
    let at = series.detected_s + TEN_S_UNTIL_S + 5;
    series.push(0, second(at, 1));
    series.push(0, second(at, 1));
    assert_eq!(series.charts()[0].1[0].requests, 5);
    let text = serde_json::to_string(&series).unwrap();
    let back: IncidentSeries = serde_json::from_str(&text).unwrap();
    assert_eq!(
        back, series,
        "what is stored reads back whole, the point still filling included"
    );
}

/// Found drawing a two-hour backlog: where 10 s points gave way to minutes, a one-second minute point took the
/// same timestamp as the last 10 s point, and the console (summing points by time) drew a spike of twice the
/// depth. Every point has its own time, and the seconds of each are counted once.
#[test]
fn tier_edges_give_each_point_its_own_time_and_count_every_second_once() {
    let (onset, detected) = (10_000, 10_075);
    let mut series = IncidentSeries::new(onset * 1000, detected * 1000);
    series.user_mut("u");
    let end = detected + 7_000;
    for s in series.first_second()..end {
        series.push(0, second(s, (s - onset).max(0) as u64));
    }
    let (_, points) = &series.charts()[0];
    assert!(
        points.windows(2).all(|w| w[0].ts < w[1].ts),
        "one point per time"
    );
    assert!(
        points.windows(2).all(|w| w[0].depth <= w[1].depth),
        "no spike: depth never falls here"
    );
    let requests: u64 = points.iter().map(|p| p.requests).sum();
    assert_eq!(requests as i64, (end - series.first_second()) * 5);
    // The console turns sums into rates by the seconds a point holds, so a partial point is no dip.
    assert!(
        points
            .iter()
            .all(|p| p.requests == 5 * u64::from(p.seconds))
    );
}
