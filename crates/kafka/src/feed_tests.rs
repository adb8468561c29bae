//! Alignment of partitions by event time, without a broker.

use super::*;
use stormwatch_core::telemetry::batch::parse_chunk;
use stormwatch_core::telemetry::framing::Chunk;

fn now() -> Instant {
    Instant::now()
}

/// Event times in the tests are offsets from this (the parser refuses times before 2000).
const T0: i64 = 1_773_133_200_000;

fn record(user: &str, times: &[i64]) -> ParsedChunk {
    let data: String = times
        .iter()
        .map(|ts| ts + T0)
        .map(|ts| {
            format!("{{\"ts\":{ts},\"user\":\"{user}\",\"event\":\"request\",\"count\":1}}\n")
        })
        .collect();
    parse_chunk(
        0,
        Chunk::Lines {
            first_line: 1,
            data: data.into_bytes(),
        },
    )
}

const A: &str = "90-B3-D5-1F-30-01-00-01";
const B: &str = "90-B3-D5-1F-30-01-00-02";

fn two_partitions() -> Feeds {
    let mut feeds = Feeds::new(Duration::ZERO);
    feeds.assign(&[
        Start {
            partition: 0,
            offset: Some(0),
            live_from: None,
        },
        Start {
            partition: 1,
            offset: Some(0),
            live_from: Some(2),
        },
    ]);
    feeds
}

#[test]
fn nothing_is_released_until_every_partition_being_read_has_shown_its_time() {
    let mut feeds = two_partitions();
    feeds.push(0, 0, record(A, &[1_000, 2_000, 9_000]));
    assert_eq!(feeds.ceiling(now()), None);
    assert!(feeds.release(100, now()).is_none());
    feeds.at_end(1, now());
    assert_eq!(feeds.ceiling(now()), Some(T0 + 9_000));
    assert_eq!(feeds.release(100, now()).map(|c| c.events.len()), Some(3));
}

#[test]
fn partitions_are_merged_in_event_time_order_up_to_the_slowest() {
    let mut feeds = two_partitions();
    feeds.push(0, 0, record(A, &[1_000, 5_000, 9_000]));
    feeds.push(1, 0, record(B, &[2_000, 4_000]));
    let released = feeds.release(100, now()).expect("events up to 4 s");
    let times: Vec<i64> = released.events.iter().map(|e| e.ts_ms - T0).collect();
    assert_eq!(times, [1_000, 2_000, 4_000]);
    assert_eq!(
        released.line_of(1).1,
        record(B, &[2_000]).data.trim_ascii_end()
    );
    // Partition 0 still holds its record (partly released); partition 1 is through offset 0 but has not
    // reached its previous owner's commit (offset 2), so only partition 0 may be committed.
    let positions = feeds.positions();
    assert_eq!(positions.len(), 1);
    assert_eq!(positions[0].offset, 0);
    assert_eq!(feeds.position(1), Some(1));
    assert!(!feeds.caught_up(), "partition 1 has not reached offset 2");
    feeds.push(1, 1, record(B, &[6_000]));
    feeds.push(1, 2, record(B, &[10_000]));
    let times: Vec<i64> = feeds
        .release(100, now())
        .expect("up to 9 s")
        .events
        .iter()
        .map(|e| e.ts_ms - T0)
        .collect();
    assert_eq!(times, [5_000, 6_000, 9_000]);
    assert!(feeds.caught_up());
    assert_eq!(feeds.position(0), Some(1));
    let positions = feeds.positions();
    assert_eq!(
        (positions[1].offset, positions[1].event_ms),
        (2, T0 + 6_000)
    );
}

#[test]
fn release_stops_at_the_batch_size_and_resumes_where_it_stopped() {
    let mut feeds = two_partitions();
    feeds.push(0, 0, record(A, &[1_000, 2_000, 3_000]));
    feeds.at_end(1, now());
    assert_eq!(feeds.release(2, now()).map(|c| c.events.len()), Some(2));
    assert_eq!(feeds.waiting(0), 1);
    assert_eq!(feeds.release(2, now()).map(|c| c.events.len()), Some(1));
    assert_eq!(feeds.waiting(0), 0);
    assert!(feeds.release(2, now()).is_none());
}

#[test]
fn a_partition_at_its_end_holds_the_others_for_the_grace_period_only() {
    let mut feeds = Feeds::new(Duration::from_secs(2));
    feeds.assign(&[
        Start {
            partition: 0,
            offset: Some(0),
            live_from: None,
        },
        Start {
            partition: 1,
            offset: Some(0),
            live_from: None,
        },
    ]);
    let t0 = Instant::now();
    feeds.push(0, 0, record(A, &[1_000, 9_000]));
    feeds.push(1, 0, record(B, &[2_000]));
    feeds.at_end(1, t0);
    assert_eq!(feeds.ceiling(t0 + Duration::from_secs(1)), Some(T0 + 2_000));
    assert_eq!(feeds.ceiling(t0 + Duration::from_secs(2)), Some(T0 + 9_000));
    // New data ends the idleness: the partition holds again from its new frontier.
    feeds.push(1, 1, record(B, &[3_000]));
    assert_eq!(feeds.ceiling(t0 + Duration::from_secs(5)), Some(T0 + 3_000));
}

#[test]
fn drained_only_when_every_partition_is_at_its_end_with_nothing_left_to_release() {
    let mut feeds = two_partitions();
    assert!(!feeds.drained(), "nothing fetched yet");
    feeds.push(0, 0, record(A, &[1_000]));
    feeds.at_end(0, now());
    feeds.at_end(1, now());
    assert!(!feeds.drained(), "a record is still held");
    assert!(feeds.release(10, now()).is_some());
    assert!(feeds.drained());
    feeds.push(1, 0, record(B, &[2_000]));
    assert!(
        !feeds.drained(),
        "new data: partition 1 is no longer at its end"
    );
}
