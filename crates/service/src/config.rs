//! The service's settings: `ServeConfig` (defaults, the TOML file's shape, `--print-config`) and `SETTINGS`, the one
//! name, value name and help of every setting, which the flag, the TOML key and the `STORMWATCH_*` variable share.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use stormwatch_core::changes::CoordinationConfig;
use stormwatch_core::engine::EngineConfig;

/// How logs are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// Whether a TCP telemetry connection must open with `AUTH <token>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum IngestAuth {
    /// Required when the listener is reachable beyond loopback, unless TLS client certificates already
    /// authenticate every client (`ingest_tls_client_ca`); not on loopback.
    #[default]
    Auto,
    /// Always required.
    Token,
    /// Never required: refused for a listener beyond loopback unless TLS client certificates are required.
    None,
}

/// Everything `stormwatch serve` runs with. `--print-config` prints this as TOML. Every top-level setting is in
/// [`SETTINGS`]: its TOML key is its flag's name with `_` for `-` (`data_dir` for `--data-dir`) and its variable's
/// after `STORMWATCH_`; the names of earlier versions (`lateness_s`, ...) are still read from the file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServeConfig {
    /// HTTP listener for the API and `/metrics`.
    pub http: SocketAddr,
    /// TCP listener for NDJSON telemetry lines.
    pub ingest: SocketAddr,
    /// Holds the SQLite store (changes, incidents, tokens, engine snapshots).
    pub data_dir: PathBuf,
    /// Files to tail (surviving rotation).
    pub follow: Vec<PathBuf>,
    /// Alertmanager base URL (v2 API) to push incidents to.
    pub alertmanager: Option<String>,
    /// Seconds of event time a line may arrive late and still count in its own second.
    #[serde(rename = "lateness", alias = "lateness_s")]
    pub lateness_s: f64,
    /// Seconds between engine snapshots (one is also taken at shutdown).
    #[serde(rename = "snapshot_every", alias = "snapshot_every_s")]
    pub snapshot_every_s: u64,
    /// Milliseconds between `fdatasync`s of the engine journal while telemetry flows: a power cut loses at most
    /// this much of what was applied (a killed process loses nothing), and an acknowledged TCP stream (`ACK ON`)
    /// hears `ACK <n>` within about this. 0 syncs after every batch.
    pub journal_sync_every_ms: u64,
    pub log_format: LogFormat,
    /// `/readyz` says 503 once the engine thread has not finished its once-a-second tick for this long.
    pub engine_stall_after_s: u64,
    /// After SIGTERM or SIGINT: how long open HTTP requests, and then the engine's final snapshot, may take
    /// before the service exits anyway (non-zero exit, no final snapshot, when the engine is stuck).
    pub shutdown_grace_s: u64,
    /// The User directory file: every User that exists, with its party name and role (CSV lines
    /// `EUI-64,name,role`, or a JSON array of `{"user","name","role"}`). Lines for other Users are refused as
    /// unknown and never fill the User table; names show in the console, alerts, triage and `stormwatch_user_info`.
    pub user_directory: Option<PathBuf>,
    /// How often the store is test-written, so an unwritable data directory shows in `/readyz` within this.
    pub store_probe_every_s: u64,
    /// Days a resolved incident (with its history, triage and chart) is kept after it resolved, and a change audit
    /// row after it was written; older ones are deleted at start and hourly, in bounded batches. 0 keeps them
    /// forever [env: STORMWATCH_RETENTION_DAYS].
    pub retention_days: u32,
    /// TCP telemetry connections served at once; more are told `ERR too many connections` and closed.
    pub ingest_max_connections: usize,
    /// TCP telemetry connections open at once from one peer address; more are refused.
    pub ingest_max_connections_per_peer: usize,
    /// TCP telemetry connections open at once that have not authenticated yet (no `AUTH` line or TLS handshake
    /// done); a new one closes the oldest of them.
    pub ingest_max_unauthenticated_connections: usize,
    /// A TCP telemetry connection that sends nothing for this long is closed.
    pub ingest_idle_timeout_s: u64,
    /// `auto` (a token handshake beyond loopback only), `token` (always) or `none` (loopback only).
    pub ingest_auth: IngestAuth,
    /// Time a TCP telemetry connection has for its `AUTH <token>` line (and for its TLS handshake).
    pub ingest_auth_timeout_s: u64,
    /// PEM certificate chain for TLS on the TCP telemetry port; with `ingest_tls_key`, the port speaks only TLS.
    pub ingest_tls_cert: Option<PathBuf>,
    /// PEM private key for `ingest_tls_cert`.
    pub ingest_tls_key: Option<PathBuf>,
    /// PEM CA certificate(s): when set, every telemetry client must present a certificate one of them signed.
    pub ingest_tls_client_ca: Option<PathBuf>,
    /// HTTP connections served at once; more wait in the listen backlog.
    pub http_max_connections: usize,
    /// A request's headers (and a kept-alive connection's next request) must arrive within this.
    pub http_header_timeout_s: u64,
    /// A request's body must arrive within this (408 otherwise).
    pub http_body_timeout_s: u64,
    /// A response write that makes no progress for this many seconds (a client not reading) closes the
    /// connection.
    pub http_write_timeout_s: u64,
    /// HTTP connections open at once from one peer address; more are answered 503 and closed.
    pub http_max_connections_per_peer: usize,
    /// HTTP connections open at once that have not yet carried a valid token; a new one closes the oldest.
    pub http_max_unauthenticated_connections: usize,
    /// Largest telemetry body (`POST /api/v1/events`) as sent, in MiB (413 beyond).
    pub http_max_body_mib: u64,
    /// Largest telemetry body once decompressed (gzip, zstd), in MiB (413 beyond; nothing of it is ingested).
    pub http_max_decompressed_mib: u64,
    /// Link to an incident in operators' alerts: `{base}/api/v1/incidents/{id}`.
    pub public_url: Option<String>,
    /// The feed is recorded history replayed into the service: `stormwatch_replay_mode` is 1, so the shipped rules
    /// call a finished feed ended (`StormwatchReplayEnded`, info) rather than blind, and ignore the lag of event
    /// time behind the wall clock.
    pub replay_mode: bool,
    /// Kafka bootstrap servers: consume telemetry from `kafka_topic` in consumer group `kafka_group`.
    #[cfg(feature = "kafka")]
    pub kafka_brokers: Option<String>,
    #[cfg(feature = "kafka")]
    pub kafka_topic: Option<String>,
    #[cfg(feature = "kafka")]
    pub kafka_group: String,
    /// Event time replayed before the previous owner's commit when a partition is assigned.
    #[cfg(feature = "kafka")]
    #[serde(rename = "kafka_warmup", alias = "kafka_warmup_s")]
    pub kafka_warmup_s: u64,
    /// Detector thresholds, lifecycle timings, common-cause grouping and the correlator's weights (`[engine]` and
    /// its sub-tables; lateness is the `lateness` setting above).
    pub engine: EngineConfig,
    /// Change coordination: registration warnings' windows and limits, and the outcome window (`[coordination]`).
    pub coordination: CoordinationConfig,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            http: SocketAddr::from(([127, 0, 0, 1], 8080)),
            ingest: SocketAddr::from(([127, 0, 0, 1], 9000)),
            data_dir: PathBuf::from(DEFAULT_DATA_DIR),
            follow: Vec::new(),
            alertmanager: None,
            lateness_s: 5.0,
            snapshot_every_s: 30,
            journal_sync_every_ms: 1000,
            log_format: LogFormat::Text,
            engine_stall_after_s: 10,
            shutdown_grace_s: 10,
            user_directory: None,
            store_probe_every_s: 5,
            retention_days: 400,
            ingest_max_connections: 256,
            ingest_max_connections_per_peer: 64,
            ingest_max_unauthenticated_connections: 64,
            ingest_idle_timeout_s: 300,
            ingest_auth: IngestAuth::Auto,
            ingest_auth_timeout_s: 10,
            ingest_tls_cert: None,
            ingest_tls_key: None,
            ingest_tls_client_ca: None,
            http_max_connections: 512,
            http_header_timeout_s: 10,
            http_body_timeout_s: 60,
            http_write_timeout_s: 10,
            http_max_connections_per_peer: 64,
            http_max_unauthenticated_connections: 128,
            http_max_body_mib: 64,
            http_max_decompressed_mib: 256,
            public_url: None,
            replay_mode: false,
            #[cfg(feature = "kafka")]
            kafka_brokers: None,
            #[cfg(feature = "kafka")]
            kafka_topic: None,
            #[cfg(feature = "kafka")]
            kafka_group: "stormwatch".into(),
            #[cfg(feature = "kafka")]
            kafka_warmup_s: 3_600,
            engine: EngineConfig::default(),
            coordination: CoordinationConfig::default(),
        }
    }
}

/// Where the service keeps its state unless told otherwise (relative to where it runs).
pub const DEFAULT_DATA_DIR: &str = "stormwatch-data";

/// One setting of `serve` as people give it: the TOML key (`data_dir`), which is also the flag with `-` for `_`
/// (`--data-dir`) and the variable in upper case after `STORMWATCH_` (`STORMWATCH_DATA_DIR`).
#[derive(Copy, Clone, Debug)]
pub struct Setting {
    pub key: &'static str,
    /// What the value is, for `--help` (`ADDR`, `SECONDS`).
    pub value_name: &'static str,
    /// Its meaning and unit, for `--help`.
    pub help: &'static str,
    /// Only a build with the `kafka` feature has it; others refuse it wherever it is given.
    pub kafka: bool,
}

impl Setting {
    pub fn flag(&self) -> String {
        format!("--{}", self.key.replace('_', "-"))
    }

    pub fn variable(&self) -> String {
        format!("STORMWATCH_{}", self.key.to_ascii_uppercase())
    }

    /// Whether this build has the setting.
    pub fn built(&self) -> bool {
        !self.kafka || cfg!(feature = "kafka")
    }
}

const fn setting(key: &'static str, value_name: &'static str, help: &'static str) -> Setting {
    Setting {
        key,
        value_name,
        help,
        kafka: false,
    }
}

const fn kafka(key: &'static str, value_name: &'static str, help: &'static str) -> Setting {
    Setting {
        key,
        value_name,
        help,
        kafka: true,
    }
}

/// Every top-level setting of [`ServeConfig`], in `--help` order. The `[engine]` and `[coordination]` tables are
/// set only in the file (see [`file_only_tables`]). A unit test holds this list to the struct's fields.
pub const SETTINGS: &[Setting] = &[
    setting(
        "http",
        "ADDR",
        "Address of the HTTP API, the console and /metrics",
    ),
    setting(
        "ingest",
        "ADDR",
        "Address of the TCP listener for NDJSON telemetry",
    ),
    setting(
        "data_dir",
        "DIR",
        "Directory of the SQLite store, the journal and the quarantine",
    ),
    setting(
        "follow",
        "FILE",
        "Telemetry file to tail, surviving rotation and truncation (repeat the flag; `:` between files in the variable)",
    ),
    setting(
        "alertmanager",
        "URL",
        "Alertmanager base URL (v2 API) to push incidents to, e.g. http://127.0.0.1:9093",
    ),
    setting(
        "public_url",
        "URL",
        "Base URL operators reach this service at, for the console links in alerts",
    ),
    setting(
        "lateness",
        "SECONDS",
        "Seconds of event time a line may arrive late and still count in its own second",
    ),
    setting(
        "snapshot_every",
        "SECONDS",
        "Seconds between engine snapshots (one is also taken at shutdown)",
    ),
    setting(
        "journal_sync_every_ms",
        "MS",
        "Milliseconds between fdatasyncs of the engine journal while telemetry flows: what a power cut can lose (0: after every batch)",
    ),
    setting("log_format", "text|json", "Log format on stderr"),
    setting(
        "engine_stall_after_s",
        "SECONDS",
        "Seconds without a finished engine tick (or of store writer lag) before /readyz answers 503",
    ),
    setting(
        "shutdown_grace_s",
        "SECONDS",
        "Seconds open requests, then the final snapshot, may take after SIGTERM or SIGINT",
    ),
    setting(
        "user_directory",
        "FILE",
        "User directory (CSV `user,name,role` or JSON): the Users that exist, with names and roles; others are refused",
    ),
    setting(
        "store_probe_every_s",
        "SECONDS",
        "Seconds between test writes of the store, so an unwritable data directory shows in /readyz",
    ),
    setting(
        "retention_days",
        "DAYS",
        "Days a resolved incident and a change audit row are kept (0: forever)",
    ),
    setting(
        "ingest_max_connections",
        "N",
        "TCP telemetry connections served at once; more are told `ERR too many connections`",
    ),
    setting(
        "ingest_max_connections_per_peer",
        "N",
        "TCP telemetry connections open at once from one peer address",
    ),
    setting(
        "ingest_max_unauthenticated_connections",
        "N",
        "TCP telemetry connections not yet authenticated; a new one closes the oldest",
    ),
    setting(
        "ingest_idle_timeout_s",
        "SECONDS",
        "Seconds a TCP telemetry connection may send nothing before it is closed",
    ),
    setting(
        "ingest_auth",
        "auto|token|none",
        "Whether a TCP telemetry connection must open with `AUTH <token>`: auto (beyond loopback only), token (always), none (loopback only)",
    ),
    setting(
        "ingest_auth_timeout_s",
        "SECONDS",
        "Seconds a TCP telemetry connection has for its `AUTH` line and TLS handshake",
    ),
    setting(
        "ingest_tls_cert",
        "FILE",
        "PEM certificate chain: the telemetry port speaks only TLS (with ingest_tls_key)",
    ),
    setting(
        "ingest_tls_key",
        "FILE",
        "PEM private key of ingest_tls_cert",
    ),
    setting(
        "ingest_tls_client_ca",
        "FILE",
        "PEM CA certificates: every telemetry client must present a certificate one of them signed",
    ),
    setting(
        "http_max_connections",
        "N",
        "HTTP connections served at once; more wait in the listen backlog",
    ),
    setting(
        "http_max_connections_per_peer",
        "N",
        "HTTP connections open at once from one peer address; more get 503",
    ),
    setting(
        "http_max_unauthenticated_connections",
        "N",
        "HTTP connections without a valid token yet; a new one closes the oldest",
    ),
    setting(
        "http_header_timeout_s",
        "SECONDS",
        "Seconds a request's headers (and a kept-alive connection's next request) may take",
    ),
    setting(
        "http_body_timeout_s",
        "SECONDS",
        "Seconds a request's body may take (408 after)",
    ),
    setting(
        "http_write_timeout_s",
        "SECONDS",
        "Seconds a response write may make no progress before the connection is closed",
    ),
    setting(
        "http_max_body_mib",
        "MIB",
        "Largest telemetry body as sent, in MiB (413 beyond)",
    ),
    setting(
        "http_max_decompressed_mib",
        "MIB",
        "Largest telemetry body once decompressed, in MiB (413 beyond)",
    ),
    setting(
        "replay_mode",
        "true|false",
        "The feed is recorded history: a finished feed reads as ended, not blind, and event time behind the wall clock is not lag (`stormwatch_replay_mode`)",
    ),
    kafka(
        "kafka_brokers",
        "HOSTS",
        "Consume telemetry from Kafka: bootstrap servers, host:port[,host:port...] (with kafka_topic)",
    ),
    kafka(
        "kafka_topic",
        "TOPIC",
        "Kafka topic of NDJSON telemetry records keyed by User ID",
    ),
    kafka(
        "kafka_group",
        "GROUP",
        "Kafka consumer group the instances sharing the topic join",
    ),
    kafka(
        "kafka_warmup",
        "SECONDS",
        "Seconds of event time replayed before the committed offset when a partition is assigned",
    ),
];

/// What a Kafka setting, flag or subcommand says on a build without the feature.
pub const WITHOUT_KAFKA: &str = "this stormwatch was built without the `kafka` feature; build it with \
     `cargo build --release --features kafka` (needs cmake and the curl headers, see README)";

/// Words people might give as settings that are not set that way: the file itself and the one-off decisions of
/// one start. Each with where it is given instead.
pub const NOT_IN_THE_FILE: &[(&str, &str)] = &[
    (
        "config",
        "the config file is named by --config or STORMWATCH_CONFIG, not inside itself",
    ),
    (
        "accept_lost_journal",
        "accepting a lost journal is a decision for one start: give the flag --accept-lost-journal",
    ),
    (
        "print_config",
        "printing the settings is an action: give the flag --print-config",
    ),
];

/// The tables of the config file (`[engine.correlator]`, `[coordination]`, ...) that hold `key`, for a key given
/// as a flag or variable that only the file can set. Empty when no table has it.
pub fn file_only_tables(key: &str) -> Vec<String> {
    fn walk(table: &toml::Table, path: &str, key: &str, found: &mut Vec<String>) {
        for (name, value) in table {
            if name == key {
                found.push(format!("[{path}]"));
            }
            if let toml::Value::Table(inner) = value {
                walk(inner, &format!("{path}.{name}"), key, found);
            }
        }
    }
    let mut found = Vec::new();
    let tables = [
        ("engine", toml::Table::try_from(EngineConfig::default())),
        (
            "coordination",
            toml::Table::try_from(CoordinationConfig::default()),
        ),
    ];
    for (name, table) in tables {
        if key == name {
            found.push(format!("[{name}]"));
        }
        if let Ok(table) = table {
            walk(&table, name, key, &mut found);
        }
    }
    found.dedup();
    found
}

/// A retired `[engine]` key a config file set (its dotted path under `[engine]`), and what took its place.
pub type RetiredKey = (&'static str, &'static str);

/// Removes the key at a dotted path under `table`; true if it was there.
fn remove_dotted(table: &mut toml::Value, path: &str) -> bool {
    let mut parts = path.split('.').peekable();
    let mut at = table;
    while let Some(part) = parts.next() {
        let Some(inner) = at.as_table_mut() else {
            return false;
        };
        if parts.peek().is_none() {
            return inner.remove(part).is_some();
        }
        match inner.get_mut(part) {
            Some(next) => at = next,
            None => return false,
        }
    }
    false
}

/// Each message carries its cause in a `cause` field, which is deliberately not a `source()`: the binary prints
/// the whole chain, and a cause in both printed twice.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {}: {cause}", path.display())]
    Read {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("config file {}: {cause}", path.display())]
    Parse {
        path: PathBuf,
        cause: toml::de::Error,
    },
    #[error("{0}")]
    Invalid(String),
}

impl ServeConfig {
    /// Defaults overlaid with the TOML file at `path`.
    pub fn from_file(path: &Path) -> Result<ServeConfig, ConfigError> {
        file_table(path).map(|(config, _)| config)
    }

    /// Parses TOML settings, dropping the retired `[engine]` keys it sets (see
    /// [`stormwatch_core::engine::config::RETIRED_KEYS`]) and naming them, with what replaced each, beside the
    /// settings.
    pub fn from_toml(text: &str) -> Result<(ServeConfig, Vec<RetiredKey>), toml::de::Error> {
        let mut value: toml::Value = toml::from_str(text)?;
        let mut retired = Vec::new();
        if let Some(engine) = value.get_mut("engine") {
            for &(key, instead) in stormwatch_core::engine::config::RETIRED_KEYS {
                if remove_dotted(engine, key) {
                    retired.push((key, instead));
                }
            }
        }
        if retired.is_empty() {
            // The text itself, so that errors point at its lines.
            return Ok((toml::from_str(text)?, retired));
        }
        Ok((value.try_into()?, retired))
    }

    /// The settings as TOML. Settings without a value (TOML has no null) are listed as comments after the
    /// others, before the `[engine]` tables, so every setting shows.
    pub fn to_toml(&self) -> String {
        let text = toml::to_string_pretty(self)
            .unwrap_or_else(|e| format!("# cannot render config: {e}\n"));
        let printed = toml::from_str::<toml::Table>(&text).unwrap_or_default();
        let unset: Vec<&str> = SETTINGS
            .iter()
            .filter(|setting| setting.built() && !printed.contains_key(setting.key))
            .map(|setting| setting.key)
            .collect();
        if unset.is_empty() {
            return text;
        }
        let mut note = String::from("# Not set:\n");
        for key in unset {
            note.push_str(&format!("# {key} = \"...\"\n"));
        }
        // Top-level keys must come before the first table; so must these comments, to read as top-level.
        let tables = text
            .match_indices("\n[")
            .next()
            .map_or(text.len(), |(at, _)| at + 1);
        let (settings, rest) = text.split_at(tables);
        let gap = if rest.is_empty() { "" } else { "\n" };
        format!("{settings}{note}{gap}{rest}")
    }

    /// Checks values that would otherwise fail later, with the setting's name.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(self.lateness_s.is_finite() && self.lateness_s >= 0.0) {
            return Err(ConfigError::Invalid(format!(
                "lateness must be zero or more seconds, not {}",
                self.lateness_s
            )));
        }
        #[cfg(feature = "kafka")]
        if self.kafka_brokers.is_some() != self.kafka_topic.is_some() {
            return Err(ConfigError::Invalid(
                "kafka_brokers and kafka_topic go together".into(),
            ));
        }
        for (name, value) in [
            ("engine_stall_after_s", self.engine_stall_after_s),
            ("shutdown_grace_s", self.shutdown_grace_s),
            ("store_probe_every_s", self.store_probe_every_s),
            ("ingest_max_connections", self.ingest_max_connections as u64),
            ("ingest_idle_timeout_s", self.ingest_idle_timeout_s),
            ("ingest_auth_timeout_s", self.ingest_auth_timeout_s),
            ("http_max_connections", self.http_max_connections as u64),
            ("http_header_timeout_s", self.http_header_timeout_s),
            ("http_body_timeout_s", self.http_body_timeout_s),
            ("http_write_timeout_s", self.http_write_timeout_s),
            (
                "http_max_connections_per_peer",
                self.http_max_connections_per_peer as u64,
            ),
            (
                "http_max_unauthenticated_connections",
                self.http_max_unauthenticated_connections as u64,
            ),
            ("http_max_body_mib", self.http_max_body_mib),
            ("http_max_decompressed_mib", self.http_max_decompressed_mib),
            (
                "ingest_max_connections_per_peer",
                self.ingest_max_connections_per_peer as u64,
            ),
            (
                "ingest_max_unauthenticated_connections",
                self.ingest_max_unauthenticated_connections as u64,
            ),
        ] {
            if value == 0 {
                return Err(ConfigError::Invalid(format!("{name} must be at least 1")));
            }
        }
        if self.ingest_tls_cert.is_some() != self.ingest_tls_key.is_some() {
            return Err(ConfigError::Invalid(
                "ingest_tls_cert and ingest_tls_key go together".into(),
            ));
        }
        if self.ingest_tls_client_ca.is_some() && self.ingest_tls_cert.is_none() {
            return Err(ConfigError::Invalid(
                "ingest_tls_client_ca needs ingest_tls_cert and ingest_tls_key (client certificates are a TLS \
                 feature)"
                    .into(),
            ));
        }
        if self.ingest_auth == IngestAuth::None
            && !self.ingest.ip().is_loopback()
            && !self.ingest_client_certs()
        {
            return Err(ConfigError::Invalid(format!(
                "ingest_auth = \"none\" is only allowed on loopback or with ingest_tls_client_ca, not on {}: \
                 telemetry from beyond this machine must authenticate",
                self.ingest
            )));
        }
        if self.snapshot_every_s == 0 {
            return Err(ConfigError::Invalid(
                "snapshot_every must be at least 1 second".into(),
            ));
        }
        Ok(())
    }

    /// Whether TCP telemetry connections must authenticate.
    pub fn ingest_needs_token(&self) -> bool {
        match self.ingest_auth {
            IngestAuth::Auto => !self.ingest.ip().is_loopback() && !self.ingest_client_certs(),
            IngestAuth::Token => true,
            IngestAuth::None => false,
        }
    }

    /// Whether the telemetry port demands a client certificate signed by a configured CA.
    pub fn ingest_client_certs(&self) -> bool {
        self.ingest_tls_cert.is_some() && self.ingest_tls_client_ca.is_some()
    }

    /// True when either listener is reachable from beyond this machine.
    pub fn listens_beyond_loopback(&self) -> bool {
        !self.http.ip().is_loopback() || !self.ingest.ip().is_loopback()
    }
}

/// The TOML file at `path` as settings and as the table it wrote, refused (naming the file and the key) when it
/// sets what a file cannot: the file itself, a one-off flag, or a Kafka setting on a build without the feature.
/// Parsed from the text, so an error points at the line.
pub fn file_table(path: &Path) -> Result<(ServeConfig, toml::Table), ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.into(),
        cause: source,
    })?;
    let parse = |source| ConfigError::Parse {
        path: path.into(),
        cause: source,
    };
    let table: toml::Table = toml::from_str(&text).map_err(parse)?;
    for key in table.keys() {
        if let Some((_, instead)) = NOT_IN_THE_FILE.iter().find(|(name, _)| name == key) {
            return Err(ConfigError::Invalid(format!(
                "config file {} sets `{key}`: {instead}",
                path.display()
            )));
        }
        if !cfg!(feature = "kafka") && key.starts_with("kafka") {
            return Err(ConfigError::Invalid(format!(
                "config file {} sets `{key}`, but {WITHOUT_KAFKA}",
                path.display()
            )));
        }
    }
    let (config, retired) = ServeConfig::from_toml(&text).map_err(parse)?;
    for (key, instead) in retired {
        tracing::warn!(
            "config file {}: `engine.{key}` is retired and ignored: {instead}",
            path.display()
        );
    }
    Ok((config, table))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_overlays_defaults_and_round_trips() {
        let config: ServeConfig =
            toml::from_str("http = \"0.0.0.0:8081\"\nlateness = 7.5\n").unwrap();
        assert_eq!(config.http.port(), 8081);
        assert_eq!(config.ingest, ServeConfig::default().ingest);
        assert!(config.listens_beyond_loopback());
        let again: ServeConfig = toml::from_str(&config.to_toml()).unwrap();
        assert_eq!(again, config);
    }

    #[test]
    fn engine_and_correlator_settings_load_from_toml_and_print() {
        let text = "[engine.detectors.rate_storm]\ndesign_multiple = 6.0\n[engine.correlator]\nfit_threshold = 0.6\n[engine.correlator.category_fit]\napplication = [0.6, 1.0, 1.0, 0.2]\n";
        let config: ServeConfig = toml::from_str(text).unwrap();
        assert_eq!(config.engine.detectors.rate_storm.design_multiple, 6.0);
        assert_eq!(config.engine.detectors.rate_storm.min_excess_per_s, 5.0);
        assert_eq!(config.engine.correlator.fit_threshold, 0.6);
        assert_eq!(config.engine.correlator.category_fit.application[0], 0.6);
        assert_eq!(config.engine.correlator.max_suspects, 5);
        let printed = config.to_toml();
        assert!(
            printed.contains("[engine.correlator.category_fit]"),
            "{printed}"
        );
        assert!(printed.contains("time_constant_s"), "{printed}");
        let again: ServeConfig = toml::from_str(&printed).unwrap();
        assert_eq!(again, config);
        let error = toml::from_str::<ServeConfig>("[engine.correlator]\nfit_treshold = 1\n")
            .unwrap_err()
            .to_string();
        assert!(error.contains("fit_treshold"), "{error}");
    }

    #[test]
    fn retired_engine_keys_load_with_a_warning_and_others_still_fail() {
        let text = "[engine.detectors.backlog]\nmin_depth = 80\npersistent_share = 0.8\n\
                    [engine.detectors.backlog_lifecycle]\nopen_after_s = 50\npending_gap_s = 5\n\
                    resolve_after_s = 60\nopen_early_after_s = 40\n";
        let (config, retired) = ServeConfig::from_toml(text).unwrap();
        assert_eq!(config.engine.detectors.backlog.min_depth, 80);
        let keys: Vec<&str> = retired.iter().map(|(key, _)| *key).collect();
        assert_eq!(
            keys,
            [
                "detectors.backlog.persistent_share",
                "detectors.backlog_lifecycle.open_early_after_s"
            ]
        );
        assert!(retired.iter().all(|(_, instead)| !instead.is_empty()));
        let error = ServeConfig::from_toml("[engine.detectors.backlog]\npersistant_share = 0.8\n")
            .unwrap_err()
            .to_string();
        assert!(error.contains("persistant_share"), "{error}");
        let (_, none) = ServeConfig::from_toml("lateness = 7.5\n").unwrap();
        assert!(none.is_empty());
    }

    #[test]
    fn coordination_settings_load_from_toml_and_print() {
        let text = "[coordination]\nclock = \"utc\"\nmax_concurrent_high_risk = 2\n[coordination.morning_peak]\nstart = \"06:30\"\nend = \"09:00\"\n[coordination.typical_minutes]\nnetwork = 45\n";
        let config: ServeConfig = toml::from_str(text).unwrap();
        assert_eq!(config.coordination.max_concurrent_high_risk, 2);
        assert_eq!(config.coordination.morning_peak.start.to_string(), "06:30");
        assert_eq!(config.coordination.typical_minutes.network, 45);
        assert_eq!(config.coordination.typical_minutes.device, 240);
        let printed = config.to_toml();
        assert!(
            printed.contains("[coordination.scheduled_reads]"),
            "{printed}"
        );
        let again: ServeConfig = toml::from_str(&printed).unwrap();
        assert_eq!(again, config);
        let error = toml::from_str::<ServeConfig>(
            "[coordination.morning_peak]\nstart = \"7am\"\nend = \"09:00\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("7am"), "{error}");
    }

    #[test]
    fn keys_are_the_flags_names_and_the_old_names_still_read() {
        let text = ServeConfig::default().to_toml();
        for key in [
            "data_dir",
            "lateness",
            "snapshot_every",
            "log_format",
            "follow",
        ] {
            assert!(text.contains(&format!("\n{key} = ")), "{key}: {text}");
        }
        assert!(
            text.contains("\n# Not set:\n# alertmanager = \"...\"\n# public_url = \"...\"\n"),
            "{text}"
        );
        let unset_at = text.find("# Not set:").unwrap_or(usize::MAX);
        let tables_at = text.find("\n[").unwrap_or(0);
        assert!(unset_at < tables_at, "{text}");
        let old: ServeConfig =
            toml::from_str("data_dir = \"d\"\nlateness_s = 2.0\nsnapshot_every_s = 7\n").unwrap();
        assert_eq!(
            (old.data_dir, old.lateness_s, old.snapshot_every_s),
            (PathBuf::from("d"), 2.0, 7)
        );
    }

    #[test]
    fn tls_settings_go_together_and_client_certs_stand_in_for_the_token_beyond_loopback() {
        let beyond: ServeConfig = toml::from_str("ingest = \"0.0.0.0:9000\"").unwrap();
        assert!(beyond.ingest_needs_token());
        let half: ServeConfig = toml::from_str("ingest_tls_cert = \"c.pem\"").unwrap();
        assert!(
            half.validate()
                .unwrap_err()
                .to_string()
                .contains("go together")
        );
        let ca_only: ServeConfig = toml::from_str("ingest_tls_client_ca = \"ca.pem\"").unwrap();
        assert!(ca_only.validate().is_err());
        let mutual: ServeConfig = toml::from_str(
            "ingest = \"0.0.0.0:9000\"\ningest_auth = \"none\"\ningest_tls_cert = \"c.pem\"\n\
             ingest_tls_key = \"k.pem\"\ningest_tls_client_ca = \"ca.pem\"\n",
        )
        .unwrap();
        assert!(mutual.validate().is_ok());
        assert!(!mutual.ingest_needs_token());
        let server_only: ServeConfig = toml::from_str(
            "ingest = \"0.0.0.0:9000\"\ningest_tls_cert = \"c.pem\"\ningest_tls_key = \"k.pem\"\n",
        )
        .unwrap();
        assert!(
            server_only.ingest_needs_token(),
            "TLS without client certificates authenticates nobody"
        );
        let printed = ServeConfig::default().to_toml();
        assert!(printed.contains("# ingest_tls_client_ca = "), "{printed}");
    }

    #[test]
    fn unknown_keys_are_refused_by_name() {
        let error = toml::from_str::<ServeConfig>("htpp = \"x\"")
            .unwrap_err()
            .to_string();
        assert!(error.contains("htpp"), "{error}");
    }
}
