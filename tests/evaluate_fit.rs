//! `stormwatch evaluate --config` and `--fit`, driven through the real binary: a tuning file is really used, and a
//! fit reports its training and held-out scores and the weights it moved.

use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_stormwatch");

fn stormwatch(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .output()
        .expect("stormwatch runs")
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn a_config_file_changes_what_a_sweep_scores() {
    let dir = tempfile::tempdir().unwrap();
    let sweep = [
        "evaluate",
        "--sweep",
        "--seeds",
        "1",
        "--scenario",
        "certificate_failure",
    ];
    let defaults = stormwatch(&sweep);
    assert!(defaults.status.success(), "{}", text(&defaults));
    assert!(
        text(&defaults).contains("1 attributed"),
        "{}",
        text(&defaults)
    );

    // No suspect can reach a threshold above 1: the same run is now called unregistered, and the sweep fails.
    let strict = dir.path().join("strict.toml");
    std::fs::write(&strict, "[engine.correlator]\nfit_threshold = 1.01\n").unwrap();
    let mut args = sweep.to_vec();
    args.extend(["--config", strict.to_str().unwrap()]);
    let tuned = stormwatch(&args);
    assert_eq!(tuned.status.code(), Some(1), "{}", text(&tuned));
    assert!(text(&tuned).contains("0 attributed"), "{}", text(&tuned));

    let broken = dir.path().join("broken.toml");
    std::fs::write(&broken, "[engine.correlator]\nfit_treshold = 0.4\n").unwrap();
    let mut args = sweep.to_vec();
    args.extend(["--config", broken.to_str().unwrap()]);
    let refused = stormwatch(&args);
    assert!(!refused.status.success());
    assert!(
        text(&refused).contains("fit_treshold"),
        "{}",
        text(&refused)
    );
}

#[test]
fn a_fit_reports_training_and_held_out_scores() {
    let dir = tempfile::tempdir().unwrap();
    let keep = dir.path().join("runs");
    let output = stormwatch(&[
        "evaluate",
        "--fit",
        "--seeds",
        "1",
        "--held-out-seed",
        "2",
        "--scenario",
        "certificate_failure",
        "--scenario",
        "hiccups",
        "--keep",
        keep.to_str().unwrap(),
    ]);
    let out = text(&output);
    assert!(output.status.success(), "{out}");
    assert!(
        out.contains("training: seeds 1-1, 1 runs with incidents"),
        "hiccups has no incident to attribute, so it is left out: {out}"
    );
    assert!(
        out.contains("held out: seeds 2-2, 1 runs with incidents"),
        "{out}"
    );
    for line in [
        "starting weights: 1/1 attributed, HR@1 1/1 = 1.000",
        "fitted weights:   1/1 attributed",
    ] {
        assert!(out.contains(line), "{line:?} missing: {out}");
    }
    // Both seeds' runs were kept, so a second fit generates nothing new.
    for run in [
        "certificate_failure-1",
        "certificate_failure-2",
        "hiccups-1",
        "hiccups-2",
    ] {
        assert!(keep.join(run).join("truth.json").is_file(), "{run} kept");
    }
}
