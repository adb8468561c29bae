//! What the engine thread is sent (`EngineInput`, from sources and the API) and where its results go (`Persistence`).

use std::sync::Arc;
use std::time::Instant;

use crate::engine::incident_series::IncidentSeries;
use crate::engine::streams::{Attach, StreamMark};
use crate::ingest::malformed::MalformedLog;
use stormwatch_core::changes::ChangeRegister;
use stormwatch_core::engine::Engine;
use stormwatch_core::report::IncidentRecord;
use stormwatch_core::telemetry::batch::ParsedChunk;

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
    /// A plain TCP connection (source, by name) closed after its last batch: nothing more comes from it.
    SourceClosed(Arc<str>),
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
