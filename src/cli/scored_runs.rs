//! Generated runs on disk for `evaluate`: generating a sweep run, finding its events and truth, replaying it with a
//! given engine config and scoring the report, plus the scratch paths and progress bars the sweeps share.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use stormwatch_core::engine::EngineConfig;
use stormwatch_replay::{ReplayOptions, replay};
use stormwatch_sim::evaluate::RunScore;
use stormwatch_sim::generator::{self, Compression, GenOptions, Scenario};
use stormwatch_sim::truth_file::TruthFile;

/// The events file of a generated directory, whichever compression it has.
pub fn events_file(dir: &Path) -> anyhow::Result<PathBuf> {
    [Compression::None, Compression::Gzip, Compression::Zstd]
        .into_iter()
        .map(|c| dir.join(c.file_name()))
        .find(|p| p.is_file())
        .with_context(|| format!("no events.ndjson[.gz|.zst] in {}", dir.display()))
}

/// The truth of a run or fixture directory (`truth.json`, else `expected.json`), in either format: ours or the
/// independent corpus'.
pub fn read_truth(dir: &Path) -> anyhow::Result<TruthFile> {
    let path = ["truth.json", "expected.json"]
        .into_iter()
        .map(|name| dir.join(name))
        .find(|p| p.is_file())
        .with_context(|| format!("no truth.json or expected.json in {}", dir.display()))?;
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    TruthFile::parse(&text).with_context(|| format!("{} is not a truth file", path.display()))
}

/// Replays the run in `dir` with `engine`'s settings and scores the report against the run's truth (by the
/// corpus' own rules when it is a corpus truth).
pub fn replay_and_score(dir: &Path, engine: &EngineConfig) -> anyhow::Result<RunScore> {
    let truth = read_truth(dir)?;
    let changes = dir.join("changes.json");
    let changes = if changes.is_file() {
        vec![changes]
    } else {
        Vec::new()
    };
    let mut options = ReplayOptions::new(vec![events_file(dir)?], changes);
    let quarantine = scratch_path("quarantine.ndjson");
    options.quarantine = Some(quarantine.clone());
    options.engine = engine.clone();
    let report = replay(&options).with_context(|| format!("replaying {}", dir.display()));
    let _ = std::fs::remove_file(&quarantine);
    Ok(truth.score(&report?))
}

/// A path of our own in the temporary directory (the process id keeps parallel runs apart).
pub fn scratch_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("stormwatch-{}-{name}", std::process::id()))
}

/// Generates one sweep run of `scenario` for `seed` into `dir`.
pub fn generate_run(
    dir: &Path,
    scenario: Scenario,
    seed: u64,
    users: usize,
    compression: Compression,
) -> anyhow::Result<()> {
    generate_with(dir, seed, users.max(scenario.min_users()), |options| {
        options.malformed_rate = 0.001;
        options.scenarios = vec![scenario];
        options.compression = compression;
    })
}

/// Generates a run of normal life only (no scenario: the background's hiccups and weather bursts, the daily shape)
/// of `users` Users for `duration_s` from `start_ms` into `dir`.
pub fn generate_normal_life(
    dir: &Path,
    seed: u64,
    users: usize,
    start_ms: i64,
    duration_s: u64,
) -> anyhow::Result<()> {
    generate_with(dir, seed, users, |options| {
        options.start_ms = start_ms;
        options.duration_s = Some(duration_s);
    })
}

fn generate_with(
    dir: &Path,
    seed: u64,
    users: usize,
    set: impl FnOnce(&mut GenOptions),
) -> anyhow::Result<()> {
    let mut options = GenOptions::new(dir);
    options.seed = seed;
    options.users = users;
    set(&mut options);
    generator::generate(&options, &mut |_| {})?;
    Ok(())
}

/// Generates a run into `dir` with `generate`, replays and scores it with `engine`, and tells `bar` its problems
/// (each line prefixed by `label`); removes the run unless `keep`. `None` when it could not be generated or
/// replayed (said on `bar` too).
pub fn generated_run(
    dir: &Path,
    keep: bool,
    bar: &indicatif::ProgressBar,
    label: &str,
    engine: &EngineConfig,
    generate: impl FnOnce(&Path) -> anyhow::Result<()>,
) -> Option<RunScore> {
    let outcome = generate(dir).and_then(|()| replay_and_score(dir, engine));
    if !keep {
        let _ = std::fs::remove_dir_all(dir);
    }
    bar.inc(1);
    match outcome {
        Ok(run) => {
            for problem in run.problems() {
                bar.suspend(|| eprintln!("{label}: {problem}"));
            }
            Some(run)
        }
        Err(error) => {
            bar.suspend(|| eprintln!("{label}: failed: {error:#}"));
            None
        }
    }
}

/// A progress bar on stderr for `len` runs, labelled `what`.
pub fn progress_bar(len: u64, what: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::with_draw_target(
        Some(len),
        indicatif::ProgressDrawTarget::stderr(),
    );
    bar.set_style(
        indicatif::ProgressStyle::with_template(&format!(
            "{what} {{pos}}/{{len}} {{wide_bar}} {{msg}}"
        ))
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fixture_directory_is_understood() {
        let dir = tempfile::tempdir().unwrap();
        assert!(events_file(dir.path()).is_err());
        assert!(read_truth(dir.path()).is_err());
        std::fs::write(dir.path().join("events.ndjson.zst"), b"").unwrap();
        let truth = r#"{"generator": {"seed": 1, "scenarios": [], "args": "gen --seed 1"},
                        "events": 3, "malformed": 0, "incidents": []}"#;
        std::fs::write(dir.path().join("expected.json"), truth).unwrap();
        assert!(
            events_file(dir.path())
                .unwrap()
                .ends_with("events.ndjson.zst")
        );
        assert_eq!(read_truth(dir.path()).unwrap().expected_incidents(), 0);
        std::fs::write(dir.path().join("truth.json"), "not json").unwrap();
        let error = format!("{:#}", read_truth(dir.path()).unwrap_err());
        assert!(
            error.ends_with(
                "truth.json is not a truth file: not JSON: expected ident at line 1 column 2"
            ),
            "{error}"
        );
    }
}
