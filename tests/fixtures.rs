//! The recorded fixtures, driven through the built binary: they still regenerate byte for byte from their
//! recorded arguments, every replay finds exactly the expected incidents with the right attribution and counts,
//! and two replays give the same report.

use std::path::{Path, PathBuf};
use std::process::Command;

use stormwatch_core::report::Report;
use stormwatch_sim::evaluate::score;
use stormwatch_sim::generator::Truth;

const BIN: &str = env!("CARGO_BIN_EXE_stormwatch");

fn fixtures() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .expect("fixtures/ is readable")
        .map(|entry| entry.expect("fixtures/ entry").path())
        .filter(|path| path.join("expected.json").is_file())
        .collect();
    dirs.sort();
    assert!(
        dirs.len() >= 6,
        "expected at least six fixtures in {}",
        root.display()
    );
    dirs
}

fn name(dir: &Path) -> String {
    dir.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn expected(dir: &Path) -> Truth {
    let text =
        std::fs::read_to_string(dir.join("expected.json")).expect("expected.json is readable");
    serde_json::from_str(&text).expect("expected.json is a truth file")
}

fn decompressed(path: &Path) -> Vec<u8> {
    let file = std::fs::File::open(path).expect("events file is readable");
    zstd::decode_all(file).expect("events file is zstd")
}

fn run(args: &[&str]) {
    let output = Command::new(BIN)
        .args(args)
        .output()
        .expect("the binary runs");
    assert!(
        output.status.success(),
        "stormwatch {} failed ({}):\n{}",
        args.join(" "),
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn every_fixture_regenerates_from_its_recorded_args() {
    for dir in fixtures() {
        let truth = expected(&dir);
        let out = tempfile::tempdir().expect("temp dir");
        let out_path = out.path().to_string_lossy().into_owned();
        let mut args: Vec<&str> = truth.generator.args.split_whitespace().collect();
        assert_eq!(
            args.first(),
            Some(&"gen"),
            "{}: args must start with gen",
            name(&dir)
        );
        args.extend(["--out", &out_path, "--compress", "none", "--quiet"]);
        run(&args);
        let fresh = std::fs::read(out.path().join("events.ndjson")).expect("fresh events");
        assert!(
            fresh == decompressed(&dir.join("events.ndjson.zst")),
            "{}: events differ from a fresh `stormwatch {}`: run fixtures/regenerate.sh",
            name(&dir),
            truth.generator.args
        );
        for (fresh, recorded) in [
            ("changes.json", "changes.json"),
            ("truth.json", "expected.json"),
        ] {
            assert_eq!(
                std::fs::read_to_string(out.path().join(fresh)).expect("fresh file"),
                std::fs::read_to_string(dir.join(recorded)).expect("recorded file"),
                "{}: {recorded} differs from a fresh run",
                name(&dir)
            );
        }
    }
}

/// Replays a fixture through the CLI and returns the report.
fn replay(dir: &Path, scratch: &Path, label: &str) -> Report {
    let report = scratch.join(format!("{label}-report.json"));
    let quarantine = scratch.join(format!("{label}-quarantine.ndjson"));
    let events = dir.join("events.ndjson.zst");
    let changes = dir.join("changes.json");
    run(&[
        "replay",
        &events.to_string_lossy(),
        "--changes",
        &changes.to_string_lossy(),
        "--report",
        &report.to_string_lossy(),
        "--quarantine",
        &quarantine.to_string_lossy(),
    ]);
    let text = std::fs::read_to_string(&report).expect("the report was written");
    serde_json::from_str(&text).expect("the report has the contract's shape")
}

#[test]
fn every_fixture_replays_to_its_expected_incidents() {
    let scratch = tempfile::tempdir().expect("temp dir");
    let mut failures = Vec::new();
    for dir in fixtures() {
        let report = replay(&dir, scratch.path(), &name(&dir));
        let scored = score(&expected(&dir), &report);
        if !scored.is_clean() {
            failures.push(format!(
                "{}:\n  {}",
                name(&dir),
                scored.problems().join("\n  ")
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn replaying_a_fixture_twice_gives_the_same_report() {
    let scratch = tempfile::tempdir().expect("temp dir");
    for dir in fixtures()
        .into_iter()
        .filter(|d| ["malformed_out_of_order", "mdm_storm"].contains(&name(d).as_str()))
    {
        let mut first = replay(&dir, scratch.path(), "first");
        let mut second = replay(&dir, scratch.path(), "second");
        // Wall-clock time and the (differently named) quarantine file are all that may differ.
        for report in [&mut first, &mut second] {
            report.summary.elapsed_s = 0.0;
            report.summary.quarantine = None;
        }
        assert_eq!(first, second, "{}", name(&dir));
    }
}
