//! Records copied into blocks, without a broker: each event keeps its record's offset, and malformed lines are
//! quarantined under their record with their line number within it.

use super::*;

const T0: i64 = 1_773_133_200_000;
const A: &str = "90-B3-D5-1F-30-01-00-01";

fn line(ts: i64) -> String {
    format!(
        "{{\"ts\":{},\"user\":\"{A}\",\"event\":\"request\",\"count\":1}}",
        T0 + ts
    )
}

fn source() -> (Source, Receiver<EngineInput>) {
    let (engine, input) = crossbeam::channel::unbounded();
    let mut feeds = Feeds::new(Duration::ZERO);
    feeds.assign(&[Start {
        partition: 3,
        offset: Some(10),
        live_from: None,
    }]);
    let source = Source {
        topic: "t".into(),
        name: Arc::from("kafka:t"),
        filling: FxHashMap::default(),
        feeds,
        engine,
        users: UserPartitions::default(),
        known: FxHashMap::default(),
        live: true,
        published: BTreeSet::new(),
        last_positions: Vec::new(),
        behind: None,
        changed_at: Instant::now(),
    };
    (source, input)
}

/// The malformed lines sent to the engine: (source, line number, bytes).
fn quarantined(input: &Receiver<EngineInput>) -> Vec<(String, u64, String)> {
    input
        .try_iter()
        .filter_map(|message| match message {
            EngineInput::Batch { source, parsed, .. } => Some((source, parsed)),
            _ => None,
        })
        .flat_map(|(source, parsed)| {
            parsed.malformed.into_iter().map(move |m| {
                (
                    source.to_string(),
                    m.line,
                    String::from_utf8_lossy(&m.bytes).into(),
                )
            })
        })
        .collect()
}

#[test]
fn a_block_keeps_each_events_record_and_each_malformed_lines_place_in_its_record() {
    let (mut source, input) = source();
    let r10 = format!("{}\nbad ten\n{}\n", line(1_000), line(2_000));
    let r12 = format!("not json\n\n{}\nalso bad", line(3_000));
    let r14 = line(4_000);
    source.record(3, 10, Some(r10.as_bytes())).unwrap();
    source.record(3, 11, None).unwrap();
    source.record(3, 12, Some(r12.as_bytes())).unwrap();
    source.record(3, 13, Some(b"")).unwrap();
    source.record(3, 14, Some(r14.as_bytes())).unwrap();
    // Not assigned: ignored.
    source.record(4, 0, Some(r14.as_bytes())).unwrap();
    source.flush_all().unwrap();
    assert_eq!(
        quarantined(&input),
        [
            ("kafka:t/3@10".into(), 2, "bad ten".into()),
            ("kafka:t/3@11".into(), 1, String::new()),
            ("kafka:t/3@12".into(), 1, "not json".into()),
            ("kafka:t/3@12".into(), 4, "also bad".into()),
        ]
    );
    assert_eq!(
        source.feeds.waiting(3),
        3,
        "records 10, 12 and 14 hold events, in two blocks (cut by the record without a value)"
    );
    assert_eq!(source.feeds.position(3), Some(10));
    let released = source
        .feeds
        .release(3, Instant::now())
        .expect("three events");
    let times: Vec<i64> = released.events.iter().map(|e| e.ts_ms - T0).collect();
    assert_eq!(times, [1_000, 2_000, 3_000]);
    assert_eq!(released.line_of(2).1, line(3_000).as_bytes());
    // Record 12 is released, record 14 not yet: everything before 14 is.
    assert_eq!(source.feeds.position(3), Some(14));
    assert!(source.feeds.release(10, Instant::now()).is_some());
    assert_eq!(source.feeds.position(3), Some(15));
    assert_eq!(source.known.get(&released.events[0].user), Some(&3));
}

#[test]
fn a_full_block_is_parsed_at_once_and_the_next_reuses_a_spent_one() {
    let (mut source, _input) = source();
    let record = format!("{}\n", line(1_000)).repeat(64);
    let per_block = BLOCK_BYTES.div_ceil(record.len());
    for offset in 0..per_block as i64 {
        source
            .record(3, 10 + offset, Some(record.as_bytes()))
            .unwrap();
    }
    assert_eq!(source.feeds.waiting(3), per_block, "parsed when full");
    while source.feeds.release(BATCH_EVENTS, Instant::now()).is_some() {}
    source
        .record(3, 10 + per_block as i64, Some(record.as_bytes()))
        .unwrap();
    let filling = &source.filling[&3];
    assert!(
        filling.data.capacity() >= BLOCK_BYTES,
        "the released block's buffer is filled again"
    );
}
