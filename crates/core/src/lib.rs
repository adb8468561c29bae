//! Stormwatch's sans-IO core: telemetry lines to events, the event-time engine (per-User windows, detectors,
//! incident lifecycle), the change register and its correlator, and the report. No sockets, clocks, files,
//! threads of its own, async runtime, SQL or randomness: its dependency list is the guard, checked in CI.

pub mod changes;
pub mod engine;
pub mod incident;
pub mod report;
pub mod rfc3339;
pub mod telemetry;
pub mod triage;
