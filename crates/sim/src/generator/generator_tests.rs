//! Whole generator runs, small enough for a debug build: determinism, exact counts, the queue arithmetic the
//! depth samples must agree with, bounded disorder, and each scenario's truth.

use std::collections::HashMap;

use super::*;
use stormwatch_core::incident::{IncidentKind, Verdict};
use stormwatch_core::telemetry::Eui64;

fn run(dir: &Path, configure: impl FnOnce(&mut GenOptions)) -> GenSummary {
    let mut options = GenOptions::new(dir);
    options.users = 5;
    options.duration_s = Some(40 * 60);
    configure(&mut options);
    match generate(&options, &mut |_| {}) {
        Ok(summary) => summary,
        Err(error) => panic!("{error}"),
    }
}

/// What the engine will make of one line, by the contract's rules (independently of the engine's parser).
enum Parsed {
    Blank,
    Malformed,
    Valid {
        ts: i64,
        user: Eui64,
        event: String,
        count: u64,
        depth: Option<u64>,
    },
}

fn parse(line: &[u8]) -> Parsed {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.is_empty() {
        return Parsed::Blank;
    }
    if line.len() > malformed::MAX_LINE {
        return Parsed::Malformed;
    }
    let Ok(serde_json::Value::Object(object)) = serde_json::from_slice::<serde_json::Value>(line)
    else {
        return Parsed::Malformed;
    };
    let ts = match object.get("ts") {
        Some(serde_json::Value::Number(n)) => n.as_i64(),
        Some(serde_json::Value::String(s)) => parse_start(s).ok(),
        _ => None,
    };
    let user = object
        .get("user")
        .and_then(|u| u.as_str())
        .and_then(Eui64::parse);
    let event = object
        .get("event")
        .and_then(|e| e.as_str())
        .unwrap_or("")
        .to_owned();
    let count = match object.get("count") {
        None => Some(1),
        Some(c) => c.as_u64().filter(|&c| c >= 1),
    };
    let depth = object.get("depth").and_then(|d| d.as_u64());
    let known = [
        "request",
        "queued",
        "delivered",
        "delivery_failed",
        "expired",
        "depth",
    ]
    .contains(&event.as_str());
    match (ts, user, count) {
        (Some(ts), Some(user), Some(count)) if known && (event != "depth" || depth.is_some()) => {
            Parsed::Valid {
                ts,
                user,
                event,
                count,
                depth,
            }
        }
        _ => Parsed::Malformed,
    }
}

fn read_events(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap()
}

#[test]
fn equal_options_give_identical_files_and_exact_counts() {
    let dir = tempfile::tempdir().unwrap();
    let configure = |o: &mut GenOptions| {
        o.seed = 11;
        o.duration_s = Some(80 * 60);
        o.malformed_rate = 0.03;
        o.scenarios = vec![Scenario::Hiccups];
    };
    let a = run(&dir.path().join("a"), configure);
    let b = run(&dir.path().join("b"), configure);
    let bytes = read_events(&a.events_path);
    assert_eq!(bytes, read_events(&b.events_path));
    assert_eq!(
        std::fs::read(&a.truth_path).unwrap(),
        std::fs::read(&b.truth_path).unwrap()
    );
    assert_eq!(
        std::fs::read(&a.changes_path).unwrap(),
        std::fs::read(&b.changes_path).unwrap()
    );

    let (mut valid, mut malformed, mut oversized) = (0, 0, 0);
    for line in bytes.split(|&b| b == b'\n') {
        match parse(line) {
            Parsed::Blank => {}
            Parsed::Malformed => {
                malformed += 1;
                oversized += usize::from(line.len() > malformed::MAX_LINE);
            }
            Parsed::Valid { .. } => valid += 1,
        }
    }
    assert_eq!((valid, malformed), (a.truth.events, a.truth.malformed));
    let share = malformed as f64 / (valid + malformed) as f64;
    assert!((0.025..0.035).contains(&share), "{share}");
    let _ = oversized;

    let other_seed = run(&dir.path().join("c"), |o| {
        configure(o);
        o.seed = 12;
    });
    assert_ne!(bytes, read_events(&other_seed.events_path));
}

#[test]
fn depth_samples_agree_with_the_running_queue_and_disorder_stays_under_three_seconds() {
    let dir = tempfile::tempdir().unwrap();
    let summary = run(dir.path(), |o| {
        o.seed = 3;
        o.duration_s = Some(3 * 3600);
        o.scenarios = vec![Scenario::Hiccups, Scenario::CertificateFailure];
    });
    let bytes = read_events(&summary.events_path);
    let mut depth: HashMap<Eui64, Option<i64>> = HashMap::new();
    let (mut newest, mut worst_disorder, mut samples, mut failed) = (0i64, 0, 0, 0);
    for line in bytes.split(|&b| b == b'\n') {
        let Parsed::Valid {
            ts,
            user,
            event,
            count,
            depth: sample,
        } = parse(line)
        else {
            continue;
        };
        if newest > 0 {
            worst_disorder = worst_disorder.max(newest - ts);
        }
        newest = newest.max(ts);
        let running = depth.entry(user).or_default();
        let count = count as i64;
        match (event.as_str(), running.as_mut()) {
            ("depth", Some(value)) => {
                assert_eq!(
                    Some(*value),
                    sample.map(|d| d as i64),
                    "{}",
                    String::from_utf8_lossy(line)
                );
                samples += 1;
            }
            ("depth", None) => *running = sample.map(|d| d as i64),
            ("queued", Some(value)) => *value += count,
            ("delivered" | "expired", Some(value)) => *value -= count,
            ("delivery_failed", _) => failed += count,
            _ => {}
        }
    }
    assert!(samples > 1000, "{samples}");
    assert!(failed > 0);
    assert!(worst_disorder <= 3000, "{worst_disorder}");
    assert!(worst_disorder > 0, "the exporters never stalled");
}

#[test]
fn a_firewall_backlog_reaches_one_and_a_half_million() {
    let dir = tempfile::tempdir().unwrap();
    let summary = run(dir.path(), |o| {
        o.seed = 5;
        o.users = 3;
        o.scale = 1.5;
        o.duration_s = None;
        o.scenarios = vec![Scenario::FirewallBacklog];
    });
    let truth = &summary.truth;
    assert_eq!(truth.incidents.len(), 1);
    let incident = &truth.incidents[0];
    assert_eq!(incident.kind, IncidentKind::Backlog);
    assert_eq!(incident.verdict, Verdict::RegisteredChange);
    assert!(
        incident.min_peak_depth.unwrap() >= 1_400_000,
        "{incident:?}"
    );
    let changes = stormwatch_replay::load_change_file(&summary.changes_path).unwrap();
    assert!(changes.rejected.is_empty(), "{:?}", changes.rejected);
    let changes = changes.notices;
    let cause = changes
        .iter()
        .find(|c| Some(&c.id) == incident.top_suspect.as_ref())
        .unwrap();
    assert_eq!(
        (cause.category, cause.owner.to_string()),
        (
            stormwatch_core::changes::Category::Network,
            incident.user.clone()
        )
    );
    assert!(
        truth.generator.args.contains("--scale 1.5"),
        "{}",
        truth.generator.args
    );
}

#[test]
fn every_scenario_plans_its_truth_and_changes() {
    let dir = tempfile::tempdir().unwrap();
    let mut options = GenOptions::new(dir.path());
    options.users = 24;
    options.scenarios = Scenario::ALL.to_vec();
    let shape = shape::DailyShape::new();
    let mut users = population::build(options.users, 1.0, &shape, &mut stream(1, 1));
    let plan = layout::lay_out(&options, &mut users, &shape, &mut stream(1, 2)).unwrap();
    let kinds: Vec<(IncidentKind, Verdict, bool)> = plan
        .incidents
        .iter()
        .map(|i| (i.truth.kind, i.truth.verdict, i.truth.top_suspect.is_some()))
        .collect();
    use IncidentKind as K;
    use Verdict as V;
    assert_eq!(
        kinds,
        vec![
            (K::RequestStorm, V::RegisteredChange, true),
            (K::RejectStorm, V::RegisteredChange, true),
            (K::AlertStorm, V::RegisteredChange, true),
            (K::RequestStorm, V::ExpectedImpact, true),
            (K::Backlog, V::RegisteredChange, true),
            (K::Backlog, V::UnregisteredChangeSuspected, false),
            (K::Backlog, V::DccChange, true),
            (K::Backlog, V::RegisteredChange, true),
            (K::Backlog, V::RegisteredChange, true),
            (K::Backlog, V::RegisteredChange, true),
            (K::Backlog, V::RegisteredChange, true),
            (K::RequestStorm, V::RegisteredChange, true),
            (K::Backlog, V::RegisteredChange, true),
            (K::Backlog, V::RegisteredChange, true),
        ]
    );
    // Every named suspect is a notice, and ids are unique.
    let ids: Vec<&str> = plan.changes.iter().map(|c| c.id.as_str()).collect();
    for incident in &plan.incidents {
        if let Some(top) = &incident.truth.top_suspect {
            assert!(ids.contains(&top.as_str()), "{top}");
        }
    }
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), ids.len());
    // No change but the named cause can explain an incident: decoys are by uninvolved Users, or of a category
    // that fits none of the affected User's incidents.
    for change in &plan.changes {
        let causes: Vec<&TruthIncident> = plan
            .incidents
            .iter()
            .map(|i| &i.truth)
            .filter(|t| t.top_suspect.as_ref() == Some(&change.id))
            .collect();
        if !causes.is_empty() {
            continue;
        }
        for incident in plan.incidents.iter().map(|i| &i.truth) {
            let same_user = incident.user == change.owner.to_string();
            assert!(
                !(same_user && super::decoys::category_fits(change.category, incident.kind)),
                "{change:?} explains {incident:?}"
            );
        }
    }
    // Slots do not overlap.
    for pair in plan.quiet.windows(2) {
        assert!(pair[0].1 <= pair[1].0, "{pair:?}");
    }
}

#[test]
fn scenarios_never_share_a_user() {
    let dir = tempfile::tempdir().unwrap();
    let mut options = GenOptions::new(dir.path());
    options.users = 3;
    options.scenarios = Scenario::ALL.to_vec();
    let error = generate(&options, &mut |_| {}).unwrap_err().to_string();
    assert!(error.contains("raise --users"), "{error}");
}

#[test]
fn a_too_short_duration_is_refused_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let mut options = GenOptions::new(dir.path());
    options.duration_s = Some(45 * 60);
    options.scenarios = vec![Scenario::RegisteredCampaign];
    let error = generate(&options, &mut |_| {}).unwrap_err().to_string();
    assert!(error.contains("too short"), "{error}");
}

#[test]
fn compressed_files_hold_the_same_lines() {
    let dir = tempfile::tempdir().unwrap();
    let make = |name: &str, compression: Compression| {
        run(&dir.path().join(name), |o| {
            o.seed = 2;
            o.duration_s = Some(20 * 60);
            o.compression = compression;
        })
    };
    let plain = read_events(&make("none", Compression::None).events_path);
    let gz = make("gz", Compression::Gzip).events_path;
    assert!(gz.to_string_lossy().ends_with("events.ndjson.gz"));
    let mut unzipped = Vec::new();
    std::io::Read::read_to_end(
        &mut flate2::read::GzDecoder::new(std::fs::File::open(gz).unwrap()),
        &mut unzipped,
    )
    .unwrap();
    assert!(unzipped == plain);
    let zst = make("zst", Compression::Zstd).events_path;
    assert!(zstd::decode_all(std::fs::File::open(zst).unwrap()).unwrap() == plain);
}
