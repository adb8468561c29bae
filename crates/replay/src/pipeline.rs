//! Replay driver: reads telemetry files in order, parses blocks on worker threads, feeds the engine in input order,
//! quarantines malformed lines and builds the report. The only I/O around the pure engine for `replay`.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufWriter, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crossbeam::channel::{Receiver, Sender, bounded, never, select};

use crate::change_files::load_change_file;
use crate::source::{OpenError, open_input, source_name};
use stormwatch_core::changes::{ChangeFileError, ChangeRegister};
use stormwatch_core::engine::{Engine, EngineConfig, Ingested, Settled};
use stormwatch_core::report::{Report, Summary};
use stormwatch_core::telemetry::batch::{LineCursor, ParsedChunk, malformed, parse_chunk_into};
use stormwatch_core::telemetry::framing::{Chunk, LineFramer};
use stormwatch_core::telemetry::held_lines::HeldLines;
use stormwatch_core::telemetry::{MalformedLine, QuarantineWriter};

/// What to replay and how.
#[derive(Clone, Debug)]
pub struct ReplayOptions {
    pub inputs: Vec<PathBuf>,
    pub change_files: Vec<PathBuf>,
    /// Notices to start from (e.g. the store's register); notices in `change_files` update them by id.
    pub initial_changes: ChangeRegister,
    /// Where malformed lines go; `None` counts them without keeping them (tests, evaluation sweeps).
    pub quarantine: Option<PathBuf>,
    /// Pace at this many times event time; `None` is as fast as possible.
    pub speed: Option<f64>,
    /// Show a progress bar on stderr (only drawn when stderr is a terminal).
    pub progress: bool,
    pub engine: EngineConfig,
    /// Threads that parse, the engine's own among them (it parses a block itself whenever none is ready for it in
    /// order), so that no more threads are busy than there are cores; 0 picks one per core.
    pub parse_threads: usize,
    /// Set from outside (Ctrl-C) to stop between blocks: the replay then fails with [`ReplayError::Interrupted`]
    /// and removes its partial quarantine file.
    pub cancel: Option<Arc<AtomicBool>>,
}

impl ReplayOptions {
    pub fn new(inputs: Vec<PathBuf>, change_files: Vec<PathBuf>) -> Self {
        ReplayOptions {
            inputs,
            change_files,
            initial_changes: ChangeRegister::new(),
            quarantine: None,
            speed: None,
            progress: false,
            engine: EngineConfig::default(),
            parse_threads: 0,
            cancel: None,
        }
    }
}

/// Each message carries its cause in a `cause` field, which is deliberately not a `source()`: the binary prints
/// the whole chain, and a cause in both printed twice.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error(transparent)]
    Open(#[from] OpenError),
    #[error("reading telemetry input {file} failed near line {line}: {cause}")]
    Read {
        file: String,
        line: u64,
        cause: io::Error,
    },
    #[error(transparent)]
    Changes(#[from] ChangeFileError),
    #[error("cannot write quarantine file {}: {cause}", path.display())]
    Quarantine { path: PathBuf, cause: io::Error },
    #[error("interrupted after {lines} lines{}", removal_note(removed))]
    Interrupted {
        lines: u64,
        removed: Option<PathBuf>,
    },
}

fn removal_note(removed: &Option<PathBuf>) -> String {
    removed
        .as_ref()
        .map(|path| {
            format!(
                "; the partial quarantine file {} was removed",
                path.display()
            )
        })
        .unwrap_or_default()
}

/// A replay's report, and what the command line needs to judge it beyond the report's fields.
#[derive(Debug)]
pub struct Replayed {
    pub report: Report,
    /// The first malformed line: where it is, why, and its first bytes (to guess what the input really is).
    pub first_malformed: Option<FirstMalformed>,
}

#[derive(Clone, Debug)]
pub struct FirstMalformed {
    pub source: String,
    pub line: u64,
    pub error: String,
    /// Up to its first 16 bytes.
    pub head: Vec<u8>,
}

/// A block of lines on its way to a parser.
struct RawBlock {
    sequence: u64,
    source: u32,
    chunk: Chunk,
    /// A spent block whose vectors the parser fills again.
    spent: ParsedChunk,
}

/// A parsed block on its way to the engine.
struct ParsedBlock {
    sequence: u64,
    source: u32,
    parsed: ParsedChunk,
}

enum Feed {
    Block(ParsedBlock),
    Failed(ReplayError),
}

/// Loads and merges change files, in order (a later notice with the same id updates an earlier one).
/// Returns the register and the rejected notices, each described with file, line and field.
pub fn load_changes(
    mut register: ChangeRegister,
    files: &[PathBuf],
) -> Result<(ChangeRegister, Vec<String>), ChangeFileError> {
    let mut rejected = Vec::new();
    for file in files {
        let loaded = load_change_file(file)?;
        rejected.extend(loaded.rejected.iter().map(ToString::to_string));
        register.extend(loaded.notices);
    }
    Ok((register, rejected))
}

/// Replays the inputs through a fresh engine and returns the report.
pub fn replay(options: &ReplayOptions) -> Result<Report, ReplayError> {
    replay_detailed(options).map(|replayed| replayed.report)
}

/// [`replay`], with the first malformed line as well.
pub fn replay_detailed(options: &ReplayOptions) -> Result<Replayed, ReplayError> {
    let started = Instant::now();
    let (register, changes_rejected) =
        load_changes(options.initial_changes.clone(), &options.change_files)?;
    let changes_loaded = register.len() as u64;
    for reason in &changes_rejected {
        tracing::warn!("change notice rejected: {reason}");
    }
    let mut engine = Engine::new(options.engine.clone(), register);
    let names: Vec<String> = options.inputs.iter().map(|p| source_name(p)).collect();
    let mut quarantine = Quarantine::new(options.quarantine.clone(), names.clone());

    let bytes_read = Arc::new(AtomicU64::new(0));
    let progress = Progress::new(options, bytes_read.clone());
    let threads = match options.parse_threads {
        0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
        n => n,
    };
    let (raw_tx, raw_rx) = bounded::<RawBlock>(threads * 2);
    let (parsed_tx, parsed_rx) = bounded::<Feed>(threads * 2);
    // A fixed pool of blocks circulates reader -> parser -> engine -> reader, so a warm replay allocates nothing
    // per block and memory stays flat however long the input (freed blocks would otherwise linger in the
    // allocator's per-thread arenas). The pool covers both queues, every parser and a few blocks waiting for
    // their turn in input order; when all are in flight the reader waits.
    let pool = threads * 6 + 2;
    let (spent_tx, spent_rx) = bounded::<ParsedChunk>(pool);
    for _ in 0..pool {
        let _ = spent_tx.try_send(ParsedChunk::default());
    }
    let mut pacer = options
        .speed
        .filter(|s| *s > 0.0)
        .map(|speed| Pacer::new(speed, options.cancel.clone()));

    let mut lines_fed = 0u64;
    let outcome = std::thread::scope(|scope| -> Result<(), ReplayError> {
        // Owned by this closure, so that an early return drops them and unblocks every thread before the join.
        let (parsed_rx, raw_rx, spent_tx) = (parsed_rx, raw_rx, spent_tx);
        let failure_tx = parsed_tx.clone();
        let inputs = &options.inputs;
        let counter = bytes_read.clone();
        scope.spawn(move || {
            if let Err(error) = read_inputs(inputs, &raw_tx, &spent_rx, &counter) {
                let _ = failure_tx.send(Feed::Failed(error));
            }
        });
        for _ in 1..threads {
            let (raw_rx, parsed_tx) = (raw_rx.clone(), parsed_tx.clone());
            scope.spawn(move || parse_blocks(&raw_rx, &parsed_tx));
        }
        drop(parsed_tx);
        // Closed channels are swapped for ones that never deliver, so the select below waits on what is left.
        let (no_feed, no_raw) = (never::<Feed>(), never::<RawBlock>());
        let (mut feed_open, mut raw_open) = (true, true);

        // Blocks finish out of order across parsers; the engine takes them in input order.
        let mut waiting: BTreeMap<u64, ParsedBlock> = BTreeMap::new();
        let mut next = 0u64;
        let cancelled = || {
            options
                .cancel
                .as_ref()
                .is_some_and(|c| c.load(Ordering::Relaxed))
        };
        while feed_open || raw_open || cancelled() {
            // A timeout, so that an interrupt is seen even while the reader waits on a quiet standard input. A
            // raw block is parsed here when no parsed one is ready: the engine thread does not sit idle while
            // the parsers work, so one thread per core is busy, not one more.
            let feed = select! {
                recv(if feed_open { &parsed_rx } else { &no_feed }) -> feed => {
                    feed_open = feed.is_ok();
                    feed.ok()
                }
                recv(if raw_open { &raw_rx } else { &no_raw }) -> raw => {
                    raw_open = raw.is_ok();
                    raw.ok().map(|raw| Feed::Block(parse_raw(raw)))
                }
                default(Duration::from_millis(100)) => None,
            };
            if cancelled() {
                // Removed now, not after the threads are joined: a reader blocked on standard input may keep
                // the join waiting until a second Ctrl-C ends the process.
                let removed = quarantine.abandon();
                return Err(ReplayError::Interrupted {
                    lines: lines_fed,
                    removed,
                });
            }
            let Some(feed) = feed else { continue };
            let block = match feed {
                Feed::Block(block) => block,
                Feed::Failed(error) => return Err(error),
            };
            waiting.insert(block.sequence, block);
            while let Some(block) = waiting.remove(&next) {
                next += 1;
                lines_fed += (block.parsed.events.len() + block.parsed.malformed.len()) as u64;
                feed_block(&mut engine, &block, &mut quarantine, pacer.as_mut())?;
                progress.tick();
                // Cannot block: the queue holds the whole pool. An error means the reader has finished.
                let _ = spent_tx.try_send(block.parsed);
            }
        }
        Ok(())
    });
    if let Err(error) = outcome {
        // A quarantine cut short would pass for a whole one: remove it.
        quarantine.abandon();
        return Err(error);
    }

    engine.finish();
    quarantine.settle(&mut engine)?;
    progress.finish();
    let stats = engine.stats();
    let first_malformed = quarantine.first.take();
    let (malformed, quarantine_path) = quarantine.finish()?;
    let report = Report {
        summary: Summary {
            events: stats.events,
            malformed,
            late: stats.late,
            users: engine.users_seen() as u64,
            first_ts: stats.first_ts,
            last_ts: stats.last_ts,
            elapsed_s: (started.elapsed().as_secs_f64() * 1000.0).round() / 1000.0,
            quarantine: quarantine_path.map(|p| p.display().to_string()),
            changes_loaded,
            changes_rejected,
            out_of_range: engine.out_of_range(),
            clock_offsets: engine.clock_offsets(),
        },
        incidents: engine.incident_records(),
    };
    Ok(Replayed {
        report,
        first_malformed,
    })
}

/// Counts bytes as they are read from the underlying file, for the progress bar.
struct Counting<R> {
    inner: R,
    counter: Arc<AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.counter.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

fn read_inputs(
    inputs: &[PathBuf],
    out: &Sender<RawBlock>,
    spent: &Receiver<ParsedChunk>,
    counter: &Arc<AtomicU64>,
) -> Result<(), ReplayError> {
    let mut sequence = 0;
    for (source, path) in inputs.iter().enumerate() {
        let reader: Box<dyn Read + Send> = if path == Path::new("-") {
            open_input(path)?
        } else {
            let file = File::open(path).map_err(|source| OpenError {
                path: path.clone(),
                cause: source,
            })?;
            let counted = Box::new(Counting {
                inner: file,
                counter: counter.clone(),
            });
            crate::source::decompress(counted, crate::source::Compression::from_path(path))
                .map_err(|source| OpenError {
                    path: path.clone(),
                    cause: source,
                })?
        };
        let mut framer = LineFramer::new(reader);
        loop {
            // The pool only closes when the engine has stopped taking blocks: nothing more to read for.
            let Ok(mut reused) = spent.recv() else {
                return Ok(());
            };
            framer.recycle(std::mem::take(&mut reused.data));
            let chunk = framer.next_chunk().map_err(|source| ReplayError::Read {
                file: source_name(path),
                line: framer.next_line(),
                cause: source,
            })?;
            let Some(chunk) = chunk else { break };
            if out
                .send(RawBlock {
                    sequence,
                    source: source as u32,
                    chunk,
                    spent: reused,
                })
                .is_err()
            {
                return Ok(());
            }
            sequence += 1;
        }
    }
    Ok(())
}

fn parse_blocks(input: &Receiver<RawBlock>, output: &Sender<Feed>) {
    for raw in input.iter() {
        if output.send(Feed::Block(parse_raw(raw))).is_err() {
            return;
        }
    }
}

fn parse_raw(raw: RawBlock) -> ParsedBlock {
    ParsedBlock {
        sequence: raw.sequence,
        source: raw.source,
        parsed: parse_chunk_into(raw.source, raw.chunk, raw.spent),
    }
}

fn feed_block(
    engine: &mut Engine,
    block: &ParsedBlock,
    quarantine: &mut Quarantine,
    mut pacer: Option<&mut Pacer>,
) -> Result<(), ReplayError> {
    let parsed = &block.parsed;
    // Held and refused lines are asked for in increasing order: each newline of the block is counted once.
    let mut lines = LineCursor::default();
    for (index, event) in parsed.events.iter().enumerate() {
        if let Some(pacer) = pacer.as_deref_mut() {
            pacer.wait_for(event.ts_ms);
        }
        match engine.ingest(event) {
            Ok(Ingested::Taken) => {}
            Ok(Ingested::Held(token)) => {
                // The engine may yet refuse it: keep its bytes until it settles.
                let (line, bytes) = parsed.line_at(index, &mut lines);
                quarantine.held.insert(token, &block.source, line, bytes);
            }
            Err(refused) => {
                let (line, bytes) = parsed.line_at(index, &mut lines);
                quarantine.keep(&malformed(block.source, line, refused.to_string(), bytes))?;
            }
        }
    }
    quarantine.settle(engine)?;
    for bad in &parsed.malformed {
        quarantine.keep(bad)?;
    }
    Ok(())
}

/// Malformed lines: counted always, written to the quarantine file (created on the first one) when asked.
struct Quarantine {
    path: Option<PathBuf>,
    names: Vec<String>,
    writer: Option<QuarantineWriter<BufWriter<File>>>,
    count: u64,
    /// Lines the engine holds, in case it refuses them (the service's structure: no hashing, no copy per line).
    held: HeldLines<u32>,
    first: Option<FirstMalformed>,
}

impl Quarantine {
    fn new(path: Option<PathBuf>, names: Vec<String>) -> Self {
        Quarantine {
            path,
            names,
            writer: None,
            count: 0,
            held: HeldLines::default(),
            first: None,
        }
    }

    /// Quarantines the held lines the engine refused, and forgets those it placed.
    fn settle(&mut self, engine: &mut Engine) -> Result<(), ReplayError> {
        let mut refused = None;
        for outcome in engine.drain_settled() {
            match outcome {
                Settled::Released(token) => self.held.release(token),
                Settled::Refused(token, error) => self.held.refuse(token, |line| {
                    let source = line.source.copied().unwrap_or_default();
                    refused.get_or_insert_with(Vec::new).push(malformed(
                        source,
                        line.line,
                        error.to_string(),
                        line.bytes,
                    ));
                }),
            }
        }
        // Refusals are rare (a line whose wait ran out past the lateness allowed): collected apart, so that
        // writing them cannot hold the engine's borrow.
        for line in refused.into_iter().flatten() {
            self.keep(&line)?;
        }
        Ok(())
    }

    fn keep(&mut self, line: &MalformedLine) -> Result<(), ReplayError> {
        self.count += 1;
        if self.first.is_none() {
            self.first = Some(FirstMalformed {
                source: self
                    .names
                    .get(line.source as usize)
                    .cloned()
                    .unwrap_or_default(),
                line: line.line,
                error: line.error.clone(),
                head: line.bytes.iter().take(16).copied().collect(),
            });
        }
        let Some(path) = &self.path else {
            return Ok(());
        };
        let wrap = |source| ReplayError::Quarantine {
            path: path.clone(),
            cause: source,
        };
        if self.writer.is_none() {
            let file = File::create(path).map_err(wrap)?;
            self.writer = Some(QuarantineWriter::new(
                BufWriter::new(file),
                self.names.clone(),
            ));
        }
        if let Some(writer) = &mut self.writer {
            writer.write(line).map_err(wrap)?;
        }
        Ok(())
    }

    /// Drops an unfinished quarantine file; returns its path if one had been created.
    fn abandon(&mut self) -> Option<PathBuf> {
        let writer = self.writer.take()?;
        drop(writer);
        let path = self.path.clone()?;
        match std::fs::remove_file(&path) {
            Ok(()) => Some(path),
            Err(error) => {
                tracing::warn!(path = %path.display(), %error, "cannot remove the partial quarantine file");
                None
            }
        }
    }

    fn finish(self) -> Result<(u64, Option<PathBuf>), ReplayError> {
        match (self.writer, self.path) {
            (Some(writer), Some(path)) => {
                writer.finish().map_err(|source| ReplayError::Quarantine {
                    path: path.clone(),
                    cause: source,
                })?;
                Ok((self.count, Some(path)))
            }
            _ => Ok((self.count, None)),
        }
    }
}

/// Paces a replay at `speed` x event time.
struct Pacer {
    speed: f64,
    origin: Option<(i64, Instant)>,
    /// Once set, stop waiting: the replay is being interrupted.
    cancel: Option<Arc<AtomicBool>>,
}

impl Pacer {
    fn new(speed: f64, cancel: Option<Arc<AtomicBool>>) -> Self {
        Pacer {
            speed,
            origin: None,
            cancel,
        }
    }

    fn wait_for(&mut self, ts_ms: i64) {
        let (first_ts, started) = *self.origin.get_or_insert((ts_ms, Instant::now()));
        let due = Duration::from_secs_f64(((ts_ms - first_ts).max(0) as f64 / 1000.0) / self.speed);
        // In slices, so that an interrupt is seen within a tenth of a second however slow the pace.
        loop {
            if self
                .cancel
                .as_ref()
                .is_some_and(|c| c.load(Ordering::Relaxed))
            {
                return;
            }
            let elapsed = started.elapsed();
            if due <= elapsed + Duration::from_millis(5) {
                return;
            }
            std::thread::sleep((due - elapsed).min(Duration::from_millis(100)));
        }
    }
}

/// A byte-based progress bar on stderr, drawn only when stderr is a terminal.
struct Progress {
    bar: Option<indicatif::ProgressBar>,
    bytes: Arc<AtomicU64>,
}

impl Progress {
    fn new(options: &ReplayOptions, bytes: Arc<AtomicU64>) -> Self {
        use std::io::IsTerminal;
        if !options.progress || !io::stderr().is_terminal() {
            return Progress { bar: None, bytes };
        }
        let total: u64 = options
            .inputs
            .iter()
            .filter_map(|p| std::fs::metadata(p).ok())
            .map(|m| m.len())
            .sum();
        let bar = indicatif::ProgressBar::new(total);
        let style = indicatif::ProgressStyle::with_template(
            "{spinner} replay [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        )
        .map(|s| s.progress_chars("=> "));
        if let Ok(style) = style {
            bar.set_style(style);
        }
        Progress {
            bar: Some(bar),
            bytes,
        }
    }

    fn tick(&self) {
        if let Some(bar) = &self.bar {
            bar.set_position(self.bytes.load(Ordering::Relaxed));
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options_for(dir: &Path, text: &str) -> ReplayOptions {
        let input = dir.join("events.ndjson");
        std::fs::write(&input, text).unwrap();
        let mut options = ReplayOptions::new(vec![input], Vec::new());
        options.quarantine = Some(dir.join("quarantine.ndjson"));
        options
    }

    #[test]
    fn a_cancelled_replay_stops_with_interrupted_and_leaves_no_quarantine() {
        let dir = tempfile::tempdir().unwrap();
        let mut options = options_for(dir.path(), &"not telemetry\n".repeat(50_000));
        options.cancel = Some(Arc::new(AtomicBool::new(true)));
        let outcome = replay(&options);
        assert!(
            matches!(outcome, Err(ReplayError::Interrupted { .. })),
            "{outcome:?}"
        );
        assert!(!dir.path().join("quarantine.ndjson").exists());
    }

    /// The engine thread parses blocks itself when none is ready: with no parser thread at all it parses every
    /// block, and the report is the same whoever parsed what.
    #[test]
    fn the_report_is_the_same_whichever_threads_parse() {
        let dir = tempfile::tempdir().unwrap();
        let mut text = String::new();
        for n in 0..12_000u64 {
            let (second, user) = (n / 40, n % 7);
            text.push_str(&format!(
                "{{\"ts\":{},\"user\":\"90-B3-D5-1F-30-01-00-0{user}\",\"event\":\"request\",\"count\":3}}\n",
                1_773_100_800_000 + second * 1000 + (n % 40) * 20,
            ));
            if n % 1_000 == 0 {
                text.push_str("not telemetry\n");
            }
        }
        assert!(text.len() > 3 * (256 << 10) / 2, "several blocks");
        let reports: Vec<String> = [1, 2, 4]
            .map(|threads| {
                let mut options = options_for(dir.path(), &text);
                options.quarantine = None;
                options.parse_threads = threads;
                let mut report = replay(&options).unwrap();
                report.summary.elapsed_s = 0.0;
                serde_json::to_string(&report).unwrap()
            })
            .into();
        assert!(
            reports[0].contains("\"malformed\":12"),
            "{}",
            &reports[0][..300]
        );
        assert_eq!(reports[0], reports[1]);
        assert_eq!(reports[0], reports[2]);
    }

    #[test]
    fn the_first_malformed_line_is_kept_with_its_first_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let options = options_for(dir.path(), "ts,user,event\n1,2,3\n");
        let replayed = replay_detailed(&options).unwrap();
        assert_eq!(replayed.report.summary.malformed, 2);
        let first = replayed.first_malformed.expect("a first malformed line");
        assert_eq!((first.line, &first.head[..]), (1, &b"ts,user,event"[..]));
        assert!(first.source.ends_with("events.ndjson"), "{}", first.source);
    }
}
