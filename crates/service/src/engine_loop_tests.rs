//! The engine loop's rebuild (a Kafka rebalance): fewer Users afterwards, quiet until live, positions covered by
//! snapshots.

use super::*;
use stormwatch_core::engine::EngineConfig;
use stormwatch_core::telemetry::batch::parse_chunk;
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
    engine_loop.apply("kafka:t", SourceKind::Kafka, &batch(&[a, b], t0));
    engine_loop.tick();
    assert_eq!(engine_loop.engine.user_count(), 2);

    engine_loop.rebuild();
    assert!(engine_loop.quiet);
    engine_loop.apply("kafka:t", SourceKind::Kafka, &batch(&[b], t0 + 1_000));
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
        "kafka:t",
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
    assert!(
        moved.is_some_and(|ms| ms >= 9_000),
        "quiet: event time follows the wall clock ({moved:?})"
    );
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
