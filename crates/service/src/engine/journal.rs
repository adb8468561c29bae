//! The engine's input journal between snapshots: every batch the engine applied (its raw lines) and every move
//! of event time by the idle clock, appended as the engine applies them. After a crash (kill -9) the last
//! snapshot is restored and the journal replayed through the same deterministic engine, so the state comes back
//! as it was at the last applied batch, instead of as it was up to a snapshot interval earlier.
//!
//! Each write goes straight to the file (no user-space buffer), so a killed process loses nothing it applied;
//! only a power cut can lose what the OS had not written back. A snapshot carries the journal generation it
//! starts; the journal file names its generation in its header, so a journal older than the snapshot (a crash
//! between saving the snapshot and restarting the journal) is recognised and dropped, never replayed twice.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::path::{Path, PathBuf};

use metrics::counter;

use crate::log_limit::LogLimit;
use crate::metrics::JOURNAL_WRITE_ERRORS;

/// Snapshots saved with a journal start with this, then the generation (8 bytes, little endian).
const SNAPSHOT_MAGIC: &[u8; 8] = b"SWSNAPJ1";
const HEADER: u8 = b'H';
const BATCH: u8 = b'B';
const ADVANCE: u8 = b'A';
/// A frame longer than this is damage, not data (batches are 256 KiB blocks of lines).
const MAX_FRAME: usize = 64 << 20;

/// Prefixes engine snapshot bytes with the journal generation that starts after it.
pub fn wrap_snapshot(generation: u64, engine: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(engine.len() + 16);
    out.extend_from_slice(SNAPSHOT_MAGIC);
    out.extend_from_slice(&generation.to_le_bytes());
    out.extend_from_slice(engine);
    out
}

/// The generation and engine bytes of a stored snapshot (generation 0 for one saved without a journal).
pub fn unwrap_snapshot(stored: &[u8]) -> (u64, &[u8]) {
    match stored.strip_prefix(SNAPSHOT_MAGIC.as_slice()) {
        Some(rest) if rest.len() >= 8 => {
            let mut generation = [0u8; 8];
            generation.copy_from_slice(&rest[..8]);
            (u64::from_le_bytes(generation), &rest[8..])
        }
        _ => (0, stored),
    }
}

/// One record of the journal, in the order the engine applied them.
#[derive(Debug, PartialEq, Eq)]
pub enum Entry {
    /// The raw lines of a batch (valid and malformed alike; replay parses them again).
    Batch(Vec<u8>),
    /// The idle clock moved event time to this instant (ms).
    Advance(i64),
}

pub struct Journal {
    file: File,
    path: PathBuf,
    generation: u64,
    errors: LogLimit,
}

impl Journal {
    /// Opens the journal for `generation` (the stored snapshot's): returns it with the entries to replay, or
    /// with none when the file belongs to another generation or does not exist. A torn last frame (the process
    /// died mid-write) ends the replay there.
    pub fn open(path: PathBuf, generation: u64) -> io::Result<(Journal, Vec<Entry>)> {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        let (found, entries, valid_len) = read_entries(&bytes);
        let mut journal = Journal {
            file,
            path,
            generation,
            errors: LogLimit::new(std::time::Duration::from_secs(60)),
        };
        if found == Some(generation) {
            // Cut a torn tail so that new frames follow whole ones.
            journal.file.set_len(valid_len as u64)?;
            journal.file.seek(io::SeekFrom::End(0))?;
            return Ok((journal, entries));
        }
        if found.is_some() {
            tracing::warn!(
                path = %journal.path.display(),
                journal = ?found,
                snapshot = generation,
                "the journal is older than the snapshot (saved just before a crash); dropping it"
            );
        }
        journal.restart(generation)?;
        Ok((journal, Vec::new()))
    }

    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Empties the journal and starts `generation`: called once a snapshot holding everything so far is saved.
    pub fn restart(&mut self, generation: u64) -> io::Result<()> {
        self.file.set_len(0)?;
        self.file.seek(io::SeekFrom::Start(0))?;
        self.generation = generation;
        self.write_frame(HEADER, &generation.to_le_bytes())
    }

    pub fn batch(&mut self, lines: &[u8]) {
        let written = self.write_frame(BATCH, lines);
        self.check(written);
    }

    pub fn advance(&mut self, to_ms: i64) {
        let written = self.write_frame(ADVANCE, &to_ms.to_le_bytes());
        self.check(written);
    }

    fn check(&mut self, written: io::Result<()>) {
        if let Err(error) = written {
            counter!(JOURNAL_WRITE_ERRORS).increment(1);
            if let Some(suppressed) = self.errors.allow() {
                tracing::error!(
                    path = %self.path.display(),
                    %error,
                    suppressed,
                    "journal write failed: a crash now would lose what was applied since the last snapshot"
                );
            }
        }
    }

    /// Tag and length, then the payload as is (no copy): a crash between the writes leaves a torn frame, which
    /// reading stops at.
    fn write_frame(&mut self, tag: u8, payload: &[u8]) -> io::Result<()> {
        let mut head = [0u8; 5];
        head[0] = tag;
        head[1..].copy_from_slice(&(payload.len() as u32).to_le_bytes());
        self.file.write_all(&head)?;
        self.file.write_all(payload)
    }
}

/// The header's generation, the entries, and the length of the whole frames read.
fn read_entries(bytes: &[u8]) -> (Option<u64>, Vec<Entry>, usize) {
    let mut at = 0;
    let mut generation = None;
    let mut entries = Vec::new();
    while bytes.len() - at >= 5 {
        let tag = bytes[at];
        let mut length = [0u8; 4];
        length.copy_from_slice(&bytes[at + 1..at + 5]);
        let length = u32::from_le_bytes(length) as usize;
        if length > MAX_FRAME || bytes.len() - at - 5 < length {
            break;
        }
        let payload = &bytes[at + 5..at + 5 + length];
        let eight = |payload: &[u8]| <[u8; 8]>::try_from(payload).ok();
        match (tag, generation) {
            (HEADER, None) => match eight(payload) {
                Some(value) => generation = Some(u64::from_le_bytes(value)),
                None => break,
            },
            (BATCH, Some(_)) => entries.push(Entry::Batch(payload.to_vec())),
            (ADVANCE, Some(_)) => match eight(payload) {
                Some(value) => entries.push(Entry::Advance(i64::from_le_bytes(value))),
                None => break,
            },
            _ => break,
        }
        at += 5 + length;
    }
    (generation, entries, at)
}

/// The journal file in a data directory.
pub fn path_in(data_dir: &Path) -> PathBuf {
    data_dir.join("journal.bin")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_come_back_in_order_and_a_torn_tail_is_cut() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.bin");
        let (mut journal, entries) = Journal::open(path.clone(), 7).unwrap();
        assert!(entries.is_empty());
        journal.batch(b"line 1\nline 2\n");
        journal.advance(1_773_133_200_000);
        journal.batch(b"line 3\n");
        drop(journal);
        // A crash mid-write leaves half a frame.
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(&[BATCH, 200, 0, 0, 0, b'x']).unwrap();
        drop(file);
        let (mut journal, entries) = Journal::open(path.clone(), 7).unwrap();
        assert_eq!(
            entries,
            [
                Entry::Batch(b"line 1\nline 2\n".to_vec()),
                Entry::Advance(1_773_133_200_000),
                Entry::Batch(b"line 3\n".to_vec()),
            ]
        );
        journal.batch(b"line 4\n");
        drop(journal);
        let (_, entries) = Journal::open(path, 7).unwrap();
        assert_eq!(entries.len(), 4, "appends follow the last whole frame");
    }

    #[test]
    fn a_journal_of_another_generation_is_dropped_not_replayed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.bin");
        let (mut journal, _) = Journal::open(path.clone(), 1).unwrap();
        journal.batch(b"already in snapshot 2\n");
        drop(journal);
        let (_, entries) = Journal::open(path.clone(), 2).unwrap();
        assert!(entries.is_empty());
        let (_, entries) = Journal::open(path, 2).unwrap();
        assert!(entries.is_empty(), "restarted empty for generation 2");
    }

    #[test]
    fn snapshots_carry_their_generation_and_old_ones_read_as_zero() {
        let wrapped = wrap_snapshot(42, b"{\"engine\":1}");
        assert_eq!(unwrap_snapshot(&wrapped), (42, &b"{\"engine\":1}"[..]));
        assert_eq!(
            unwrap_snapshot(b"{\"engine\":1}"),
            (0, &b"{\"engine\":1}"[..])
        );
    }
}
