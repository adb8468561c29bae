//! The engine loop's rebuild (a Kafka rebalance): fewer Users afterwards, quiet until live, positions covered by
//! snapshots.

use super::*;
use stormwatch_core::changes::ChangeRegister;
use stormwatch_core::engine::EngineConfig;
use stormwatch_core::telemetry::batch::{ParsedChunk, parse_chunk};
use stormwatch_core::telemetry::framing::Chunk;

#[derive(Default)]
struct Kept {
    snapshots: usize,
}

impl Persistence for Kept {
    fn incident_changed(&mut self, _: &IncidentRecord) {}
    fn save_snapshot(&mut self, _: Vec<u8>) -> bool {
        self.snapshots += 1;
        true
    }
}

fn batch(users: &[&str], ts: i64) -> ParsedChunk {
    let data: String = users
        .iter()
        .map(|u| format!("{{\"ts\":{ts},\"user\":\"{u}\",\"event\":\"request\",\"count\":3}}\n"))
        .collect();
    parse_chunk(
        0,
        Chunk::Lines {
            first_line: 1,
            data: data.into_bytes(),
        },
    )
}

#[test]
fn a_rebuild_with_fewer_users_keeps_publishing_and_snapshots_report_positions() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new(EngineConfig::default(), ChangeRegister::new());
    let (checkpoints, covered) = crossbeam::channel::unbounded();
    let mut engine_loop = EngineLoop::new(
        engine,
        MalformedLog::open(dir.path().join("q.ndjson")),
        Box::new(Kept::default()),
        5_000,
        Duration::from_secs(30),
    )
    .with_checkpoints(checkpoints);
    let t0 = 1_773_133_200_000;
    let (a, b) = ("90-B3-D5-1F-30-01-00-01", "90-B3-D5-1F-30-01-00-02");
    engine_loop.apply(&"kafka:t".into(), SourceKind::Kafka, &batch(&[a, b], t0));
    engine_loop.tick();
    assert_eq!(engine_loop.engine.user_count(), 2);

    engine_loop.rebuild();
    assert!(engine_loop.quiet);
    engine_loop.apply(
        &"kafka:t".into(),
        SourceKind::Kafka,
        &batch(&[b], t0 + 1_000),
    );
    engine_loop.tick();
    assert_eq!(engine_loop.engine.user_count(), 1);

    let position = LogPosition {
        partition: 3,
        offset: 42,
        event_ms: t0 + 1_000,
    };
    engine_loop.positions = vec![position];
    engine_loop.snapshot();
    assert_eq!(covered.try_recv().ok(), Some(vec![position]));
}

#[test]
fn the_idle_clock_waits_while_a_log_source_is_behind() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new(EngineConfig::default(), ChangeRegister::new());
    let mut engine_loop = EngineLoop::new(
        engine,
        MalformedLog::open(dir.path().join("q.ndjson")),
        Box::new(Kept::default()),
        5_000,
        Duration::from_secs(30),
    );
    let t0 = 1_773_133_200_000;
    engine_loop.apply(
        &"kafka:t".into(),
        SourceKind::Kafka,
        &batch(&["90-B3-D5-1F-30-01-00-01"], t0),
    );
    let watermark = engine_loop.engine.watermark_ms();
    // Ten seconds of wall time without an event.
    engine_loop.last_event_wall = Some(wall_ms() - 10_000);
    engine_loop.source_behind = true;
    engine_loop.tick();
    assert_eq!(
        engine_loop.engine.watermark_ms(),
        watermark,
        "a slow fetch is not a quiet network"
    );
    engine_loop.source_behind = false;
    engine_loop.tick();
    let moved = engine_loop
        .engine
        .watermark_ms()
        .zip(watermark)
        .map(|(now, before)| now - before);
    assert_eq!(
        moved,
        Some(6_000),
        "quiet: the open seconds (lateness + 1 s) close by the wall clock, and no more"
    );
}

/// Found by the security review: after a restart, the gap in the data opened a false network-wide backlog.
/// A feed that stops entirely is missing data: event time stops at its open seconds, whatever the wall clock.
#[test]
fn a_feed_that_stops_entirely_does_not_move_event_time_past_its_open_seconds() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new(EngineConfig::default(), ChangeRegister::new());
    let mut engine_loop = EngineLoop::new(
        engine,
        MalformedLog::open(dir.path().join("q.ndjson")),
        Box::new(Kept::default()),
        5_000,
        Duration::from_secs(30),
    );
    let t0 = 1_773_133_200_000;
    engine_loop.apply(
        &"tcp:x".into(),
        SourceKind::Tcp,
        &batch(&["90-B3-D5-1F-30-01-00-01"], t0),
    );
    // An hour of silence.
    engine_loop.last_event_wall = Some(wall_ms() - 3_600_000);
    engine_loop.tick();
    engine_loop.tick();
    assert_eq!(engine_loop.engine.watermark_ms(), Some(t0 + 1_000));
    assert!(engine_loop.engine.open_incidents().is_empty());
}

/// A snapshot the store refuses (read-only or full data dir) makes the service unready until one is saved.
#[test]
fn a_failed_snapshot_shows_in_health_until_one_succeeds() {
    struct Refusing(std::sync::Arc<std::sync::atomic::AtomicBool>);
    impl Persistence for Refusing {
        fn incident_changed(&mut self, _: &IncidentRecord) {}
        fn save_snapshot(&mut self, _: Vec<u8>) -> bool {
            !self.0.load(std::sync::atomic::Ordering::Relaxed)
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let refusing = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let engine = Engine::new(EngineConfig::default(), ChangeRegister::new());
    let mut engine_loop = EngineLoop::new(
        engine,
        MalformedLog::open(dir.path().join("q.ndjson")),
        Box::new(Refusing(refusing.clone())),
        5_000,
        Duration::from_secs(30),
    );
    engine_loop.health.engine_started();
    engine_loop.snapshot();
    let failing: Vec<_> = engine_loop
        .health
        .problems()
        .into_iter()
        .map(|p| p.0)
        .collect();
    assert_eq!(failing, [crate::health::Check::Snapshot]);
    refusing.store(false, std::sync::atomic::Ordering::Relaxed);
    engine_loop.snapshot();
    assert!(engine_loop.health.problems().is_empty());
}

/// Every write of an incident, shared with the test.
#[derive(Clone, Default)]
struct Writes(std::sync::Arc<std::sync::Mutex<Vec<IncidentRecord>>>);

impl Persistence for Writes {
    fn incident_changed(&mut self, record: &IncidentRecord) {
        self.0.lock().unwrap().push(record.clone());
    }
    fn save_snapshot(&mut self, _: Vec<u8>) -> bool {
        true
    }
}

/// One second of a User whose deliveries are refused from second 300 on: its backlog grows 50 a second.
fn backlog_second(t0: i64, second: i64) -> ParsedChunk {
    let (user, ts) = ("90-B3-D5-1F-30-01-00-07", t0 + second * 1000);
    let outcome = if second >= 300 {
        format!(
            r#"{{"ts":{},"user":"{user}","event":"delivery_failed","reason":"refused","count":50}}"#,
            ts + 400
        )
    } else {
        format!(
            r#"{{"ts":{},"user":"{user}","event":"delivered","count":50}}"#,
            ts + 400
        )
    };
    let data = format!(
        "{{\"ts\":{ts},\"user\":\"{user}\",\"event\":\"request\",\"count\":50}}\n{{\"ts\":{},\"user\":\"{user}\",\"event\":\"queued\",\"count\":50}}\n{outcome}\n",
        ts + 200
    );
    parse_chunk(
        0,
        Chunk::Lines {
            first_line: 1,
            data: data.into_bytes(),
        },
    )
}

/// Issue 13: an open incident's record is written again as it grows, but once per tick at most and only when it
/// changed, however many batches arrive in between.
#[test]
fn open_incidents_are_rewritten_once_a_tick_when_they_changed() {
    let dir = tempfile::tempdir().unwrap();
    let writes = Writes::default();
    let engine = Engine::new(EngineConfig::default(), ChangeRegister::new());
    let mut engine_loop = EngineLoop::new(
        engine,
        MalformedLog::open(dir.path().join("q.ndjson")),
        Box::new(writes.clone()),
        5_000,
        Duration::from_secs(30),
    );
    let t0 = 1_773_133_200_000;
    for second in 0..600 {
        engine_loop.apply(
            &"tcp:t".into(),
            SourceKind::Tcp,
            &backlog_second(t0, second),
        );
    }
    let opened = writes.0.lock().unwrap().len();
    assert_eq!(opened, 1, "600 batches, one write: the opening");
    let at_open = writes.0.lock().unwrap()[0].peak_depth;

    engine_loop.tick();
    engine_loop.tick();
    let after_ticks = writes.0.lock().unwrap().clone();
    assert_eq!(
        after_ticks.len(),
        2,
        "the first tick writes the grown record, the second has nothing new"
    );
    let engine_peak = engine_loop.engine.open_incidents()[0].peak_depth;
    assert_eq!(after_ticks[1].peak_depth, engine_peak);
    assert!(engine_peak > at_open, "{at_open} -> {engine_peak}");

    for second in 600..700 {
        engine_loop.apply(
            &"tcp:t".into(),
            SourceKind::Tcp,
            &backlog_second(t0, second),
        );
    }
    engine_loop.tick();
    let last = writes.0.lock().unwrap().clone();
    assert_eq!(last.len(), 3);
    assert_eq!(
        last[2].peak_depth,
        engine_loop.engine.open_incidents()[0].peak_depth
    );
    assert!(last[2].peak_depth >= engine_peak + 99 * 50);
}

/// A rebuild (Kafka rebalance) started a new engine without the User directory: unknown Users got in again.
#[test]
fn a_rebuild_keeps_the_user_directory() {
    let dir = tempfile::tempdir().unwrap();
    let mut engine = Engine::new(EngineConfig::default(), ChangeRegister::new());
    let listed = "90-B3-D5-1F-30-01-00-01";
    engine.set_directory(Some(
        [stormwatch_core::telemetry::Eui64::parse(listed).unwrap()]
            .into_iter()
            .collect(),
    ));
    let mut engine_loop = EngineLoop::new(
        engine,
        MalformedLog::open(dir.path().join("q.ndjson")),
        Box::new(Kept::default()),
        5_000,
        Duration::from_secs(30),
    );
    engine_loop.rebuild();
    let t0 = 1_773_133_200_000;
    engine_loop.apply(
        &"kafka:t".into(),
        SourceKind::Kafka,
        &batch(&[listed, "02-00-00-00-00-00-00-09"], t0),
    );
    engine_loop.tick();
    assert_eq!(engine_loop.engine.user_count(), 1, "only the listed User");
}

/// A fast sender puts many lines of a slow one far behind network time (held, then taken late), while a line far
/// ahead is held and then refused: the refused one is quarantined with its own line number and bytes, however
/// the lines around it settled.
#[test]
fn a_held_line_refused_among_many_released_is_quarantined_whole() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new(EngineConfig::default(), ChangeRegister::new());
    let mut engine_loop = EngineLoop::new(
        engine,
        MalformedLog::open(dir.path().join("q.ndjson")),
        Box::new(Kept::default()),
        5_000,
        Duration::from_secs(30),
    );
    let t0 = 1_773_133_200_000;
    let line = |ts: i64, user: u8| {
        format!(
            "{{\"ts\":{ts},\"user\":\"90-B3-D5-1F-30-01-00-{user:02X}\",\"event\":\"request\",\"count\":3}}\n"
        )
    };
    let chunk = |first_line: u64, data: String| {
        parse_chunk(
            0,
            Chunk::Lines {
                first_line,
                data: data.into_bytes(),
            },
        )
    };
    let fast: String = (0..120).map(|s| line(t0 + s * 1_000, 1)).collect();
    engine_loop.apply(&"tcp:fast".into(), SourceKind::Tcp, &chunk(1, fast));
    // Two minutes behind, except line 53: two days ahead, which nothing explains.
    let mut slow: String = (0..50).map(|s| line(t0 + s * 100, 2)).collect();
    slow.push_str("\n\n");
    slow.push_str(&line(t0 + 2 * 86_400_000, 3));
    slow.extend((50..100).map(|s| line(t0 + s * 100, 2)));
    let outcome = engine_loop.apply(&"tcp:slow".into(), SourceKind::Tcp, &chunk(1, slow));
    assert_eq!(outcome.accepted, 101);
    assert!(
        engine_loop.engine.held_lines() > 50,
        "the slow lines are held"
    );
    // The slow sender stops: a minute on, its lines wait no longer for more of their kind.
    let more: String = (120..200).map(|s| line(t0 + s * 1_000, 1)).collect();
    engine_loop.apply(&"tcp:fast".into(), SourceKind::Tcp, &chunk(121, more));
    assert_eq!(engine_loop.engine.held_lines(), 0);
    let kept = engine_loop.malformed.recent(10);
    assert_eq!(kept.len(), 1, "{kept:?}");
    let record = kept[0].to_string();
    assert!(record.contains("tcp:slow"), "{record}");
    assert!(record.contains("\"line\":53"), "{record}");
    assert!(record.contains("90-B3-D5-1F-30-01-00-03"), "{record}");
    assert_eq!(engine_loop.malformed.total, 1);
}
