//! kill -9 under `stormwatch serve` (issue 14): the journal written between snapshots brings the engine back to
//! where it was, so a crash loses no applied telemetry and raises no second incident.

mod support;

use support::*;

fn user_view(service: &Service, ops: &str) -> serde_json::Value {
    service.json(&format!("/api/v1/users/{FIREWALLED}"), ops)
}

/// Killed with -9 27 s after a snapshot, the service forgot 543 s of event time and the queue depth fell; when
/// the sender resumed, the gap opened a false backlog. Here no snapshot is taken after the start at all.
#[test]
fn kill_9_between_snapshots_loses_nothing_applied() {
    let dir = tempfile::tempdir().unwrap();
    let ops = token(dir.path(), "ops", "ops", None);
    let args = ["--snapshot-every", "3600"];
    let mut service = Service::start(dir.path(), &args);
    let lines = firewall_lines(0..600, (300, 700));
    let count = lines.iter().filter(|&&b| b == b'\n').count() as f64;
    service.send_tcp(&lines);
    service.wait_status("/metrics", 200, 60, |m| {
        metric(m, "stormwatch_ingest_lines_total{source=\"tcp\"}") == Some(count)
    });
    let before = user_view(&service, &ops);
    let open_before = service.json("/api/v1/incidents?open=true", &ops);
    assert!(
        before["depth"].as_u64().is_some_and(|d| d > 10_000),
        "{before}"
    );
    service.kill_hard();

    let service = Service::start(dir.path(), &args);
    service.wait_status("/readyz", 200, 60, |_| true);
    let after = user_view(&service, &ops);
    for field in ["depth", "backlog_age_s", "last_delivery"] {
        assert_eq!(
            after[field], before[field],
            "{field} after kill -9: {after} vs {before}"
        );
    }
    let open_after = service.json("/api/v1/incidents?open=true", &ops);
    assert_eq!(open_after, open_before, "the same open incidents");
    // The sender resumes where it stopped: one backlog for the whole outage, no second page.
    service.send_tcp(&firewall_lines(600..2_400, (300, 700)));
    let all = service.wait_for("/api/v1/incidents", &ops, 60, |v| {
        v.as_array().is_some_and(|a| {
            a.iter()
                .any(|i| i["kind"] == "backlog" && !i["resolved"].is_null())
        })
    });
    let backlogs = all
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["kind"] == "backlog")
        .count();
    assert_eq!(backlogs, 1, "{all}");
}
