//! The live service (`stormwatch serve`) around the core engine: ingest, the SQLite store, the HTTP API and triage
//! console, Alertmanager pushes and Prometheus metrics. Modules are grouped by job: `ingest/` (sources in),
//! `engine/` (the engine thread, its journal and held lines), `store/` (SQLite), `http/` (API and console),
//! `alerts/` (Alertmanager) and `metrics/` (Prometheus).

pub mod admission;
pub mod alerts;
pub mod config;
pub mod config_layers;
pub mod data_dir_lock;
pub mod engine;
pub mod first_run;
pub mod health;
pub mod http;
pub mod ingest;
pub mod log_limit;
pub mod metrics;
pub mod pace;
pub mod published;
pub mod retention;
pub mod service;
pub mod store;
pub mod user_directory;
pub mod view_clock;

pub use config::{IngestAuth, LogFormat, ServeConfig};
pub use service::{LogSource, Service, ServiceError, Stopped};
