//! The service's assembly: `Service` owns the start order (store, engine state, engine thread, sources, listeners)
//! and the shutdown (stop sources, final snapshot within the grace). The binary only parses arguments.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam::channel::Sender;
use stormwatch_core::changes::{ChangeRegister, CoordinationConfig};
use stormwatch_core::engine::{Engine, EngineConfig};

use crate::ServeConfig;
use crate::admission::AdmissionLimits;
use crate::data_dir_lock::{DataDirLock, LockError};
use crate::engine::incident_numbers::NumberSupply;
use crate::engine::{EngineInput, EngineLoop, LogPosition, journal, restore};
use crate::health::Health;
use crate::http::gate::RequestLimits;
use crate::http::router;
use crate::http::server::{self, HttpLimits};
use crate::http::state::AppState;
use crate::ingest::malformed::MalformedLog;
use crate::ingest::parsers::{Parsers, Spent};
use crate::ingest::tcp::{self, TcpSettings};
use crate::ingest::tls;
use crate::log_limit::LogLimit;
use crate::published::Published;
use crate::store::Store;
use crate::store::sink::{IncidentExtra, IncidentSaved, SinkParts, StoreSink};
use crate::user_directory::{Directory, Names};

/// Batches the engine queue holds before sources block (backpressure).
pub const ENGINE_QUEUE: usize = 64;
/// Most threads parsing TCP ingest: the engine thread applies batches at about the rate two parse them.
const PARSER_THREADS: usize = 2;

/// Why the service could not start or run. Each message names what to fix.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(transparent)]
    DataDirInUse(#[from] LockError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("the store in {dir} cannot be written: {source}")]
    StoreNotWritable {
        dir: String,
        source: crate::store::StoreError,
    },
    #[error(
        "refusing to listen on {http} / {ingest} beyond loopback without API tokens: create one with `stormwatch tokens add --data-dir {dir} --name NAME --role ops`"
    )]
    NoTokens {
        http: SocketAddr,
        ingest: SocketAddr,
        dir: String,
    },
    #[error("--follow {0} is a directory; follow a file (give --follow once per file)")]
    FollowDirectory(String),
    #[error(transparent)]
    Directory(#[from] crate::user_directory::DirectoryError),
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    #[error("cannot install the metrics recorder: {0}")]
    Metrics(#[from] metrics_exporter_prometheus::BuildError),
    #[error(transparent)]
    Journal(#[from] journal::JournalError),
    #[error("cannot listen for {what} on {address}: {source}")]
    Listen {
        what: &'static str,
        address: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot start the {what}: {source}")]
    Start {
        what: &'static str,
        source: std::io::Error,
    },
    #[error("the log source cannot start: {0}")]
    LogSource(String),
    #[error("the {0} thread panicked")]
    Panicked(&'static str),
}

/// How a service that ran ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// Sources stopped, final snapshot taken.
    Clean,
    /// A thread did not stop within the shutdown grace: exit without a final snapshot.
    GraceExceeded,
}

/// A source that keeps its own log (Kafka): the engine rebuilds from it on every assignment instead of restoring a
/// snapshot and journal, incidents carry where their Users live, and snapshots commit the source's positions.
pub trait LogSource: Send {
    /// What the store keeps beside each incident (its partitions).
    fn incident_extra(&self) -> IncidentExtra;
    /// Called with each incident the store saved (replication to other instances).
    fn replicate(&self) -> Result<IncidentSaved, String>;
    /// Where the engine thread sends the positions a snapshot covers.
    fn checkpoints(&self) -> Sender<Vec<LogPosition>>;
    /// Starts the source's threads; the returned one is joined at shutdown.
    fn spawn(
        self: Box<Self>,
        engine: Sender<EngineInput>,
        store: Store,
        stop: Arc<AtomicBool>,
        coordination: Arc<CoordinationConfig>,
    ) -> std::io::Result<JoinHandle<()>>;
}

/// The live service, configured; `run` starts it and returns when it has stopped.
pub struct Service {
    config: ServeConfig,
    engine_queue: usize,
    hang_engine_after: Option<Duration>,
    slow_store_writes: Option<Duration>,
    accept_lost_journal: bool,
    log_source: Option<Box<dyn LogSource>>,
}

impl Service {
    pub fn new(config: ServeConfig) -> Service {
        Service {
            config,
            engine_queue: ENGINE_QUEUE,
            hang_engine_after: None,
            slow_store_writes: None,
            accept_lost_journal: false,
            log_source: None,
        }
    }

    /// Batches the engine queue holds before sources wait (tests use 1 to force backpressure).
    pub fn engine_queue(mut self, batches: usize) -> Service {
        self.engine_queue = batches.max(1);
        self
    }

    /// Fault injection for the health tests: the engine thread hangs this long after it starts.
    pub fn hang_engine_after(mut self, after: Option<Duration>) -> Service {
        self.hang_engine_after = after;
        self
    }

    /// Fault injection for the backpressure tests: once the service is up, every store write first waits this long.
    pub fn slow_store_writes(mut self, delay: Option<Duration>) -> Service {
        self.slow_store_writes = delay;
        self
    }

    /// Start even though the journal the last snapshot expects is missing (`--accept-lost-journal`): what was
    /// applied after that snapshot is lost, and reported so.
    pub fn accept_lost_journal(mut self, accept: bool) -> Service {
        self.accept_lost_journal = accept;
        self
    }

    pub fn log_source(mut self, source: Option<Box<dyn LogSource>>) -> Service {
        self.log_source = source;
        self
    }

    /// Starts everything in order, serves until SIGINT or SIGTERM, then stops everything in reverse order.
    pub fn run(self) -> Result<Stopped, ServiceError> {
        let Service {
            config,
            engine_queue,
            hang_engine_after,
            slow_store_writes,
            accept_lost_journal,
            log_source,
        } = self;
        // A directory would only fail line by line once running; say it once, now. A missing file is waited for.
        if let Some(dir) = config.follow.iter().find(|p| p.is_dir()) {
            return Err(ServiceError::FollowDirectory(dir.display().to_string()));
        }
        // Before anything in the data directory is touched; held until the service has stopped.
        let _owner = DataDirLock::acquire(&config.data_dir)?;
        let store = open_store(&config)?;
        let metrics = crate::metrics::install()?;
        crate::metrics::replay_mode(config.replay_mode);
        if config.replay_mode {
            tracing::info!(
                "replay mode: the feed is recorded history; a finished feed reads as ended (StormwatchReplayEnded), \
                 not blind, and event time behind the wall clock is not lag"
            );
        }
        let engine_config = EngineConfig {
            allowed_lateness_ms: lateness_ms(&config),
            // Partitions move between instances: an incident must be named alike by whoever owns its User.
            stable_ids: log_source.is_some(),
            ..config.engine.clone()
        };
        let correlator = Arc::new(engine_config.correlator());
        let register = store.load_register()?;
        let names = load_names(&config, &store)?;
        let health = Arc::new(Health::new(Duration::from_secs(
            config.engine_stall_after_s,
        )));
        let stable_ids = engine_config.stable_ids;
        let (restored, stored_journal) =
            restore_engine(&store, engine_config, register, &health, &log_source)?;
        let mut engine = restored.engine;
        // Stable IDs name what they are; numbered ones come from blocks reserved in the store.
        let numbers = (!stable_ids)
            .then(|| NumberSupply::start(store.clone(), &mut engine, restored.snapshot_lost))
            .transpose()?;
        // Only a directory file makes an allow-list; API edits alone name Users without refusing others.
        if let Some(listed) = names.allow_list() {
            engine.set_directory(Some(listed));
        }
        let published = Arc::new(Published::default());
        let engine_loop = build_engine_loop(
            &config,
            engine,
            &store,
            &names,
            &health,
            log_source.as_deref(),
            JournalAfter {
                accept_lost: accept_lost_journal,
                ..stored_journal
            },
        )?
        .with_published(published.clone());
        let mut engine_loop = match numbers {
            Some(numbers) => engine_loop.with_incident_numbers(numbers),
            None => engine_loop,
        };
        engine_loop.hang_after = hang_engine_after;
        // A disk that stops keeping up once the service runs; the start itself waits for its first snapshot.
        engine_loop.on_started = slow_store_writes.map(|delay| {
            let store = store.clone();
            Box::new(move || store.set_fault_slow_writes(delay)) as Box<dyn FnOnce() + Send>
        });
        let openings = Arc::new(crate::engine::sources::Openings::default());
        let spent = Arc::new(Spent::default());
        let engine_loop = engine_loop.with_openings(openings.clone()).with_spent({
            let spent = spent.clone();
            move |parsed| spent.give_back(parsed)
        });
        let (to_engine, engine_input) = crossbeam::channel::bounded(engine_queue);
        let engine_thread = spawn("engine thread", "engine", move || {
            engine_loop.run(engine_input)
        })?;

        let stop = Arc::new(AtomicBool::new(false));
        for path in &config.follow {
            let (engine, stop, path) = (to_engine.clone(), stop.clone(), path.clone());
            spawn("follow thread", "follow", move || {
                crate::ingest::follow(path, engine, stop)
            })?;
        }
        let coordination = Arc::new(config.coordination.clone());
        let source_thread = log_source
            .map(|source| {
                source
                    .spawn(
                        to_engine.clone(),
                        store.clone(),
                        stop.clone(),
                        coordination.clone(),
                    )
                    .map_err(|source| ServiceError::Start {
                        what: "log source",
                        source,
                    })
            })
            .transpose()?;

        let state = AppState {
            engine: to_engine.clone(),
            published,
            store,
            metrics,
            health,
            correlator,
            coordination,
            names,
        };
        let grace = Duration::from_secs(config.shutdown_grace_s);
        serve_network(&config, state, to_engine.clone(), (openings, spent), grace)?;

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
            return Ok(Stopped::GraceExceeded);
        }
        engine_thread
            .join()
            .map_err(|_| ServiceError::Panicked("engine"))?;
        if let Some(thread) = source_thread {
            if !finished_by(&thread, Instant::now() + grace) {
                tracing::error!("the log source's thread did not stop within the shutdown grace");
                return Ok(Stopped::GraceExceeded);
            }
            thread
                .join()
                .map_err(|_| ServiceError::Panicked("log source"))?;
        }
        Ok(Stopped::Clean)
    }
}

fn lateness_ms(config: &ServeConfig) -> i64 {
    (config.lateness_s * 1000.0) as i64
}

/// Opens the store and refuses now what would otherwise fail later: a data directory that cannot be written, and
/// listening beyond loopback with nobody able to authenticate.
fn open_store(config: &ServeConfig) -> Result<Store, ServiceError> {
    let store = Store::open(&config.data_dir)?;
    store
        .probe_write()
        .map_err(|source| ServiceError::StoreNotWritable {
            dir: config.data_dir.display().to_string(),
            source,
        })?;
    if config.listens_beyond_loopback() && !store.has_tokens()? {
        return Err(ServiceError::NoTokens {
            http: config.http,
            ingest: config.ingest,
            dir: config.data_dir.display().to_string(),
        });
    }
    Ok(store)
}

/// The User directory: the file's entries (an allow-list) and the edits made through the API.
fn load_names(config: &ServeConfig, store: &Store) -> Result<Names, ServiceError> {
    let file = match &config.user_directory {
        Some(path) => {
            let entries = crate::user_directory::read(path)?;
            tracing::info!(users = entries.len(), path = %path.display(), "User directory loaded");
            Some(entries)
        }
        None => None,
    };
    Ok(Names::new(Directory::new(file, store.directory_edits()?)))
}

/// What the last snapshot says of the journal that follows it, and whether its loss is accepted.
#[derive(Default)]
struct JournalAfter {
    /// Its generation (0 without a snapshot, or with one saved before journals existed).
    generation: u64,
    /// Lines applied of each acknowledged TCP stream (`ACK ON`).
    streams: Vec<(String, u64)>,
    /// `--accept-lost-journal`: a missing journal is reported, not refused.
    accept_lost: bool,
}

/// The engine as the last snapshot left it (or empty, with a lost snapshot recorded), and the generation of the
/// journal that follows that snapshot (0 without one). A log source rebuilds from its own log instead.
fn restore_engine(
    store: &Store,
    config: EngineConfig,
    register: ChangeRegister,
    health: &Health,
    log_source: &Option<Box<dyn LogSource>>,
) -> Result<(restore::Restored, JournalAfter), ServiceError> {
    let stored = match log_source {
        Some(_) => None,
        None => store.load_snapshot()?,
    };
    let (after, snapshot) = match &stored {
        Some(stored) => {
            let stored = journal::unwrap_snapshot(stored);
            let after = JournalAfter {
                generation: stored.generation,
                streams: stored.streams,
                accept_lost: false,
            };
            (after, Some(stored.engine))
        }
        None => (JournalAfter::default(), None),
    };
    let restored = restore::restore_or_start(snapshot, config, register, health, store);
    Ok((restored, after))
}

/// The engine thread's loop with its sink (store, alerts, replication) and, unless a log source replays from its
/// own log, the journal written since the last snapshot.
fn build_engine_loop(
    config: &ServeConfig,
    engine: Engine,
    store: &Store,
    names: &Names,
    health: &Arc<Health>,
    log_source: Option<&dyn LogSource>,
    after: JournalAfter,
) -> Result<EngineLoop, ServiceError> {
    let alerts = config
        .alertmanager
        .clone()
        .map(|url| crate::alerts::start(url, config.public_url.clone()));
    let (extra, on_saved) = match log_source {
        Some(source) => (
            Some(source.incident_extra()),
            Some(source.replicate().map_err(ServiceError::LogSource)?),
        ),
        None => (None, None),
    };
    let sink = StoreSink::start(SinkParts {
        store: store.clone(),
        alerts,
        names: names.clone(),
        extra,
        on_saved,
        health: health.clone(),
        errors: LogLimit::new(Duration::from_secs(60)),
    })
    .map_err(|source| ServiceError::Start {
        what: "store writer",
        source,
    })?;
    let malformed = MalformedLog::open(config.data_dir.join("quarantine.ndjson"));
    let engine_loop = EngineLoop::new(
        engine,
        malformed,
        Box::new(sink),
        lateness_ms(config),
        Duration::from_secs(config.snapshot_every_s),
    )
    .with_health(health.clone());
    if let Some(source) = log_source {
        return Ok(engine_loop.with_checkpoints(source.checkpoints()));
    }
    let path = journal::path_in(&config.data_dir);
    let sync_every = Duration::from_millis(config.journal_sync_every_ms);
    let opened = journal::Journal::open(path, after.generation, sync_every, after.accept_lost)?;
    if !opened.entries.is_empty() {
        tracing::info!(
            entries = opened.entries.len(),
            "replaying the journal written since the last snapshot"
        );
    }
    Ok(engine_loop.with_journal(opened, after.streams))
}

/// Runs the TCP telemetry listener, the HTTP API and their background tasks on one runtime until a stop signal.
fn serve_network(
    config: &ServeConfig,
    state: AppState,
    to_engine: Sender<EngineInput>,
    (openings, spent): (Arc<crate::engine::sources::Openings>, Arc<Spent>),
    grace: Duration,
) -> Result<(), ServiceError> {
    // HTTP and TCP ingest share the runtime; TCP connection tasks only read and cut blocks (parser threads parse
    // them), and HTTP bodies are parsed on the blocking pool, so neither starves the other.
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get().max(2));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .worker_threads(workers)
        .build()
        .map_err(|source| ServiceError::Start {
            what: "async runtime",
            source,
        })?;
    let tcp_settings = TcpSettings {
        max_connections: config.ingest_max_connections,
        admission: AdmissionLimits {
            per_peer: config.ingest_max_connections_per_peer,
            unauthenticated: config.ingest_max_unauthenticated_connections,
        },
        idle_timeout: Duration::from_secs(config.ingest_idle_timeout_s),
        auth: config.ingest_needs_token().then(|| state.store.clone()),
        auth_timeout: Duration::from_secs(config.ingest_auth_timeout_s),
        tls: match (&config.ingest_tls_cert, &config.ingest_tls_key) {
            (Some(cert), Some(key)) => Some(tls::acceptor(&tls::TlsFiles {
                cert,
                key,
                client_ca: config.ingest_tls_client_ca.as_deref(),
            })?),
            _ => None,
        },
        openings,
    };
    let http_limits = HttpLimits {
        max_connections: config.http_max_connections,
        admission: AdmissionLimits {
            per_peer: config.http_max_connections_per_peer,
            unauthenticated: config.http_max_unauthenticated_connections,
        },
        header_timeout: Duration::from_secs(config.http_header_timeout_s),
        write_timeout: Duration::from_secs(config.http_write_timeout_s),
        requests: RequestLimits {
            body_timeout: Duration::from_secs(config.http_body_timeout_s),
            max_events_body: config.http_max_body_mib.saturating_mul(1 << 20),
            max_decompressed: config.http_max_decompressed_mib.saturating_mul(1 << 20),
        },
    };
    // Parsing is the listener's heaviest work: on threads of its own, not the runtime's workers (see parsers.rs).
    let parsers = Parsers::start(
        std::thread::available_parallelism().map_or(1, |n| n.get().min(PARSER_THREADS)),
        &to_engine,
        spent,
    )
    .map_err(|source| ServiceError::Start {
        what: "TCP parser threads",
        source,
    })?;
    drop(to_engine);
    let probe_every = Duration::from_secs(config.store_probe_every_s);
    let retention_days = config.retention_days;
    let (ingest_address, http_address) = (config.ingest, config.http);
    let (public_url, data_dir) = (config.public_url.clone(), config.data_dir.clone());
    let client_certificates = config.ingest_client_certs();
    let served = runtime.block_on(async move {
        let listen = |what, address| {
            move |source| ServiceError::Listen {
                what,
                address,
                source,
            }
        };
        let tcp = tokio::net::TcpListener::bind(ingest_address)
            .await
            .map_err(listen("telemetry", ingest_address))?;
        tracing::info!(
            address = %tcp.local_addr().map_err(listen("telemetry", ingest_address))?,
            token_required = tcp_settings.auth.is_some(),
            tls = tcp_settings.tls.is_some(),
            client_certificates,
            "telemetry TCP listener up"
        );
        tokio::spawn(tcp::serve(tcp, tcp_settings, parsers));
        let listener = tokio::net::TcpListener::bind(http_address)
            .await
            .map_err(listen("HTTP", http_address))?;
        let bound = listener
            .local_addr()
            .map_err(listen("HTTP", http_address))?;
        tracing::info!(address = %bound, "HTTP API up");
        crate::first_run::announce(bound, public_url.as_deref(), &data_dir, &state.store).await;
        tokio::spawn(crate::http::changes_api::follow_external_writes(
            state.clone(),
        ));
        tokio::spawn(crate::http::coordination::publish_upcoming(state.clone()));
        tokio::spawn(crate::view_clock::record(
            state.store.clone(),
            state.published.clone(),
        ));
        tokio::spawn(crate::retention::prune_periodically(
            state.store.clone(),
            retention_days,
        ));
        tokio::spawn(crate::health::probe_store(
            state.store.clone(),
            state.health.clone(),
            probe_every,
        ));
        tokio::spawn(Health::watch(state.health.clone()));
        // Requests waiting on a stuck engine, or clients that never finish, must not hold the exit: the server
        // gives them the grace, then drops them.
        let store = state.store.clone();
        server::serve(
            listener,
            router(state),
            store,
            http_limits,
            shutdown_signal(),
            grace,
        )
        .await;
        Ok(())
    });
    // Handlers blocked on a full engine queue sit in blocking tasks: do not wait for them.
    runtime.shutdown_timeout(Duration::from_millis(500));
    served
}

fn spawn<T: Send + 'static>(
    what: &'static str,
    name: &str,
    body: impl FnOnce() -> T + Send + 'static,
) -> Result<JoinHandle<T>, ServiceError> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(body)
        .map_err(|source| ServiceError::Start { what, source })
}

/// Waits until `thread` has finished or `deadline` passes; true if it finished.
fn finished_by<T>(thread: &JoinHandle<T>, deadline: Instant) -> bool {
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
