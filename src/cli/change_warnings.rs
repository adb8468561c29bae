//! The registration warnings `changes add` and `changes import` print after storing: the same rules and
//! `[coordination]` settings as the service, judged against the whole stored register.

use std::path::PathBuf;

use stormwatch_core::changes::{CoordinationConfig, warnings};
use stormwatch_service::ServeConfig;
use stormwatch_service::store::Store;

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
pub fn print(store: &Store, ids: &[String], config: &CoordinationConfig) -> anyhow::Result<usize> {
    let register = store.load_register()?;
    let mut warned = 0;
    for id in ids {
        let Some(notice) = register.get(id) else {
            continue;
        };
        let found = warnings(notice, register.iter(), config);
        if !found.is_empty() {
            warned += 1;
        }
        for warning in found {
            println!(
                "warning {id} [{}]: {}",
                warning.kind.as_str(),
                warning.message
            );
        }
    }
    Ok(warned)
}
