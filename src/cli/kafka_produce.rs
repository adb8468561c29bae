//! `stormwatch kafka-produce FILE`: writes a telemetry file to a Kafka topic keyed by User ID, creating the
//! topic first when asked, for tests and demos of `serve --kafka-brokers`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use stormwatch_kafka::produce::{Batching, create_topic, produce_file};

#[derive(clap::Args, Debug)]
pub struct KafkaProduceArgs {
    /// NDJSON telemetry file (`.gz` and `.zst` are decompressed).
    pub file: PathBuf,
    /// Bootstrap servers, host:port[,host:port...].
    #[arg(long, env = "STORMWATCH_KAFKA_BROKERS", value_name = "HOSTS")]
    pub brokers: String,
    #[arg(long, env = "STORMWATCH_KAFKA_TOPIC", value_name = "TOPIC")]
    pub topic: String,
    /// Create the topic with this many partitions first (if it does not exist).
    #[arg(long, value_name = "N")]
    pub partitions: Option<i32>,
    /// Lines of one User per record at most.
    #[arg(long, default_value_t = Batching::default().max_lines, value_name = "N")]
    pub max_lines: usize,
    /// Event time one record spans at most, in milliseconds.
    #[arg(long, default_value_t = Batching::default().max_span_ms, value_name = "MS")]
    pub max_span_ms: i64,
}

pub fn run(args: KafkaProduceArgs) -> anyhow::Result<ExitCode> {
    if let Some(partitions) = args.partitions {
        create_topic(&args.brokers, &args.topic, partitions, false)?;
    }
    let started = Instant::now();
    let produced = produce_file(
        &args.brokers,
        &args.topic,
        &args.file,
        Batching {
            max_lines: args.max_lines.max(1),
            max_span_ms: args.max_span_ms.max(0),
        },
    )
    .with_context(|| format!("producing {}", args.file.display()))?;
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "produced {} lines ({} unparsed, sent alone without a key) in {} records to {} in {seconds:.1} s ({:.0} lines/s)",
        produced.lines,
        produced.unparsed,
        produced.records,
        args.topic,
        produced.lines as f64 / seconds.max(1e-9)
    );
    Ok(ExitCode::SUCCESS)
}
