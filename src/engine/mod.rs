//! The deterministic engine core: per-User windows, event time, detectors, incident lifecycle.

pub mod baseline;
pub mod detect;
pub mod lifecycle;
pub mod queue_age;
pub mod tally;
pub mod window;
