//! Change outcomes over a generated three-day run with known truth: every change's outcome, each User's change
//! failure rate and the unregistered-change count match what the generator injected; `changes show` prints the
//! outcome and the linked incidents; the acknowledgement delay stays in one clock on replayed history.

mod support;

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;
use support::{Service, binary, token};

const DAYS: [&str; 3] = ["2026-03-11", "2026-03-12", "2026-03-13"];

/// One generated day: a firewall backlog caused by a registered change, plus decoy changes that must not be
/// blamed. The same seed each day keeps the population (and so every User's traffic) continuous across
/// midnight; change ids get the day as a prefix so the three days' notices stay distinct.
fn generate_day(dir: &std::path::Path, day: usize) -> (Vec<Value>, Vec<Value>) {
    let out = dir.join(format!("day{day}"));
    let output = binary()
        .args(["gen", "--out"])
        .arg(&out)
        .args(["--seed", "1", "--users", "6", "--scale", "0.005"])
        .args(["--start", &format!("{}T00:00:00Z", DAYS[day])])
        .args(["--duration", "1d"])
        .args(["--scenario", "firewall_backlog", "--scenario", "decoys"])
        .args(["--compress", "gz", "-q"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let read = |name: &str| -> Value {
        serde_json::from_slice(&std::fs::read(out.join(name)).unwrap()).unwrap()
    };
    let tag = |id: &str| format!("D{}-{id}", day + 1);
    let mut changes = read("changes.json").as_array().cloned().unwrap();
    for change in &mut changes {
        change["id"] = tag(change["id"].as_str().unwrap()).into();
    }
    let mut incidents = read("truth.json")["incidents"].as_array().cloned().unwrap();
    for incident in &mut incidents {
        if let Some(cause) = incident["top_suspect"].as_str() {
            incident["top_suspect"] = tag(cause).into();
        }
    }
    (changes, incidents)
}

fn run_cli(args: &[&str], data_dir: &std::path::Path) -> String {
    let output = binary()
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

#[test]
fn outcomes_over_three_generated_days_match_the_truth() {
    let gen_dir = tempfile::tempdir().unwrap();
    let days: Vec<(Vec<Value>, Vec<Value>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..DAYS.len())
            .map(|day| {
                scope.spawn({
                    let dir = gen_dir.path();
                    move || generate_day(dir, day)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let changes: Vec<Value> = days.iter().flat_map(|d| d.0.clone()).collect();
    let truth: Vec<Value> = days.iter().flat_map(|d| d.1.clone()).collect();
    let causes: BTreeSet<&str> = truth
        .iter()
        .filter_map(|i| i["top_suspect"].as_str())
        .collect();
    assert_eq!(causes.len(), 3, "one attributed change a day: {truth:?}");

    let dir = tempfile::tempdir().unwrap();
    let ops = token(dir.path(), "ops", "ops", None);
    let service = Service::start(dir.path(), &[]);
    let (status, body) = service.post(
        "/api/v1/changes",
        Some(&ops),
        Value::Array(changes.clone()).to_string().as_bytes(),
        &[("Content-Type", "application/json")],
    );
    assert_eq!(status, 201, "{body}");
    // The days in order, one request each: event time runs on across midnight.
    for day in 0..DAYS.len() {
        let events = std::fs::read(
            gen_dir
                .path()
                .join(format!("day{day}"))
                .join("events.ndjson.gz"),
        )
        .unwrap();
        let (status, body) = service.post(
            "/api/v1/events",
            Some(&ops),
            &events,
            &[
                ("Content-Encoding", "gzip"),
                ("Content-Type", "application/x-ndjson"),
            ],
        );
        assert_eq!(status, 200, "day {day}: {body}");
    }
    let incidents = service.wait_for("/api/v1/incidents", &ops, 300, |list| {
        truth.iter().all(|t| {
            list.as_array().into_iter().flatten().any(|i| {
                i["user"] == t["user"]
                    && i["kind"] == t["kind"]
                    && i["verdict"] == t["verdict"]
                    && i["suspects"][0]["change"] == t["top_suspect"]
            })
        })
    });
    assert_eq!(
        incidents.as_array().map(Vec::len),
        Some(truth.len()),
        "no incident beyond the injected ones: {incidents}"
    );

    // Each change's outcome: the true causes failed; every other change is decided and not a failure.
    let window = "to=2026-03-14T06:00:00Z&days=4";
    let summary = service.json(&format!("/api/v1/outcomes?{window}"), &ops);
    let owner_of = |id: &str| -> String {
        changes
            .iter()
            .find(|c| c["id"] == id)
            .and_then(|c| c["user"].as_str())
            .unwrap_or_default()
            .to_owned()
    };
    let owners: BTreeSet<String> = changes
        .iter()
        .filter_map(|c| c["user"].as_str().map(str::to_owned))
        .collect();
    let mut outcome_of: BTreeMap<String, Value> = BTreeMap::new();
    for owner in &owners {
        let figures = service.json(&format!("/api/v1/outcomes/{owner}?{window}"), &ops);
        for change in figures["changes"].as_array().unwrap() {
            outcome_of.insert(
                change["change"].as_str().unwrap().to_owned(),
                change.clone(),
            );
        }
    }
    assert_eq!(outcome_of.len(), changes.len(), "every change judged");
    for change in &changes {
        let id = change["id"].as_str().unwrap();
        let outcome = &outcome_of[id];
        if causes.contains(id) {
            assert_eq!(outcome["outcome"], "attributed", "{id}: {outcome}");
            let incident = outcome["attributed"][0].as_str().unwrap();
            let stored = service.json(&format!("/api/v1/incidents/{incident}"), &ops);
            assert_eq!(stored["suspects"][0]["change"], id, "linked both ways");
        } else {
            let decided = ["clean", "suspected", "expected_impact"];
            assert!(
                decided.contains(&outcome["outcome"].as_str().unwrap_or_default()),
                "{id} did not fail: {outcome}"
            );
        }
    }

    // Per User: registered, decided and failed changes, and the rate, exactly as the truth gives them.
    let rows = summary["owners"].as_array().unwrap();
    let row = |owner: &str| rows.iter().find(|r| r["owner"] == owner).cloned().unwrap();
    let mut expected: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for change in &changes {
        let id = change["id"].as_str().unwrap();
        let entry = expected.entry(owner_of(id)).or_default();
        entry.0 += 1;
        entry.1 += u64::from(causes.contains(id));
    }
    for (owner, (registered, failed)) in &expected {
        let figures = row(owner);
        assert_eq!(
            figures["changes_registered"], *registered,
            "{owner}: {summary}"
        );
        assert_eq!(
            figures["changes_decided"], *registered,
            "{owner}: {summary}"
        );
        assert_eq!(figures["changes_attributed"], *failed, "{owner}: {summary}");
        let rate = *failed as f64 / *registered as f64;
        let got = figures["change_failure_rate"].as_f64().unwrap();
        assert!((got - rate).abs() < 1e-9, "{owner}: {got} != {rate}");
    }
    let unexplained: u64 = rows
        .iter()
        .filter_map(|r| r["unregistered_change_suspected"].as_u64())
        .sum();
    let truly = truth
        .iter()
        .filter(|i| i["verdict"] == "unregistered_change_suspected")
        .count();
    assert_eq!(unexplained as usize, truly);

    // Acknowledged now, months of wall clock after the replayed onset: the delay is the event-time detection
    // delay plus the wall-clock wait since the incident was stored, never the wall clock minus the event time.
    let first = incidents[0]["id"].as_str().unwrap().to_owned();
    let (status, body) = service.post(
        &format!("/api/v1/incidents/{first}/acknowledge"),
        Some(&ops),
        b"{}",
        &[("Content-Type", "application/json")],
    );
    assert_eq!(status, 201, "{body}");
    let user = incidents[0]["user"].as_str().unwrap();
    let figures =
        service.json(&format!("/api/v1/outcomes/{user}?{window}"), &ops)["figures"].clone();
    let detect = figures["median_onset_to_detection_s"].as_f64().unwrap();
    let wait = figures["median_detection_to_acknowledgement_s"]
        .as_f64()
        .unwrap();
    let to_ack = figures["median_onset_to_acknowledgement_s"]
        .as_f64()
        .unwrap();
    assert_eq!(figures["acknowledged"], 1, "{figures}");
    assert!(wait >= 0.0 && to_ack >= detect, "{figures}");
    assert!(
        to_ack < 86_400.0,
        "one clock: not the months between the replayed onset and today ({figures})"
    );

    // `changes show` says the same as the API: the cause with its incident, a decoy without one.
    let cause = *causes.iter().next().unwrap();
    let incident = outcome_of[cause]["attributed"][0]
        .as_str()
        .unwrap()
        .to_owned();
    let shown = run_cli(&["changes", "show", cause], dir.path());
    assert!(
        shown.contains(&format!("outcome   caused incident(s) {incident}")),
        "{shown}"
    );
    assert!(shown.contains("incidents linked:"), "{shown}");
    assert!(
        shown
            .lines()
            .any(|l| l.contains(&incident) && l.contains("caused by this change")),
        "{shown}"
    );
    assert!(shown.contains("warnings at registration:"), "{shown}");
    let shown_json: Value =
        serde_json::from_str(&run_cli(&["changes", "show", cause, "--json"], dir.path())).unwrap();
    assert_eq!(shown_json["outcome"]["outcome"], "attributed");
    assert_eq!(
        shown_json["incidents"][0]["incident"]["id"],
        incident.as_str()
    );
    let decoy = changes
        .iter()
        .filter_map(|c| c["id"].as_str())
        .find(|id| outcome_of[*id]["outcome"] == "clean")
        .expect("a clean change");
    let shown = run_cli(&["changes", "show", decoy], dir.path());
    assert!(shown.contains("outcome   clean"), "{shown}");
    assert!(shown.contains("incidents linked: none"), "{shown}");

    // The table, for a person running the test with --nocapture.
    eprintln!(
        "owner                    registered decided attributed rate  incidents unregistered"
    );
    for row in rows {
        eprintln!(
            "{:<24} {:>10} {:>7} {:>10} {:>5} {:>9} {:>12}",
            row["owner"].as_str().unwrap_or_default(),
            row["changes_registered"].to_string(),
            row["changes_decided"].to_string(),
            row["changes_attributed"].to_string(),
            row["change_failure_rate"]
                .as_f64()
                .map_or("-".into(), |r| format!("{r:.2}")),
            row["incidents"].to_string(),
            row["unregistered_change_suspected"].to_string(),
        );
    }
}
