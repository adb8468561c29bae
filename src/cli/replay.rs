//! `stormwatch replay`: the contract's command line, the report file, and the triage summary on stdout.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context;
use stormwatch_replay::{FirstMalformed, ReplayError, ReplayOptions, replay_detailed};

#[derive(clap::Args, Debug)]
pub struct ReplayArgs {
    /// Telemetry files, read in the order given (`-` is standard input; `.gz` and `.zst` are decompressed).
    #[arg(required = true, value_name = "EVENTS")]
    pub inputs: Vec<PathBuf>,
    /// Change notices (JSON array, NDJSON or CSV); may be given several times.
    #[arg(long = "changes", value_name = "FILE")]
    pub changes: Vec<PathBuf>,
    /// Also load the change register of a Stormwatch store (what `stormwatch changes` and `serve` keep): its data
    /// directory or its `stormwatch.db`. Notices in `--changes` files are applied after it, so a file's notice wins
    /// over a stored one with the same id.
    #[arg(long = "changes-db", value_name = "PATH")]
    pub changes_db: Option<PathBuf>,
    /// A User directory file (CSV `EUI-64,name,role` or JSON, as `serve`'s `user_directory`): the triage summary
    /// names each User. Here it only names; it refuses no lines. With `--changes-db`, the store's directory edits
    /// are applied over it.
    #[arg(long = "user-directory", value_name = "FILE")]
    pub user_directory: Option<PathBuf>,
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
    /// Print nothing but warnings and errors: no progress bar, no triage summary (the report is still written).
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
    // Before the replay, not after it: a report that cannot be written would waste the whole run.
    let report_file = ReportFile::prepare(&args.report)?;
    let mut options = ReplayOptions::new(args.inputs, args.changes);
    let mut directory_edits = Vec::new();
    if let Some(path) = &args.changes_db {
        let store = stormwatch_service::store::Store::open_existing(path)?;
        options.initial_changes = store.load_register()?;
        directory_edits = store.directory_edits()?;
        tracing::info!(notices = options.initial_changes.len(), store = %path.display(), "change register loaded from the store");
    }
    let names = {
        use stormwatch_service::user_directory::{Directory, Names, read};
        let file = args.user_directory.as_deref().map(read).transpose()?;
        Names::new(Directory::new(file, directory_edits))
    };
    let quarantine = args
        .quarantine
        .unwrap_or_else(|| default_quarantine(&args.report));
    if quarantine.is_dir() {
        anyhow::bail!(
            "--quarantine {} is a directory; give a file name",
            quarantine.display()
        );
    }
    options.quarantine = Some(quarantine);
    options.speed = args.speed;
    options.progress = !args.quiet;
    options.engine.allowed_lateness_ms = (args.lateness * 1000.0) as i64;
    options.cancel = Some(stop_on_ctrl_c());
    let replayed = match replay_detailed(&options) {
        Ok(replayed) => replayed,
        Err(interrupted @ ReplayError::Interrupted { .. }) => {
            eprintln!("stormwatch: {interrupted}; no report written");
            return Ok(ExitCode::from(130));
        }
        Err(error) => return Err(error.into()),
    };
    let report = replayed.report;
    report_file.write(&report)?;
    let s = &report.summary;
    if s.events == 0 && s.malformed > 0 {
        eprintln!(
            "stormwatch: error: {}",
            all_malformed(
                s.malformed,
                replayed.first_malformed.as_ref(),
                s.quarantine.as_deref()
            )
        );
        return Ok(ExitCode::from(1));
    }
    if s.events == 0 {
        eprintln!(
            "stormwatch: warning: the input holds no telemetry lines; the report at {} is empty",
            args.report.display()
        );
    }
    if !args.quiet {
        print!(
            "{}",
            stormwatch_core::triage::render_named(&report, &|user| names.label(user))
        );
        println!("\nreport written to {}", args.report.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// The report's destination, checked before the replay and written in one step after it: the JSON goes to a
/// temporary file beside it, renamed into place, so an interrupted or failed run leaves no half report.
struct ReportFile {
    path: PathBuf,
    temp: tempfile::NamedTempFile,
}

impl ReportFile {
    fn prepare(path: &Path) -> anyhow::Result<Self> {
        if path.is_dir() {
            anyhow::bail!(
                "--report {} is a directory; give a file name, such as {}",
                path.display(),
                path.join("report.json").display()
            );
        }
        let dir = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        if !dir.is_dir() {
            anyhow::bail!(
                "cannot write --report {}: the directory {} does not exist",
                path.display(),
                dir.display()
            );
        }
        let temp = tempfile::Builder::new()
            .prefix(".stormwatch-report-")
            .suffix(".partial")
            // What File::create would give under the usual umask, not the temporary file's private 0600.
            .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644))
            .tempfile_in(dir)
            .with_context(|| format!("cannot write the report in {}", dir.display()))?;
        Ok(ReportFile {
            path: path.to_owned(),
            temp,
        })
    }

    fn write(self, report: &stormwatch_core::report::Report) -> anyhow::Result<()> {
        super::write_json(self.temp.path(), report)?;
        self.temp
            .persist(&self.path)
            .map_err(|e| e.error)
            .with_context(|| format!("cannot create {}", self.path.display()))?;
        Ok(())
    }
}

/// A flag the first Ctrl-C sets, so the replay stops between blocks and cleans up; a second one quits at once.
fn stop_on_ctrl_c() -> Arc<AtomicBool> {
    let flag = Arc::new(AtomicBool::new(false));
    let set = flag.clone();
    let spawned = std::thread::Builder::new()
        .name("ctrl-c".into())
        .spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async {
                if tokio::signal::ctrl_c().await.is_ok() {
                    set.store(true, Ordering::Relaxed);
                }
                if tokio::signal::ctrl_c().await.is_ok() {
                    eprintln!("stormwatch: interrupted twice; quitting without cleaning up");
                    std::process::exit(130);
                }
            });
        });
    if let Err(error) = spawned {
        tracing::warn!(%error, "cannot watch for Ctrl-C; an interrupted replay may leave a partial quarantine file");
    }
    flag
}

/// What to say when not one line was valid telemetry: most likely the file is in another format.
fn all_malformed(count: u64, first: Option<&FirstMalformed>, quarantine: Option<&str>) -> String {
    let mut text = match count {
        1 => "the one line was malformed, none was valid telemetry. ".to_owned(),
        _ => format!("all {count} lines were malformed, none was valid telemetry. "),
    };
    text.push_str(format_hint(first.map_or(&[][..], |f| &f.head)));
    if let Some(first) = first {
        text.push_str(&format!(
            " The first, {} line {}: {}.",
            first.source, first.line, first.error
        ));
    }
    if let Some(path) = quarantine {
        text.push_str(&format!(" Every malformed line is kept in {path}."));
    }
    text
}

/// A guess at what the input is, from its first bytes, and what the replay wants instead.
fn format_hint(head: &[u8]) -> &'static str {
    let start = head
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .map_or(&[][..], |i| &head[i..]);
    match start {
        [0x1f, 0x8b, ..] => {
            "The input is gzip-compressed but not named .gz: rename it to end in .gz, or decompress it."
        }
        [0x28, 0xb5, 0x2f, 0xfd, ..] => {
            "The input is zstd-compressed but not named .zst: rename it to end in .zst, or decompress it."
        }
        [b'[', ..] => {
            "It looks like a JSON array; telemetry is NDJSON, one JSON object per line with `ts`, `user` and \
             `event` (docs/telemetry.md)."
        }
        [first, ..] if *first != b'{' && start.contains(&b',') => {
            "It looks like CSV; telemetry is NDJSON, one JSON object per line with `ts`, `user` and `event` \
             (docs/telemetry.md)."
        }
        _ => {
            "Telemetry is NDJSON, one JSON object per line with `ts`, `user` and `event` (docs/telemetry.md)."
        }
    }
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

    #[test]
    fn the_format_hint_names_what_the_input_looks_like() {
        assert!(format_hint(&[0x1f, 0x8b, 8, 0]).contains("gzip"));
        assert!(format_hint(&[0x28, 0xb5, 0x2f, 0xfd]).contains("zstd"));
        assert!(format_hint(b" [{\"ts\":1}]").contains("JSON array"));
        assert!(format_hint(b"ts,user,event").contains("CSV"));
        assert!(format_hint(b"{\"ts\":1, \"user\"").starts_with("Telemetry is NDJSON"));
        assert!(format_hint(b"").starts_with("Telemetry is NDJSON"));
    }
}
