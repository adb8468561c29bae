//! `stormwatch evaluate --fit`: generates a training and a held-out sweep, fits the correlator's weights on the
//! training runs (replaying them once per candidate) and scores the starting and the fitted weights on both.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use stormwatch_core::changes::CorrelatorConfig;
use stormwatch_core::engine::EngineConfig;
use stormwatch_sim::fit::{FitScore, STEPS, changed_weights_toml, fit, weights};
use stormwatch_sim::generator::{Compression, Scenario};

use super::scored_runs::{generate_run, progress_bar, read_truth, replay_and_score, scratch_path};

/// What to fit on: the scenarios, and how many seeds from where for training and for the held-out check.
pub struct FitPlan {
    pub scenarios: Vec<Scenario>,
    pub seeds: u64,
    pub first_seed: u64,
    pub held_out_seed: u64,
    pub users: usize,
    /// Keep the generated runs here (and reuse those already there) instead of a scratch directory.
    pub keep: Option<PathBuf>,
}

/// Passes of the coordinate search: a second pass catches weights that matter only after another one moved.
const PASSES: usize = 2;

pub fn run(args: &FitPlan, engine: &EngineConfig) -> anyhow::Result<ExitCode> {
    let root = args.keep.clone().unwrap_or_else(|| scratch_path("fit"));
    let outcome = fit_and_report(args, engine, &root);
    if args.keep.is_none() {
        let _ = std::fs::remove_dir_all(&root);
    }
    outcome
}

fn fit_and_report(args: &FitPlan, engine: &EngineConfig, root: &Path) -> anyhow::Result<ExitCode> {
    let training = runs_with_incidents(args, root, args.first_seed)?;
    let held_out = runs_with_incidents(args, root, args.held_out_seed)?;
    anyhow::ensure!(
        !training.is_empty(),
        "no training run has an incident to attribute; choose scenarios with incidents"
    );
    let threshold = engine.correlator.fit_threshold;
    let judge = |runs: &[PathBuf], correlator: &CorrelatorConfig| -> anyhow::Result<FitScore> {
        let mut config = engine.clone();
        config.correlator = correlator.clone();
        let scores = runs
            .iter()
            .map(|dir| replay_and_score(dir, &config))
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(FitScore::of(&scores, threshold))
    };
    let most = (weights().len() * STEPS.len() * PASSES) as u64;
    let bar = progress_bar(most, "fit: weight sets judged");
    let fitted = fit(
        &engine.correlator,
        PASSES,
        |candidate| judge(&training, candidate),
        |weight, value, score| {
            bar.set_message(format!("{weight} = {value}: {}", score.summary()));
            bar.inc(1);
        },
    )?;
    bar.finish_and_clear();

    let seeds = |first: u64| format!("seeds {first}-{}", first + args.seeds.saturating_sub(1));
    println!(
        "training: {}, {} runs with incidents; {} weight sets judged",
        seeds(args.first_seed),
        training.len(),
        fitted.judged
    );
    println!("  starting weights: {}", fitted.start.summary());
    println!("  fitted weights:   {}", fitted.score.summary());
    for step in &fitted.steps {
        println!(
            "    {} {} -> {}: {}",
            step.weight,
            step.from,
            step.to,
            step.score.summary()
        );
    }
    let held_start = judge(&held_out, &engine.correlator)?;
    let held_fitted = judge(&held_out, &fitted.config)?;
    println!(
        "held out: {}, {} runs with incidents",
        seeds(args.held_out_seed),
        held_out.len()
    );
    println!("  starting weights: {}", held_start.summary());
    println!("  fitted weights:   {}", held_fitted.summary());
    if fitted.steps.is_empty() {
        println!("no weight moved: the starting weights are a local optimum on the training runs");
    } else {
        println!(
            "\n{}",
            changed_weights_toml(&fitted.config, &engine.correlator)
        );
    }
    Ok(
        if held_fitted.beats(&held_start) || held_fitted == held_start {
            ExitCode::SUCCESS
        } else {
            println!("the fitted weights do worse on the held-out runs: keep the starting ones");
            ExitCode::from(1)
        },
    )
}

/// Generates (or finds, kept from an earlier fit) one run per scenario and seed from `first`, and returns those
/// whose truth has an incident: runs without one cannot tell weights apart.
fn runs_with_incidents(args: &FitPlan, root: &Path, first: u64) -> anyhow::Result<Vec<PathBuf>> {
    let count = args.seeds * args.scenarios.len() as u64;
    let bar = progress_bar(count, &format!("generating from seed {first}"));
    let mut runs = Vec::new();
    for seed in (first..).take(usize::try_from(args.seeds).unwrap_or(usize::MAX)) {
        for &scenario in &args.scenarios {
            let dir = root.join(format!("{}-{seed}", scenario.name()));
            if !dir.join("truth.json").is_file() {
                bar.set_message(format!("seed {seed} {}", scenario.name()));
                generate_run(&dir, scenario, seed, args.users, Compression::Zstd)
                    .with_context(|| format!("generating {}", dir.display()))?;
            }
            if read_truth(&dir)?.expected_incidents() > 0 {
                runs.push(dir);
            }
            bar.inc(1);
        }
    }
    bar.finish_and_clear();
    Ok(runs)
}
