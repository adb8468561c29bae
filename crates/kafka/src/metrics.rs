//! Kafka consumer metrics on `/metrics`: lag per partition in records and in seconds, the assigned partitions
//! and rebalances. Published once a second by the consumer thread, never per record.

use std::collections::BTreeSet;

use metrics::{counter, describe_counter, describe_gauge, gauge};

pub const LAG_RECORDS: &str = "stormwatch_kafka_lag_records";
pub const LAG_SECONDS: &str = "stormwatch_kafka_lag_seconds";
pub const ASSIGNED: &str = "stormwatch_kafka_assigned_partitions";
pub const REBALANCES: &str = "stormwatch_kafka_rebalances_total";
pub const COMMITS: &str = "stormwatch_kafka_commits_total";

pub fn describe() {
    use metrics::Unit;
    describe_gauge!(
        LAG_RECORDS,
        "Records in the partition not yet applied by this instance (high watermark minus position)"
    );
    describe_gauge!(
        LAG_SECONDS,
        Unit::Seconds,
        "Wall clock minus the event time last applied from the partition, while records wait (else 0)"
    );
    describe_gauge!(ASSIGNED, "Partitions this instance owns");
    describe_counter!(
        REBALANCES,
        "Consumer-group rebalances seen (assignments and revocations)"
    );
    describe_counter!(
        COMMITS,
        "Offset commits sent after a snapshot covered the offsets"
    );
}

/// One partition's lag as the consumer sees it.
pub struct PartitionLag {
    pub partition: i32,
    pub records: i64,
    pub seconds: f64,
}

/// Publishes the lag of the assigned partitions; partitions no longer assigned drop to zero.
pub fn publish(topic: &str, lags: &[PartitionLag], published: &mut BTreeSet<i32>) {
    gauge!(ASSIGNED, "topic" => topic.to_owned()).set(lags.len() as f64);
    let now: BTreeSet<i32> = lags.iter().map(|l| l.partition).collect();
    for gone in published.difference(&now) {
        let partition = gone.to_string();
        gauge!(LAG_RECORDS, "topic" => topic.to_owned(), "partition" => partition.clone()).set(0.0);
        gauge!(LAG_SECONDS, "topic" => topic.to_owned(), "partition" => partition).set(0.0);
    }
    for lag in lags {
        let partition = lag.partition.to_string();
        gauge!(LAG_RECORDS, "topic" => topic.to_owned(), "partition" => partition.clone())
            .set(lag.records.max(0) as f64);
        gauge!(LAG_SECONDS, "topic" => topic.to_owned(), "partition" => partition)
            .set(lag.seconds.max(0.0));
    }
    *published = now;
}

pub fn rebalanced(topic: &str) {
    counter!(REBALANCES, "topic" => topic.to_owned()).increment(1);
}

pub fn committed(topic: &str) {
    counter!(COMMITS, "topic" => topic.to_owned()).increment(1);
}
