//! `stormwatch evaluate` on directories in the independent corpus' format (`../shared/corpus`: a `truth.json` with
//! `valid_lines` and `incidents[].kinds`), driven through the real binary. The events and changes are the
//! `mdm_storm` fixture's (a request and a reject storm at one User); each test directory gets a small corpus-format
//! truth written here, and the counts follow the corpus' score.py rules.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_stormwatch");
const USER: &str = "90-B3-D5-1F-30-01-00-01";
const OTHER: &str = "90-B3-D5-1F-30-01-00-02";
const ONSET: i64 = 1_773_102_600_000;
const CHANGE: &str = "CHG-2026-0083";

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// A scenario directory under `root` named `name`: the fixture's events and changes, and `truth` as truth.json.
fn scenario(root: &Path, name: &str, truth: &serde_json::Value) -> PathBuf {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/mdm_storm");
    let dir = root.join(name);
    std::fs::create_dir(&dir).unwrap();
    for file in ["events.ndjson.zst", "changes.json"] {
        std::fs::copy(fixture.join(file), dir.join(file)).unwrap();
    }
    std::fs::write(dir.join("truth.json"), truth.to_string()).unwrap();
    dir
}

/// A corpus truth with the fixture's line counts.
fn truth(incidents: serde_json::Value, allowed: serde_json::Value) -> serde_json::Value {
    serde_json::json!({
        "scenario": "mdm_storm", "notes": "written by tests/evaluate_corpus.rs",
        "start": ONSET - 3_600_000, "end": ONSET + 1_800_000,
        "valid_lines": 117_532, "malformed": 0,
        "incidents": incidents, "allowed": allowed, "depth_series": {}, "names": {}
    })
}

fn storm(change: &str) -> serde_json::Value {
    serde_json::json!({"user": USER, "kinds": ["request_storm", "reject_storm"], "onset": ONSET,
                       "change": change, "verdict": "registered_change"})
}

/// The summary line `evaluate` printed for `dir`.
fn line_for<'a>(out: &'a str, dir: &Path) -> &'a str {
    let label = format!("{}:", dir.display());
    out.lines()
        .find(|l| l.starts_with(&label))
        .unwrap_or_else(|| panic!("no line for {label} in {out}"))
}

#[test]
fn corpus_truths_are_scored_by_the_corpus_rules() {
    let root = tempfile::tempdir().unwrap();
    let root = root.path();
    let none = serde_json::json!([]);
    // Both storms match the one true incident listing both kinds: one found, none false.
    let clean = scenario(
        root,
        "clean",
        &truth(serde_json::json!([storm(CHANGE)]), none.clone()),
    );
    // A backlog at another User that never happened: missed.
    let missed = scenario(
        root,
        "missed",
        &truth(
            serde_json::json!([storm(CHANGE), {"user": OTHER, "kinds": ["backlog"], "onset": ONSET,
                                               "change": null, "verdict": "unregistered_change_suspected"}]),
            none.clone(),
        ),
    );
    let wrong_change = scenario(
        root,
        "wrong_change",
        &truth(serde_json::json!([storm("CHG-2026-9999")]), none.clone()),
    );
    // No incident expected: both storms are false, unless their top suspect is allowed.
    let quiet = scenario(root, "quiet", &truth(serde_json::json!([]), none.clone()));
    let allowed = scenario(
        root,
        "allowed",
        &truth(
            serde_json::json!([]),
            serde_json::json!([{"change": CHANGE}]),
        ),
    );
    // At most one incident for the User: the second storm is one page too many.
    let mut limited = truth(serde_json::json!([storm(CHANGE)]), none);
    limited["max_incidents_per_user"] = serde_json::json!({ USER: 1 });
    let limited = scenario(root, "limited", &limited);
    let mut broken = truth(serde_json::json!([storm(CHANGE)]), serde_json::json!([]));
    broken.as_object_mut().unwrap().remove("valid_lines");
    let broken = scenario(root, "broken", &broken);

    let dirs = [
        &clean,
        &missed,
        &wrong_change,
        &quiet,
        &allowed,
        &limited,
        &broken,
    ];
    let output = Command::new(BIN)
        .arg("evaluate")
        .args(dirs)
        .output()
        .expect("stormwatch runs");
    let out = text(&output);
    assert_eq!(output.status.code(), Some(1), "{out}");
    let expect = [
        (
            &clean,
            "1 incidents expected, 1 found, 0 missed, 0 false, 1 attributed",
        ),
        (
            &missed,
            "2 incidents expected, 1 found, 1 missed, 0 false, 1 attributed",
        ),
        (
            &wrong_change,
            "1 incidents expected, 1 found, 0 missed, 0 false, 0 attributed",
        ),
        (
            &quiet,
            "0 incidents expected, 0 found, 0 missed, 2 false, 0 attributed",
        ),
        (
            &allowed,
            "0 incidents expected, 0 found, 0 missed, 0 false, 0 attributed",
        ),
        (
            &limited,
            "1 incidents expected, 1 found, 0 missed, 1 false, 1 attributed",
        ),
    ];
    for (dir, counts) in expect {
        let line = line_for(&out, dir);
        assert!(line.contains(counts), "{counts:?} wanted: {line}");
        assert!(line.contains("events 117532 ok, malformed 0 ok"), "{line}");
        assert!(line.contains("User-days"), "{line}");
    }
    let clean_line = line_for(&out, &clean);
    assert!(clean_line.contains("HR@1 1/1 = 1.000"), "{clean_line}");
    assert!(
        clean_line.contains("0.00 false per 100 User-days"),
        "{clean_line}"
    );
    assert!(out.contains("misattributed"), "{out}");
    assert!(
        line_for(&out, &broken).ends_with(
            "truth.json is not a truth file: a corpus truth, but missing field `valid_lines`"
        ),
        "{out}"
    );
    let total = out.lines().last().unwrap_or_default();
    assert!(
        total.starts_with(
            "total: 7 runs, 5 incidents expected, 4 found, 1 missed, 3 false, 3 attributed"
        ),
        "{total}"
    );
    assert!(total.ends_with(", 1 runs failed"), "{total}");
}

#[test]
fn the_clean_corpus_directory_passes_alone() {
    let root = tempfile::tempdir().unwrap();
    let dir = scenario(
        root.path(),
        "clean",
        &truth(serde_json::json!([storm(CHANGE)]), serde_json::json!([])),
    );
    let output = Command::new(BIN)
        .args(["evaluate"])
        .arg(&dir)
        .output()
        .expect("stormwatch runs");
    assert!(output.status.success(), "{}", text(&output));
}
