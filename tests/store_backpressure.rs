//! The engine never waits on the store, and reads never wait on the engine or the store's writer: with the store's
//! writes made slow (`--fault-slow-store-ms`, a disk that has stopped keeping up) the engine keeps ticking,
//! `/readyz` reports the backlog of writes, and API reads and token lookups answer; with the engine thread stuck,
//! the Users API, the console overview and incident lists still answer from what the engine last published.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use support::*;

/// One GET that must answer within `seconds` (a liveness bound, not a timing: the old code never answered).
fn get_within(
    address: SocketAddr,
    path: &str,
    token: &str,
    seconds: u64,
) -> Result<(u16, String), String> {
    let started = Instant::now();
    let mut stream = TcpStream::connect(address).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(Duration::from_secs(seconds)))
        .map_err(|e| e.to_string())?;
    let head = format!(
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\nAuthorization: Bearer {token}\r\n\r\n"
    );
    stream
        .write_all(head.as_bytes())
        .map_err(|e| e.to_string())?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).map_err(|e| {
        format!(
            "GET {path}: no answer after {:.1} s ({e})",
            started.elapsed().as_secs_f64()
        )
    })?;
    Ok(status_and_body(&response))
}

fn watermark(service: &Service) -> f64 {
    let (_, metrics) = service.get("/metrics", None);
    metric(&metrics, "stormwatch_watermark_timestamp_seconds").unwrap_or(0.0)
}

#[test]
fn a_slow_store_holds_up_neither_the_engine_nor_api_reads() {
    let dir = tempfile::tempdir().unwrap();
    let ops = token(dir.path(), "ops", "ops", None);
    let own = token(dir.path(), "firewalled", "user", Some(FIREWALLED));
    // No snapshot in the test's window: a snapshot the slow writer cannot take is withdrawn after a wait of its
    // own (the next test), which this one keeps apart from the incidents' queue.
    let config = config_file(
        dir.path(),
        "engine_stall_after_s = 2\nsnapshot_every = 3600\n",
    );
    let mut args: Vec<&str> = config.iter().map(String::as_str).collect();
    // Every write takes a minute: far longer than this test waits for anything.
    args.extend(["--fault-slow-store-ms", "60000"]);
    let service = Service::start(dir.path(), &args);

    // A backlog that opens and resolves an incident: the engine has incidents to write from the first minutes.
    service.send_tcp(&firewall_lines(0..600, (100, 300)));
    let end = (T0 / 1000 + 590) as f64;
    let deadline = Instant::now() + Duration::from_secs(20);
    while watermark(&service) < end {
        assert!(
            Instant::now() < deadline,
            "the engine stopped moving event time while the store was slow: watermark {} of {end}",
            watermark(&service)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // The engine ticks on: its tick age stays small and its health check passes.
    let (_, metrics) = service.get("/metrics", None);
    assert_eq!(
        metric(&metrics, "stormwatch_health_check{check=\"engine_tick\"}"),
        Some(1.0),
        "{metrics}"
    );

    // Readiness tells the backlog of writes, with its figures.
    let why = service.wait_status("/readyz", 503, 20, |body| {
        body.contains("store_queue: the store's writer is")
    });
    assert!(why.contains("engine writes: "), "{why}");
    assert!(!why.contains("engine_tick"), "{why}");
    // The same in the metrics (sampled once a second).
    service.wait_status("/metrics", 200, 10, |m| {
        metric(m, "stormwatch_store_queue_depth").is_some_and(|depth| depth >= 1.0)
            && metric(m, "stormwatch_store_queue_oldest_seconds").is_some_and(|age| age > 2.0)
            && metric(m, "stormwatch_health_check{check=\"store_queue\"}") == Some(0.0)
    });

    // Reads answer while the engine's writes wait for the store.
    let (status, users) = get_within(service.http, "/api/v1/users", &own, 10).unwrap();
    assert_eq!(status, 200, "{users}");
    let users: serde_json::Value = serde_json::from_str(&users).unwrap();
    assert_eq!(users.as_array().map(Vec::len), Some(1), "{users}");
    assert_eq!(users[0]["user"], FIREWALLED);
    for path in ["/api/v1/incidents", "/api/v1/console/overview"] {
        let (status, body) = get_within(service.http, path, &ops, 10).unwrap();
        assert_eq!(status, 200, "{path}: {body}");
    }
}

#[test]
fn a_snapshot_the_slow_store_cannot_take_is_withdrawn_and_the_engine_ticks_on() {
    let dir = tempfile::tempdir().unwrap();
    // A snapshot every 2 s; the engine waits at most half the stall limit (2 s) for the writer to take one.
    let config = config_file(dir.path(), "engine_stall_after_s = 4\nsnapshot_every = 2\n");
    let mut args: Vec<&str> = config.iter().map(String::as_str).collect();
    args.extend(["--fault-slow-store-ms", "60000"]);
    let service = Service::start(dir.path(), &args);
    service.send_tcp(&firewall_lines(0..600, (100, 300)));
    let end = (T0 / 1000 + 590) as f64;
    let deadline = Instant::now() + Duration::from_secs(30);
    while watermark(&service) < end {
        assert!(
            Instant::now() < deadline,
            "the engine stopped moving event time: watermark {} of {end}",
            watermark(&service)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let why = service.wait_status("/readyz", 503, 30, |body| {
        body.contains("snapshot: the last engine snapshot could not be saved")
    });
    assert!(!why.contains("engine_tick"), "{why}");
    assert!(
        service.log_count("engine snapshot not saved: the store's writer is still busy") >= 1,
        "the withdrawn snapshot is logged"
    );
    // Several snapshots later the engine still ticks.
    std::thread::sleep(Duration::from_secs(5));
    let (_, metrics) = service.get("/metrics", None);
    assert_eq!(
        metric(&metrics, "stormwatch_health_check{check=\"engine_tick\"}"),
        Some(1.0),
        "{metrics}"
    );
    assert!(
        metric(&metrics, "stormwatch_store_engine_waits_total").is_some_and(|waits| waits >= 2.0),
        "each withdrawn snapshot counts as a wait: {metrics}"
    );
}

#[test]
fn token_lookups_and_reads_do_not_queue_behind_a_slow_write() {
    let dir = tempfile::tempdir().unwrap();
    let ops = token(dir.path(), "ops", "ops", None);
    let own = token(dir.path(), "firewalled", "user", Some(FIREWALLED));
    let service = Service::start(dir.path(), &["--fault-slow-store-ms", "60000"]);
    // A registration: a write that now takes a minute in the store's writer.
    let (address, writer_token) = (service.http, ops.clone());
    std::thread::spawn(move || {
        let body = firewall_change("CHG-SLOW", 100, 300);
        let _ = request(
            address,
            "POST",
            "/api/v1/changes",
            Some(&writer_token),
            &[("Content-Type", "application/json")],
            body.as_bytes(),
        );
    });
    std::thread::sleep(Duration::from_millis(500));
    // Each of these looks its token up in the store and reads from it.
    for (path, token) in [
        ("/api/v1/changes", &ops),
        ("/api/v1/incidents", &ops),
        ("/api/v1/changes", &own),
        ("/api/v1/users", &own),
    ] {
        let (status, body) = get_within(service.http, path, token, 10).unwrap();
        assert_eq!(status, 200, "{path}: {body}");
    }
}

#[test]
fn api_reads_answer_from_the_published_state_while_the_engine_thread_is_stuck() {
    let dir = tempfile::tempdir().unwrap();
    let ops = token(dir.path(), "ops", "ops", None);
    let config = config_file(dir.path(), "engine_stall_after_s = 2\n");
    let mut args: Vec<&str> = config.iter().map(String::as_str).collect();
    args.extend(["--fault-hang-engine-after", "4"]);
    let service = Service::start(dir.path(), &args);
    service.send_tcp(&firewall_lines(0..200, (100, 150)));
    // Published at a tick before the engine hangs.
    service.wait_for("/api/v1/users", &ops, 10, |users| {
        users
            .as_array()
            .is_some_and(|all| all.iter().any(|u| u["user"] == FIREWALLED))
    });
    service.wait_status("/readyz", 503, 30, |body| body.contains("engine_tick"));

    let (status, users) = get_within(service.http, "/api/v1/users", &ops, 10).unwrap();
    assert_eq!(status, 200, "{users}");
    assert!(users.contains(FIREWALLED), "{users}");
    let path = format!("/api/v1/users/{FIREWALLED}");
    let (status, user) = get_within(service.http, &path, &ops, 10).unwrap();
    assert_eq!(status, 200, "{user}");
    let user: serde_json::Value = serde_json::from_str(&user).unwrap();
    assert!(user["depth"].as_u64().is_some(), "{user}");
    for path in ["/api/v1/console/overview", "/api/v1/incidents"] {
        let (status, body) = get_within(service.http, path, &ops, 10).unwrap();
        assert_eq!(status, 200, "{path}: {body}");
    }
}
