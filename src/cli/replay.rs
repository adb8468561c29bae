//! `stormwatch replay`: the contract's command line, the report file, and the triage summary on stdout.

use std::path::PathBuf;
use std::process::ExitCode;

use stormwatch_replay::{ReplayOptions, replay};

#[derive(clap::Args, Debug)]
pub struct ReplayArgs {
    /// Telemetry files, read in the order given (`-` is standard input; `.gz` and `.zst` are decompressed).
    #[arg(required = true, value_name = "EVENTS")]
    pub inputs: Vec<PathBuf>,
    /// Change notices (JSON array, NDJSON or CSV); may be given several times.
    #[arg(long = "changes", value_name = "FILE")]
    pub changes: Vec<PathBuf>,
    /// Also load the change register of a Stormwatch store: its data directory or its `stormwatch.db`. Notices
    /// in `--changes` files are applied after it, so a file's notice wins over a stored one with the same id.
    #[arg(long = "changes-db", value_name = "PATH")]
    pub changes_db: Option<PathBuf>,
    /// Where to write the JSON incident report.
    #[arg(long, value_name = "FILE")]
    pub report: PathBuf,
    /// Where to keep malformed lines [default: next to the report, `<report>.quarantine.ndjson`].
    #[arg(long, value_name = "FILE")]
    pub quarantine: Option<PathBuf>,
    /// Pace the replay at N times event time (default: as fast as possible).
    #[arg(long, value_name = "N")]
    pub speed: Option<f64>,
    /// How late (in seconds of event time) a line may arrive and still count in its own second.
    #[arg(long, value_name = "SECONDS", default_value_t = 5.0)]
    pub lateness: f64,
    /// Do not print the triage summary.
    #[arg(long, short)]
    pub quiet: bool,
}

/// `report.json` -> `report.quarantine.ndjson`, beside it.
fn default_quarantine(report: &std::path::Path) -> PathBuf {
    let stem = report
        .file_stem()
        .map_or_else(|| "report".into(), |s| s.to_string_lossy().into_owned());
    report.with_file_name(format!("{stem}.quarantine.ndjson"))
}

pub fn run(args: ReplayArgs) -> anyhow::Result<ExitCode> {
    if let Some(speed) = args.speed
        && !(speed.is_finite() && speed > 0.0)
    {
        anyhow::bail!("--speed must be a positive number, not {speed}");
    }
    if !(args.lateness.is_finite() && args.lateness >= 0.0) {
        anyhow::bail!(
            "--lateness must be zero or more seconds, not {}",
            args.lateness
        );
    }
    let mut options = ReplayOptions::new(args.inputs, args.changes);
    if let Some(path) = &args.changes_db {
        options.initial_changes =
            stormwatch_service::store::Store::open_existing(path)?.load_register()?;
        tracing::info!(notices = options.initial_changes.len(), store = %path.display(), "change register loaded from the store");
    }
    options.quarantine = Some(
        args.quarantine
            .unwrap_or_else(|| default_quarantine(&args.report)),
    );
    options.speed = args.speed;
    options.progress = true;
    options.engine.allowed_lateness_ms = (args.lateness * 1000.0) as i64;
    let report = replay(&options)?;
    super::write_json(&args.report, &report)?;
    if !args.quiet {
        print!("{}", stormwatch_core::triage::render(&report));
        println!("\nreport written to {}", args.report.display());
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quarantine_sits_next_to_the_report() {
        assert_eq!(
            default_quarantine(std::path::Path::new("out/r.json")),
            PathBuf::from("out/r.quarantine.ndjson")
        );
    }
}
