//! Writes a telemetry file to a topic the way an exporter on the log bus would: records keyed by User ID, each
//! holding a run of that User's lines in file order (so per-User order survives partitioning), stamped with the
//! event time of their first line (so `offsets_for_times` finds event times). A line that does not parse goes
//! alone in an unkeyed record, for the consumers to quarantine.

use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::{KafkaError as RdError, RDKafkaErrorCode};
use rdkafka::message::DeliveryResult;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer, ProducerContext};
use rdkafka::{ClientConfig, ClientContext};
use rustc_hash::FxHashMap;

use super::KafkaError;
use stormwatch_core::telemetry::framing::{Chunk, LineFramer, lines_of};
use stormwatch_core::telemetry::{Eui64, parse_line};
use stormwatch_replay::source::open_input;

/// How lines are grouped into records.
#[derive(Clone, Copy, Debug)]
pub struct Batching {
    /// Lines per record at most.
    pub max_lines: usize,
    /// A record spans at most this much event time (ms); older buffered lines are sent first.
    ///
    /// Records of one partition then run behind each other by up to 1.5 times this (a User's run is swept out
    /// up to half a span after it spans too much, while another User's full run went out at once), and the
    /// consumer releases a partition's records in their order. That disorder must stay within the engine's
    /// lateness (default 5 s), or events arrive late and are counted but not windowed as replay would.
    pub max_span_ms: i64,
}

impl Default for Batching {
    fn default() -> Self {
        Batching {
            max_lines: 256,
            // 3 s of disorder at most: inside the default 5 s lateness with room for the input's own.
            max_span_ms: 2_000,
        }
    }
}

/// What `produce_file` wrote.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Produced {
    pub records: u64,
    pub lines: u64,
    pub unparsed: u64,
}

#[derive(Default)]
struct Delivery {
    failed: Mutex<(u64, Option<String>)>,
}

impl ClientContext for Delivery {}

impl ProducerContext for Delivery {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((error, _)) = result {
            let mut failed = self
                .failed
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            failed.0 += 1;
            failed.1.get_or_insert_with(|| error.to_string());
        }
    }
}

/// One User's lines waiting to be sent.
struct Run {
    first_ts: i64,
    lines: usize,
    data: Vec<u8>,
}

/// Produces every line of `path` (`.gz`/`.zst` decompressed) to `topic`.
pub fn produce_file(
    brokers: &str,
    topic: &str,
    path: &Path,
    batching: Batching,
) -> Result<Produced, KafkaError> {
    let producer: BaseProducer<Delivery> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("linger.ms", "20")
        .set("queue.buffering.max.messages", "200000")
        .set("message.timeout.ms", "60000")
        .create_with_context(Delivery::default())
        .map_err(|source| KafkaError::Client {
            brokers: brokers.into(),
            cause: source,
        })?;
    let read_error = |source| KafkaError::Read {
        path: path.display().to_string(),
        cause: source,
    };
    let input = open_input(path).map_err(|e| read_error(e.cause))?;
    let mut framer = LineFramer::streaming(input, 1 << 20);
    let mut runs: FxHashMap<Eui64, Run> = FxHashMap::default();
    let mut produced = Produced::default();
    let mut swept_at = i64::MIN;
    let send = |key: Option<&str>, data: &[u8], ts: Option<i64>, produced: &mut Produced| {
        let mut record = BaseRecord::<str, [u8]>::to(topic).payload(data);
        if let Some(key) = key {
            record = record.key(key);
        }
        if let Some(ts) = ts {
            record = record.timestamp(ts);
        }
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((RdError::MessageProduction(RDKafkaErrorCode::QueueFull), again)) => {
                    record = again;
                    producer.poll(Duration::from_millis(50));
                }
                Err((source, _)) => {
                    return Err(KafkaError::Produce {
                        topic: topic.into(),
                        cause: source,
                    });
                }
            }
        }
        produced.records += 1;
        producer.poll(Duration::ZERO);
        Ok(())
    };
    let flush_run = |user: Eui64, run: Run, produced: &mut Produced| {
        send(
            Some(&user.to_string()),
            &run.data,
            Some(run.first_ts),
            produced,
        )
    };
    while let Some(chunk) = framer.next_chunk().map_err(read_error)? {
        let Chunk::Lines { first_line, data } = chunk else {
            // An oversized line: its prefix alone, for the consumer to quarantine.
            if let Chunk::Oversized { prefix, .. } = chunk {
                produced.unparsed += 1;
                produced.lines += 1;
                send(None, &prefix, None, &mut produced)?;
            }
            continue;
        };
        for (_, line) in lines_of(first_line, &data) {
            if stormwatch_core::telemetry::batch::is_blank(line) {
                continue;
            }
            produced.lines += 1;
            let Ok(event) = parse_line(line) else {
                produced.unparsed += 1;
                send(None, line, None, &mut produced)?;
                continue;
            };
            let run = runs.entry(event.user).or_insert_with(|| Run {
                first_ts: event.ts_ms,
                lines: 0,
                data: Vec::new(),
            });
            run.data.extend_from_slice(line);
            run.data.push(b'\n');
            run.lines += 1;
            if run.lines >= batching.max_lines
                && let Some(run) = runs.remove(&event.user)
            {
                flush_run(event.user, run, &mut produced)?;
            }
            // Now and then, send runs that span too much event time, oldest first.
            if event.ts_ms >= swept_at.saturating_add(batching.max_span_ms / 2) {
                swept_at = event.ts_ms;
                let limit = event.ts_ms - batching.max_span_ms;
                let mut old: Vec<Eui64> = runs
                    .iter()
                    .filter(|(_, r)| r.first_ts <= limit)
                    .map(|(&u, _)| u)
                    .collect();
                old.sort_unstable_by_key(|u| runs.get(u).map(|r| r.first_ts));
                for user in old {
                    if let Some(run) = runs.remove(&user) {
                        flush_run(user, run, &mut produced)?;
                    }
                }
            }
        }
    }
    let mut rest: Vec<(Eui64, Run)> = runs.drain().collect();
    rest.sort_unstable_by_key(|(_, r)| r.first_ts);
    for (user, run) in rest {
        flush_run(user, run, &mut produced)?;
    }
    producer
        .flush(Duration::from_secs(120))
        .map_err(|source| KafkaError::Produce {
            topic: topic.into(),
            cause: source,
        })?;
    let (failed, first) = producer
        .context()
        .failed
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    if failed > 0 {
        return Err(KafkaError::Undelivered {
            topic: topic.into(),
            records: produced.records,
            failed,
            first: first.unwrap_or_default(),
        });
    }
    Ok(produced)
}

/// Creates `topic` with `partitions` partitions (replication 1, compacted if asked) unless it exists.
pub fn create_topic(
    brokers: &str,
    topic: &str,
    partitions: i32,
    compacted: bool,
) -> Result<(), KafkaError> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .map_err(|source| KafkaError::Client {
            brokers: brokers.into(),
            cause: source,
        })?;
    let failed = |reason: String| KafkaError::CreateTopic {
        topic: topic.into(),
        reason,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| failed(e.to_string()))?;
    let mut new = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    if compacted {
        new = new.set("cleanup.policy", "compact");
    }
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let results = runtime
        .block_on(admin.create_topics([&new], &options))
        .map_err(|e| failed(e.to_string()))?;
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((_, code)) => return Err(failed(code.to_string())),
        }
    }
    Ok(())
}
