//! `stormwatch gen`: flags, the progress bar, and the closing line; the generator itself is the library's.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context as _;
use stormwatch_sim::generator::{self, Compression, GenOptions, Scenario};

/// Every scenario `--scenario` takes, named from the catalogue itself so the help cannot leave one out.
fn scenario_help() -> String {
    let names = |list: &[Scenario]| list.iter().map(|s| s.name()).collect::<Vec<_>>().join(", ");
    format!(
        "Inject a scenario (repeatable): {}, or `all` for every one of those; or one that tries to fool the engine \
         (one per run, not in `all`): {} (--help describes each)",
        names(&Scenario::ALL),
        names(&Scenario::ADVERSARIAL)
    )
}

/// Writes EVENTS (`events.ndjson`, `.gz` or `.zst`), `changes.json` and `truth.json` into --out.
#[derive(clap::Args, Debug)]
#[command(after_long_help = scenario_list())]
pub struct GenArgs {
    /// Directory to write into (created if missing; files in it are replaced).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Random seed: the same options and seed give byte-identical files.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Start of the traffic, RFC 3339 (any offset).
    #[arg(long, value_name = "TIME", default_value = "2026-03-10T00:00:00Z", value_parser = parse_start)]
    pub start: i64,
    /// How much traffic, with a unit: 90m, 3h, 2d, 1h30m or 600s [default: long enough for the scenarios, at least 90m].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub duration: Option<u64>,
    /// Number of Users: a heavy-tailed mix of large and small suppliers, network operators and other Users.
    #[arg(long, value_name = "N", default_value_t = generator::DEFAULT_USERS)]
    pub users: usize,
    /// Traffic volume: 1 is about 1,000 messages/s over the default 40 Users; 5 is the half-hourly-settlement
    /// growth.
    #[arg(long, value_name = "F", default_value_t = 1.0)]
    pub scale: f64,
    /// Fraction of all lines that are malformed (invalid JSON, bad UTF-8, missing fields, over 64 KiB, ...).
    #[arg(long, value_name = "F", default_value_t = 0.0)]
    pub malformed_rate: f64,
    #[arg(long = "scenario", value_name = "NAME", help = scenario_help())]
    pub scenarios: Vec<String>,
    /// Compression of the events file.
    #[arg(long, value_name = "KIND", default_value = "none", value_parser = ["none", "gz", "zst"])]
    pub compress: String,
    /// Compression level (gzip 0-9, default 1; zstd 1-22, default 3). Does not change the content.
    #[arg(long, value_name = "N")]
    pub level: Option<i32>,
    /// Print nothing but warnings and errors: no progress bar, no summary of what was written.
    #[arg(long, short)]
    pub quiet: bool,
}

fn scenario_list() -> String {
    let mut text = String::from("Scenarios:\n");
    for scenario in Scenario::ALL {
        text.push_str(&format!("  {:<22} {}\n", scenario.name(), scenario.about()));
    }
    text.push_str("\nScenarios that try to fool the engine (not in `all`; one per run):\n");
    for scenario in Scenario::ADVERSARIAL {
        text.push_str(&format!("  {:<22} {}\n", scenario.name(), scenario.about()));
    }
    text.push_str(
        "\nExample: stormwatch gen --seed 7 --scenario firewall_backlog --users 12 --out run7",
    );
    text
}

fn parse_start(text: &str) -> Result<i64, String> {
    generator::parse_start(text).map_err(|e| e.to_string())
}

fn parse_duration(text: &str) -> Result<u64, String> {
    generator::parse_duration(text).map_err(|e| e.to_string())
}

impl GenArgs {
    pub fn options(&self) -> anyhow::Result<GenOptions> {
        let mut options = GenOptions::new(&self.out);
        options.seed = self.seed;
        options.start_ms = self.start;
        options.duration_s = self.duration;
        options.users = self.users;
        options.scale = self.scale;
        options.malformed_rate = self.malformed_rate;
        options.scenarios = Scenario::parse_list(&self.scenarios)?;
        options.compression = Compression::parse(&self.compress)
            .with_context(|| format!("unknown compression `{}`", self.compress))?;
        options.level = self.level;
        Ok(options)
    }
}

pub fn run(args: GenArgs) -> anyhow::Result<ExitCode> {
    let options = args.options()?;
    let started = Instant::now();
    let bar = if args.quiet {
        indicatif::ProgressBar::hidden()
    } else {
        let bar = indicatif::ProgressBar::with_draw_target(
            Some(0),
            indicatif::ProgressDrawTarget::stderr(),
        );
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} simulated {pos}/{len} min {wide_bar} {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar
    };
    let mut on_progress = |p: generator::Progress| {
        bar.set_length(p.seconds_total / 60);
        bar.set_position(p.seconds_done / 60);
        bar.set_message(format!("{} lines", p.lines));
    };
    let summary = generator::generate(&options, &mut on_progress)
        .with_context(|| format!("generating into {}", options.out.display()))?;
    bar.finish_and_clear();
    let elapsed = started.elapsed().as_secs_f64();
    let truth = &summary.truth;
    let lines = truth.events + truth.malformed;
    if args.quiet {
        return Ok(ExitCode::SUCCESS);
    }
    eprintln!(
        "wrote {} ({} events, {} malformed, {} incidents in truth) in {:.1} s ({:.0} lines/s), {} and {}",
        summary.events_path.display(),
        truth.events,
        truth.malformed,
        truth.incidents.len(),
        elapsed,
        lines as f64 / elapsed.max(1e-9),
        summary.changes_path.display(),
        summary.truth_path.display(),
    );
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Wrapper {
        #[command(flatten)]
        args: GenArgs,
    }

    fn parse(args: &[&str]) -> Result<GenOptions, String> {
        let wrapper = Wrapper::try_parse_from(std::iter::once("gen").chain(args.iter().copied()))
            .map_err(|e| e.to_string())?;
        wrapper.args.options().map_err(|e| e.to_string())
    }

    #[test]
    fn flags_become_options() {
        let options = parse(&[
            "--out",
            "x",
            "--seed",
            "7",
            "--duration",
            "1h30m",
            "--users",
            "12",
            "--scale",
            "5",
            "--scenario",
            "all",
            "--compress",
            "zst",
            "--start",
            "2026-03-10T01:00:00+01:00",
        ])
        .unwrap();
        assert_eq!(options.seed, 7);
        assert_eq!(options.duration_s, Some(5400));
        assert_eq!(options.users, 12);
        assert_eq!(options.scale, 5.0);
        assert_eq!(options.scenarios.len(), Scenario::ALL.len());
        assert_eq!(options.compression, Compression::Zstd);
        assert_eq!(options.start_ms, generator::DEFAULT_START_MS);
    }

    #[test]
    fn bad_flags_say_what_is_wrong() {
        let error = parse(&["--out", "x", "--duration", "soon"]).unwrap_err();
        assert!(error.contains("not a duration"), "{error}");
        let error = parse(&["--out", "x", "--scenario", "meteor"]).unwrap_err();
        assert!(error.contains("unknown scenario `meteor`"), "{error}");
        let error = parse(&["--out", "x", "--compress", "rar"]).unwrap_err();
        assert!(error.contains("rar"), "{error}");
        assert!(parse(&["--seed", "1"]).is_err(), "--out is required");
    }
}
