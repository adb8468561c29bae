//! `stormwatch serve`: the live service around the same engine core as replay.

pub mod config;
pub mod engine_loop;
pub mod ingest;
pub mod malformed;
pub mod metrics;

pub use config::{LogFormat, ServeConfig};
