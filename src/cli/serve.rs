//! `stormwatch serve`: the live service. Settings come from defaults, an optional TOML file, environment
//! variables and flags, in rising precedence.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::bail;
use stormwatch_service::service::ENGINE_QUEUE;
use stormwatch_service::{LogFormat, LogSource, ServeConfig, Service, Stopped};

#[cfg(feature = "kafka")]
#[path = "serve_kafka.rs"]
mod kafka_source;

#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    /// TOML file with any of the settings below, named like the flags (`data_dir = "..."`); see --print-config.
    #[arg(long, env = "STORMWATCH_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Address of the HTTP API and /metrics [default: 127.0.0.1:8080] [env: STORMWATCH_HTTP].
    #[arg(long, value_name = "ADDR")]
    pub http: Option<SocketAddr>,
    /// Address of the TCP listener for NDJSON telemetry [default: 127.0.0.1:9000] [env: STORMWATCH_INGEST].
    #[arg(long, value_name = "ADDR")]
    pub ingest: Option<SocketAddr>,
    /// Directory of the SQLite store [default: ./stormwatch-data] [env: STORMWATCH_DATA_DIR].
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Tail this telemetry file (repeatable); rotation and truncation are followed.
    #[arg(long, value_name = "FILE")]
    pub follow: Vec<PathBuf>,
    /// Push incidents to this Alertmanager (base URL, v2 API), e.g. http://127.0.0.1:9093 [env: STORMWATCH_ALERTMANAGER].
    #[arg(long, value_name = "URL")]
    pub alertmanager: Option<String>,
    /// Base URL operators reach this service at, for links in alerts [env: STORMWATCH_PUBLIC_URL].
    #[arg(long, value_name = "URL")]
    pub public_url: Option<String>,
    /// Seconds of event time a line may arrive late and still count in its own second [default: 5] [env: STORMWATCH_LATENESS].
    #[arg(long, value_name = "SECONDS")]
    pub lateness: Option<f64>,
    /// Seconds between engine snapshots [default: 30] [env: STORMWATCH_SNAPSHOT_EVERY].
    #[arg(long, value_name = "SECONDS")]
    pub snapshot_every: Option<u64>,
    /// Log format on stderr [env: STORMWATCH_LOG_FORMAT].
    #[arg(long, value_enum)]
    pub log_format: Option<LogFormat>,
    /// Batches the engine queue holds before sources are made to wait (tests use 1 to force backpressure).
    #[arg(long, default_value_t = ENGINE_QUEUE, hide = true)]
    pub engine_queue: usize,
    /// Fault injection for the health tests: the engine thread hangs this many seconds after it starts.
    #[arg(long, value_name = "SECONDS", hide = true)]
    pub fault_hang_engine_after: Option<u64>,
    /// Fault injection for the backpressure tests: once the service is up, every store write first waits this long.
    #[arg(long, value_name = "MS", hide = true)]
    pub fault_slow_store_ms: Option<u64>,
    /// Consume telemetry from Kafka: bootstrap servers, host:port[,host:port...] (needs --kafka-topic) [env: STORMWATCH_KAFKA_BROKERS].
    #[cfg(feature = "kafka")]
    #[arg(long, value_name = "HOSTS")]
    pub kafka_brokers: Option<String>,
    /// Topic of NDJSON telemetry records keyed by User ID [env: STORMWATCH_KAFKA_TOPIC].
    #[cfg(feature = "kafka")]
    #[arg(long, value_name = "TOPIC")]
    pub kafka_topic: Option<String>,
    /// Consumer group the instances sharing the topic join [default: stormwatch] [env: STORMWATCH_KAFKA_GROUP].
    #[cfg(feature = "kafka")]
    #[arg(long, value_name = "GROUP")]
    pub kafka_group: Option<String>,
    /// Seconds of event time replayed before the committed offset when a partition is assigned [default: 3600] [env: STORMWATCH_KAFKA_WARMUP].
    #[cfg(feature = "kafka")]
    #[arg(long, value_name = "SECONDS")]
    pub kafka_warmup: Option<u64>,
    /// Print the effective configuration as TOML and exit.
    #[arg(long)]
    pub print_config: bool,
    /// Start even though the journal the last snapshot expects is missing, going on from the snapshot alone:
    /// what was applied after it is lost (reported in the log, metrics and /readyz).
    #[arg(long)]
    pub accept_lost_journal: bool,
    /// The Kafka flags of a `--features kafka` build, accepted here only to say the feature is missing.
    #[cfg(not(feature = "kafka"))]
    #[arg(long = "kafka-brokers", hide = true, value_name = "HOSTS")]
    pub kafka_brokers: Option<String>,
    #[cfg(not(feature = "kafka"))]
    #[arg(long = "kafka-topic", hide = true, value_name = "TOPIC")]
    pub kafka_topic: Option<String>,
    #[cfg(not(feature = "kafka"))]
    #[arg(long = "kafka-group", hide = true, value_name = "GROUP")]
    pub kafka_group: Option<String>,
    #[cfg(not(feature = "kafka"))]
    #[arg(long = "kafka-warmup", hide = true, value_name = "SECONDS")]
    pub kafka_warmup: Option<String>,
}

/// A setting from the environment, parsed with the variable named in any error (clap would blame the flag).
fn env<T: std::str::FromStr>(variable: &str) -> anyhow::Result<Option<T>>
where
    T::Err: std::fmt::Display,
{
    match std::env::var(variable) {
        Ok(text) if !text.is_empty() => text
            .parse()
            .map(Some)
            .map_err(|error| anyhow::anyhow!("{variable}={text:?} is not valid: {error}")),
        Ok(_) | Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => bail!("{variable} is not valid UTF-8"),
    }
}

/// `--log-format` and `STORMWATCH_LOG_FORMAT` take the same words.
fn env_log_format() -> anyhow::Result<Option<LogFormat>> {
    let Some(text) = env::<String>("STORMWATCH_LOG_FORMAT")? else {
        return Ok(None);
    };
    <LogFormat as clap::ValueEnum>::from_str(&text, true)
        .map(Some)
        .map_err(|_| {
            anyhow::anyhow!("STORMWATCH_LOG_FORMAT={text:?} is not valid: use text or json")
        })
}

impl ServeArgs {
    fn effective(&self) -> anyhow::Result<ServeConfig> {
        let mut config = match &self.config {
            Some(path) => ServeConfig::from_file(path)?,
            None => ServeConfig::default(),
        };
        // Flags over environment over the file.
        config.http = self.http.or(env("STORMWATCH_HTTP")?).unwrap_or(config.http);
        config.ingest = self
            .ingest
            .or(env("STORMWATCH_INGEST")?)
            .unwrap_or(config.ingest);
        config.data_dir = self
            .data_dir
            .clone()
            .or(env("STORMWATCH_DATA_DIR")?)
            .unwrap_or(config.data_dir);
        config.follow.extend(self.follow.iter().cloned());
        config.alertmanager = self
            .alertmanager
            .clone()
            .or(env("STORMWATCH_ALERTMANAGER")?)
            .or(config.alertmanager);
        config.public_url = self
            .public_url
            .clone()
            .or(env("STORMWATCH_PUBLIC_URL")?)
            .or(config.public_url);
        config.lateness_s = self
            .lateness
            .or(env("STORMWATCH_LATENESS")?)
            .unwrap_or(config.lateness_s);
        config.snapshot_every_s = self
            .snapshot_every
            .or(env("STORMWATCH_SNAPSHOT_EVERY")?)
            .unwrap_or(config.snapshot_every_s);
        config.retention_days = env("STORMWATCH_RETENTION_DAYS")?.unwrap_or(config.retention_days);
        config.log_format = self
            .log_format
            .or(env_log_format()?)
            .unwrap_or(config.log_format);
        #[cfg(feature = "kafka")]
        {
            config.kafka_brokers = self
                .kafka_brokers
                .clone()
                .or(env("STORMWATCH_KAFKA_BROKERS")?)
                .or(config.kafka_brokers);
            config.kafka_topic = self
                .kafka_topic
                .clone()
                .or(env("STORMWATCH_KAFKA_TOPIC")?)
                .or(config.kafka_topic);
            config.kafka_group = self
                .kafka_group
                .clone()
                .or(env("STORMWATCH_KAFKA_GROUP")?)
                .unwrap_or(config.kafka_group);
            config.kafka_warmup_s = self
                .kafka_warmup
                .or(env("STORMWATCH_KAFKA_WARMUP")?)
                .unwrap_or(config.kafka_warmup_s);
        }
        #[cfg(not(feature = "kafka"))]
        {
            let flags = [
                ("--kafka-brokers", &self.kafka_brokers),
                ("--kafka-topic", &self.kafka_topic),
                ("--kafka-group", &self.kafka_group),
                ("--kafka-warmup", &self.kafka_warmup),
            ];
            let variables = [
                "STORMWATCH_KAFKA_BROKERS",
                "STORMWATCH_KAFKA_TOPIC",
                "STORMWATCH_KAFKA_GROUP",
                "STORMWATCH_KAFKA_WARMUP",
            ];
            let given = flags
                .iter()
                .find(|(_, value)| value.is_some())
                .map(|(flag, _)| (*flag).to_owned())
                .or_else(|| {
                    variables
                        .iter()
                        .find(|v| std::env::var_os(v).is_some_and(|x| !x.is_empty()))
                        .map(|v| (*v).to_owned())
                });
            if let Some(given) = given {
                bail!("{given}: {}", super::WITHOUT_KAFKA);
            }
        }
        config.validate()?;
        Ok(config)
    }

    pub fn log_format(&self) -> LogFormat {
        self.effective().map(|c| c.log_format).unwrap_or_default()
    }
}

pub fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let config = args.effective()?;
    if args.print_config {
        print!("{}", config.to_toml());
        return Ok(ExitCode::SUCCESS);
    }
    #[cfg(feature = "kafka")]
    let log_source = kafka_source::options(&config)
        .map(|options| Box::new(kafka_source::Wiring::new(options)) as Box<dyn LogSource>);
    #[cfg(not(feature = "kafka"))]
    let log_source: Option<Box<dyn LogSource>> = None;
    let stopped = Service::new(config)
        .engine_queue(args.engine_queue)
        .hang_engine_after(args.fault_hang_engine_after.map(Duration::from_secs))
        .slow_store_writes(args.fault_slow_store_ms.map(Duration::from_millis))
        .accept_lost_journal(args.accept_lost_journal)
        .log_source(log_source)
        .run()?;
    Ok(match stopped {
        Stopped::Clean => ExitCode::SUCCESS,
        Stopped::GraceExceeded => ExitCode::from(3),
    })
}
