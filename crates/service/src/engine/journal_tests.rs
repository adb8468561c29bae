//! Unit tests of the journal: generations, replay, sync interval, findings at open.
use super::*;
use crate::engine::journal_format::{FILE_HEADER_LEN, FRAME_HEAD_LEN};

fn open(path: &Path, generation: u64) -> Opened {
    Journal::open(path.to_owned(), generation, Duration::ZERO, false).unwrap()
}

/// A new journal of `generation`, as a first start followed by snapshots leaves it.
fn create(path: &Path, generation: u64) -> Journal {
    let opened = open(path, 0);
    assert!(opened.entries.is_empty());
    assert_eq!(opened.finding, None, "a first start is not damage");
    let mut journal = opened.journal;
    journal.restart(generation).unwrap();
    journal
}

#[test]
fn entries_come_back_in_order_and_a_torn_tail_is_cut() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j.bin");
    let mut journal = create(&path, 7);
    journal.batch(b"line 1\nline 2\n");
    journal.advance(1_773_133_200_000);
    journal.stream_batch("sender-a", 3, b"line 3\n");
    drop(journal);
    // A crash mid-write leaves half a frame.
    let mut file = OpenOptions::new().append(true).open(&path).unwrap();
    file.write_all(&[BATCH, 200, 0, 0, 0, b'x']).unwrap();
    drop(file);
    let opened = open(&path, 7);
    assert_eq!(
        opened.entries,
        [
            Entry::Batch(b"line 1\nline 2\n".to_vec()),
            Entry::Advance(1_773_133_200_000),
            Entry::Stream {
                name: "sender-a".into(),
                through: 3,
                lines: b"line 3\n".to_vec()
            },
        ]
    );
    let finding = opened.finding.expect("the torn tail is reported");
    assert_eq!(finding.kind(), "torn_tail");
    assert!(!finding.loses_data());
    let mut journal = opened.journal;
    journal.batch(b"line 4\n");
    drop(journal);
    let opened = open(&path, 7);
    assert_eq!(
        opened.entries.len(),
        4,
        "appends follow the last whole frame"
    );
    assert_eq!(opened.finding, None, "the tail was cut once");
}

#[test]
fn flipped_bytes_in_the_middle_are_counted_and_the_rest_replayed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j.bin");
    let mut journal = create(&path, 1);
    for n in 0..5 {
        journal.batch(format!("line {n}\n").as_bytes());
    }
    drop(journal);
    let mut bytes = std::fs::read(&path).unwrap();
    // Inside the second batch's payload.
    let frame = FRAME_HEAD_LEN + 7;
    bytes[FILE_HEADER_LEN + frame + FRAME_HEAD_LEN + 2] ^= 0x20;
    std::fs::write(&path, &bytes).unwrap();
    let opened = open(&path, 1);
    assert_eq!(opened.entries.len(), 4);
    let finding = opened.finding.unwrap();
    assert_eq!(finding.kind(), "corrupt");
    assert!(finding.loses_data());
    assert!(
        finding.describe().contains("1 batch(es) lost"),
        "{}",
        finding.describe()
    );
}

#[test]
fn a_missing_journal_the_snapshot_expects_is_refused_unless_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j.bin");
    let refused = Journal::open(path.clone(), 3, Duration::ZERO, false).unwrap_err();
    assert!(matches!(
        refused,
        JournalError::Missing { generation: 3, .. }
    ));
    assert!(refused.to_string().contains("--accept-lost-journal"));
    assert!(!path.exists(), "refusing creates nothing");
    let opened = Journal::open(path.clone(), 3, Duration::ZERO, true).unwrap();
    assert_eq!(opened.finding, Some(Finding::Missing));
    assert!(path.exists());
}

#[test]
fn a_journal_of_another_generation_is_dropped_not_replayed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j.bin");
    let mut journal = create(&path, 1);
    journal.batch(b"already in snapshot 2\n");
    drop(journal);
    let opened = open(&path, 2);
    assert!(opened.entries.is_empty());
    assert_eq!(
        opened.finding, None,
        "an older journal is expected after a crash"
    );
    let opened = open(&path, 2);
    assert!(
        opened.entries.is_empty(),
        "restarted empty for generation 2"
    );
    let newer = open(&path, 1);
    assert_eq!(newer.finding.map(|f| f.kind()), Some("newer_than_snapshot"));
}

#[test]
fn an_emptied_journal_is_unreadable_not_silent() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j.bin");
    let mut journal = create(&path, 4);
    journal.batch(b"line\n");
    drop(journal);
    std::fs::write(&path, b"").unwrap();
    let finding = open(&path, 4).finding.unwrap();
    assert_eq!(finding, Finding::Unreadable { bytes: 0 });
}

#[test]
fn syncs_wait_for_the_interval_and_only_when_written() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j.bin");
    let mut journal = Journal::open(path, 0, Duration::from_secs(3600), false)
        .unwrap()
        .journal;
    assert!(journal.is_synced());
    assert_eq!(journal.sync_due(), None);
    journal.batch(b"line\n");
    assert!(!journal.is_synced());
    assert!(!journal.sync_if_due(), "not due for an hour");
    journal.sync();
    assert!(journal.is_synced());
}

#[test]
fn snapshots_carry_their_generation_and_streams_and_old_ones_still_read() {
    let streams = vec![("sender-a".to_owned(), 12)];
    let wrapped = wrap_snapshot(42, &streams, b"{\"engine\":1}");
    let unwrapped = unwrap_snapshot(&wrapped);
    assert_eq!(unwrapped.generation, 42);
    assert_eq!(unwrapped.streams, streams);
    assert_eq!(unwrapped.engine, b"{\"engine\":1}");
    let mut v1 = b"SWSNAPJ1".to_vec();
    v1.extend_from_slice(&5u64.to_le_bytes());
    v1.extend_from_slice(b"{}");
    assert_eq!(unwrap_snapshot(&v1).generation, 5);
    assert_eq!(unwrap_snapshot(&v1).engine, b"{}");
    assert_eq!(unwrap_snapshot(b"{\"engine\":1}").generation, 0);
    assert_eq!(unwrap_snapshot(b"{\"engine\":1}").engine, b"{\"engine\":1}");
}
