//! The live engine thread: the single owner of the `Engine`. Sources send parsed batches over a bounded channel
//! (a full channel blocks them: backpressure, never drops); once a second it closes idle seconds by the wall
//! clock, publishes gauges, persists incident changes and takes periodic snapshots.

mod held_lines;
pub mod incident_numbers;
pub mod incident_series;
pub mod journal;
mod journal_format;
pub mod restore;
pub mod streams;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam::channel::{Receiver, RecvTimeoutError};
use hdrhistogram::Histogram;

use crate::engine::held_lines::HeldLines;
use crate::engine::incident_series::{IncidentSeries, MAX_USERS, SeriesPoint};
use crate::engine::journal::{Entry, Finding, Journal, Opened, wrap_snapshot};
use crate::engine::streams::{Attach, StreamMark, Streams};
use crate::health::Health;
use crate::ingest::malformed::MalformedLog;
use crate::metrics::Publisher;
use crate::published::Published;
use stormwatch_core::changes::ChangeRegister;
use stormwatch_core::engine::window::RING_SECONDS;
use stormwatch_core::engine::{Engine, IncidentUpdate, IngestError, Ingested, Settled};
use stormwatch_core::report::IncidentRecord;
use stormwatch_core::telemetry::Eui64;
use stormwatch_core::telemetry::batch::{LineCursor, ParsedChunk, malformed, parse_chunk};
use stormwatch_core::telemetry::framing::Chunk;

/// Where a batch came from, for counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceKind {
    Tcp,
    Http,
    File,
    Kafka,
}

impl SourceKind {
    pub fn label(self) -> &'static str {
        match self {
            SourceKind::Tcp => "tcp",
            SourceKind::Http => "http",
            SourceKind::File => "file",
            SourceKind::Kafka => "kafka",
        }
    }
}

/// What a batch did, sent back to an HTTP caller.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct BatchOutcome {
    pub accepted: u64,
    pub malformed: u64,
    /// Valid lines the engine would not take: a User not in the User directory, or a new User with the table
    /// full. Quarantined like malformed lines, counted apart from them.
    pub refused: u64,
}

/// How often open incidents' charts are written to the store (and when they close).
const SAVE_CHARTS_EVERY: Duration = Duration::from_secs(10);
/// Charts are fed between ticks once event time has moved this far, so a fast replay never closes more seconds
/// between two feeds than the engine's per-second ring holds.
const FEED_CHARTS_AFTER_MS: i64 = (RING_SECONDS as i64 / 2) * 1000;

/// Events between two checks of whether the charts need a catch-up feed within a batch: few enough that even a
/// handful of Users cannot move event time by a whole ring in between.
const CHART_CHECK_EVERY: usize = 256;

/// Length of one latency window.
const LATENCY_WINDOW: Duration = Duration::from_secs(60);

pub type Query = Box<dyn FnOnce(&Engine, &MalformedLog) + Send>;

/// A position in a partitioned log (a Kafka partition): everything before `offset` has been sent to the engine,
/// and `event_ms` is the event time reached there. Plain numbers, so that the engine loop knows nothing of Kafka;
/// it only tells the source which positions a saved snapshot covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogPosition {
    pub partition: i32,
    pub offset: i64,
    pub event_ms: i64,
}

pub enum EngineInput {
    Batch {
        source: Arc<str>,
        kind: SourceKind,
        parsed: ParsedChunk,
        received: Instant,
        reply: Option<tokio::sync::oneshot::Sender<BatchOutcome>>,
    },
    /// A batch of an acknowledged TCP stream (`ACK ON`): journalled with the stream's position, and refused when
    /// a newer connection has taken the stream over.
    StreamBatch {
        mark: StreamMark,
        source: Arc<str>,
        parsed: ParsedChunk,
        received: Instant,
    },
    /// A connection starts speaking for an acknowledged stream.
    Attach(Attach),
    /// Runs on the engine thread between batches; the closure answers through its own channel.
    Query(Query),
    SetChanges(ChangeRegister),
    /// Notices just written through the API, to add to (or replace in) the engine's register.
    UpsertChanges(Vec<stormwatch_core::changes::ChangeNotice>),
    /// A new allow-list from the User directory (an API edit); `None` lets every User in.
    SetDirectory(Option<rustc_hash::FxHashSet<stormwatch_core::telemetry::Eui64>>),
    /// A log source's positions after the batches sent before this message.
    Positions(Vec<LogPosition>),
    /// Start again from empty state (same config and change register): the source's set of Users changed
    /// (a rebalance) and it is about to replay their recent history. Quiet until `Live`.
    Rebuild,
    /// The source has caught up with where the previous owner stopped: incidents notify again.
    Live,
    /// Whether a log source still has records to hand over (or has not reached the end of every partition).
    /// While it has, a pause in events means a slow fetch, not a quiet network, and event time must not move
    /// on by the wall clock: the records still coming would arrive late.
    SourceBehind(bool),
    Shutdown,
}

/// Where incidents and snapshots go (the store, in the service).
pub trait Persistence: Send {
    fn incident_changed(&mut self, record: &IncidentRecord);
    /// Saves the snapshot; true once it is durable.
    fn save_snapshot(&mut self, bytes: Vec<u8>) -> bool;
    /// An open incident changed: notify whoever pages people.
    fn notify(&mut self, _record: &IncidentRecord, _resolved: bool) {}
    /// An incident's chart grew (called every few seconds while it is open, and once when it closes).
    fn series_changed(&mut self, _id: &str, _series: &IncidentSeries) {}
    /// The chart stored for an incident, to carry on with after a restart.
    fn stored_series(&mut self, _id: &str) -> Option<IncidentSeries> {
        None
    }
}

pub struct EngineLoop {
    pub engine: Engine,
    pub malformed: MalformedLog,
    pub persistence: Box<dyn Persistence>,
    pub lateness_ms: i64,
    pub snapshot_every: Duration,
    /// Told of every finished tick and snapshot, read by `/readyz` from the HTTP side.
    pub health: Arc<Health>,
    /// Fault injection for tests of the health checks: the thread hangs (as a stuck engine would) at its first
    /// tick this long after starting. Never set in normal operation.
    pub hang_after: Option<Duration>,
    /// Run once the engine has restored, settled and started serving (fault injection that must not slow the start).
    pub on_started: Option<Box<dyn FnOnce() + Send>>,
    publisher: Publisher,
    /// Ingest-to-window latency in microseconds, this minute and the last: quantiles cover the last 1-2 minutes.
    latency: Histogram<u64>,
    previous_latency: Histogram<u64>,
    latency_window_started: Instant,
    /// Wall time of the last event, to close seconds by the wall clock when the stream goes quiet.
    last_event_wall: Option<i64>,
    last_snapshot: Instant,
    /// Positions of a log source (Kafka) as of the last batch; a saved snapshot covers them.
    positions: Vec<LogPosition>,
    /// Where covered positions go after each snapshot, so the source commits only what a snapshot holds.
    checkpoints: Option<crossbeam::channel::Sender<Vec<LogPosition>>>,
    /// Rebuilding after a rebalance: incidents are stored (their IDs are stable) but nobody is paged about
    /// what the previous owner already raised.
    quiet: bool,
    /// A log source has said it still has records to hand over: the idle clock waits.
    source_behind: bool,
    /// Lines the engine holds while their event time is in doubt, with their source.
    held: HeldLines,
    /// Everything applied since the last snapshot, for replay after a crash (not with a log source, which
    /// replays from its own log).
    journal: Option<Journal>,
    /// Journal entries found at start, replayed before the engine serves.
    to_replay: Vec<Entry>,
    /// What opening the journal found wrong, reported when the engine starts.
    journal_finding: Option<Finding>,
    /// Acknowledged TCP streams: their positions and the `ACK`s they are owed.
    streams: Streams,
    /// The last record written for each open incident: the tick writes an open incident again only when the
    /// engine's record differs (at most once a second each, never per event). Bounded by the open incidents.
    written: HashMap<String, IncidentRecord>,
    /// Each open incident's chart, fed from the engine's windows; bounded per incident (incident_series.rs).
    charts: HashMap<String, IncidentSeries>,
    charts_saved: Instant,
    /// The watermark the charts were last fed at.
    charts_fed_ms: i64,
    /// Where the idle clock last moved event time, so a quiet feed is journalled once, not every second.
    idle_advanced_to: i64,
    /// Users evicted as of the last tick, so each tick logs only new evictions (one line, not one per User).
    evicted_logged: u64,
    /// Incident numbers reserved in the store ahead of need (not with stable IDs).
    numbers: Option<incident_numbers::NumberSupply>,
    /// Where the per-User state goes for the API and console to read without asking this thread: at every tick,
    /// and after input once the engine has caught up (see `publish_when_allowed`).
    published: Option<Arc<Published>>,
    /// Input changed the state since it was last published.
    publish_pending: bool,
    /// No more input was waiting when the batch being applied was taken.
    input_idle: bool,
    last_published: Instant,
    /// How long the last publication took: the next one waits ten times that, so publishing takes at most about
    /// a tenth of this thread's time whatever the number of Users.
    publish_cost: Duration,
}

pub fn wall_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl EngineLoop {
    pub fn new(
        engine: Engine,
        malformed: MalformedLog,
        persistence: Box<dyn Persistence>,
        lateness_ms: i64,
        snapshot_every: Duration,
    ) -> Self {
        EngineLoop {
            malformed,
            persistence,
            lateness_ms,
            snapshot_every,
            health: Arc::new(Health::new(Duration::from_secs(10))),
            hang_after: None,
            on_started: None,
            publisher: Publisher::default(),
            // Microseconds, 1 us to 60 s: constant bounds that hdrhistogram accepts.
            latency: Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds"),
            previous_latency: Histogram::new_with_bounds(1, 60_000_000, 3)
                .expect("valid histogram bounds"),
            latency_window_started: Instant::now(),
            // A restored engine counts as having just heard from its sources, so its idle clock runs from now.
            last_event_wall: engine.max_ts().map(|_| wall_ms()),
            last_snapshot: Instant::now(),
            positions: Vec::new(),
            checkpoints: None,
            quiet: false,
            source_behind: false,
            held: HeldLines::default(),
            journal: None,
            to_replay: Vec::new(),
            journal_finding: None,
            streams: Streams::default(),
            written: HashMap::new(),
            charts: HashMap::new(),
            charts_saved: Instant::now(),
            charts_fed_ms: i64::MIN,
            idle_advanced_to: i64::MIN,
            evicted_logged: engine.evicted_total(),
            numbers: None,
            published: None,
            publish_pending: false,
            input_idle: false,
            last_published: Instant::now(),
            publish_cost: Duration::ZERO,
            engine,
        }
    }

    /// Journals what is applied from now on, and replays the entries found in the journal at start first.
    /// `streams`: the acknowledged streams' positions saved with the snapshot.
    pub fn with_journal(mut self, opened: Opened, streams: Vec<(String, u64)>) -> Self {
        self.journal = Some(opened.journal);
        self.to_replay = opened.entries;
        self.journal_finding = opened.finding;
        self.streams = Streams::restore(streams);
        self
    }

    /// Applies the journal found at start, quietly: what it opens or resolves is stored, but nobody is paged
    /// again about what was already raised before the crash.
    fn replay_journal(&mut self) {
        let finding = self.journal_finding.take();
        if let (Some(finding), Some(journal)) = (&finding, &self.journal) {
            journal::report(journal.path(), finding);
            // A journal newer than a snapshot that could not be read is that same loss, which `snapshot_lost`
            // holds on /readyz until acknowledged: it is noted there, not failed twice.
            let same_loss = matches!(finding, journal::Finding::Newer { .. })
                && self.health.failing(crate::health::Check::SnapshotLost);
            self.health
                .journal_found(finding.describe(), finding.loses_data() && !same_loss);
        }
        let entries = std::mem::take(&mut self.to_replay);
        if entries.is_empty() {
            return;
        }
        let (mut batches, mut events) = (0u64, 0u64);
        let quiet = std::mem::replace(&mut self.quiet, true);
        self.engine.set_now_bound(Some(wall_ms()));
        for entry in &entries {
            let lines = match entry {
                Entry::Batch(lines) => Some(lines),
                Entry::Stream {
                    name,
                    through,
                    lines,
                } => {
                    self.streams.set_position(name, *through);
                    Some(lines)
                }
                Entry::Advance(_) => None,
            };
            if let Some(lines) = lines {
                let parsed = parse_chunk(
                    0,
                    Chunk::Lines {
                        first_line: 1,
                        data: lines.clone(),
                    },
                );
                for event in &parsed.events {
                    events += u64::from(self.engine.ingest(event).is_ok());
                }
                batches += 1;
            }
            match entry {
                Entry::Batch(_) | Entry::Stream { .. } => {}
                Entry::Advance(to_ms) => self.engine.advance_to(*to_ms),
            }
            self.handle_updates();
        }
        self.quiet = quiet;
        // Refusals of replayed lines were kept as malformed when they first arrived.
        self.engine.drain_settled().for_each(drop);
        self.last_event_wall = self.engine.max_ts().map(|_| wall_ms());
        if finding.as_ref().is_some_and(Finding::loses_data) {
            tracing::warn!(
                batches,
                events,
                "journal replayed as far as it could be read: the engine is missing what the damage held"
            );
        } else {
            tracing::info!(
                batches,
                events,
                "journal replayed: the engine is where it was when the service stopped"
            );
        }
    }

    /// Tops up the engine's incident numbers from `supply` every tick.
    pub fn with_incident_numbers(mut self, supply: incident_numbers::NumberSupply) -> Self {
        self.numbers = Some(supply);
        self
    }

    /// Reports into `health` (shared with `/readyz`) instead of a private one.
    pub fn with_health(mut self, health: Arc<Health>) -> Self {
        self.health = health;
        self
    }

    /// Publishes the engine's per-User state into `published` at start and at every tick.
    pub fn with_published(mut self, published: Arc<Published>) -> Self {
        self.published = Some(published);
        self
    }

    /// After each saved snapshot, the log positions it covers are sent here.
    pub fn with_checkpoints(
        mut self,
        checkpoints: crossbeam::channel::Sender<Vec<LogPosition>>,
    ) -> Self {
        self.checkpoints = Some(checkpoints);
        self
    }

    /// Runs until `Shutdown` or every sender is gone; takes a final snapshot.
    pub fn run(mut self, input: Receiver<EngineInput>) {
        self.replay_journal();
        // A numbering the journal's replay cannot reproduce is in a snapshot before anything new is applied: a
        // crash replays the journal with the names it gives. Whatever the journal's opening found stays on
        // /readyz until a periodic snapshot: nobody has seen it yet.
        let renumbered = match &mut self.numbers {
            Some(numbers) => numbers.settle(&mut self.engine),
            None => false,
        };
        if renumbered {
            self.save_snapshot(false);
        }
        self.publish(None);
        self.health.engine_started();
        if let Some(started) = self.on_started.take() {
            started();
        }
        let started = Instant::now();
        let mut next_tick = Instant::now() + Duration::from_secs(1);
        loop {
            let wake = match self.publish_pending {
                true => next_tick.min(self.last_published + self.publish_cost * 10),
                false => next_tick,
            };
            let wake = self
                .journal
                .as_ref()
                .and_then(Journal::sync_due)
                .map_or(wake, |due| due.min(wake));
            let timeout = wake.saturating_duration_since(Instant::now());
            match input.recv_timeout(timeout) {
                Ok(EngineInput::Batch {
                    source,
                    kind,
                    parsed,
                    received,
                    reply,
                }) => {
                    self.input_idle = input.is_empty();
                    let outcome = self.apply(&source, kind, &parsed);
                    let micros = received.elapsed().as_micros().min(u128::from(u64::MAX)) as u64;
                    let _ = self.latency.record(micros.max(1));
                    if let Some(reply) = reply {
                        let _ = reply.send(outcome);
                    }
                }
                Ok(EngineInput::StreamBatch {
                    mark,
                    source,
                    parsed,
                    received,
                }) => {
                    if self.streams.accepts(&mark) {
                        if let Some(journal) = &mut self.journal {
                            journal.stream_batch(&mark.name, mark.through, &parsed.data);
                        }
                        self.apply_journalled(&source, SourceKind::Tcp, &parsed);
                        self.streams.applied(&mark);
                        let micros =
                            received.elapsed().as_micros().min(u128::from(u64::MAX)) as u64;
                        let _ = self.latency.record(micros.max(1));
                    } else {
                        // The sender resends these from the position its new connection was given.
                        Publisher::count_superseded(
                            (parsed.events.len() + parsed.malformed.len()) as u64,
                        );
                    }
                }
                Ok(EngineInput::Attach(attach)) => self.attach(attach),
                Ok(EngineInput::Query(query)) => query(&self.engine, &self.malformed),
                Ok(EngineInput::SetChanges(register)) => {
                    self.engine.set_changes(register);
                    self.changes_moved();
                }
                Ok(EngineInput::UpsertChanges(notices)) => {
                    self.engine.upsert_changes(notices);
                    self.changes_moved();
                }
                Ok(EngineInput::SetDirectory(listed)) => self.engine.set_directory(listed),
                Ok(EngineInput::Positions(positions)) => self.positions = positions,
                Ok(EngineInput::Rebuild) => self.rebuild(),
                Ok(EngineInput::Live) => {
                    self.quiet = false;
                    tracing::info!("caught up with the previous owners: incidents notify again");
                }
                Ok(EngineInput::SourceBehind(behind)) => self.source_behind = behind,
                Ok(EngineInput::Shutdown) | Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => {}
            }
            self.acknowledge_durable();
            if self.publish_pending && input.is_empty() {
                self.publish_when_allowed();
            }
            if Instant::now() >= next_tick {
                if self
                    .hang_after
                    .is_some_and(|after| started.elapsed() >= after)
                {
                    hang();
                }
                self.tick();
                next_tick = Instant::now() + Duration::from_secs(1);
            }
        }
        self.save_charts();
        self.snapshot();
        if let Some(journal) = &mut self.journal {
            journal.sync();
        }
        self.malformed.flush();
        tracing::info!("engine stopped after a final snapshot");
    }

    fn apply(&mut self, source: &Arc<str>, kind: SourceKind, parsed: &ParsedChunk) -> BatchOutcome {
        // Written before it is applied: a crash in between replays it, which is what applying it would have done.
        if let Some(journal) = &mut self.journal
            && !parsed.events.is_empty()
        {
            journal.batch(&parsed.data);
        }
        self.apply_journalled(source, kind, parsed)
    }

    /// A connection takes over an acknowledged stream. Its position is made durable before it is told, so a
    /// sender never drops lines the service could still lose to a power cut.
    fn attach(&mut self, attach: Attach) {
        if let Some(journal) = &mut self.journal {
            journal.sync();
        }
        let attached = self.streams.attach(&attach.name, attach.acks);
        if let Ok(attached) = &attached {
            tracing::info!(stream = %attach.name, position = attached.position, "acknowledged stream attached");
        }
        let _ = attach.reply.send(attached);
    }

    /// Syncs the journal when due, and then tells acknowledged streams what is durable.
    fn acknowledge_durable(&mut self) {
        let durable = self.journal.as_mut().is_none_or(Journal::sync_if_due);
        if durable {
            self.streams.acknowledge();
        }
    }

    fn apply_journalled(
        &mut self,
        source: &Arc<str>,
        kind: SourceKind,
        parsed: &ParsedChunk,
    ) -> BatchOutcome {
        let mut outcome = BatchOutcome {
            accepted: 0,
            malformed: parsed.malformed.len() as u64,
            refused: 0,
        };
        self.engine.set_now_bound(Some(wall_ms()));
        let (mut unknown, mut out_of_range) = (0, 0);
        let mut lines = LineCursor::default();
        for (index, event) in parsed.events.iter().enumerate() {
            if index % CHART_CHECK_EVERY == CHART_CHECK_EVERY - 1 {
                self.catch_up_charts();
            }
            match self.engine.ingest(event) {
                Ok(Ingested::Taken) => outcome.accepted += 1,
                Ok(Ingested::Held(token)) => {
                    // Counted as accepted; if the engine refuses it later it is kept as malformed then.
                    outcome.accepted += 1;
                    let (line, bytes) = parsed.line_at(index, &mut lines);
                    self.held.insert(token, source, line, bytes);
                }
                Err(refused) => {
                    let (line, bytes) = parsed.line_at(index, &mut lines);
                    let record = malformed(0, line, refused.to_string(), bytes);
                    outcome.refused += 1;
                    match refused {
                        // A line past the network's time is bad input, listed with the malformed ones.
                        IngestError::OutOfRange { .. } => {
                            out_of_range += 1;
                            self.malformed.keep(source, &record);
                        }
                        IngestError::UnknownUser(_) => {
                            unknown += 1;
                            self.malformed.refuse(source, &record);
                        }
                        IngestError::UserTableFull(_) => self.malformed.refuse(source, &record),
                    }
                }
            }
        }
        for bad in &parsed.malformed {
            self.malformed.keep(source, bad);
        }
        self.settle_held();
        if outcome.accepted > 0 {
            self.last_event_wall = Some(wall_ms());
        }
        // Published before the lines are counted or the sender answered: whoever sees them applied sees them in
        // the published state too (when the engine has caught up and publishing is not rationed).
        self.publish_pending = true;
        if self.input_idle {
            self.publish_when_allowed();
        }
        self.publisher
            .count_batch(kind.label(), outcome.accepted, outcome.malformed);
        if outcome.refused > 0 {
            Publisher::count_refused(
                kind.label(),
                unknown,
                out_of_range,
                outcome.refused - unknown - out_of_range,
            );
        }
        self.handle_updates();
        self.catch_up_charts();
        outcome
    }

    /// Keeps the held lines the engine refused as malformed, and forgets those it placed.
    fn settle_held(&mut self) {
        let (held, malformed_log) = (&mut self.held, &mut self.malformed);
        for outcome in self.engine.drain_settled() {
            match outcome {
                Settled::Released(token) => held.release(token),
                Settled::Refused(token, error) => held.refuse(token, |line| {
                    let record = malformed(0, line.line, error.to_string(), line.bytes);
                    malformed_log.keep(line.source, &record);
                }),
            }
        }
    }

    /// During a fast catch-up a batch can span more event time than the engine's ring holds: the charts are
    /// fed (and saved, so the API's live tail joins them) whenever event time has moved far enough.
    fn catch_up_charts(&mut self) {
        if self
            .engine
            .watermark_ms()
            .is_some_and(|w| w.saturating_sub(self.charts_fed_ms) >= FEED_CHARTS_AFTER_MS)
        {
            let open = self.engine.open_incidents();
            self.feed_charts(&open);
            self.save_charts();
        }
    }

    fn save_charts(&mut self) {
        self.charts_saved = Instant::now();
        for (id, chart) in &self.charts {
            self.persistence.series_changed(id, chart);
        }
    }

    fn handle_updates(&mut self) {
        let updates: Vec<IncidentUpdate> = self.engine.drain_updates().collect();
        for update in updates {
            let (index, resolved) = match update {
                IncidentUpdate::Opened(index) => (index, false),
                IncidentUpdate::Resolved(index) => (index, true),
                IncidentUpdate::Merged(index, _) => (index, true),
            };
            if let Some(record) = self.engine.incident_record(index) {
                if resolved {
                    self.written.remove(&record.id);
                    self.feed_chart(&record);
                    if let Some(chart) = self.charts.remove(&record.id) {
                        self.persistence.series_changed(&record.id, &chart);
                    }
                } else {
                    self.written.insert(record.id.clone(), record.clone());
                }
                if self.quiet {
                    self.persistence.incident_changed(&record);
                    continue;
                }
                if matches!(update, IncidentUpdate::Opened(_)) {
                    Publisher::incident_opened(record.kind);
                    tracing::warn!(id = %record.id, user = %record.user, kind = record.kind.as_str(), verdict = record.verdict.as_str(), "incident opened");
                }
                self.persistence.incident_changed(&record);
                self.persistence.notify(&record, resolved);
            }
        }
    }

    /// Once a second: close quiet seconds by the wall clock, publish gauges, snapshot when due.
    fn tick(&mut self) {
        if let Some(numbers) = &mut self.numbers {
            numbers.top_up(&mut self.engine);
        }
        let now = wall_ms();
        self.engine.set_now_bound(Some(now));
        if let (Some(last_wall), Some(max_ts)) = (self.last_event_wall, self.engine.max_ts()) {
            let quiet_ms = now - last_wall;
            // When nothing at all arrives, the seconds still open (the lateness window) are closed by the wall
            // clock so the last data is evaluated, but event time goes no further: a feed that stops entirely
            // is missing data (an exporter outage, a network cut, a restart), not a network where nothing is
            // delivered, and must not open incidents by itself. A User that alone goes quiet is still evaluated,
            // since the others' events move the watermark.
            let to = max_ts + quiet_ms.min(self.lateness_ms + 1_000);
            if quiet_ms > self.lateness_ms && !self.source_behind && to > self.idle_advanced_to {
                self.idle_advanced_to = to;
                if let Some(journal) = &mut self.journal {
                    journal.advance(to);
                }
                self.engine.advance_to(to);
                self.settle_held();
                self.handle_updates();
            }
        }
        let lag = self
            .engine
            .watermark_ms()
            .map_or(0.0, |w| (now - w) as f64 / 1000.0);
        if self.latency_window_started.elapsed() >= LATENCY_WINDOW {
            self.latency_window_started = Instant::now();
            std::mem::swap(&mut self.latency, &mut self.previous_latency);
            self.latency.reset();
        }
        let mut recent = self.previous_latency.clone();
        let _ = recent.add(&self.latency);
        let quantile = |q: f64| recent.value_at_quantile(q) as f64 / 1e6;
        let latency = [
            ("0.5", quantile(0.5)),
            ("0.99", quantile(0.99)),
            ("0.999", quantile(0.999)),
        ];
        let evicted = self.engine.evicted_total();
        if evicted > self.evicted_logged {
            tracing::info!(
                evicted = evicted - self.evicted_logged,
                users = self.engine.user_count(),
                idle_s = self.engine.config().evict_idle_after_s,
                "idle Users evicted from memory"
            );
            self.evicted_logged = evicted;
        }
        let open = self.engine.open_incidents();
        self.publisher.tick(&self.engine, &open, lag, latency);
        self.publish(Some(&open));
        self.refresh_open(&open);
        self.feed_charts(&open);
        if self.charts_saved.elapsed() >= SAVE_CHARTS_EVERY {
            self.save_charts();
        }
        self.malformed.flush();
        // Closed incidents are in the store already; the engine only needs the recent ones.
        self.engine
            .prune_closed(self.engine.config().keep_resolved_s);
        if self.last_snapshot.elapsed() >= self.snapshot_every {
            self.snapshot();
        }
        self.health.engine_ticked();
    }

    /// Publishes the state for readers on other threads; `open`: the open incidents, when already listed.
    fn publish(&mut self, open: Option<&[IncidentRecord]>) {
        let Some(published) = &self.published else {
            self.publish_pending = false;
            return;
        };
        let started = Instant::now();
        match open {
            Some(open) => published.publish(&self.engine, open),
            None => published.publish(&self.engine, &self.engine.open_incidents()),
        }
        self.last_published = Instant::now();
        self.publish_cost = started.elapsed();
        self.publish_pending = false;
    }

    /// Publishes now unless the last publication was too recent for its cost (then the loop wakes for it).
    fn publish_when_allowed(&mut self) {
        if self.last_published.elapsed() >= self.publish_cost * 10 {
            self.publish(None);
        }
    }

    /// Writes each open incident whose figures, verdict or suspects moved since it was last written, and tells
    /// the alert sender (which pushes at once only when what a person acts on changed). Forgets closed ones.
    fn refresh_open(&mut self, open: &[IncidentRecord]) {
        let still_open: HashSet<&str> = open.iter().map(|record| record.id.as_str()).collect();
        self.written
            .retain(|id, _| still_open.contains(id.as_str()));
        for record in open {
            if self.written.get(&record.id) == Some(record) {
                continue;
            }
            self.persistence.incident_changed(record);
            if !self.quiet {
                self.persistence.notify(record, false);
            }
            self.written.insert(record.id.clone(), record.clone());
        }
    }

    /// Adds the seconds closed since the last feed to each open incident's chart; forgets closed ones' charts.
    fn feed_charts(&mut self, open: &[IncidentRecord]) {
        self.charts_fed_ms = self.engine.watermark_ms().unwrap_or(i64::MIN);
        let still_open: HashSet<&str> = open.iter().map(|record| record.id.as_str()).collect();
        self.charts.retain(|id, _| still_open.contains(id.as_str()));
        for record in open {
            self.feed_chart(record);
        }
    }

    /// Adds what the engine's windows hold of `record`'s Users since its chart was last fed.
    fn feed_chart(&mut self, record: &IncidentRecord) {
        let chart = match self.charts.get_mut(&record.id) {
            Some(chart) => chart,
            None => {
                let chart = self
                    .persistence
                    .stored_series(&record.id)
                    .unwrap_or_else(|| IncidentSeries::new(record.onset, record.detected));
                self.charts.entry(record.id.clone()).or_insert(chart)
            }
        };
        let users: Vec<Eui64> = std::iter::once(&record.user)
            .chain(&record.users)
            .filter_map(|u| Eui64::parse(u))
            .take(MAX_USERS)
            .collect();
        for user in users {
            let Some(state) = self
                .engine
                .user_index(user)
                .map(|i| &self.engine.users()[i])
            else {
                continue;
            };
            let Some(closed) = state.window.closed_through() else {
                continue;
            };
            let name = user.to_string();
            let Some(next) = chart.user_mut(&name).map(|series| series.next_second) else {
                continue;
            };
            let Some(index) = chart.users.iter().position(|u| u.user == name) else {
                continue;
            };
            let from = next.max(closed - RING_SECONDS as i64 + 1);
            for second in from..=closed {
                chart.push(
                    index,
                    SeriesPoint::of_second(second, &state.window.read(second)),
                );
            }
        }
    }

    /// After the register moved and every incident was re-correlated: resolved incidents' new verdicts reach the
    /// store, and open ones reach the store and Alertmanager now, not at the next tick.
    fn changes_moved(&mut self) {
        for record in self.engine.incident_records() {
            if record.resolved.is_some() {
                self.persistence.incident_changed(&record);
            }
        }
        let open = self.engine.open_incidents();
        self.refresh_open(&open);
    }

    fn rebuild(&mut self) {
        let config = self.engine.config().clone();
        let changes = self.engine.changes().clone();
        // The directory is configuration, not state: a rebuilt engine that forgot it let every made-up User in.
        let directory = self.engine.directory().cloned();
        let numbers = self.engine.incident_numbers().clone();
        self.engine = Engine::new(config, changes);
        self.engine.set_directory(directory);
        // Numbers already handed out stay handed out.
        self.engine.set_incident_numbers(numbers);
        // Tokens start again with the new engine; its predecessor's held lines belong to the previous owner.
        self.held.clear();
        self.publisher.forget_users();
        self.written.clear();
        self.charts.clear();
        self.positions.clear();
        self.last_event_wall = None;
        // The new engine has moved no event time yet: a gap it reaches again (the log's end, as before the
        // rebalance) must close its open seconds again.
        self.idle_advanced_to = i64::MIN;
        self.evicted_logged = 0;
        self.quiet = true;
        tracing::info!("engine state cleared for a rebuild from the log");
    }

    fn snapshot(&mut self) {
        self.save_snapshot(true);
    }

    /// `settles_journal`: a saved snapshot ends the readiness failure of a damaged journal found at start.
    fn save_snapshot(&mut self, settles_journal: bool) {
        self.last_snapshot = Instant::now();
        match self.engine.snapshot() {
            Ok(bytes) => {
                let next = self.journal.as_ref().map(|j| j.generation() + 1);
                let bytes = match next {
                    Some(generation) => {
                        wrap_snapshot(generation, &self.streams.positions(), &bytes)
                    }
                    None => bytes,
                };
                // Saving is synchronous: once it returns, the snapshot holds every batch before the positions.
                let saved = self.persistence.save_snapshot(bytes);
                self.health.snapshot_saved(saved);
                if saved && let (Some(journal), Some(generation)) = (&mut self.journal, next) {
                    match journal.restart(generation) {
                        Ok(()) if settles_journal => self.health.journal_settled(),
                        Ok(()) => {}
                        Err(error) => {
                            // Later batches would go to the old generation, which the next start drops as
                            // older than the snapshot: readiness fails until a snapshot restarts it.
                            self.health.snapshot_saved(false);
                            tracing::error!(%error, "cannot restart the journal after a snapshot")
                        }
                    }
                }
                if saved
                    && let Some(checkpoints) = &self.checkpoints
                    && !self.positions.is_empty()
                {
                    let _ = checkpoints.send(self.positions.clone());
                }
            }
            Err(error) => {
                self.health.snapshot_saved(false);
                tracing::error!(%error, "engine snapshot failed");
            }
        }
    }
}

/// The injected fault: blocks this thread for good, answering nothing, like an engine caught in a loop.
#[cold]
fn hang() -> ! {
    tracing::warn!("fault injection: the engine thread hangs now");
    loop {
        std::thread::park();
    }
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
