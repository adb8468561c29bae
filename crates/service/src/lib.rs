//! The live service (`stormwatch serve`) around the core engine: ingest, the SQLite store, the HTTP API and triage
//! console, Alertmanager pushes and Prometheus metrics.

pub mod config;
pub mod engine_loop;
pub mod health;
mod held_lines;
pub mod ingest;
pub mod journal;
pub mod log_limit;
pub mod malformed;
pub mod metrics;
pub mod user_series;
pub mod users_api;

pub use config::{IngestAuth, LogFormat, ServeConfig};
pub mod alerts;
pub mod api_error;
pub mod auth;
pub mod calendar_feed;
pub mod changes_api;
pub mod console;
pub mod coordination;
pub mod directory_api;
pub mod http;
pub mod http_server;
pub mod incident_series;
pub mod incidents_api;
pub mod outcomes_api;
pub mod query;
pub mod schedule_api;
pub mod state;
pub mod store;
pub mod store_sink;
pub mod tcp_ingest;
pub mod tls;
pub mod user_directory;
