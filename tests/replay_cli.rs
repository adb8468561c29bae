//! Drives the built `stormwatch replay` binary on the examples in `examples/` and on broken inputs.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn binary() -> Command {
    Command::new(env!("CARGO_BIN_EXE_stormwatch"))
}

/// The sample files in `examples/`, which examples/README.md describes.
fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(name)
}

fn replay(args: &[&str], dir: &Path) -> (Output, serde_json::Value) {
    let report = dir.join("report.json");
    let output = binary()
        .arg("replay")
        .args(args)
        .arg("--report")
        .arg(&report)
        .output()
        .expect("run stormwatch");
    let value = std::fs::read(&report)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    (output, value)
}

#[test]
fn contract_example_counts_eleven_events_and_one_malformed_line() {
    let dir = tempfile::tempdir().unwrap();
    let events = example("events.ndjson");
    let changes = example("changes.json");
    let (output, report) = replay(
        &[
            events.to_str().unwrap(),
            "--changes",
            changes.to_str().unwrap(),
        ],
        dir.path(),
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(report["summary"]["events"], 11);
    assert_eq!(report["summary"]["malformed"], 1);
    assert_eq!(report["summary"]["users"], 2);
    assert_eq!(report["summary"]["changes_loaded"], 3);
    let quarantine = std::fs::read_to_string(dir.path().join("report.quarantine.ndjson")).unwrap();
    let record: serde_json::Value = serde_json::from_str(quarantine.trim()).unwrap();
    assert_eq!(record["line"], 13);
    assert_eq!(
        record["raw"],
        r#"{"ts":1773133202000,"user":"90-B3-D5-1F-30-01-00-07","event":"teleported"}"#
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("11 events from 2 Users, 1 malformed"),
        "{stdout}"
    );
}

#[test]
fn stdin_gzip_and_zstd_give_the_same_counts() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read(example("events.ndjson")).unwrap();
    let gz = dir.path().join("e.ndjson.gz");
    let mut encoder = flate2::write::GzEncoder::new(
        std::fs::File::create(&gz).unwrap(),
        flate2::Compression::fast(),
    );
    encoder.write_all(&text).unwrap();
    encoder.finish().unwrap();
    let zst = dir.path().join("e.ndjson.zst");
    std::fs::write(&zst, zstd::encode_all(&text[..], 3).unwrap()).unwrap();
    for input in [gz.to_str().unwrap(), zst.to_str().unwrap()] {
        let (output, report) = replay(&[input], dir.path());
        assert!(output.status.success(), "{input}");
        assert_eq!(
            (
                report["summary"]["events"].clone(),
                report["summary"]["malformed"].clone()
            ),
            (11.into(), 1.into())
        );
    }
    let report_path = dir.path().join("stdin.json");
    let mut child = binary()
        .args(["replay", "-", "--quiet", "--report"])
        .arg(&report_path)
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&text).unwrap();
    assert!(child.wait().unwrap().success());
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&report_path).unwrap()).unwrap();
    assert_eq!(report["summary"]["events"], 11);
    let quarantine = std::fs::read_to_string(dir.path().join("stdin.quarantine.ndjson")).unwrap();
    assert!(quarantine.contains(r#""source":"stdin""#), "{quarantine}");
}

#[test]
fn unreadable_input_fails_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let (output, _) = replay(&["/no/such/telemetry.ndjson"], dir.path());
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("/no/such/telemetry.ndjson"), "{stderr}");
}

#[test]
fn corrupt_compressed_input_fails_naming_the_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("broken.ndjson.gz");
    std::fs::write(&bad, b"\x1f\x8b\x08\x00garbage that is not deflate").unwrap();
    let (output, _) = replay(&[bad.to_str().unwrap()], dir.path());
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("broken.ndjson.gz") && stderr.contains("line 1"),
        "{stderr}"
    );
}

#[test]
fn a_bad_change_notice_is_rejected_with_its_reason_and_the_others_load() {
    let dir = tempfile::tempdir().unwrap();
    let changes = dir.path().join("changes.ndjson");
    std::fs::write(
        &changes,
        concat!(
            r#"{"id":"CHG-1","user":"90b3d51f30010007","title":"fw","category":"network","start":"2026-03-10T09:00:00Z","end":"2026-03-10T10:00:00Z"}"#,
            "\n",
            r#"{"id":"CHG-2","user":"90b3d51f30010007","title":"bad","category":"network","start":"2026-13-10T09:00:00Z","end":"2026-03-10T10:00:00Z"}"#,
            "\n"
        ),
    )
    .unwrap();
    let events = example("events.ndjson");
    let (output, report) = replay(
        &[
            events.to_str().unwrap(),
            "--changes",
            changes.to_str().unwrap(),
        ],
        dir.path(),
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(report["summary"]["changes_loaded"], 1);
    let rejected = report["summary"]["changes_rejected"][0].as_str().unwrap();
    assert!(
        rejected.contains("line 2") && rejected.contains("start") && rejected.contains("CHG-2"),
        "{rejected}"
    );
}

#[test]
fn a_broken_change_file_fails_naming_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let changes = dir.path().join("changes.json");
    std::fs::write(&changes, "[\n  {\"id\": \"CHG-1\",\n  oops\n]").unwrap();
    let events = example("events.ndjson");
    let (output, _) = replay(
        &[
            events.to_str().unwrap(),
            "--changes",
            changes.to_str().unwrap(),
        ],
        dir.path(),
    );
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("changes.json") && stderr.contains("line 3"),
        "{stderr}"
    );
}

#[test]
fn malformed_corpus_is_counted_exactly_and_kept_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("bad.ndjson");
    let mut lines: Vec<Vec<u8>> = vec![
        br#"{"ts":1773133200000,"user":"90b3d51f30010007","event":"request"}"#.to_vec(),
        b"not json".to_vec(),
        b"".to_vec(),
        b"{\"ts\":1773133200000,\"user\":\"\xff\xfe\",\"event\":\"request\"}".to_vec(),
        br#"{"ts":1773133200000,"user":"90b3d51f30010007","event":"request","count":0}"#.to_vec(),
        br#"{"ts":1773133200000,"user":"90b3d51f30010007","event":"depth"}"#.to_vec(),
        br#"{"ts":1773133201000,"user":"90b3d51f30010007","event":"delivered"}"#.to_vec(),
    ];
    lines.push(format!(r#"{{"ts":1773133200000,"pad":"{}"}}"#, "x".repeat(70_000)).into_bytes());
    lines.push(b"   ".to_vec());
    let mut data = lines.join(&b'\n');
    data.extend(
        b"\n{\"ts\":1773133202000,\"user\":\"90b3d51f30010007\",\"event\":\"expired\"}\r\n",
    );
    std::fs::write(&input, &data).unwrap();
    let (output, report) = replay(&[input.to_str().unwrap()], dir.path());
    assert!(output.status.success());
    assert_eq!(report["summary"]["events"], 3);
    assert_eq!(report["summary"]["malformed"], 5);
    let quarantine = std::fs::read_to_string(dir.path().join("report.quarantine.ndjson")).unwrap();
    let records: Vec<serde_json::Value> = quarantine
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let numbers: Vec<u64> = records
        .iter()
        .map(|r| r["line"].as_u64().unwrap())
        .collect();
    assert_eq!(numbers, vec![2, 4, 5, 6, 8]);
    assert_eq!(records[0]["raw"], "not json");
    assert_eq!(
        records[1]["raw_hex"].as_str().unwrap().len(),
        2 * lines[3].len()
    );
    assert_eq!(records[4]["truncated"], true);
    assert_eq!(records[4]["length"], lines[7].len());
}

#[test]
fn two_runs_give_the_same_report_apart_from_elapsed_time() {
    let dir = tempfile::tempdir().unwrap();
    let events = example("events.ndjson");
    let changes = example("changes.csv");
    let args = [
        events.to_str().unwrap(),
        "--changes",
        changes.to_str().unwrap(),
    ];
    let (_, mut first) = replay(&args, dir.path());
    let (_, mut second) = replay(&args, dir.path());
    first["summary"]["elapsed_s"] = 0.into();
    second["summary"]["elapsed_s"] = 0.into();
    assert_eq!(first, second);
}

#[test]
fn help_describes_the_contract_invocation() {
    let output = binary().args(["replay", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&output.stdout);
    for needle in [
        "--changes",
        "--report",
        "--quarantine",
        "--speed",
        "--lateness",
    ] {
        assert!(help.contains(needle), "{needle} missing from:\n{help}");
    }
}
