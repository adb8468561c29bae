//! Kafka as a telemetry source (cargo feature `kafka`): instances in one consumer group share a topic keyed by
//! User ID, each owning the Users of its assigned partitions. Kafka does the clustering (partition ownership,
//! rebalancing, committed offsets); this module feeds the same engine as every other source.
//!
//! - `feed.rs`: event-time alignment of the assigned partitions (pure).
//! - `source.rs`: the consumer thread: rebalances, rebuild by seeking back in time, commits after snapshots.
//! - `produce.rs`: writes a telemetry file to a topic keyed by User (`stormwatch kafka-produce`).
//! - `group_guard.rs`: instances say what they own in `TOPIC.members`; rejoin when partitions stay unowned.
//! - `metrics.rs`: lag per partition, assignment and rebalance counts.
//! - `replicate.rs`: incidents published to and followed from `TOPIC.incidents`, so every instance shows all.
//! - `changes_topic.rs`: the change register replicated through `TOPIC.changes`.

pub mod changes_topic;
pub mod feed;
pub mod group_guard;
pub mod metrics;
pub mod produce;
pub mod replicate;
pub mod source;

use std::time::Duration;

/// Where and how an instance consumes.
#[derive(Clone, Debug, PartialEq)]
pub struct KafkaOptions {
    /// Bootstrap servers, `host:port[,host:port...]`.
    pub brokers: String,
    pub topic: String,
    /// Consumer group shared by the instances that split the topic between them.
    pub group: String,
    /// How much event time before the previous owner's committed position a newly assigned partition is
    /// replayed, to warm windows and baselines and see incidents still open at the hand-over.
    pub warmup: Duration,
    /// Names this instance to the others (replicated incidents and changes, `TOPIC.members`).
    pub instance: String,
}

/// Failures of the Kafka source and producer, with what was being done.
/// Each message carries its cause in a `cause` field, which is deliberately not a `source()`: the binary prints
/// the whole chain, and a cause in both printed twice.
#[derive(Debug, thiserror::Error)]
pub enum KafkaError {
    #[error("Kafka client for {brokers}: {cause}")]
    Client {
        brokers: String,
        cause: rdkafka::error::KafkaError,
    },
    #[error("subscribing to topic `{topic}`: {cause}")]
    Subscribe {
        topic: String,
        cause: rdkafka::error::KafkaError,
    },
    #[error("producing to topic `{topic}`: {cause}")]
    Produce {
        topic: String,
        cause: rdkafka::error::KafkaError,
    },
    #[error("creating topic `{topic}`: {reason}")]
    CreateTopic { topic: String, reason: String },
    #[error("reading {path}: {cause}")]
    Read { path: String, cause: std::io::Error },
    #[error("{failed} of {records} records were not delivered to `{topic}` (first error: {first})")]
    Undelivered {
        topic: String,
        records: u64,
        failed: u64,
        first: String,
    },
    #[error("the engine stopped")]
    EngineStopped,
}

/// A consumer reading the whole of a one-partition side topic (`TOPIC.changes`, `.members`, `.incidents`) from
/// `from`. Assigned, not subscribed, so that every instance reads all of it; its group
/// (`stormwatch-ROLE-INSTANCE`) is never committed.
pub(crate) fn side_topic_reader(
    brokers: &str,
    topic: &str,
    role: &str,
    instance: &str,
    from: rdkafka::Offset,
) -> Result<rdkafka::consumer::BaseConsumer, KafkaError> {
    use rdkafka::consumer::Consumer;
    let consumer: rdkafka::consumer::BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("stormwatch-{role}-{instance}"))
        .set("enable.auto.commit", "false")
        .create()
        .map_err(|source| KafkaError::Client {
            brokers: brokers.into(),
            cause: source,
        })?;
    let mut assignment = rdkafka::TopicPartitionList::new();
    assignment
        .add_partition_offset(topic, 0, from)
        .and_then(|()| consumer.assign(&assignment))
        .map_err(|source| KafkaError::Subscribe {
            topic: topic.into(),
            cause: source,
        })?;
    Ok(consumer)
}

/// The metadata kept with each committed offset: the event time reached there, so the next owner knows how far
/// back to seek (`offsets_for_times`) without reading the record at that offset.
pub(crate) fn commit_metadata(event_ms: i64) -> String {
    format!("event_ms={event_ms}")
}

pub(crate) fn parse_commit_metadata(metadata: &str) -> Option<i64> {
    metadata.strip_prefix("event_ms=")?.parse().ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn commit_metadata_round_trips_and_refuses_foreign_text() {
        assert_eq!(
            super::parse_commit_metadata(&super::commit_metadata(1_773_133_200_123)),
            Some(1_773_133_200_123)
        );
        assert_eq!(super::parse_commit_metadata(""), None);
        assert_eq!(super::parse_commit_metadata("event_ms=soon"), None);
    }
}
