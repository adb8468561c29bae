//! `stormwatch demo`: the seed incident of this project, end to end, with nothing to set up. It generates a few
//! hours of normal DSP traffic for a realistic population, with one supplier's firewall change that stops its
//! deliveries until 1.5 M messages wait, replays it and prints the triage an operator would get.

use std::process::ExitCode;

use anyhow::Context;
use stormwatch_core::incident::IncidentKind;
use stormwatch_core::triage::{self, thousands, utc};
use stormwatch_replay::{ReplayOptions, replay};
use stormwatch_sim::generator::{GenOptions, Scenario, generate, parse_duration};

#[derive(clap::Args, Debug)]
pub struct DemoArgs {
    /// Seed of the generated traffic (the same seed gives the same run).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Users in the population.
    #[arg(long, default_value_t = 30)]
    pub users: usize,
    /// Hours of traffic, like `3h` or `90m` (long enough for the backlog to reach 1.5 M and drain).
    #[arg(long, default_value = "3h")]
    pub duration: String,
    /// Keep the generated telemetry, changes, truth and report in this directory.
    #[arg(long, value_name = "DIR")]
    pub keep: Option<std::path::PathBuf>,
}

pub fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    let scratch = tempfile::tempdir().context("cannot create a scratch directory")?;
    let dir = args
        .keep
        .clone()
        .unwrap_or_else(|| scratch.path().to_owned());
    let mut options = GenOptions::new(&dir);
    options.seed = args.seed;
    options.users = args.users;
    options.duration_s = Some(parse_duration(&args.duration)?);
    options.scenarios = vec![Scenario::FirewallBacklog];
    eprintln!(
        "Generating {} of DSP<->User telemetry for {} Users (about 1,000 messages/s). One large supplier changes\n\
         its firewall: its endpoint refuses every delivery, and its queue grows.",
        args.duration, args.users
    );
    let generated = generate(&options, &mut |_| {})?;
    let lines = generated.truth.events + generated.truth.malformed;
    eprintln!("Replaying {} lines through the engine...", thousands(lines));

    let mut replay_options = ReplayOptions::new(
        vec![generated.events_path.clone()],
        vec![generated.changes_path.clone()],
    );
    replay_options.progress = true;
    replay_options.quarantine = Some(dir.join("report.quarantine.ndjson"));
    let report = replay(&replay_options)?;
    super::write_json(&dir.join("report.json"), &report)?;

    println!("{}", triage::render(&report).trim_end());
    if let Some(backlog) = report
        .incidents
        .iter()
        .find(|i| i.kind == IncidentKind::Backlog)
    {
        let cause = backlog
            .suspects
            .first()
            .filter(|_| {
                backlog.verdict != stormwatch_core::incident::Verdict::UnregisteredChangeSuspected
            })
            .map_or_else(
                || {
                    "no registered change explains it: an unregistered change is suspected"
                        .to_owned()
                },
                |s| {
                    format!(
                        "registered change {} did it (score {:.2})",
                        triage::change_label(s),
                        s.score
                    )
                },
            );
        println!(
            "\nIn one line: User {} has had a backlog since {}, detected {} s later while {} messages waited; \
             it peaked at {} messages, and {}.",
            backlog.user,
            utc(backlog.onset),
            (backlog.detected - backlog.onset) / 1000,
            thousands(backlog.evidence.depth_at_detection),
            thousands(backlog.peak_depth),
            cause
        );
    }
    println!(
        "Replayed {} lines in {:.2} s ({:.1} M lines/s).",
        thousands(lines),
        report.summary.elapsed_s,
        lines as f64 / report.summary.elapsed_s.max(1e-3) / 1e6
    );
    if let Some(keep) = &args.keep {
        println!("Files kept in {}.", keep.display());
    }
    Ok(ExitCode::SUCCESS)
}
