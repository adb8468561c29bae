//! The registration warnings `changes add` and `changes import` print after storing: the store judges each notice
//! it writes with the same rules and `[coordination]` settings as the service, and keeps what it found.

use std::path::PathBuf;

use stormwatch_core::changes::CoordinationConfig;
use stormwatch_service::ServeConfig;
use stormwatch_service::store::UpsertOutcome;

/// Where the warning thresholds come from.
#[derive(clap::Args, Debug)]
pub struct CoordinationArgs {
    /// The serve TOML whose `[coordination]` table sets the warning thresholds (defaults otherwise).
    #[arg(long = "config", value_name = "FILE", env = "STORMWATCH_CONFIG")]
    pub config: Option<PathBuf>,
}

impl CoordinationArgs {
    /// Read before storing anything, so a broken file stops the command before it writes.
    pub fn settings(&self) -> anyhow::Result<CoordinationConfig> {
        Ok(match &self.config {
            Some(path) => ServeConfig::from_file(path)?.coordination,
            None => CoordinationConfig::default(),
        })
    }
}

/// Prints each stored notice's warnings (never an error: a warning is advice). Returns how many notices had any.
pub fn print(outcomes: &[UpsertOutcome]) -> usize {
    let mut warned = 0;
    for outcome in outcomes {
        if !outcome.warnings.is_empty() {
            warned += 1;
        }
        for warning in &outcome.warnings {
            println!(
                "warning {} [{}]: {}",
                outcome.id,
                warning.kind.as_str(),
                warning.message
            );
        }
    }
    warned
}
