//! Stormwatch: detects backlogs and message storms in DSP<->User telemetry and correlates them with the change register.

pub mod changes;
pub mod console;
pub mod engine;
pub mod evaluate;
pub mod generator;
pub mod incident;
#[cfg(feature = "kafka")]
pub mod kafka;
pub mod replay;
pub mod report;
pub mod service;
pub mod store;
pub mod telemetry;
pub mod triage;
