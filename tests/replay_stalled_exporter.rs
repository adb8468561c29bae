//! One User's exporter stalls and then sends its buffer at once: `stormwatch replay` must report the same
//! incidents at the same onsets as on the file in order, with the flushed lines counted late and no User's clock
//! taken as skewed. (Before, a 2-minute flush from one User shifted every User's event time, and every incident,
//! by the stall.)

use std::path::Path;
use std::process::Command;

use serde_json::Value;

fn stormwatch(args: &[&str]) -> Vec<u8> {
    let output = Command::new(env!("CARGO_BIN_EXE_stormwatch"))
        .args(args)
        .output()
        .expect("run stormwatch");
    assert!(
        output.status.success(),
        "stormwatch {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

fn replay(events: &Path, changes: &Path, report: &Path) -> Value {
    stormwatch(&[
        "replay",
        events.to_str().expect("utf-8 path"),
        "--changes",
        changes.to_str().expect("utf-8 path"),
        "--report",
        report.to_str().expect("utf-8 path"),
        "-q",
    ]);
    serde_json::from_slice(&std::fs::read(report).expect("report")).expect("report JSON")
}

/// (user, kind, onset, verdict) of each incident.
fn incidents(report: &Value) -> Vec<(String, String, i64, String)> {
    let list = report["incidents"].as_array().expect("incidents");
    list.iter()
        .map(|i| {
            (
                i["user"].as_str().unwrap_or_default().to_owned(),
                i["kind"].as_str().unwrap_or_default().to_owned(),
                i["onset"].as_i64().unwrap_or_default(),
                i["verdict"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// A line's `ts`, in either contract form (epoch milliseconds or RFC 3339).
fn ts_ms(line: &Value) -> i64 {
    match &line["ts"] {
        Value::Number(n) => n.as_i64().expect("integer ts"),
        Value::String(s) => {
            let at = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
                .expect("RFC 3339 ts");
            (at.unix_timestamp_nanos() / 1_000_000) as i64
        }
        other => panic!("generated ts is neither form: {other}"),
    }
}

/// The file as it arrives when `user`'s exporter holds its lines from `from_ms` for `stall_ms`, then sends them
/// all just before its first line after the stall.
fn with_stall(lines: &[&str], user: &str, from_ms: i64, stall_ms: i64) -> String {
    let mut buffered = Vec::new();
    let mut out = String::new();
    let until = from_ms + stall_ms;
    for line in lines {
        let value: Value = serde_json::from_str(line).expect("generated lines are valid JSON");
        let ts = ts_ms(&value);
        let mine = value["user"]
            .as_str()
            .is_some_and(|u| u.eq_ignore_ascii_case(user));
        if mine && (from_ms..until).contains(&ts) {
            buffered.push(*line);
            continue;
        }
        if mine && ts >= until {
            for held in buffered.drain(..) {
                out.push_str(held);
                out.push('\n');
            }
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

#[test]
fn a_stalled_exporter_flushing_its_buffer_shifts_no_incident() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let gen_dir = dir.path().join("gen");
    stormwatch(&[
        "gen",
        "--seed",
        "7",
        "--users",
        "8",
        "--scenario",
        "mdm_storm",
        "--scenario",
        "firewall_backlog",
        "-q",
        "--out",
        gen_dir.to_str().expect("utf-8 path"),
    ]);
    let (events, changes) = (gen_dir.join("events.ndjson"), gen_dir.join("changes.json"));
    let expected = replay(&events, &changes, &dir.path().join("in-order.json"));
    let expected_incidents = incidents(&expected);
    assert!(
        expected_incidents.len() >= 2,
        "the generated hour has incidents to compare: {expected_incidents:?}"
    );
    let text = std::fs::read_to_string(&events).expect("events");
    let lines: Vec<&str> = text.lines().collect();
    let first: Value = serde_json::from_str(lines[0]).expect("first line");
    let t0 = ts_ms(&first);
    // A quiet User (not one the scenarios pick) stalls for two minutes well before the incidents.
    let quiet = expected_incidents
        .iter()
        .map(|(user, ..)| user.as_str())
        .collect::<Vec<_>>();
    let stalled = lines
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|v| v["user"].as_str().map(str::to_uppercase))
        .find(|u| !quiet.contains(&u.as_str()))
        .expect("a User without incidents");
    for stall_ms in [70_000, 120_000] {
        let delayed = dir.path().join(format!("stalled-{stall_ms}.ndjson"));
        std::fs::write(
            &delayed,
            with_stall(&lines, &stalled, t0 + 600_000, stall_ms),
        )
        .expect("write");
        let report = replay(&delayed, &changes, &dir.path().join("stalled.json"));
        assert_eq!(
            incidents(&report),
            expected_incidents,
            "{stall_ms} ms stall of {stalled}"
        );
        assert_eq!(report["summary"]["events"], expected["summary"]["events"]);
        assert!(
            report["summary"]["clock_offsets"]
                .as_array()
                .is_none_or(|o| o.is_empty()),
            "no clock taken as skewed: {}",
            report["summary"]["clock_offsets"]
        );
        assert!(
            report["summary"]["late"].as_u64().unwrap_or(0) > 0,
            "the flushed lines are counted late"
        );
    }
}
