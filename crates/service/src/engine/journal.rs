//! The engine's input journal between snapshots: every batch the engine applied (its raw lines) and every move
//! of event time by the idle clock, appended as the engine applies them. After a crash (kill -9) the last
//! snapshot is restored and the journal replayed through the same deterministic engine, so the state comes back
//! as it was at the last applied batch, instead of as it was up to a snapshot interval earlier.
//!
//! Each write goes straight to the file (no user-space buffer), so a killed process loses nothing it applied;
//! `fdatasync` runs at most `sync_every` after a write, so a power cut loses at most that much. Every frame is
//! checksummed and numbered (journal_format.rs): damage is cut (a torn tail) or counted (in the middle), and
//! reported, never replayed and never silent. A snapshot carries the journal generation it starts; the journal
//! file names its generation in its header, so a journal older than the snapshot (a crash between saving the
//! snapshot and restarting the journal) is recognised and dropped, never replayed twice. A new generation is
//! written to a temporary file, synced and renamed, so there is never a moment without a journal.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use metrics::counter;

use crate::engine::journal_format::{
    self, ADVANCE, BATCH, Damage, SOURCED_BATCH, STREAM_BATCH, file_header, frame_head,
};
use crate::log_limit::LogLimit;
use crate::metrics::{JOURNAL_DAMAGE, JOURNAL_LOST_FRAMES, JOURNAL_WRITE_ERRORS};

pub use crate::engine::journal_format::Entry;

/// Snapshots saved with a journal before acknowledged streams start with this, then the generation (u64 LE).
const SNAPSHOT_MAGIC_V1: &[u8; 8] = b"SWSNAPJ1";
/// Snapshots now start with this, the generation (u64 LE), then the acknowledged streams' positions.
const SNAPSHOT_MAGIC: &[u8; 8] = b"SWSNAPJ2";

/// A stored snapshot taken apart.
#[derive(Debug, PartialEq, Eq)]
pub struct StoredSnapshot<'a> {
    /// The journal generation that starts after it (0 for one saved without a journal).
    pub generation: u64,
    /// Lines applied of each acknowledged stream (streams.rs).
    pub streams: Vec<(String, u64)>,
    pub engine: &'a [u8],
}

/// Prefixes engine snapshot bytes with the journal generation that starts after it and the streams' positions.
pub fn wrap_snapshot(generation: u64, streams: &[(String, u64)], engine: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(engine.len() + 20);
    out.extend_from_slice(SNAPSHOT_MAGIC);
    out.extend_from_slice(&generation.to_le_bytes());
    crate::engine::streams::encode(streams, &mut out);
    out.extend_from_slice(engine);
    out
}

/// Takes apart what `wrap_snapshot` wrote (or an older snapshot: with a generation alone, or bare engine bytes).
pub fn unwrap_snapshot(stored: &[u8]) -> StoredSnapshot<'_> {
    let generation_of = |rest: &[u8]| {
        let mut generation = [0u8; 8];
        generation.copy_from_slice(&rest[..8]);
        u64::from_le_bytes(generation)
    };
    if let Some(rest) = stored.strip_prefix(SNAPSHOT_MAGIC.as_slice())
        && rest.len() >= 8
        && let Some((streams, engine)) = crate::engine::streams::decode(&rest[8..])
    {
        return StoredSnapshot {
            generation: generation_of(rest),
            streams,
            engine,
        };
    }
    match stored.strip_prefix(SNAPSHOT_MAGIC_V1.as_slice()) {
        Some(rest) if rest.len() >= 8 => StoredSnapshot {
            generation: generation_of(rest),
            streams: Vec::new(),
            engine: &rest[8..],
        },
        _ => StoredSnapshot {
            generation: 0,
            streams: Vec::new(),
            engine: stored,
        },
    }
}

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("journal {}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error(
        "the journal {} is missing, but the last snapshot expects journal generation {generation}: what was \
         applied since that snapshot is lost. Restore the file, or start with --accept-lost-journal to go on \
         from the snapshot alone",
        path.display()
    )]
    Missing { path: PathBuf, generation: u64 },
}

/// What opening the journal found wrong, for the log, the metrics and `/readyz`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Finding {
    /// Bytes were cut or skipped (see `Damage`).
    Damaged(Damage),
    /// The snapshot expected a journal and there was none (accepted with `--accept-lost-journal`).
    Missing,
    /// The file has no intact header (damaged, emptied, or an older format): nothing in it can be trusted.
    Unreadable { bytes: u64 },
    /// The journal belongs to a later generation than the snapshot: the snapshot is older than it should be.
    Newer { journal: u64, snapshot: u64 },
}

impl Finding {
    /// True when applied telemetry may be missing from the restored state.
    pub fn loses_data(&self) -> bool {
        match self {
            Finding::Damaged(damage) => damage.loses_data(),
            Finding::Missing | Finding::Unreadable { .. } | Finding::Newer { .. } => true,
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Finding::Damaged(damage) if damage.corrupt_regions > 0 => "corrupt",
            Finding::Damaged(_) => "torn_tail",
            Finding::Missing => "missing",
            Finding::Unreadable { .. } => "unreadable",
            Finding::Newer { .. } => "newer_than_snapshot",
        }
    }

    /// One sentence for the log and `/readyz`.
    pub fn describe(&self) -> String {
        match self {
            Finding::Damaged(damage) if damage.loses_data() => format!(
                "the journal is damaged: {} stretch(es) of bad bytes skipped, {} batch(es) lost in the middle{}; \
                 the engine is missing what they held",
                damage.corrupt_regions,
                damage.lost_frames,
                if damage.torn_tail_bytes > 0 {
                    format!(", and a torn tail of {} bytes cut", damage.torn_tail_bytes)
                } else {
                    String::new()
                }
            ),
            Finding::Damaged(damage) => format!(
                "the journal ended in a torn write: {} bytes after the last whole batch were cut (a write cut \
                 short by a crash is never applied; a file cut short by hand loses what followed)",
                damage.torn_tail_bytes
            ),
            Finding::Missing => "the journal the last snapshot expects is missing (accepted with \
                                 --accept-lost-journal): what was applied after that snapshot is lost"
                .to_owned(),
            Finding::Unreadable { bytes } => format!(
                "the journal's header is unreadable ({bytes} bytes dropped): what was applied after the last \
                 snapshot is lost"
            ),
            Finding::Newer { journal, snapshot } => format!(
                "the journal (generation {journal}) is newer than the snapshot (generation {snapshot}): the \
                 snapshot is older than the journal, and the journal cannot be applied to it"
            ),
        }
    }
}

/// What `Journal::open` hands the engine: the entries to replay and anything found wrong.
#[derive(Debug)]
pub struct Opened {
    pub journal: Journal,
    pub entries: Vec<Entry>,
    pub finding: Option<Finding>,
}

pub struct Journal {
    file: File,
    path: PathBuf,
    generation: u64,
    next_sequence: u64,
    /// Written since the last `fdatasync`.
    unsynced: bool,
    last_sync: Instant,
    sync_every: Duration,
    errors: LogLimit,
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journal")
            .field("path", &self.path)
            .field("generation", &self.generation)
            .finish_non_exhaustive()
    }
}

impl Journal {
    /// Opens the journal for `generation` (the stored snapshot's): returns it with the entries to replay (none
    /// when the file belongs to another generation) and what was found wrong. A missing file when the snapshot
    /// expects one (`generation > 0`) is an error unless `accept_lost`.
    pub fn open(
        path: PathBuf,
        generation: u64,
        sync_every: Duration,
        accept_lost: bool,
    ) -> Result<Opened, JournalError> {
        let io_error = |source| JournalError::Io {
            path: path.clone(),
            source,
        };
        let existed = path.try_exists().map_err(io_error)?;
        if !existed && generation > 0 && !accept_lost {
            return Err(JournalError::Missing { path, generation });
        }
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io_error)?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(io_error)?;
        let read = journal_format::read(&bytes);
        let mut journal = Journal {
            file,
            path: path.clone(),
            generation,
            next_sequence: read.next_sequence,
            unsynced: false,
            last_sync: Instant::now(),
            sync_every,
            errors: LogLimit::new(Duration::from_secs(60)),
        };
        if read.generation == Some(generation) {
            // Cut a torn tail so that new frames follow whole ones, and make what is replayed durable.
            journal
                .file
                .set_len(read.good_len as u64)
                .map_err(io_error)?;
            journal.file.seek(io::SeekFrom::End(0)).map_err(io_error)?;
            journal.file.sync_data().map_err(io_error)?;
            let finding = (!read.damage.is_clean()).then_some(Finding::Damaged(read.damage));
            return Ok(Opened {
                journal,
                entries: read.entries,
                finding,
            });
        }
        let finding = match read.generation {
            None if !existed && generation > 0 => Some(Finding::Missing),
            // An empty file with no snapshot to follow is a first start, not damage.
            None if bytes.is_empty() && generation == 0 => None,
            None => Some(Finding::Unreadable {
                bytes: bytes.len() as u64,
            }),
            Some(found) if found > generation => Some(Finding::Newer {
                journal: found,
                snapshot: generation,
            }),
            Some(found) => {
                tracing::info!(
                    path = %path.display(),
                    journal = found,
                    snapshot = generation,
                    "the journal is older than the snapshot (saved just before a crash); dropping it"
                );
                None
            }
        };
        journal.restart(generation).map_err(io_error)?;
        Ok(Opened {
            journal,
            entries: Vec::new(),
            finding,
        })
    }

    pub fn generation(&self) -> u64 {
        self.generation
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Starts `generation` in a new, empty file: called once a durable snapshot holds everything so far. The
    /// new file is synced and renamed over the old one, so a crash leaves one journal or the other, whole.
    pub fn restart(&mut self, generation: u64) -> io::Result<()> {
        let temporary = self.path.with_extension("bin.new");
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&temporary)?;
        file.write_all(&file_header(generation))?;
        file.sync_data()?;
        std::fs::rename(&temporary, &self.path)?;
        sync_directory(&self.path)?;
        self.file = file;
        self.generation = generation;
        self.next_sequence = 0;
        self.unsynced = false;
        self.last_sync = Instant::now();
        Ok(())
    }

    pub fn batch(&mut self, lines: &[u8]) {
        let written = self.write_frame(BATCH, &[lines]);
        self.check(written, "write");
    }

    /// A batch from event-time source `source` (the service's number for a connection, sender, file or topic).
    pub fn sourced_batch(&mut self, source: u32, lines: &[u8]) {
        let written = self.write_frame(SOURCED_BATCH, &[&source.to_le_bytes(), lines]);
        self.check(written, "write");
    }

    /// A batch of an acknowledged stream, which has sent `through` lines once it is applied.
    pub fn stream_batch(&mut self, name: &str, through: u64, lines: &[u8]) {
        let prefix = journal_format::stream_prefix(name, through);
        let written = self.write_frame(STREAM_BATCH, &[&prefix, lines]);
        self.check(written, "write");
    }

    pub fn advance(&mut self, to_ms: i64) {
        let written = self.write_frame(ADVANCE, &[&to_ms.to_le_bytes()]);
        self.check(written, "write");
    }

    /// True when everything written so far is on disk (or nothing was written since the last sync).
    pub fn is_synced(&self) -> bool {
        !self.unsynced
    }

    /// When the next `fdatasync` is due, if anything waits for one.
    pub fn sync_due(&self) -> Option<Instant> {
        self.unsynced.then(|| self.last_sync + self.sync_every)
    }

    /// Runs `fdatasync` when something was written and `sync_every` has passed since the last one; true when
    /// everything written is durable afterwards.
    pub fn sync_if_due(&mut self) -> bool {
        if self.unsynced && self.last_sync.elapsed() >= self.sync_every {
            self.sync();
        }
        !self.unsynced
    }

    /// `fdatasync` now (at shutdown, and when due).
    pub fn sync(&mut self) {
        if !self.unsynced {
            return;
        }
        let synced = self.file.sync_data();
        self.last_sync = Instant::now();
        self.unsynced = synced.is_err();
        self.check(synced, "sync");
    }

    fn check(&mut self, done: io::Result<()>, what: &str) {
        if let Err(error) = done {
            counter!(JOURNAL_WRITE_ERRORS).increment(1);
            if let Some(suppressed) = self.errors.allow() {
                tracing::error!(
                    path = %self.path.display(),
                    %error,
                    suppressed,
                    "journal {what} failed: a crash now would lose what was applied since the last snapshot"
                );
            }
        }
    }

    /// The checked head, then the payload's parts as they are (no copy): a crash between the writes leaves a
    /// torn frame, which reading cuts.
    fn write_frame(&mut self, tag: u8, parts: &[&[u8]]) -> io::Result<()> {
        let head = frame_head(tag, self.next_sequence, parts);
        self.unsynced = true;
        self.file.write_all(&head)?;
        for part in parts {
            self.file.write_all(part)?;
        }
        self.next_sequence += 1;
        Ok(())
    }
}

/// Makes a rename in `path`'s directory durable.
fn sync_directory(path: &Path) -> io::Result<()> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => File::open(dir)?.sync_all(),
        _ => File::open(".")?.sync_all(),
    }
}

/// Logs and counts what opening the journal found.
pub fn report(path: &Path, finding: &Finding) {
    counter!(JOURNAL_DAMAGE, "kind" => finding.kind()).increment(1);
    if let Finding::Damaged(damage) = finding {
        counter!(JOURNAL_LOST_FRAMES).increment(damage.lost_frames);
    }
    if finding.loses_data() {
        tracing::error!(path = %path.display(), kind = finding.kind(), "{}", finding.describe());
    } else {
        tracing::warn!(path = %path.display(), kind = finding.kind(), "{}", finding.describe());
    }
}

/// The journal file in a data directory.
pub fn path_in(data_dir: &Path) -> PathBuf {
    data_dir.join("journal.bin")
}

#[cfg(test)]
#[path = "journal_tests.rs"]
mod tests;
