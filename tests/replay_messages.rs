//! What `stormwatch replay` tells a person when the outcome is not what they meant: an input in the wrong format,
//! a report path that cannot be written, an interrupted run, and a sample too short to find incidents in.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn binary() -> Command {
    Command::new(env!("CARGO_BIN_EXE_stormwatch"))
}

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(name)
}

fn replay(input: &Path, report: &Path) -> Output {
    binary()
        .arg("replay")
        .arg(input)
        .arg("--report")
        .arg(report)
        .output()
        .expect("run stormwatch")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Each wrong format: the replay fails (exit 1) with a hint naming what the file looks like, and the quarantine
/// keeps every line with messages free of Rust type names.
#[test]
fn an_input_where_every_line_is_malformed_fails_with_a_hint_about_its_format() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read(example("events.ndjson")).unwrap();
    let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gzip.write_all(&text).unwrap();
    let cases: [(&str, Vec<u8>, &str); 4] = [
        (
            "events.csv",
            b"ts,user,event\n1773133200000,90-B3-D5-1F-30-01-00-07,request\n".to_vec(),
            "It looks like CSV",
        ),
        (
            "array.json",
            br#"[{"ts":1773133200000,"user":"90-B3-D5-1F-30-01-00-07","event":"request"}]"#
                .to_vec(),
            "It looks like a JSON array",
        ),
        (
            "gzipped.ndjson",
            gzip.finish().unwrap(),
            "gzip-compressed but not named .gz",
        ),
        (
            "words.ndjson",
            b"{\"hello\": \"world\"}\n".to_vec(),
            "Telemetry is NDJSON",
        ),
    ];
    for (name, bytes, hint) in cases {
        let input = dir.path().join(name);
        std::fs::write(&input, bytes).unwrap();
        let report = dir.path().join(format!("{name}.report.json"));
        let output = replay(&input, &report);
        let message = stderr(&output);
        assert_eq!(output.status.code(), Some(1), "{name}: {message}");
        assert!(
            message.contains("were malformed, none was valid telemetry")
                || message.contains("the one line was malformed"),
            "{name}: {message}"
        );
        assert!(message.contains(hint), "{name}: {message}");
        assert!(
            message.contains(&format!("{name} line 1")),
            "{name}: {message}"
        );
        // The report is still written, to look at.
        assert!(report.is_file(), "{name}");
        let quarantine =
            std::fs::read_to_string(dir.path().join(format!("{name}.report.quarantine.ndjson")))
                .unwrap();
        assert!(!quarantine.contains("RawLine"), "{name}: {quarantine}");
        assert!(!quarantine.contains("struct"), "{name}: {quarantine}");
    }
}

#[test]
fn an_empty_input_warns_that_there_was_no_telemetry() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("empty.ndjson");
    std::fs::write(&input, b"").unwrap();
    let output = replay(&input, &dir.path().join("r.json"));
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("warning: the input holds no telemetry lines"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn the_example_says_that_no_incidents_is_expected_of_two_seconds() {
    let dir = tempfile::tempdir().unwrap();
    let output = replay(&example("events.ndjson"), &dir.path().join("r.json"));
    assert!(output.status.success(), "{}", stderr(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("No incidents.\nThat is expected: the input spans 2s of event time"),
        "{stdout}"
    );
}

/// examples/README.md quotes the triage summary of its sample command; it must stay what the binary prints.
#[test]
fn the_examples_readme_quotes_the_real_output() {
    let dir = tempfile::tempdir().unwrap();
    // From the repository root, as the README runs it, so the quarantine names `examples/events.ndjson`.
    let output = binary()
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args([
            "replay",
            "examples/events.ndjson",
            "--changes",
            "examples/changes.json",
        ])
        .arg("--report")
        .arg(dir.path().join("report.json"))
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    // The README writes to /tmp/report.json.
    let printed =
        String::from_utf8_lossy(&output.stdout).replace(&dir.path().display().to_string(), "/tmp");
    let readme = std::fs::read_to_string(example("README.md")).unwrap();
    assert!(
        readme.contains(&format!("```\n{printed}```\n")),
        "examples/README.md no longer quotes the output:\n{printed}"
    );
    let main_readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    assert!(
        main_readme.contains(&format!("```\n{printed}```\n")),
        "README.md no longer quotes the output:\n{printed}"
    );
    let quarantine = std::fs::read_to_string(dir.path().join("report.quarantine.ndjson")).unwrap();
    assert!(
        readme.contains(&quarantine),
        "quarantine line:\n{quarantine}"
    );
    // The table of report fields examples/README.md quotes: each field, with the value the report holds.
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("report.json")).unwrap()).unwrap();
    let table = readme
        .split("The report ([docs/report.md](../docs/report.md)) says:")
        .nth(1)
        .and_then(|rest| rest.split("\n\n").nth(1))
        .expect("examples/README.md quotes the report's fields");
    let mut checked = 0;
    for row in table.lines().skip(2) {
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        let (Some(fields), Some(values)) = (cells.get(1), cells.get(2)) else {
            continue;
        };
        let paths: Vec<&str> = fields.split('`').skip(1).step_by(2).collect();
        // A cell that opens with a backticked value lists the values in order; otherwise its first word is the value.
        let quoted: Vec<String> = if values.starts_with('`') {
            values
                .split('`')
                .skip(1)
                .step_by(2)
                .map(str::to_owned)
                .collect()
        } else {
            vec![
                values
                    .split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .to_owned(),
            ]
        };
        for (path, value) in paths.iter().zip(&quoted) {
            let mut live = &report;
            for part in path.split('.') {
                live = &live[part];
            }
            let live = match live {
                serde_json::Value::String(text) => {
                    text.replace(&dir.path().display().to_string(), "/tmp")
                }
                other => other.to_string(),
            };
            assert_eq!(&live, value, "examples/README.md says `{path}` is {value}");
            checked += 1;
        }
    }
    assert!(checked >= 8, "only {checked} report fields checked");
}

/// A report path that cannot be written is refused before any line is read, so nothing is left behind.
#[test]
fn a_report_path_that_is_a_directory_or_in_a_missing_one_fails_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("out");
    std::fs::create_dir(&target).unwrap();
    let output = replay(&example("events.ndjson"), &target);
    assert_eq!(output.status.code(), Some(2));
    let message = stderr(&output);
    assert!(
        message.contains("is a directory; give a file name, such as"),
        "{message}"
    );
    let missing = dir.path().join("no/such/dir/r.json");
    let output = replay(&example("events.ndjson"), &missing);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("does not exist"),
        "{}",
        stderr(&output)
    );
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, vec![std::ffi::OsString::from("out")], "stray files");
    assert_eq!(
        std::fs::read_dir(&target).unwrap().count(),
        0,
        "stray files in out/"
    );
}

/// Ctrl-C while the quarantine file is half written: the run stops, removes it, says so, and writes no report.
#[test]
fn an_interrupted_replay_removes_its_partial_quarantine_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("slow.ndjson");
    let mut text = String::new();
    // Over one 256 KiB block of malformed lines, so the quarantine file exists before the paced part.
    for i in 0..5000 {
        text.push_str(&format!("not telemetry, line {i:>60}\n"));
    }
    // Then an hour of event time, which `--speed 1` would take an hour to replay.
    for s in 0..3600 {
        text.push_str(&format!(
            "{{\"ts\":{},\"user\":\"90-B3-D5-1F-30-01-00-07\",\"event\":\"request\"}}\n",
            1_773_133_200_000_i64 + s * 1000
        ));
    }
    std::fs::write(&input, text).unwrap();
    let report = dir.path().join("r.json");
    let quarantine = dir.path().join("r.quarantine.ndjson");
    let child = binary()
        .arg("replay")
        .arg(&input)
        .args(["--speed", "1", "--report"])
        .arg(&report)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while !quarantine.exists() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the quarantine file never appeared"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let sent = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let output = child.wait_with_output().unwrap();
    let message = stderr(&output);
    assert_eq!(output.status.code(), Some(130), "{message}");
    assert!(
        message.contains(&format!(
            "the partial quarantine file {} was removed; no report written",
            quarantine.display()
        )),
        "{message}"
    );
    assert!(!quarantine.exists());
    assert!(!report.exists());
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, vec![std::ffi::OsString::from("slow.ndjson")]);
}
