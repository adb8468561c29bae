//! `stormwatch serve`: the live service. Settings come from defaults, an optional TOML file, environment
//! variables and flags, in rising precedence.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use stormwatch_core::engine::{Engine, EngineConfig};
use stormwatch_service::engine::journal;
use stormwatch_service::engine::{EngineInput, EngineLoop};
use stormwatch_service::health::Health;
use stormwatch_service::http::server::{self, HttpLimits};
use stormwatch_service::http::state::AppState;
use stormwatch_service::http::{MAX_BODY_BYTES, router};
use stormwatch_service::ingest::malformed::MalformedLog;
use stormwatch_service::ingest::tcp::{self, TcpSettings};
use stormwatch_service::ingest::tls;
use stormwatch_service::store::Store;
use stormwatch_service::store::sink::StoreSink;
use stormwatch_service::{LogFormat, ServeConfig, alerts, ingest, metrics};

#[cfg(feature = "kafka")]
#[path = "serve_kafka.rs"]
mod kafka_source;

/// Batches the engine queue holds before sources block (backpressure).
const ENGINE_QUEUE: usize = 64;

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
    // A directory would only fail line by line once running; say it once, now. A missing file is waited for.
    if let Some(dir) = config.follow.iter().find(|p| p.is_dir()) {
        bail!(
            "--follow {} is a directory; follow a file (give --follow once per file)",
            dir.display()
        );
    }
    // StoreError names the file and the cause; a context here would say it twice.
    let store = Store::open(&config.data_dir)?;
    // A read-only or full data directory is refused now, not found out at the first snapshot.
    store.probe_write().with_context(|| {
        format!(
            "the store in {} cannot be written",
            config.data_dir.display()
        )
    })?;
    if config.listens_beyond_loopback() && !store.has_tokens()? {
        bail!(
            "refusing to listen on {} / {} beyond loopback without API tokens: create one with `stormwatch tokens add --data-dir {} --name NAME --role ops`",
            config.http,
            config.ingest,
            config.data_dir.display()
        );
    }
    let handle = metrics::install().context("cannot install the metrics recorder")?;

    #[cfg(feature = "kafka")]
    let kafka = kafka_source::options(&config);
    #[cfg(not(feature = "kafka"))]
    let kafka: Option<()> = None;
    let engine_config = EngineConfig {
        allowed_lateness_ms: (config.lateness_s * 1000.0) as i64,
        // Partitions move between instances: an incident must be named alike by whoever owns its User.
        stable_ids: kafka.is_some(),
        ..config.engine.clone()
    };
    let correlator_config = std::sync::Arc::new(engine_config.correlator());
    let register = store.load_register()?;
    // With Kafka, state is rebuilt from the log on every assignment (the partitions owned may have changed).
    let snapshot = match kafka {
        Some(_) => None,
        None => store.load_snapshot()?,
    };
    // The generation of the journal that follows the snapshot (0 without a snapshot, or with one saved before
    // journals existed).
    let (generation, streams, snapshot) = match &snapshot {
        Some(stored) => {
            let stored = journal::unwrap_snapshot(stored);
            (stored.generation, stored.streams, Some(stored.engine))
        }
        None => (0, Vec::new(), None),
    };
    let engine = match snapshot {
        Some(bytes) => match Engine::restore(bytes, engine_config.clone(), register.clone()) {
            Ok(engine) => {
                tracing::info!(
                    users = engine.user_count(),
                    "engine state restored from the last snapshot"
                );
                engine
            }
            Err(error) => {
                tracing::error!(%error, "the last engine snapshot cannot be used; starting with empty windows");
                Engine::new(engine_config, register)
            }
        },
        None => Engine::new(engine_config, register),
    };
    let mut engine = engine;
    let names = {
        use stormwatch_service::user_directory::{Directory, Names, read};
        let file = match &config.user_directory {
            Some(path) => {
                let entries = read(path)?;
                tracing::info!(users = entries.len(), path = %path.display(), "User directory loaded");
                Some(entries)
            }
            None => None,
        };
        Names::new(Directory::new(file, store.directory_edits()?))
    };
    // Only a directory file makes an allow-list; API edits alone name Users without refusing others.
    if let Some(listed) = names.allow_list() {
        engine.set_directory(Some(listed));
    }
    let alerts = config
        .alertmanager
        .clone()
        .map(|url| alerts::start(url, config.public_url.clone()));
    let malformed = MalformedLog::open(config.data_dir.join("quarantine.ndjson"));
    #[cfg(feature = "kafka")]
    let kafka = kafka.map(kafka_source::Wiring::new);
    #[cfg(feature = "kafka")]
    let (extra, on_saved) = match &kafka {
        Some(wiring) => (Some(wiring.incident_extra()), Some(wiring.replicate()?)),
        None => (None, None),
    };
    #[cfg(not(feature = "kafka"))]
    let (extra, on_saved) = (None, None);
    let health = Arc::new(Health::new(Duration::from_secs(
        config.engine_stall_after_s,
    )));
    let sink = Box::new(StoreSink {
        store: store.clone(),
        alerts,
        names: names.clone(),
        extra,
        on_saved,
        health: health.clone(),
        errors: stormwatch_service::log_limit::LogLimit::new(Duration::from_secs(60)),
    });
    let mut engine_loop = EngineLoop::new(
        engine,
        malformed,
        sink,
        (config.lateness_s * 1000.0) as i64,
        Duration::from_secs(config.snapshot_every_s),
    )
    .with_health(health.clone());
    engine_loop.hang_after = args.fault_hang_engine_after.map(Duration::from_secs);
    #[cfg(feature = "kafka")]
    let engine_loop = match &kafka {
        Some(wiring) => engine_loop.with_checkpoints(wiring.checkpoints_sender()),
        None => engine_loop,
    };
    // A log source replays from its own log; every other source is journalled between snapshots.
    let engine_loop = if kafka.is_none() {
        let path = journal::path_in(&config.data_dir);
        let sync_every = Duration::from_millis(config.journal_sync_every_ms);
        let opened =
            journal::Journal::open(path, generation, sync_every, args.accept_lost_journal)?;
        if !opened.entries.is_empty() {
            tracing::info!(
                entries = opened.entries.len(),
                "replaying the journal written since the last snapshot"
            );
        }
        engine_loop.with_journal(opened, streams)
    } else {
        engine_loop
    };
    let (to_engine, engine_input) = crossbeam::channel::bounded(args.engine_queue.max(1));
    let engine_thread = std::thread::Builder::new()
        .name("engine".into())
        .spawn(move || engine_loop.run(engine_input))?;

    let stop = Arc::new(AtomicBool::new(false));
    for path in &config.follow {
        let (engine, stop, path) = (to_engine.clone(), stop.clone(), path.clone());
        std::thread::Builder::new()
            .name("follow".into())
            .spawn(move || ingest::follow(path, engine, stop))?;
    }

    #[cfg(feature = "kafka")]
    let kafka_thread = kafka
        .map(|wiring| {
            let coordination = std::sync::Arc::new(config.coordination.clone());
            wiring.spawn(to_engine.clone(), store.clone(), stop.clone(), coordination)
        })
        .transpose()?;

    // HTTP and TCP ingest share the runtime: connection tasks parse between awaits, so neither starves the other.
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get().max(2));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .worker_threads(workers)
        .build()?;
    let tcp_settings = TcpSettings {
        max_connections: config.ingest_max_connections,
        idle_timeout: Duration::from_secs(config.ingest_idle_timeout_s),
        auth: config.ingest_needs_token().then(|| store.clone()),
        auth_timeout: Duration::from_secs(config.ingest_auth_timeout_s),
        tls: match (&config.ingest_tls_cert, &config.ingest_tls_key) {
            (Some(cert), Some(key)) => Some(tls::acceptor(&tls::TlsFiles {
                cert,
                key,
                client_ca: config.ingest_tls_client_ca.as_deref(),
            })?),
            _ => None,
        },
    };
    let http_limits = HttpLimits {
        max_connections: config.http_max_connections,
        header_timeout: Duration::from_secs(config.http_header_timeout_s),
        body_timeout: Duration::from_secs(config.http_body_timeout_s),
        max_body_bytes: MAX_BODY_BYTES,
    };
    let state = AppState {
        engine: to_engine.clone(),
        store,
        metrics: handle,
        health: health.clone(),
        correlator: correlator_config,
        coordination: std::sync::Arc::new(config.coordination.clone()),
        names,
    };
    let grace = Duration::from_secs(config.shutdown_grace_s);
    let probe_every = Duration::from_secs(config.store_probe_every_s);
    let tcp_engine = to_engine.clone();
    let served = runtime.block_on(async move {
        let tcp = tokio::net::TcpListener::bind(config.ingest)
            .await
            .with_context(|| format!("cannot listen for telemetry on {}", config.ingest))?;
        tracing::info!(
            address = %tcp.local_addr()?,
            token_required = tcp_settings.auth.is_some(),
            tls = tcp_settings.tls.is_some(),
            client_certificates = config.ingest_client_certs(),
            "telemetry TCP listener up"
        );
        tokio::spawn(tcp::serve(tcp, tcp_settings, tcp_engine));
        let listener = tokio::net::TcpListener::bind(config.http)
            .await
            .with_context(|| format!("cannot listen for HTTP on {}", config.http))?;
        tracing::info!(address = %listener.local_addr()?, "HTTP API up");
        tokio::spawn(stormwatch_service::http::changes_api::follow_external_writes(state.clone()));
        tokio::spawn(stormwatch_service::http::coordination::publish_upcoming(
            state.clone(),
        ));
        tokio::spawn(stormwatch_service::health::probe_store(
            state.store.clone(),
            health.clone(),
            probe_every,
        ));
        tokio::spawn(Health::watch(health));
        // Requests waiting on a stuck engine, or clients that never finish, must not hold the exit: the server
        // gives them the grace, then drops them.
        server::serve(
            listener,
            router(state),
            http_limits,
            shutdown_signal(),
            grace,
        )
        .await;
        anyhow::Ok(())
    });
    // Handlers blocked on a full engine queue sit in blocking tasks: do not wait for them.
    runtime.shutdown_timeout(Duration::from_millis(500));
    served?;

    tracing::info!("shutting down: stopping sources, taking a final snapshot");
    stop.store(true, Ordering::Release);
    let deadline = Instant::now() + grace;
    let asked = to_engine
        .send_deadline(EngineInput::Shutdown, deadline)
        .is_ok();
    drop(to_engine);
    if !asked || !finished_by(&engine_thread, deadline) {
        tracing::error!(
            grace_s = grace.as_secs(),
            "the engine thread did not stop within the shutdown grace; exiting without a final snapshot"
        );
        return Ok(ExitCode::from(3));
    }
    if engine_thread.join().is_err() {
        bail!("the engine thread panicked");
    }
    #[cfg(feature = "kafka")]
    if let Some(thread) = kafka_thread {
        if !finished_by(&thread, Instant::now() + grace) {
            tracing::error!("the Kafka consumer thread did not stop within the shutdown grace");
            return Ok(ExitCode::from(3));
        }
        if thread.join().is_err() {
            bail!("the Kafka consumer thread panicked");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Waits until `thread` has finished or `deadline` passes; true if it finished.
fn finished_by<T>(thread: &std::thread::JoinHandle<T>, deadline: Instant) -> bool {
    while !thread.is_finished() {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    let mut terminate =
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(signal) => signal,
            Err(error) => {
                tracing::error!(%error, "cannot watch SIGTERM; only SIGINT stops the service");
                let _ = interrupt.await;
                return;
            }
        };
    tokio::select! {
        _ = interrupt => {}
        _ = terminate.recv() => {}
    }
}
