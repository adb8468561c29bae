//! The service's effective configuration: defaults, then an optional TOML file, then environment and flags.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use stormwatch_core::engine::EngineConfig;

/// How logs are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// Everything `stormwatch serve` runs with. `--print-config` prints this as TOML. Each key is its flag's name
/// (`data-dir` for `--data-dir`); the snake_case names of earlier versions are still read.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct ServeConfig {
    /// HTTP listener for the API and `/metrics`.
    pub http: SocketAddr,
    /// TCP listener for NDJSON telemetry lines.
    pub ingest: SocketAddr,
    /// Holds the SQLite store (changes, incidents, tokens, engine snapshots).
    #[serde(alias = "data_dir")]
    pub data_dir: PathBuf,
    /// Files to tail (surviving rotation).
    pub follow: Vec<PathBuf>,
    /// Alertmanager base URL (v2 API) to push incidents to.
    pub alertmanager: Option<String>,
    /// Seconds of event time a line may arrive late and still count in its own second.
    #[serde(rename = "lateness", alias = "lateness_s")]
    pub lateness_s: f64,
    /// Seconds between engine snapshots (one is also taken at shutdown).
    #[serde(rename = "snapshot-every", alias = "snapshot_every_s")]
    pub snapshot_every_s: u64,
    #[serde(alias = "log_format")]
    pub log_format: LogFormat,
    /// Link to an incident in operators' alerts: `{base}/api/v1/incidents/{id}`.
    #[serde(alias = "public_url")]
    pub public_url: Option<String>,
    /// Kafka bootstrap servers: consume telemetry from `kafka_topic` in consumer group `kafka_group`.
    #[cfg(feature = "kafka")]
    #[serde(alias = "kafka_brokers")]
    pub kafka_brokers: Option<String>,
    #[cfg(feature = "kafka")]
    #[serde(alias = "kafka_topic")]
    pub kafka_topic: Option<String>,
    #[cfg(feature = "kafka")]
    #[serde(alias = "kafka_group")]
    pub kafka_group: String,
    /// Event time replayed before the previous owner's commit when a partition is assigned.
    #[cfg(feature = "kafka")]
    #[serde(rename = "kafka-warmup", alias = "kafka_warmup_s")]
    pub kafka_warmup_s: u64,
    /// Detector thresholds, lifecycle timings, common-cause grouping and the correlator's weights (`[engine]` and
    /// its sub-tables; lateness is the `lateness` setting above).
    pub engine: EngineConfig,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            http: SocketAddr::from(([127, 0, 0, 1], 8080)),
            ingest: SocketAddr::from(([127, 0, 0, 1], 9000)),
            data_dir: PathBuf::from("stormwatch-data"),
            follow: Vec::new(),
            alertmanager: None,
            lateness_s: 5.0,
            snapshot_every_s: 30,
            log_format: LogFormat::Text,
            public_url: None,
            #[cfg(feature = "kafka")]
            kafka_brokers: None,
            #[cfg(feature = "kafka")]
            kafka_topic: None,
            #[cfg(feature = "kafka")]
            kafka_group: "stormwatch".into(),
            #[cfg(feature = "kafka")]
            kafka_warmup_s: 3_600,
            engine: EngineConfig::default(),
        }
    }
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
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.into(),
            cause: source,
        })?;
        #[cfg(not(feature = "kafka"))]
        if let Ok(toml::Value::Table(table)) = toml::from_str::<toml::Value>(&text)
            && let Some(key) = table.keys().find(|k| k.starts_with("kafka"))
        {
            return Err(ConfigError::Invalid(format!(
                "config file {} sets `{key}`, but this stormwatch was built without the `kafka` feature \
                 (build it with `cargo build --release --features kafka`)",
                path.display()
            )));
        }
        toml::from_str(&text).map_err(|source| ConfigError::Parse {
            path: path.into(),
            cause: source,
        })
    }

    /// The settings as TOML, keys named like the flags. Settings without a value (TOML has no null) are listed
    /// as comments after the others, before the `[engine]` tables, so every setting shows.
    pub fn to_toml(&self) -> String {
        let text = toml::to_string_pretty(self)
            .unwrap_or_else(|e| format!("# cannot render config: {e}\n"));
        let mut unset = vec![
            ("alertmanager", self.alertmanager.is_none()),
            ("public-url", self.public_url.is_none()),
        ];
        #[cfg(feature = "kafka")]
        unset.extend([
            ("kafka-brokers", self.kafka_brokers.is_none()),
            ("kafka-topic", self.kafka_topic.is_none()),
        ]);
        unset.retain(|(_, is_unset)| *is_unset);
        if unset.is_empty() {
            return text;
        }
        let mut note = String::from("\n# Not set:\n");
        for (key, _) in unset {
            note.push_str(&format!("# {key} = \"...\"\n"));
        }
        // Top-level keys must come before the first table; so must these comments, to read as top-level.
        let tables = text
            .match_indices("\n[")
            .next()
            .map_or(text.len(), |(at, _)| at + 1);
        let (settings, rest) = text.split_at(tables);
        format!(
            "{settings}{}{}{rest}",
            note.trim_start_matches('\n'),
            if rest.is_empty() { "" } else { "\n" }
        )
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
                "kafka-brokers and kafka-topic go together".into(),
            ));
        }
        if self.snapshot_every_s == 0 {
            return Err(ConfigError::Invalid(
                "snapshot-every must be at least 1 second".into(),
            ));
        }
        Ok(())
    }

    /// True when either listener is reachable from beyond this machine.
    pub fn listens_beyond_loopback(&self) -> bool {
        !self.http.ip().is_loopback() || !self.ingest.ip().is_loopback()
    }
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
    fn keys_are_the_flags_names_and_the_old_names_still_read() {
        let text = ServeConfig::default().to_toml();
        for key in [
            "data-dir",
            "lateness",
            "snapshot-every",
            "log-format",
            "follow",
        ] {
            assert!(text.contains(&format!("\n{key} = ")), "{key}: {text}");
        }
        assert!(
            text.contains(
                "\n# Not set:\n# alertmanager = \"...\"\n# public-url = \"...\"\n\n[engine"
            ),
            "{text}"
        );
        let old: ServeConfig =
            toml::from_str("data_dir = \"d\"\nlateness_s = 2.0\nsnapshot_every_s = 7\n").unwrap();
        assert_eq!(
            (old.data_dir, old.lateness_s, old.snapshot_every_s),
            (PathBuf::from("d"), 2.0, 7)
        );
    }

    #[test]
    fn engine_and_correlator_settings_load_from_toml_and_print() {
        let text = "[engine.detectors.rate_storm]\nfactor = 6.0\n[engine.correlator]\nfit_threshold = 0.6\n[engine.correlator.category_fit]\napplication = [0.6, 1.0, 1.0, 0.2]\n";
        let config: ServeConfig = toml::from_str(text).unwrap();
        assert_eq!(config.engine.detectors.rate_storm.factor, 6.0);
        assert_eq!(config.engine.detectors.rate_storm.floor, 5.0);
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
    fn unknown_keys_are_refused_by_name() {
        let error = toml::from_str::<ServeConfig>("htpp = \"x\"")
            .unwrap_err()
            .to_string();
        assert!(error.contains("htpp"), "{error}");
    }
}
