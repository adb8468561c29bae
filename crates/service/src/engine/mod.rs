//! The live engine thread: the single owner of the `Engine`. Sources send parsed batches over a bounded channel
//! (a full channel blocks them: backpressure, never drops); once a second it closes idle seconds by the wall
//! clock, publishes gauges, persists incident changes and takes periodic snapshots.

mod apply;
mod charts;
pub mod incident_numbers;
pub mod incident_series;
mod input;
pub mod journal;
mod journal_format;
mod latency;
mod recovery;
pub mod restore;
pub mod sources;
pub mod streams;
mod tick;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam::channel::{Receiver, RecvTimeoutError};

use crate::engine::incident_series::IncidentSeries;
use crate::engine::journal::{Entry, Finding, Journal, Opened};
use crate::engine::latency::IngestLatency;
use crate::engine::streams::Streams;
use crate::health::Health;
use crate::ingest::malformed::MalformedLog;
use crate::metrics::Publisher;
use crate::published::Published;
use stormwatch_core::engine::Engine;
use stormwatch_core::report::IncidentRecord;
use stormwatch_core::telemetry::batch::ParsedChunk;
use stormwatch_core::telemetry::held_lines::HeldLines;

pub use input::{BatchOutcome, EngineInput, LogPosition, Persistence, Query, SourceKind};

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
    latency: IngestLatency,
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
    held: HeldLines<Arc<str>>,
    /// The engine's event-time sources by name (connection, stream, HTTP sender, file, topic).
    sources: sources::SourceNames,
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
    /// Connections opened, registered ahead of any batch (see [`sources::Openings`]).
    openings: Arc<sources::Openings>,
    /// Where applied batches go to be reused (their vectors and blocks), instead of being freed here.
    spent: Option<Box<dyn FnMut(ParsedChunk) + Send>>,
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
            latency: IngestLatency::new(),
            // A restored engine counts as having just heard from its sources, so its idle clock runs from now.
            last_event_wall: engine.max_ts().map(|_| wall_ms()),
            last_snapshot: Instant::now(),
            positions: Vec::new(),
            checkpoints: None,
            quiet: false,
            source_behind: false,
            held: HeldLines::default(),
            sources: sources::SourceNames::default(),
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
            openings: Arc::default(),
            spent: None,
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

    /// Connections register their sources through `openings` (shared with the TCP listener).
    pub fn with_openings(mut self, openings: Arc<sources::Openings>) -> Self {
        self.openings = openings;
        self
    }

    /// Applied batches are handed to `spent` for their memory to be reused (the TCP parser threads' pool).
    pub fn with_spent(mut self, spent: impl FnMut(ParsedChunk) + Send + 'static) -> Self {
        self.spent = Some(Box::new(spent));
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
            let received = input.recv_timeout(timeout);
            // Before the input: a connection's registration precedes its first batch and its close.
            for name in self.openings.take() {
                self.source_opened(&name);
            }
            match received {
                Ok(EngineInput::Batch {
                    source,
                    kind,
                    parsed,
                    received,
                    reply,
                }) => {
                    self.input_idle = input.is_empty();
                    let outcome = self.apply(&source, kind, &parsed);
                    self.latency.record(received);
                    if let Some(reply) = reply {
                        let _ = reply.send(outcome);
                    }
                    self.give_back(parsed);
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
                        let id = self.sources.stream_id(&mark.name);
                        self.apply_journalled(&source, id, SourceKind::Tcp, &parsed);
                        let stream: Arc<str> = Arc::from(sources::stream_name(&mark.name));
                        self.sources.pace(&self.engine, Some(&stream));
                        self.streams.applied(&mark);
                        self.latency.record(received);
                    } else {
                        // The sender resends these from the position its new connection was given.
                        Publisher::count_superseded(
                            (parsed.events.len() + parsed.malformed.len()) as u64,
                        );
                    }
                    self.give_back(parsed);
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
                Ok(EngineInput::SourceClosed(name)) => self.source_closed(&name),
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
