//! The yardstick for `benches/kafka_scale.sh`: a bare librdkafka consumer (rdkafka's `BaseConsumer`, configured
//! as `source.rs` configures its own) reading a whole topic as a fresh group member and counting its lines, with
//! no parsing and no engine. Stormwatch's consumption rate is judged against this one's on the same broker and
//! topic.
//!
//!   bare_consume BROKERS TOPIC [PARTITIONS]
//!
//! Prints one line: seconds, records, lines and lines/s, timed like the benchmark times an instance (from the
//! consumer's creation, so the group join is included, to every partition's end).

use std::collections::BTreeSet;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::{ClientConfig, Message};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(brokers), Some(topic)) = (args.first(), args.get(1)) else {
        eprintln!("usage: bare_consume BROKERS TOPIC [PARTITIONS]");
        return ExitCode::FAILURE;
    };
    let partitions: usize = match args.get(2).map(|p| p.parse()) {
        None => 0,
        Some(Ok(n)) => n,
        Some(Err(error)) => {
            eprintln!("PARTITIONS: {error}");
            return ExitCode::FAILURE;
        }
    };
    let started = Instant::now();
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let group = format!("bare-{}-{stamp}", std::process::id());
    let consumer: BaseConsumer = match ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", &group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "true")
        .set("session.timeout.ms", "10000")
        .set("heartbeat.interval.ms", "1000")
        .create()
    {
        Ok(consumer) => consumer,
        Err(error) => {
            eprintln!("consumer: {error}");
            return ExitCode::FAILURE;
        }
    };
    if let Err(error) = consumer.subscribe(&[topic]) {
        eprintln!("subscribe: {error}");
        return ExitCode::FAILURE;
    }
    let partitions = match partitions {
        0 => consumer
            .fetch_metadata(Some(topic), Duration::from_secs(10))
            .ok()
            .and_then(|m| m.topics().first().map(|t| t.partitions().len()))
            .unwrap_or(1),
        n => n,
    };
    let (mut records, mut lines) = (0u64, 0u64);
    let mut first_record = None;
    let mut ended = BTreeSet::new();
    let give_up = Instant::now() + Duration::from_secs(1800);
    while ended.len() < partitions {
        if Instant::now() > give_up {
            eprintln!("gave up: {} of {partitions} partitions ended", ended.len());
            return ExitCode::FAILURE;
        }
        match consumer.poll(Duration::from_millis(100)) {
            None => {}
            Some(Ok(message)) => {
                first_record.get_or_insert_with(|| started.elapsed());
                records += 1;
                if let Some(payload) = message.payload() {
                    let newlines = payload.iter().filter(|&&b| b == b'\n').count() as u64;
                    // A last line without its newline is a line too.
                    let unterminated = u64::from(payload.last().is_some_and(|&b| b != b'\n'));
                    lines += newlines + unterminated;
                }
                ended.remove(&message.partition());
            }
            Some(Err(KafkaError::PartitionEOF(partition))) => {
                ended.insert(partition);
            }
            Some(Err(error)) => eprintln!("consumer error: {error}"),
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    // The rate is the last number on the line, where the benchmark script reads it.
    println!(
        "bare consumer: {seconds:.1} s for {records} records, {lines} lines (first record after {:.1} s): {:.0} lines/s",
        first_record.unwrap_or_default().as_secs_f64(),
        lines as f64 / seconds
    );
    ExitCode::SUCCESS
}
