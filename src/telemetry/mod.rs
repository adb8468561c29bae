//! Telemetry input: the contract's NDJSON lines, from bytes to [`Event`]s, with malformed lines kept for operators.

pub mod codes;
pub mod event;
pub mod user_id;

pub use codes::{AlertCode, FailureReason, Srv};
pub use event::{Event, EventKind};
pub use user_id::Eui64;
