//! Live equals replay on traffic the engine did not generate (issue 22): scenarios of the independent corpus
//! (`../shared/corpus`, generated here with its own `gen.py`) are replayed, then fed to `serve` over TCP with their
//! change notices registered through the API, and the final incidents must agree: User, kind, onset, verdict and
//! top suspect. `#[ignore]`d: needs python3 and the corpus generator (`scripts/test-all` runs it); the corpus
//! lives beside the repository, or where `STORMWATCH_CORPUS` points.

mod support;

#[path = "support/prometheus.rs"]
mod prometheus;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use prometheus::poll;
use serde_json::Value;
use support::*;

/// Every scenario of the corpus: among them shared capacity (an MDM storm's change behind ten other Users'
/// backlogs, or one `*` incident), competing suspects (a notice re-registered with new times must win, live as in
/// replay), duplicated and skewed lines, and a quiet night.
const SCENARIOS: [&str; 11] = [
    "campaign_exceeds",
    "competing_suspects",
    "cross_user_storm",
    "dcc_maintenance_fsc",
    "dup_skew_noise",
    "flapping",
    "many_small",
    "overran_window",
    "partial_srv",
    "quiet_night",
    "slow_leak",
];

fn corpus_generator() -> PathBuf {
    let root = std::env::var_os("STORMWATCH_CORPUS").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus"),
        PathBuf::from,
    );
    let generator = root.join("gen.py");
    assert!(
        generator.is_file(),
        "no corpus generator at {} (set STORMWATCH_CORPUS to the corpus directory)",
        generator.display()
    );
    generator
}

/// What the operator acts on, per incident: (User, kind, onset) -> (verdict, top suspect).
type Headlines = BTreeMap<(String, String, i64), (String, Option<String>)>;

fn headlines(incidents: &[Value]) -> Headlines {
    incidents
        .iter()
        .map(|i| {
            let text = |field: &str| i[field].as_str().unwrap_or_default().to_owned();
            let top = i["suspects"][0]["change"].as_str().map(str::to_owned);
            (
                (text("user"), text("kind"), i["onset"].as_i64().unwrap_or(0)),
                (text("verdict"), top),
            )
        })
        .collect()
}

#[test]
#[ignore = "needs python3 and the corpus generator (scripts/test-all)"]
fn corpus_scenarios_fed_live_over_tcp_end_with_the_incidents_replay_finds() {
    let generator = corpus_generator();
    let dir = tempfile::tempdir().unwrap();
    succeed(
        Command::new("python3")
            .arg(&generator)
            .arg(dir.path().join("corpus"))
            .args(SCENARIOS),
    );
    let mut incidents = 0;
    for scenario in SCENARIOS {
        let root = dir.path().join("corpus").join(scenario);
        let (events, changes) = (root.join("events.ndjson"), root.join("changes.json"));
        let report = dir.path().join(format!("{scenario}.json"));
        succeed(
            binary()
                .args(["replay", "-q", "--changes"])
                .arg(&changes)
                .arg("--report")
                .arg(&report)
                .arg(&events),
        );
        let replayed: Value =
            serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
        let replayed = headlines(replayed["incidents"].as_array().unwrap());
        incidents += replayed.len();

        let data_dir = dir.path().join(format!("{scenario}-data"));
        std::fs::create_dir(&data_dir).unwrap();
        let ops = token(&data_dir, "ops", "ops", None);
        let service = Service::start(&data_dir, &[]);
        service.register_changes(&ops, &changes);
        let data = std::fs::read(&events).unwrap();
        let lines = data
            .split(|&b| b == b'\n')
            .filter(|line| !line.is_empty() && *line != b"\r")
            .count() as u64;
        service.send_tcp(&data);
        poll(
            "the engine to take every line sent",
            300,
            || (lines_taken(&service.get("/metrics", None).1) >= lines).then_some(()),
            || format!("{scenario}: {lines} lines sent"),
        );
        // With the feed over, the idle clock closes the last seconds: the live incidents must settle on the
        // replay's.
        let live = std::cell::RefCell::new(Headlines::new());
        poll(
            "the live incidents to equal the replay's",
            60,
            || {
                let answer = service.json("/api/v1/incidents?limit=1000", &ops);
                *live.borrow_mut() = headlines(answer.as_array().unwrap());
                (*live.borrow() == replayed).then_some(())
            },
            || {
                let live = live.borrow();
                format!("{scenario}:\n live     {live:#?}\n replayed {replayed:#?}")
            },
        );
        eprintln!(
            "{scenario}: {lines} lines, {} incidents, live and replayed alike",
            replayed.len()
        );
    }
    // The corpus' 40 incidents are 15 records (one `*` incident covers many Users; a quiet night has none): a
    // replay that found nothing would have compared nothing.
    assert!(
        incidents >= 10,
        "replay found {incidents} incidents in the corpus"
    );
}
