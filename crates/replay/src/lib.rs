//! Stormwatch replay: opens telemetry and change files, cuts and parses them in parallel, drives the core engine
//! deterministically and returns the report. The file and thread edge around `stormwatch-core`.

pub mod change_files;
pub mod pipeline;
pub mod source;

pub use change_files::load_change_file;
pub use pipeline::{
    FirstMalformed, ReplayError, ReplayOptions, Replayed, load_changes, replay, replay_detailed,
};
