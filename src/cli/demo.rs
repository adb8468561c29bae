//! `stormwatch demo`: the seed incident of this project, end to end, with nothing to set up. It generates a few
//! hours of normal DSP traffic for a realistic population, with one supplier's firewall change that stops its
//! deliveries until 1.5 M messages wait, replays it and prints the triage an operator would get.

use std::process::ExitCode;

use anyhow::Context;
use stormwatch_core::incident::{IncidentKind, Verdict};
use stormwatch_core::report::IncidentRecord;
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
        println!("\nIn one line: {}", one_line(backlog));
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

/// The backlog in one sentence: open or over (with how long it lasted), and the most likely cause as the
/// correlator judged it, never as a certainty.
fn one_line(backlog: &IncidentRecord) -> String {
    let cause = backlog
        .suspects
        .first()
        .filter(|_| backlog.verdict != Verdict::UnregisteredChangeSuspected)
        .map_or_else(
            || "no registered change explains it: an unregistered change is suspected".to_owned(),
            |s| {
                format!(
                    "the most likely cause is registered change {} (score {:.2})",
                    triage::change_label(s),
                    s.score
                )
            },
        );
    let when = match backlog.resolved {
        Some(resolved) => format!(
            "had a backlog from {} to {} ({} min)",
            utc(backlog.onset),
            utc(resolved),
            (resolved - backlog.onset) / 60_000
        ),
        None => format!("has had a backlog since {}", utc(backlog.onset)),
    };
    format!(
        "User {} {when}, detected {} s after it began while {} messages waited; it peaked at {} messages, and {cause}.",
        backlog.user,
        (backlog.detected - backlog.onset) / 1000,
        thousands(backlog.evidence.depth_at_detection),
        thousands(backlog.peak_depth),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 23: a resolved backlog was described as one the User "has had since", and its cause as certain.
    #[test]
    fn the_one_line_summary_says_whether_the_backlog_is_over_and_hedges_the_cause() {
        let mut backlog = IncidentRecord {
            id: "INC-000001".into(),
            user: "90-B3-D5-1F-30-01-00-07".into(),
            kind: IncidentKind::Backlog,
            onset: 1_773_133_200_000,
            detected: 1_773_133_261_000,
            resolved: Some(1_773_140_400_000),
            peak_depth: 1_500_000,
            verdict: Verdict::UnregisteredChangeSuspected,
            suspects: Vec::new(),
            peak_rate: 0.0,
            baseline_rate: 0.0,
            peak_ratio: 0.0,
            users: Vec::new(),
            evidence: Default::default(),
        };
        let line = one_line(&backlog);
        assert!(
            line.contains(
                "had a backlog from 2026-03-10 09:00:00Z to 2026-03-10 11:00:00Z (120 min)"
            ),
            "{line}"
        );
        assert!(!line.contains("has had"), "{line}");
        backlog.resolved = None;
        assert!(one_line(&backlog).contains("has had a backlog since 2026-03-10 09:00:00Z"));
        assert!(!one_line(&backlog).contains("did it"));
    }
}
