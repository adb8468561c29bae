//! `stormwatch evaluate`: replays generated runs (or a sweep of fresh ones) and scores each report against its
//! truth; the exit code says whether everything was found, attributed and counted.

use std::path::PathBuf;
use std::process::ExitCode;

use stormwatch_core::engine::EngineConfig;
use stormwatch_sim::evaluate::Totals;
use stormwatch_sim::generator::{Compression, Scenario};

use super::fit::FitPlan;
use super::scored_runs::{
    generate_normal_life, generate_run, generated_run, progress_bar, replay_and_score, scratch_path,
};

/// Score replays against truth: per run and in total, incidents found, missed and false, attribution, HR@1, watch
/// and detection delay, onset error, false incidents per 100 User-days, and the event and malformed counts. Exits 1
/// when anything was missed, false, misattributed, short of its peak depth or miscounted.
///
/// User-days: the Users seen in a run's events (the report's `summary.users`) times the span from its first to its
/// last event (`first_ts`..`last_ts`), in days, added up over the runs; the same for generated runs and the
/// corpus' scenarios. For the corpus, found, attributed and false follow its score.py: a reported onset within
/// 180 s (or the incident's `onset_tolerance_ms`), any of the listed `kinds`, one `*` incident for several
/// `network_wide_ok` incidents (timed once), `expected_impact` and `allowed` incidents not false, incidents
/// beyond `max_incidents_per_user` false.
#[derive(clap::Args, Debug)]
#[command(
    override_usage = "stormwatch evaluate [OPTIONS] <DIR>...\n       \
stormwatch evaluate --sweep [--seeds N] [--first-seed N] [--scenario NAME]... [--users N] [--keep DIR]\n       \
stormwatch evaluate --fit [--seeds N] [--first-seed N] [--held-out-seed N] [--scenario NAME]... [--keep DIR]\n       \
stormwatch evaluate --normal-life [--seeds N] [--first-seed N] [--users N] [--keep DIR]",
    after_long_help = "Examples:\n  stormwatch evaluate run7 fixtures/*/\n  \
stormwatch evaluate /tmp/corpus/*    (after python3 ../shared/corpus/gen.py /tmp/corpus)\n  \
stormwatch evaluate --sweep --seeds 20\n  stormwatch evaluate --sweep --first-seed 101 --seeds 20\n  stormwatch evaluate --sweep --seeds 5 --scenario mdm_storm --scenario hiccups\n  \
stormwatch evaluate --sweep --config tuned.toml\n  stormwatch evaluate --fit --seeds 5\n  \
stormwatch evaluate --normal-life --seeds 4 --users 30"
)]
pub struct EvaluateArgs {
    /// Directories written by `stormwatch gen` (events.ndjson[.gz|.zst], changes.json, truth.json), fixture
    /// directories (expected.json instead of truth.json), or scenario directories of the independent corpus
    /// (../shared/corpus: its truth.json, told apart by its `valid_lines` and `kinds` fields, is scored by the
    /// corpus' own rules, as its score.py scores).
    #[arg(value_name = "DIR", required_unless_present_any = ["sweep", "fit", "normal_life"])]
    pub dirs: Vec<PathBuf>,
    /// Generate every scenario (or those of --scenario) for seeds 1..=N in a temporary directory, replay and
    /// score them, and print one summary line.
    #[arg(long, conflicts_with = "dirs")]
    pub sweep: bool,
    /// Seeds per scenario in a sweep.
    #[arg(long, value_name = "N", default_value_t = 20)]
    pub seeds: u64,
    /// First seed of a sweep or a fit's training: seeds FIRST..FIRST+N-1. The correlator's weights were fitted on
    /// seeds 1-5 (`--fit --seeds 5`); sweep from 101 to score them on held-out runs.
    #[arg(long, value_name = "FIRST", default_value_t = 1)]
    pub first_seed: u64,
    /// Scenario to sweep (repeatable; default all of them, one run each).
    #[arg(long = "scenario", value_name = "NAME")]
    pub scenarios: Vec<String>,
    /// Users in each sweep run.
    #[arg(long, value_name = "N", default_value_t = 8)]
    pub users: usize,
    /// Keep the sweep's generated runs in this directory instead of deleting them.
    #[arg(long, value_name = "DIR")]
    pub keep: Option<PathBuf>,
    /// Fit the correlator's weights on a training sweep (seeds FIRST..FIRST+N-1, every scenario with incidents),
    /// then score the fitted and the starting weights on as many held-out seeds from --held-out-seed, and print the
    /// fitted weights as TOML for `[engine.correlator]`.
    #[arg(long, conflicts_with_all = ["dirs", "sweep"])]
    pub fit: bool,
    /// Score normal life only: for each seed a day of traffic with no scenario (the background's endpoint hiccups
    /// and weather bursts, the daily shape), on a weekday for odd seeds and a weekend day for even ones. Prints the
    /// false pages per 100 User-days and exits 1 when there are more than one.
    #[arg(long, conflicts_with_all = ["dirs", "sweep", "fit"])]
    pub normal_life: bool,
    /// First held-out seed of a fit.
    #[arg(long, value_name = "SEED", default_value_t = 101, requires = "fit")]
    pub held_out_seed: u64,
    /// Settings file (as for `serve --config`): its `[engine]` tables replace the defaults, so a tuning can be
    /// scored before it goes live. A fit starts from its correlator weights.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

pub fn run(args: EvaluateArgs) -> anyhow::Result<ExitCode> {
    let engine = match &args.config {
        Some(path) => stormwatch_service::config::ServeConfig::from_file(path)?.engine,
        None => EngineConfig::default(),
    };
    if args.fit {
        let plan = FitPlan {
            scenarios: chosen_scenarios(&args)?,
            seeds: args.seeds,
            first_seed: args.first_seed,
            held_out_seed: args.held_out_seed,
            users: args.users,
            keep: args.keep.clone(),
        };
        return super::fit::run(&plan, &engine);
    }
    if args.normal_life {
        let totals = normal_life(&args, &engine)?;
        let within = totals
            .false_per_100_user_days()
            .is_some_and(|rate| rate <= FALSE_PAGE_BUDGET);
        return Ok(if within && totals.failed == 0 {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        });
    }
    let totals = if args.sweep {
        sweep(&args, &engine)?
    } else {
        dirs(&args.dirs, &engine)?
    };
    Ok(if totals.is_clean() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// False pages per 100 User-days of normal life that `--normal-life` accepts (issue 22's budget).
const FALSE_PAGE_BUDGET: f64 = 1.0;

/// A Tuesday and a Saturday at midnight UTC (2026-03-10 and 2026-03-14).
const WEEKDAY_START_MS: i64 = 1_773_100_800_000;
const WEEKEND_START_MS: i64 = 1_773_446_400_000;

fn normal_life(args: &EvaluateArgs, engine: &EngineConfig) -> anyhow::Result<Totals> {
    let root = args
        .keep
        .clone()
        .unwrap_or_else(|| scratch_path("normal-life"));
    let bar = progress_bar(args.seeds, "normal life");
    let mut totals = Totals::default();
    for seed in (args.first_seed..).take(usize::try_from(args.seeds).unwrap_or(usize::MAX)) {
        let (day, start_ms) = if seed % 2 == 1 {
            ("weekday", WEEKDAY_START_MS)
        } else {
            ("weekend", WEEKEND_START_MS)
        };
        bar.set_message(format!("seed {seed} {day}"));
        let dir = root.join(format!("normal-{seed}"));
        let run = generated_run(
            &dir,
            args.keep.is_some(),
            &bar,
            &format!("seed {seed} {day}"),
            engine,
            |dir| generate_normal_life(dir, seed, args.users, start_ms, 86_400),
        );
        match run {
            Some(run) => totals.add(&run),
            None => totals.add_failure(),
        }
    }
    bar.finish_and_clear();
    if args.keep.is_none() {
        let _ = std::fs::remove_dir_all(&root);
    }
    println!("{}", totals.summary_line("normal life"));
    Ok(totals)
}

fn dirs(dirs: &[PathBuf], engine: &EngineConfig) -> anyhow::Result<Totals> {
    let mut totals = Totals::default();
    for dir in dirs {
        let label = dir.display().to_string();
        match replay_and_score(dir, engine) {
            Ok(run) => {
                let mut one = Totals::default();
                one.add(&run);
                println!(
                    "{}, events {}, malformed {}",
                    one.summary_line(&label),
                    count(run.events),
                    count(run.malformed)
                );
                for problem in run.problems() {
                    println!("  {problem}");
                }
                totals.add(&run);
            }
            Err(error) => {
                println!("{label}: failed: {error:#}");
                totals.add_failure();
            }
        }
    }
    println!("{}", totals.summary_line("total"));
    Ok(totals)
}

fn count((expected, reported): (u64, u64)) -> String {
    if expected == reported {
        format!("{expected} ok")
    } else {
        format!("{reported} (expected {expected})")
    }
}

/// The scenarios named by --scenario, or every one.
fn chosen_scenarios(args: &EvaluateArgs) -> anyhow::Result<Vec<Scenario>> {
    Ok(if args.scenarios.is_empty() {
        Scenario::every().collect()
    } else {
        Scenario::parse_list(&args.scenarios)?
    })
}

fn sweep(args: &EvaluateArgs, engine: &EngineConfig) -> anyhow::Result<Totals> {
    let scenarios = chosen_scenarios(args)?;
    let root = args.keep.clone().unwrap_or_else(|| scratch_path("sweep"));
    let runs = args.seeds * scenarios.len() as u64;
    let bar = progress_bar(runs, "sweep");
    let mut totals = Totals::default();
    let mut by_scenario: Vec<Totals> = vec![Totals::default(); scenarios.len()];
    for seed in (args.first_seed..).take(usize::try_from(args.seeds).unwrap_or(usize::MAX)) {
        for (position, &scenario) in scenarios.iter().enumerate() {
            bar.set_message(format!("seed {seed} {}", scenario.name()));
            let dir = root.join(format!("{}-{seed}", scenario.name()));
            let run = generated_run(
                &dir,
                args.keep.is_some(),
                &bar,
                &format!("seed {seed} {}", scenario.name()),
                engine,
                |dir| generate_run(dir, scenario, seed, args.users, Compression::None),
            );
            match run {
                Some(run) => {
                    totals.add(&run);
                    by_scenario[position].add(&run);
                }
                None => {
                    totals.add_failure();
                    by_scenario[position].add_failure();
                }
            }
        }
    }
    bar.finish_and_clear();
    if args.keep.is_none() {
        let _ = std::fs::remove_dir_all(&root);
    }
    let width = scenarios.iter().map(|s| s.name().len()).max().unwrap_or(0);
    for (scenario, scored) in scenarios.iter().zip(&by_scenario) {
        let label = format!("{:width$}", scenario.name());
        let mark = if scored.is_clean() { "ok  " } else { "FAIL" };
        println!("{mark} {}", scored.summary_line(&label));
    }
    println!("{}", totals.summary_line("sweep"));
    Ok(totals)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_read_at_a_glance() {
        assert_eq!(count((5, 5)), "5 ok");
        assert_eq!(count((5, 4)), "4 (expected 5)");
    }
}
