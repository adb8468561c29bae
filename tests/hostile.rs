//! Drives `stormwatch serve` as a hostile client would: each test reproduces one attack from the service's
//! security review (issue 14) and checks it now fails safely.

mod support;

use support::*;

const JSON: [(&str, &str); 1] = [("Content-Type", "application/json")];

/// User B posts User A's change id with `"user": B`: before the fix the change moved to B (201 "updated"), A got
/// 403 on its own change and B could cancel it.
#[test]
fn a_user_token_cannot_take_over_cancel_or_read_another_users_change() {
    let dir = tempfile::tempdir().unwrap();
    let ops = token(dir.path(), "ops", "ops", None);
    let a = token(dir.path(), "supplier-a", "user", Some(FIREWALLED));
    let b = token(dir.path(), "supplier-b", "user", Some(HEALTHY));
    let service = Service::start(dir.path(), &[]);
    let change = firewall_change("CHG-A", 0, 60);
    let (status, body) = service.post("/api/v1/changes", Some(&a), change.as_bytes(), &JSON);
    assert_eq!(status, 201, "{body}");

    let hijack = change.replace(FIREWALLED, HEALTHY);
    let (status, body) = service.post("/api/v1/changes", Some(&b), hijack.as_bytes(), &JSON);
    assert_eq!(status, 403, "B re-registered A's change: {body}");
    assert!(!body.contains(FIREWALLED), "the 403 names A: {body}");
    // In a batch, the hijack spoils the whole batch: B's own notice is not written either.
    let own = firewall_change("CHG-B", 0, 60).replace(FIREWALLED, HEALTHY);
    let batch = format!("[{own},{hijack}]");
    let (status, body) = service.post("/api/v1/changes", Some(&b), batch.as_bytes(), &JSON);
    assert_eq!(status, 403, "{body}");
    assert!(!body.contains(FIREWALLED), "the 403 names A: {body}");
    assert_eq!(service.get("/api/v1/changes/CHG-B", Some(&ops)).0, 404);

    for (method, path, body) in [
        ("GET", "/api/v1/changes/CHG-A", &b""[..]),
        ("DELETE", "/api/v1/changes/CHG-A", b""),
        (
            "POST",
            "/api/v1/changes/CHG-A/status",
            br#"{"status":"cancelled"}"#,
        ),
    ] {
        let (status, answer) = request(service.http, method, path, Some(&b), &JSON, body);
        assert_eq!(status, 403, "{method} {path} by B: {answer}");
        assert!(!answer.contains(FIREWALLED), "the 403 names A: {answer}");
    }

    let stored = service.json("/api/v1/changes/CHG-A", &a);
    assert_eq!(stored["change"]["user"], FIREWALLED);
    assert_eq!(stored["change"]["status"], "in_progress");
    assert_eq!(
        stored["audit"].as_array().map(Vec::len),
        Some(1),
        "only A's creation is in the audit trail: {stored}"
    );
    // ops may still move a change between Users.
    let (status, body) = service.post("/api/v1/changes", Some(&ops), hijack.as_bytes(), &JSON);
    assert_eq!(status, 201, "{body}");
}

/// A line stamped 2099 hung the engine thread: queries timed out while `/readyz` said 200, and SIGTERM did not
/// stop the service. The hang is injected here (the engine's own fix for that line is another issue's), so the
/// test keeps checking the service's side after that fix lands.
#[test]
fn a_stuck_engine_is_not_ready_and_sigterm_still_ends_the_service() {
    let dir = tempfile::tempdir().unwrap();
    let ops = token(dir.path(), "ops", "ops", None);
    let config = config_file(
        dir.path(),
        "engine_stall_after_s = 2\nshutdown_grace_s = 2\n",
    );
    let mut args: Vec<&str> = config.iter().map(String::as_str).collect();
    args.extend(["--fault-hang-engine-after", "1", "--engine-queue", "1"]);
    let mut service = Service::start(dir.path(), &args);
    let why = service.wait_status("/readyz", 503, 30, |body| body.contains("engine_tick"));
    assert!(why.contains("has not finished a tick"), "{why}");
    let metrics = service.wait_status("/metrics", 200, 10, |m| {
        metric(m, "stormwatch_health_check{check=\"engine_tick\"}") == Some(0.0)
    });
    assert!(
        metric(&metrics, "stormwatch_engine_tick_age_seconds").is_some_and(|age| age >= 2.0),
        "tick age in the metrics"
    );

    // Senders and a query now wait on the stuck engine; none of them may hold the exit.
    let ingest = service.ingest;
    std::thread::spawn(move || {
        if let Ok(mut stream) = std::net::TcpStream::connect(ingest) {
            use std::io::Write;
            let _ = stream.write_all(&firewall_lines(0..3_000, (4_000, 4_000)));
        }
    });
    let (http, query_token) = (service.http, ops.clone());
    std::thread::spawn(move || request(http, "GET", "/api/v1/users", Some(&query_token), &[], &[]));
    std::thread::sleep(std::time::Duration::from_millis(500));
    let code = service.terminate_within(30);
    assert_eq!(
        code,
        Some(3),
        "SIGTERM must end a service whose engine is stuck (exit 3: no final snapshot)"
    );
}
