//! Tests of the engine's write queue: coalescing, its bound, the snapshot's wait, and the writer into a real store.

use std::time::Duration;

use super::*;
use crate::store::tests::{record, temp_store};

fn write(id: &str, peak_depth: u64, resolved: Option<i64>) -> IncidentWrite {
    let mut record = record(id, "90-B3-D5-1F-30-01-00-07", 1_000, resolved);
    record.peak_depth = peak_depth;
    IncidentWrite {
        record,
        extra: None,
    }
}

#[test]
fn repeated_writes_of_an_incident_coalesce_to_the_latest_and_are_counted() {
    let queue = WriteQueue::new(8, Arc::default());
    queue.incident(write("INC-1", 10, None));
    queue.incident(write("INC-2", 5, None));
    queue.incident(write("INC-1", 20, None));
    queue.incident(write("INC-1", 30, Some(9_000)));
    queue.series("INC-1", "{\"a\":1}".into());
    queue.series("INC-1", "{\"a\":2}".into());
    assert_eq!(queue.stats().depth(), 3, "two incidents and one chart wait");
    assert_eq!(queue.stats().coalesced(), 3);

    let batch = queue.take().expect("a batch");
    let ids: Vec<_> = batch
        .incidents
        .iter()
        .map(|w| (w.record.id.as_str(), w.record.peak_depth, w.record.resolved))
        .collect();
    // First-queued order; the final (resolved) state of INC-1 is what goes to the store.
    assert_eq!(ids, [("INC-1", 30, Some(9_000)), ("INC-2", 5, None)]);
    assert_eq!(batch.series, [("INC-1".to_owned(), "{\"a\":2}".to_owned())]);
    assert_eq!(queue.stats().depth(), 0);
    assert_eq!(queue.stats().oldest_age(), Duration::ZERO);

    // A write after the take is a new one, not coalesced into the batch being written.
    queue.incident(write("INC-1", 40, Some(9_000)));
    assert_eq!(queue.stats().coalesced(), 3);
    assert_eq!(
        queue.take().expect("a batch").incidents[0]
            .record
            .peak_depth,
        40
    );
}

#[test]
fn a_chart_being_written_is_still_the_newest_one_until_written() {
    let queue = WriteQueue::new(8, Arc::default());
    queue.series("INC-1", "v1".into());
    assert_eq!(queue.unwritten_series("INC-1").as_deref(), Some("v1"));
    let _batch = queue.take().expect("a batch");
    assert_eq!(queue.unwritten_series("INC-1").as_deref(), Some("v1"));
    queue.series("INC-1", "v2".into());
    assert_eq!(queue.unwritten_series("INC-1").as_deref(), Some("v2"));
    queue.written(true);
    assert_eq!(queue.unwritten_series("INC-1").as_deref(), Some("v2"));
    let _ = queue.take();
    queue.written(true);
    assert_eq!(queue.unwritten_series("INC-1"), None);
}

#[test]
fn a_full_queue_makes_only_a_new_key_wait_and_counts_the_wait() {
    let queue = Arc::new(WriteQueue::new(2, Arc::default()));
    queue.incident(write("INC-1", 1, None));
    queue.incident(write("INC-2", 1, None));
    // Repeats of waiting keys never wait, however full the queue.
    queue.incident(write("INC-1", 2, None));
    assert_eq!(queue.stats().engine_waits(), 0);

    let engine = {
        let queue = queue.clone();
        std::thread::spawn(move || queue.incident(write("INC-3", 1, None)))
    };
    std::thread::sleep(Duration::from_millis(100));
    assert!(!engine.is_finished(), "a third key waits for room");
    let first = queue.take().expect("a batch");
    assert_eq!(first.incidents.len(), 2);
    engine.join().unwrap();
    assert_eq!(queue.stats().engine_waits(), 1);
    assert!(queue.stats().engine_waited() >= Duration::from_millis(50));
    assert_eq!(
        queue.take().expect("a batch").incidents[0].record.id,
        "INC-3"
    );
}

#[test]
fn the_snapshot_waits_for_its_own_write_and_reports_whether_it_was_saved() {
    let queue = Arc::new(WriteQueue::new(8, Arc::default()));
    queue.incident(write("INC-1", 1, None));
    let engine = {
        let queue = queue.clone();
        std::thread::spawn(move || queue.snapshot(vec![1, 2, 3], Duration::from_secs(60)))
    };
    let batch = loop {
        let batch = queue.take().expect("a batch");
        if batch.snapshot.is_some() {
            break batch;
        }
        queue.written(true);
    };
    assert_eq!(batch.snapshot.as_deref(), Some(&[1u8, 2, 3][..]));
    assert!(!engine.is_finished(), "not answered before it is written");
    queue.written(false);
    assert_eq!(
        engine.join().unwrap(),
        SnapshotOutcome::Failed,
        "a failed write is not durable"
    );
    assert_eq!(queue.stats().engine_waits(), 1);
}

#[test]
fn the_writer_puts_every_final_state_in_the_store_while_the_engine_never_waits() {
    let (_dir, store) = temp_store();
    store.set_fault_slow_writes(Duration::from_millis(50));
    let queue = Arc::new(WriteQueue::new(64, Arc::default()));
    let writer = {
        let (queue, store) = (queue.clone(), store.clone());
        std::thread::spawn(move || {
            while let Some(batch) = queue.take() {
                let applied = store.write_engine_batch(batch).unwrap();
                assert!(applied.incidents.iter().all(Result::is_ok));
                queue.written(applied.snapshot.is_none_or(|s| s.is_ok()));
            }
        })
    };
    // An engine ticking faster than the store writes: many versions of a few incidents.
    for version in 1..=200u64 {
        for id in ["INC-1", "INC-2", "INC-3"] {
            let resolved = (version == 200).then_some(5_000);
            queue.incident(write(id, version, resolved));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(queue.stats().engine_waits(), 0, "the engine never waited");
    assert!(queue.stats().coalesced() > 0);
    assert_eq!(
        queue.snapshot(vec![7], Duration::from_secs(60)),
        SnapshotOutcome::Saved
    );
    queue.close();
    writer.join().unwrap();
    for id in ["INC-1", "INC-2", "INC-3"] {
        let stored = store.get_incident(id.into()).unwrap().expect("stored");
        assert_eq!(stored.record.peak_depth, 200, "{id}: the last version");
        assert_eq!(stored.record.resolved, Some(5_000), "{id}: its final state");
    }
    assert_eq!(store.load_snapshot().unwrap(), Some(vec![7]));
}

#[test]
fn the_engines_writes_go_before_other_writes_already_waiting() {
    let (_dir, store) = temp_store();
    store.set_fault_slow_writes(Duration::from_millis(300));
    let order = Arc::new(Mutex::new(Vec::new()));
    let probes: Vec<_> = (0..4)
        .map(|_| {
            let (store, order) = (store.clone(), order.clone());
            std::thread::spawn(move || {
                store.probe_write().unwrap();
                order.lock().unwrap().push("probe");
            })
        })
        .collect();
    // The first probe is being written and the other three wait when the engine's batch comes.
    std::thread::sleep(Duration::from_millis(150));
    let batch = Batch {
        incidents: vec![write("INC-1", 1, None)],
        ..Batch::default()
    };
    let applied = store.write_engine_batch(batch).unwrap();
    assert!(applied.incidents[0].is_ok());
    order.lock().unwrap().push("engine");
    for probe in probes {
        probe.join().unwrap();
    }
    let order = order.lock().unwrap();
    assert_eq!(
        order.iter().position(|&job| job == "engine"),
        Some(1),
        "behind the write in progress only: {order:?}"
    );
}

#[test]
fn a_snapshot_the_busy_writer_does_not_take_in_time_is_withdrawn_but_one_taken_is_waited_for() {
    let queue = Arc::new(WriteQueue::new(8, Arc::default()));
    queue.incident(write("INC-1", 1, None));
    // Nobody takes it: withdrawn after the patience, the incident still queued.
    let outcome = queue.snapshot(vec![1], Duration::from_millis(100));
    assert_eq!(outcome, SnapshotOutcome::Withdrawn);
    assert_eq!(queue.stats().depth(), 1);
    let batch = queue.take().expect("a batch");
    assert!(
        batch.snapshot.is_none(),
        "a withdrawn snapshot is not written"
    );
    assert_eq!(batch.incidents.len(), 1);
    queue.written(true);

    // Taken within the patience, written after it: waited for to the end.
    let engine = {
        let queue = queue.clone();
        std::thread::spawn(move || queue.snapshot(vec![2], Duration::from_millis(100)))
    };
    let batch = queue.take().expect("a batch");
    assert_eq!(batch.snapshot.as_deref(), Some(&[2u8][..]));
    std::thread::sleep(Duration::from_millis(300));
    assert!(!engine.is_finished());
    queue.written(true);
    assert_eq!(engine.join().unwrap(), SnapshotOutcome::Saved);
}
