//! One owner per data directory and incident IDs never reused (issue 20, items 5 and 6). A second `serve` on the
//! same data directory wrote its own `INC-000001` over the other's and truncated the shared journal; after a
//! snapshot could not be read the incident counter restarted at 1 and the next incident overwrote the stored
//! `INC-000001`, while `/readyz` said 200.

mod support;

use std::time::{Duration, Instant};

use support::*;

/// Runs `serve` on `data_dir` and waits at most `seconds` for it to exit: its exit code and stderr, or a panic if
/// it was still running (it is killed first).
fn serve_exits_within(data_dir: &std::path::Path, seconds: u64) -> (i32, String) {
    let mut child = serve_on_loopback(data_dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start the second serve");
    let deadline = Instant::now() + Duration::from_secs(seconds);
    loop {
        if let Some(status) = child.try_wait().expect("wait for the second serve") {
            let mut stderr = String::new();
            if let Some(mut pipe) = child.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut pipe, &mut stderr);
            }
            return (status.code().unwrap_or(-1), stderr);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("a second serve on the same data directory was still running after {seconds} s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The second process must fail at once, name the first one's PID, and leave the first and its journal alone.
#[test]
fn a_second_serve_on_the_same_data_dir_exits_naming_the_first_ones_pid() {
    let dir = tempfile::tempdir().unwrap();
    let ops = token(dir.path(), "ops", "ops", None);
    let service = Service::start(dir.path(), &["--snapshot-every", "3600"]);
    let lines = firewall_lines(0..200, (300, 700));
    let count = lines.iter().filter(|&&b| b == b'\n').count() as f64;
    service.send_tcp(&lines);
    service.wait_status("/metrics", 200, 60, |m| {
        metric(m, "stormwatch_ingest_lines_total{source=\"tcp\"}") == Some(count)
    });
    let journal = dir.path().join("journal.bin");
    let journal_before = std::fs::read(&journal).expect("the first serve journals what it applied");
    assert!(
        journal_before.len() > 1_000,
        "{} bytes",
        journal_before.len()
    );

    let (code, stderr) = serve_exits_within(dir.path(), 20);
    assert_ne!(code, 0, "{stderr}");
    let pid = service.child.id().to_string();
    assert!(
        stderr.contains(&format!("PID {pid}")),
        "the refusal names the holder, PID {pid}: {stderr}"
    );

    service.wait_status("/readyz", 200, 10, |_| true);
    assert_eq!(
        std::fs::read(&journal).expect("journal still there"),
        journal_before,
        "the refused process must not touch the journal"
    );
    // The first one still serves its API.
    service.json(&format!("/api/v1/users/{FIREWALLED}"), &ops);
}

/// CLI writers use SQLite's own locking: registering a change and adding a token still work while serve runs,
/// and the service sees the change.
#[test]
fn cli_store_writers_still_work_while_serve_holds_the_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let ops = token(dir.path(), "ops", "ops", None);
    let service = Service::start(dir.path(), &[]);
    service.wait_status("/readyz", 200, 30, |_| true);
    let output = binary()
        .args([
            "changes",
            "add",
            "--id",
            "CHG-BESIDE-SERVE",
            "--user",
            FIREWALLED,
            "--title",
            "Firewall rule migration",
            "--category",
            "network",
            "--start",
            "2026-03-10T09:00:00Z",
            "--end",
            "2026-03-10T10:00:00Z",
            "--data-dir",
        ])
        .arg(dir.path())
        .output()
        .expect("run changes add");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let second = token(dir.path(), "second", "ops", None);
    assert!(!second.is_empty());
    let change = service.json("/api/v1/changes/CHG-BESIDE-SERVE", &second);
    assert_eq!(change["change"]["id"], "CHG-BESIDE-SERVE", "{change}");
    service.json("/api/v1/changes/CHG-BESIDE-SERVE", &ops);
}

/// Replaces the stored snapshot with bytes no build can read, as a torn or corrupted row would be.
fn corrupt_snapshot(data_dir: &std::path::Path) {
    let db = rusqlite::Connection::open(data_dir.join("stormwatch.db")).expect("open the store");
    let changed = db
        .execute(
            "UPDATE snapshot SET data = ?1 WHERE id = 1",
            [b"{\"version\":1,\"users\":[tor".to_vec()],
        )
        .expect("corrupt the snapshot row");
    assert_eq!(changed, 1, "a snapshot was stored at shutdown");
}

fn backlog_ids(incidents: &serde_json::Value) -> Vec<String> {
    incidents
        .as_array()
        .map(|list| {
            list.iter()
                .filter(|i| i["kind"] == "backlog")
                .filter_map(|i| i["id"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn after_a_corrupted_snapshot_ids_are_new_and_readyz_is_503_until_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let ops = token(dir.path(), "ops", "ops", None);
    let mut service = Service::start(dir.path(), &["--snapshot-every", "3600"]);
    service.send_tcp(&firewall_lines(0..600, (300, 700)));
    let first = service.wait_for("/api/v1/incidents", &ops, 60, |v| backlog_ids(v).len() == 1);
    let old_id = backlog_ids(&first).remove(0);
    let old_record = service.json(&format!("/api/v1/incidents/{old_id}"), &ops);
    service.stop();
    corrupt_snapshot(dir.path());

    let service = Service::start(dir.path(), &["--snapshot-every", "3600"]);
    let why = service.wait_status("/readyz", 503, 30, |body| body.contains("snapshot"));
    assert!(
        why.contains("unreadable") && why.contains("acknowledge"),
        "/readyz names the lost snapshot and what clears it: {why}"
    );
    // A second outage, much later: the fresh engine opens a new backlog.
    service.send_tcp(&firewall_lines(2_000..2_600, (2_300, 2_700)));
    let both = service.wait_for("/api/v1/incidents", &ops, 60, |v| backlog_ids(v).len() == 2);
    let ids = backlog_ids(&both);
    assert!(ids.contains(&old_id), "{both}");
    let new_id = ids.iter().find(|id| **id != old_id).expect("a second ID");
    assert_ne!(new_id, &old_id);
    let old_after = service.json(&format!("/api/v1/incidents/{old_id}"), &ops);
    for field in ["onset", "detected", "user", "kind", "peak_depth"] {
        assert_eq!(
            old_after[field], old_record[field],
            "{field} of {old_id} must be left as stored: {old_after} vs {old_record}"
        );
    }
    // Still not ready: nothing but an operator clears a lost snapshot, not even a restart (the bad snapshot row
    // has been replaced by a good one by now).
    let (status, body) = service.get("/readyz", None);
    assert_eq!(status, 503, "{body}");
    let mut service = service;
    service.stop();
    let service = Service::start(dir.path(), &["--snapshot-every", "3600"]);
    let still = service.wait_status("/readyz", 503, 30, |body| body.contains("snapshot_lost"));
    assert!(still.contains("unreadable"), "{still}");
    let after_restart = service.json(&format!("/api/v1/incidents/{new_id}"), &ops);
    assert_eq!(after_restart["id"], new_id.as_str(), "{after_restart}");

    let (status, body) = service.post("/api/v1/health/snapshot/acknowledge", None, b"", &[]);
    assert_eq!(
        status, 401,
        "an unauthenticated caller cannot clear it: {body}"
    );
    let viewer = token(dir.path(), "viewer", "user", Some(FIREWALLED));
    let (status, body) = service.post(
        "/api/v1/health/snapshot/acknowledge",
        Some(&viewer),
        b"",
        &[],
    );
    assert_eq!(status, 403, "a user token cannot clear it: {body}");
    let (status, body) = service.post("/api/v1/health/snapshot/acknowledge", Some(&ops), b"", &[]);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"acknowledged\":true"), "{body}");
    service.wait_status("/readyz", 200, 10, |_| true);
}

/// Without an API token: `stormwatch health acknowledge-snapshot` clears the check of a running service.
#[test]
fn a_lost_snapshot_can_be_acknowledged_from_the_cli_while_serve_runs() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = config_file(dir.path(), "store_probe_every_s = 1\n");
    let mut args: Vec<&str> = config.iter().map(String::as_str).collect();
    args.extend(["--snapshot-every", "3600"]);
    let mut service = Service::start(&data, &args);
    service.send_tcp(&firewall_lines(0..100, (300, 700)));
    service.wait_status("/readyz", 200, 30, |_| true);
    service.stop();
    corrupt_snapshot(&data);
    let service = Service::start(&data, &args);
    service.wait_status("/readyz", 503, 30, |body| body.contains("snapshot_lost"));
    let output = binary()
        .args(["health", "acknowledge-snapshot", "--data-dir"])
        .arg(&data)
        .output()
        .expect("run health acknowledge-snapshot");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.starts_with("acknowledged: "), "{stdout}");
    service.wait_status("/readyz", 200, 30, |_| true);
}
