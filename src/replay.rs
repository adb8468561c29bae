//! TEMPORARY SHIM (generator worktree only): the signatures of the engine's replay API, so that `evaluate` compiles
//! before the real `src/replay.rs` lands. It is replaced by the real file on merge.

use std::path::PathBuf;

/// What to replay.
#[derive(Clone, Debug)]
pub struct ReplayOptions {
    pub inputs: Vec<PathBuf>,
    pub change_files: Vec<PathBuf>,
    pub quarantine: Option<PathBuf>,
    pub speed: Option<f64>,
    pub progress: bool,
}

impl ReplayOptions {
    pub fn new(inputs: Vec<PathBuf>, change_files: Vec<PathBuf>) -> Self {
        ReplayOptions {
            inputs,
            change_files,
            quarantine: None,
            speed: None,
            progress: false,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("replay is not built in this worktree yet")]
    NotBuilt,
}

pub fn replay(_options: &ReplayOptions) -> Result<crate::report::Report, ReplayError> {
    Err(ReplayError::NotBuilt)
}
