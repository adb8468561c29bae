//! Telemetry input: the contract's NDJSON lines, from bytes to [`Event`]s, with malformed lines kept for operators.

pub mod codes;
pub mod event;
pub mod user_id;

pub use codes::{AlertCode, FailureReason, Srv};
pub use event::{Event, EventKind};
pub use user_id::Eui64;
mod fast_path;
mod fields;
pub mod parse;
pub use parse::{LineError, MAX_LINE_BYTES, parse_line};
pub mod batch;
pub mod framing;
pub mod held_lines;
pub mod quarantine;
pub use framing::{Chunk, LineFramer};
pub use quarantine::{MalformedLine, QuarantineWriter};
