//! The Kafka consumer thread. It feeds the engine the events of the partitions the group assigned to this
//! instance, aligned by event time (`feed.rs`), and:
//! - on every assignment, clears the engine and replays each partition from `warmup` of event time before its
//!   committed offset (found with `offsets_for_times` from the event time kept in the commit's metadata), so
//!   windows, baselines and open incidents are rebuilt; the engine stays quiet until it passes the committed
//!   offsets, so nothing the previous owner raised is raised again;
//! - commits only offsets that a saved snapshot covers (the engine loop reports them after each snapshot):
//!   at-least-once, a crash replays from the last commit;
//! - quarantines a malformed record's lines like any malformed line, under `kafka:TOPIC/PARTITION@OFFSET`.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crossbeam::channel::{Receiver, Sender};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError as RdError, RDKafkaErrorCode};
use rdkafka::statistics::Statistics;
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientConfig, ClientContext, Message, Offset, TopicPartitionList};
use rustc_hash::FxHashMap;

use super::feed::{Block, Feeds, Start};
use super::group_guard::Guard;
use super::metrics::{self, PartitionLag};
use super::{KafkaError, KafkaOptions, commit_metadata, parse_commit_metadata};
use stormwatch_core::telemetry::Eui64;
use stormwatch_core::telemetry::MalformedLine;
use stormwatch_core::telemetry::batch::{ParsedChunk, malformed, parse_chunk_into};
use stormwatch_core::telemetry::framing::{BLOCK_BYTES, Chunk};
use stormwatch_service::engine::{EngineInput, LogPosition, SourceKind, wall_ms};

/// Events per batch sent to the engine.
const BATCH_EVENTS: usize = 8_192;
/// Records polled before the buffered events are released (or fewer, when the poll comes back empty). Records
/// are mostly a few lines each; a burst fills a block or two per partition.
const POLL_BURST: usize = 4_096;
/// How long a partition at its end still holds back the others (see `feed.rs`).
const IDLE_GRACE: Duration = Duration::from_secs(2);
/// How often the topic's partition count is looked up (for `group_guard.rs`).
const METADATA_EVERY: Duration = Duration::from_secs(5);
/// Broker round trips inside a rebalance (committed offsets, offsets for times).
const BROKER_TIMEOUT: Duration = Duration::from_secs(10);

/// Which partition each User's events came from, for the `extra` of its incidents in the store.
pub type UserPartitions = Arc<Mutex<FxHashMap<Eui64, i32>>>;

struct Context {
    topic: String,
    warmup_ms: i64,
    /// Set by a rebalance, taken by the consumer loop after `poll` returns.
    assignment: Mutex<Option<Vec<Start>>>,
    /// Whether `assignment` holds one: looked at after every record, so the lock is taken only when it does.
    reassigned: AtomicBool,
    /// Newest offsets in each partition (from librdkafka's statistics), for lag.
    high: Mutex<HashMap<i32, i64>>,
}

impl ClientContext for Context {
    fn error(&self, error: RdError, reason: &str) {
        // Reaching a partition's end is news for `feed.rs` (it comes with the poll too), not an error.
        let end = matches!(error, RdError::PartitionEOF(_))
            || matches!(&error, RdError::Global(code) if *code == RDKafkaErrorCode::PartitionEOF);
        if !end {
            tracing::error!(%error, reason, "Kafka client error");
        }
    }

    fn stats(&self, statistics: Statistics) {
        if let Some(topic) = statistics.topics.get(&self.topic) {
            let mut high = self.high.lock().unwrap_or_else(PoisonError::into_inner);
            for (&partition, stats) in &topic.partitions {
                if partition >= 0 && stats.hi_offset >= 0 {
                    high.insert(partition, stats.hi_offset);
                }
            }
        }
    }
}

impl ConsumerContext for Context {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        metrics::rebalanced(&self.topic);
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                let starts = self.starts(consumer, tpl);
                for start in &starts {
                    let offset = start.offset.map_or(Offset::Beginning, Offset::Offset);
                    if let Err(error) =
                        tpl.set_partition_offset(&self.topic, start.partition, offset)
                    {
                        tracing::error!(partition = start.partition, %error, "cannot set a start offset");
                    }
                }
                if let Err(error) = consumer.assign(tpl) {
                    tracing::error!(%error, "cannot take the assigned partitions");
                }
                tracing::info!(partitions = ?starts, "partitions assigned; rebuilding from the log");
                *self
                    .assignment
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner) = Some(starts);
                self.reassigned.store(true, Ordering::Release);
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                tracing::info!(
                    partitions = tpl.count(),
                    "partitions revoked; their Users are handed over"
                );
                if let Err(error) = consumer.unassign() {
                    tracing::error!(%error, "cannot drop the revoked partitions");
                }
                // Stop reporting the revoked Users at once: an empty assignment until the next one.
                *self
                    .assignment
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner) = Some(Vec::new());
                self.reassigned.store(true, Ordering::Release);
            }
            other => tracing::error!(error = ?other, "rebalance failed"),
        }
    }
}

impl Context {
    /// Where each assigned partition starts: `warmup` before the committed offset's event time, or the
    /// beginning when nothing (or nothing readable) was committed.
    fn starts(&self, consumer: &BaseConsumer<Self>, tpl: &TopicPartitionList) -> Vec<Start> {
        let partitions: Vec<i32> = tpl.elements().iter().map(|e| e.partition()).collect();
        let committed = consumer
            .committed_offsets(tpl.clone(), BROKER_TIMEOUT)
            .inspect_err(|error| tracing::warn!(%error, "committed offsets unknown; reading from the beginning"))
            .ok();
        let mut seek = TopicPartitionList::new();
        let mut starts = Vec::new();
        for partition in partitions {
            let commit = committed.as_ref().and_then(|c| {
                let element = c.find_partition(&self.topic, partition)?;
                let Offset::Offset(offset) = element.offset() else {
                    return None;
                };
                Some((offset, parse_commit_metadata(element.metadata())))
            });
            if let Some((_, Some(event_ms))) = commit {
                let _ = seek.add_partition_offset(
                    &self.topic,
                    partition,
                    Offset::Offset(event_ms - self.warmup_ms),
                );
            }
            starts.push(Start {
                partition,
                offset: None,
                live_from: commit.map(|(offset, _)| offset),
            });
        }
        if seek.count() > 0 {
            match consumer.offsets_for_times(seek, BROKER_TIMEOUT) {
                Ok(found) => {
                    for start in &mut starts {
                        let Some(live) = start.live_from else {
                            continue;
                        };
                        start.offset = match found
                            .find_partition(&self.topic, start.partition)
                            .map(|e| e.offset())
                        {
                            Some(Offset::Offset(offset)) => Some(offset.min(live)),
                            // No record that recent: nothing newer than the commit to warm up with.
                            Some(Offset::End) => Some(live),
                            _ => None,
                        };
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "offsets for times failed; replaying from the beginning")
                }
            }
        }
        starts
    }
}

/// Runs the consumer until `stop` is set or the engine is gone.
pub fn run(
    options: KafkaOptions,
    engine: Sender<EngineInput>,
    checkpoints: Receiver<Vec<LogPosition>>,
    users: UserPartitions,
    stop: Arc<AtomicBool>,
) -> Result<(), KafkaError> {
    metrics::describe();
    let context = Context {
        topic: options.topic.clone(),
        warmup_ms: options.warmup.as_millis().min(i64::MAX as u128) as i64,
        assignment: Mutex::new(None),
        reassigned: AtomicBool::new(false),
        high: Mutex::new(HashMap::new()),
    };
    let mut config = ClientConfig::new();
    // librdkafka's own debug contexts (e.g. `cgrp,fetch`) when chasing a group problem.
    if let Ok(debug) = std::env::var("STORMWATCH_KAFKA_DEBUG") {
        config.set("debug", debug);
    }
    let consumer: BaseConsumer<Context> = config
        .set("bootstrap.servers", &options.brokers)
        .set("group.id", &options.group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "true")
        .set("statistics.interval.ms", "1000")
        // A dead instance's partitions move on after 10 s rather than Kafka's default 45 s.
        .set("session.timeout.ms", "10000")
        .set("heartbeat.interval.ms", "1000")
        .create_with_context(context)
        .map_err(|source| KafkaError::Client {
            brokers: options.brokers.clone(),
            cause: source,
        })?;
    consumer
        .subscribe(&[&options.topic])
        .map_err(|source| KafkaError::Subscribe {
            topic: options.topic.clone(),
            cause: source,
        })?;
    tracing::info!(brokers = %options.brokers, topic = %options.topic, group = %options.group, "Kafka consumer subscribed");
    let mut source = Source {
        topic: options.topic.clone(),
        name: Arc::from(format!("kafka:{}", options.topic)),
        filling: FxHashMap::default(),
        feeds: Feeds::new(IDLE_GRACE),
        engine,
        users,
        known: FxHashMap::default(),
        live: true,
        published: BTreeSet::new(),
        last_positions: Vec::new(),
        behind: None,
        changed_at: Instant::now(),
    };
    let mut last_metrics = Instant::now();
    let mut guard = Guard::new(&options.brokers, &options.topic, &options.instance)?;
    let mut partition_count = 0;
    let mut last_metadata: Option<Instant> = None;
    while !stop.load(Ordering::Acquire) {
        for _ in 0..POLL_BURST {
            match consumer.poll(Duration::from_millis(100)) {
                None => break,
                Some(Ok(message)) => {
                    source.record(message.partition(), message.offset(), message.payload())?
                }
                Some(Err(RdError::PartitionEOF(partition))) => {
                    source.flush(partition)?;
                    source.feeds.at_end(partition, Instant::now())
                }
                Some(Err(error)) => tracing::warn!(%error, "Kafka consumer error"),
            }
            if source.take_assignment(consumer.context())? {
                break;
            }
        }
        source.take_assignment(consumer.context())?;
        source.flush_all()?;
        source.release()?;
        while let Ok(positions) = checkpoints.try_recv() {
            source.commit(&consumer, &positions, CommitMode::Async);
        }
        if last_metrics.elapsed() >= Duration::from_secs(1) {
            last_metrics = Instant::now();
            source.publish(consumer.context());
        }
        if last_metadata.is_none_or(|at| at.elapsed() >= METADATA_EVERY) {
            last_metadata = Some(Instant::now());
            partition_count = consumer
                .fetch_metadata(Some(&options.topic), Duration::from_secs(2))
                .ok()
                .and_then(|m| m.topics().first().map(|t| t.partitions().len()))
                .unwrap_or(partition_count);
        }
        let own = source.feeds.assigned().collect();
        if guard.tick(&own, partition_count, source.changed_at) {
            tracing::warn!(group = %options.group, "the group settled with partitions nobody owns; joining again");
            consumer.unsubscribe();
            consumer
                .subscribe(&[&options.topic])
                .map_err(|source| KafkaError::Subscribe {
                    topic: options.topic.clone(),
                    cause: source,
                })?;
        }
    }
    // The engine's final snapshot at shutdown reports what it covers: commit that before leaving the group.
    if let Ok(positions) = checkpoints.recv_timeout(Duration::from_secs(15)) {
        source.commit(&consumer, &positions, CommitMode::Sync);
    }
    Ok(())
}

/// Records of one partition being copied into a block, until it is full or the poll burst ends.
#[derive(Default)]
struct Filling {
    /// The block the records go to (its vectors reused from a released one).
    block: Block,
    /// The records' values, each ending in a newline.
    data: Vec<u8>,
    /// Each record's first byte in `data`, and its offset.
    starts: Vec<(usize, i64)>,
}

struct Source {
    topic: String,
    /// `kafka:TOPIC`, the source the engine is told of for every released batch.
    name: Arc<str>,
    /// Blocks being filled, by partition.
    filling: FxHashMap<i32, Filling>,
    feeds: Feeds,
    engine: Sender<EngineInput>,
    users: UserPartitions,
    /// The consumer's own copy of `users`, so the shared map is locked only for a User not seen before.
    known: FxHashMap<Eui64, i32>,
    /// False while replaying history after an assignment.
    live: bool,
    published: BTreeSet<i32>,
    last_positions: Vec<LogPosition>,
    /// What the engine loop was last told about records still to come (`EngineInput::SourceBehind`).
    behind: Option<bool>,
    /// When the last assignment was taken.
    changed_at: Instant,
}

/// The engine thread is gone: the service is stopping.
fn gone<T>(_: crossbeam::channel::SendError<T>) -> KafkaError {
    KafkaError::EngineStopped
}

impl Source {
    fn send(&self, input: EngineInput) -> Result<(), KafkaError> {
        self.engine.send(input).map_err(gone)
    }

    /// One record: its value copied into its partition's block, which is parsed once full (or when the poll
    /// burst ends).
    fn record(
        &mut self,
        partition: i32,
        offset: i64,
        payload: Option<&[u8]>,
    ) -> Result<(), KafkaError> {
        if !self.feeds.is_assigned(partition) {
            return Ok(());
        }
        let filling = self.filling.entry(partition).or_default();
        if filling.starts.is_empty() && filling.data.capacity() == 0 {
            filling.block = self.feeds.spent();
            filling.data = std::mem::take(&mut filling.block.parsed.data);
            filling.data.clear();
        }
        filling.starts.push((filling.data.len(), offset));
        let Some(bytes) = payload else {
            // The block's earlier records first, so that the quarantine keeps the partition's order.
            self.flush(partition)?;
            let bad = vec![malformed(0, 1, "record has no value".into(), b"")];
            return self.quarantine(partition, offset, bad);
        };
        filling.data.extend_from_slice(bytes);
        if bytes.last().is_some_and(|&b| b != b'\n') {
            filling.data.push(b'\n');
        }
        if filling.data.len() >= BLOCK_BYTES {
            self.flush(partition)?;
        }
        Ok(())
    }

    /// Every partition's block parsed and handed to the feeds.
    fn flush_all(&mut self) -> Result<(), KafkaError> {
        let partitions: Vec<i32> = self
            .filling
            .iter()
            .filter(|(_, f)| !f.starts.is_empty())
            .map(|(&p, _)| p)
            .collect();
        for partition in partitions {
            self.flush(partition)?;
        }
        Ok(())
    }

    /// Parses `partition`'s block (replay's parse, into reused vectors): malformed lines quarantined now, under
    /// their record; valid events held for release, with the record each came from.
    fn flush(&mut self, partition: i32) -> Result<(), KafkaError> {
        let Some(filling) = self.filling.get_mut(&partition) else {
            return Ok(());
        };
        let Some(&(_, last_offset)) = filling.starts.last() else {
            return Ok(());
        };
        let mut block = std::mem::take(&mut filling.block);
        let data = std::mem::take(&mut filling.data);
        let spent = std::mem::take(&mut block.parsed);
        let mut parsed = parse_chunk_into(
            0,
            Chunk::Lines {
                first_line: 1,
                data,
            },
            spent,
        );
        let starts = std::mem::take(&mut filling.starts);
        block.records.clear();
        let mut record = 0;
        for (index, &at) in parsed.offsets.iter().enumerate() {
            // An empty record shares its start with the next one, which owns the line.
            while starts
                .get(record + 1)
                .is_some_and(|&(s, _)| s <= at as usize)
            {
                record += 1;
            }
            let offset = starts[record].1;
            if block.records.last().is_none_or(|&(_, o)| o != offset) {
                block.records.push((index, offset));
            }
        }
        let mut last = None;
        for event in &parsed.events {
            if last != Some(event.user) && !self.known.contains_key(&event.user) {
                self.known.insert(event.user, partition);
                self.users
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(event.user, partition);
            }
            last = Some(event.user);
        }
        let bad = std::mem::take(&mut parsed.malformed);
        block.parsed = parsed;
        block.last_offset = last_offset;
        let mut result = Ok(());
        if !bad.is_empty() {
            result = self.quarantine_block(partition, &starts, &block.parsed.data, bad);
        }
        self.feeds.push_block(partition, block);
        // The vectors go back for the next block; a new `Filling` takes a spent block then.
        if let Some(filling) = self.filling.get_mut(&partition) {
            let mut starts = starts;
            starts.clear();
            filling.starts = starts;
        }
        result
    }

    /// A block's malformed lines, each under its record's name and numbered within it.
    fn quarantine_block(
        &self,
        partition: i32,
        starts: &[(usize, i64)],
        data: &[u8],
        bad: Vec<MalformedLine>,
    ) -> Result<(), KafkaError> {
        // The block's line number each record starts at (only blocks with a malformed line get here).
        let mut first_lines = Vec::with_capacity(starts.len());
        let (mut line, mut counted) = (1u64, 0usize);
        for &(start, _) in starts {
            line += memchr::memchr_iter(b'\n', &data[counted..start]).count() as u64;
            counted = start;
            first_lines.push(line);
        }
        let mut bad = bad.into_iter().peekable();
        while let Some(first) = bad.next() {
            let record = first_lines
                .partition_point(|&l| l <= first.line)
                .saturating_sub(1);
            let (first_line, offset) = (first_lines[record], starts[record].1);
            let next_first = first_lines.get(record + 1).copied().unwrap_or(u64::MAX);
            let mut lines = vec![first];
            while let Some(more) = bad.next_if(|m| m.line < next_first) {
                lines.push(more);
            }
            for line in &mut lines {
                line.line = line.line - first_line + 1;
            }
            self.quarantine(partition, offset, lines)?;
        }
        Ok(())
    }

    /// Malformed lines of one record, under `kafka:TOPIC/PARTITION@OFFSET`.
    fn quarantine(
        &self,
        partition: i32,
        offset: i64,
        malformed: Vec<MalformedLine>,
    ) -> Result<(), KafkaError> {
        self.send(EngineInput::Batch {
            source: format!("kafka:{}/{partition}@{offset}", self.topic).into(),
            kind: SourceKind::Kafka,
            parsed: ParsedChunk {
                malformed,
                ..ParsedChunk::default()
            },
            received: Instant::now(),
            reply: None,
        })
    }

    /// A rebalance happened: start the engine again from the new assignment's history. True if one did.
    fn take_assignment(&mut self, context: &Context) -> Result<bool, KafkaError> {
        // Rebalances call back inside `poll`, on this thread: a load, not a swap, on the per-record path.
        if !context.reassigned.load(Ordering::Acquire) {
            return Ok(false);
        }
        context.reassigned.store(false, Ordering::Release);
        let Some(starts) = context
            .assignment
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        else {
            return Ok(false);
        };
        // Records copied before the rebalance are of the old assignment: the new one reads from its own starts.
        for (_, filling) in self.filling.drain() {
            self.feeds.recycle(filling.block);
        }
        self.feeds.assign(&starts);
        self.changed_at = Instant::now();
        self.last_positions.clear();
        self.send(EngineInput::Rebuild)?;
        self.live = false;
        Ok(true)
    }

    /// Sends whatever the partitions' alignment allows, then the positions and, once past the previous
    /// owners' commits, `Live`.
    fn release(&mut self) -> Result<(), KafkaError> {
        let received = Instant::now();
        while let Some(parsed) = self.feeds.release(BATCH_EVENTS, received) {
            self.send(EngineInput::Batch {
                source: self.name.clone(),
                kind: SourceKind::Kafka,
                parsed,
                received,
                reply: None,
            })?;
        }
        let positions = self.feeds.positions();
        if positions != self.last_positions {
            self.last_positions = positions.clone();
            self.send(EngineInput::Positions(positions))?;
        }
        if !self.live && self.feeds.caught_up() {
            self.live = true;
            self.send(EngineInput::Live)?;
        }
        let behind = !self.feeds.drained();
        if self.behind != Some(behind) {
            self.behind = Some(behind);
            self.send(EngineInput::SourceBehind(behind))?;
        }
        Ok(())
    }

    /// Commits positions a snapshot covers, for partitions still assigned.
    fn commit(
        &self,
        consumer: &BaseConsumer<Context>,
        positions: &[LogPosition],
        mode: CommitMode,
    ) {
        let mut tpl = TopicPartitionList::new();
        for position in positions
            .iter()
            .filter(|p| self.feeds.is_assigned(p.partition))
        {
            let mut element = tpl.add_partition(&self.topic, position.partition);
            if element.set_offset(Offset::Offset(position.offset)).is_ok() {
                element.set_metadata(commit_metadata(position.event_ms));
            }
        }
        if tpl.count() == 0 {
            return;
        }
        match consumer.commit(&tpl, mode) {
            Ok(()) => metrics::committed(&self.topic),
            Err(error) => tracing::warn!(%error, "offset commit failed; the next snapshot retries"),
        }
    }

    fn publish(&mut self, context: &Context) {
        let high = context
            .high
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let now = wall_ms();
        let lags: Vec<PartitionLag> = self
            .feeds
            .assigned()
            .map(|partition| {
                let records = match (high.get(&partition), self.feeds.position(partition)) {
                    (Some(&high), Some(position)) => high - position,
                    (Some(&high), None) => high,
                    _ => 0,
                };
                let seconds = match self.feeds.released_ms(partition) {
                    Some(ms) if records > 0 => (now - ms) as f64 / 1000.0,
                    _ => 0.0,
                };
                PartitionLag {
                    partition,
                    records,
                    seconds,
                }
            })
            .collect();
        metrics::publish(&self.topic, &lags, &mut self.published);
    }
}

#[cfg(test)]
#[path = "source_tests.rs"]
mod tests;
