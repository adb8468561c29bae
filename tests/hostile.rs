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
    // A question for the engine thread no longer hangs until the client gives up: 503 after the stall limit.
    // (The Users API reads what the engine published and answers even now; the malformed log still asks.)
    let (status, body) = service.get("/api/v1/malformed", Some(&ops));
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("did not answer"), "{body}");
    let code = service.terminate_within(30);
    assert_eq!(
        code,
        Some(3),
        "SIGTERM must end a service whose engine is stuck (exit 3: no final snapshot)"
    );
}

fn threads_of(service: &Service) -> u64 {
    proc_status(service, "Threads:")
}

/// A number from the service's `/proc/<pid>/status` (`Threads:`, `VmRSS:` in kB).
fn proc_status(service: &Service, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{}/status", service.child.id()))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// Reads what the server says until it closes the connection (or 30 s pass: then `None`).
fn read_until_closed(stream: &mut std::net::TcpStream) -> Option<String> {
    use std::io::Read;
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .ok()?;
    let mut said = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) => return Some(String::from_utf8_lossy(&said).into_owned()),
            Ok(n) => said.extend_from_slice(&buffer[..n]),
            Err(error) if error.kind() == std::io::ErrorKind::ConnectionReset => {
                return Some(String::from_utf8_lossy(&said).into_owned());
            }
            Err(_) => return None,
        }
    }
}

/// 2,000 idle TCP connections made 2,006 threads and 570 MB, and none was ever closed. Now connections are
/// tasks, and those over the cap are refused at once with a reason.
#[test]
fn tcp_connections_over_the_cap_are_refused_and_cost_no_threads() {
    let dir = tempfile::tempdir().unwrap();
    // All from one address: the per-peer cap (tests/abuse_http.rs) is raised out of the way of the total one.
    let config = config_file(
        dir.path(),
        "ingest_max_connections = 100\ningest_max_connections_per_peer = 1000\n",
    );
    let args: Vec<&str> = config.iter().map(String::as_str).collect();
    let service = Service::start(dir.path(), &args);
    let threads_before = threads_of(&service);
    let rss_before = proc_status(&service, "VmRSS:");
    let _held: Vec<_> = (0..100)
        .map(|_| std::net::TcpStream::connect(service.ingest).unwrap())
        .collect();
    // Wait until the service holds all of them, then the next ones are over the cap.
    service.wait_status("/metrics", 200, 30, |m| {
        metric(m, "stormwatch_connections{listener=\"tcp\"}") == Some(100.0)
    });
    let mut over: Vec<_> = (0..400)
        .map(|_| std::net::TcpStream::connect(service.ingest).unwrap())
        .collect();
    for stream in &mut over[..5] {
        assert_eq!(
            read_until_closed(stream).as_deref(),
            Some("ERR too many connections\n"),
            "a connection over the cap is told why and closed"
        );
    }
    service.wait_status("/metrics", 200, 30, |m| {
        metric(
            m,
            "stormwatch_connections_refused_total{listener=\"tcp\",reason=\"cap\"}",
        ) == Some(400.0)
    });
    let threads = threads_of(&service);
    assert!(
        threads <= threads_before + 4,
        "threads went from {threads_before} to {threads} with 500 connections"
    );
    // Each idle connection took a 256 KiB read block (26 MB for these 100); now it takes one when lines come.
    let rss = proc_status(&service, "VmRSS:");
    assert!(
        rss < rss_before + 8_000,
        "RSS went from {rss_before} kB to {rss} kB with 100 idle connections"
    );
}

/// Idle TCP connections were never closed: now they are after `ingest_idle_timeout_s`, and their slots serve
/// new senders.
#[test]
fn idle_tcp_connections_are_closed() {
    let dir = tempfile::tempdir().unwrap();
    let ops = token(dir.path(), "ops", "ops", None);
    let config = config_file(
        dir.path(),
        "ingest_max_connections = 20\ningest_idle_timeout_s = 1\n",
    );
    let args: Vec<&str> = config.iter().map(String::as_str).collect();
    let service = Service::start(dir.path(), &args);
    let mut idle: Vec<_> = (0..20)
        .map(|_| std::net::TcpStream::connect(service.ingest).unwrap())
        .collect();
    for stream in &mut idle {
        assert_eq!(
            read_until_closed(stream).as_deref(),
            Some(""),
            "idle connection closed"
        );
    }
    service.wait_status("/metrics", 200, 30, |m| {
        metric(m, "stormwatch_connections{listener=\"tcp\"}") == Some(0.0)
            && metric(
                m,
                "stormwatch_connections_refused_total{listener=\"tcp\",reason=\"idle\"}",
            ) == Some(20.0)
    });
    service.send_tcp(&firewall_lines(0..10, (300, 2_000)));
    service.wait_for("/api/v1/users", &ops, 30, |users| {
        users.as_array().is_some_and(|u| u.len() == 2)
    });
}

/// Slowloris HTTP connections stayed open forever: headers that never end, and bodies that never finish.
#[test]
fn slow_http_headers_and_bodies_are_cut_off() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let exporter = token(dir.path(), "exporter", "ingest", None);
    let config = config_file(
        dir.path(),
        "http_header_timeout_s = 1\nhttp_body_timeout_s = 1\n",
    );
    let args: Vec<&str> = config.iter().map(String::as_str).collect();
    let service = Service::start(dir.path(), &args);

    let mut headers = std::net::TcpStream::connect(service.http).unwrap();
    headers
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: 1")
        .unwrap();
    let said = read_until_closed(&mut headers);
    assert!(
        said.is_some(),
        "a request whose headers never end must be closed by the server"
    );

    let mut body = std::net::TcpStream::connect(service.http).unwrap();
    // With a valid token (one without is answered 401 before its body is read: tests/abuse_http.rs).
    body.write_all(
        format!(
            "POST /api/v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {exporter}\r\n\
             Content-Length: 1000\r\n\r\n{{\"ts\":1"
        )
        .as_bytes(),
    )
    .unwrap();
    let said = read_until_closed(&mut body).expect("a body that never ends must be cut off");
    assert!(said.starts_with("HTTP/1.1 408"), "{said}");

    let mut idle = std::net::TcpStream::connect(service.http).unwrap();
    assert!(
        read_until_closed(&mut idle).is_some(),
        "a connection that never sends a request is closed"
    );
    assert_eq!(service.get("/healthz", None).0, 200);
}

/// The TCP port authenticated nothing, even beyond loopback. With `ingest_auth = "token"` (the default beyond
/// loopback) a connection must open with `AUTH <token>` of an ingest or ops token.
#[test]
fn tcp_telemetry_needs_an_ingest_token_handshake_when_configured() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let ops = token(dir.path(), "ops", "ops", None);
    let exporter = token(dir.path(), "exporter", "ingest", None);
    let supplier = token(dir.path(), "supplier", "user", Some(FIREWALLED));
    let config = config_file(dir.path(), "ingest_auth = \"token\"\n");
    let args: Vec<&str> = config.iter().map(String::as_str).collect();
    let service = Service::start(dir.path(), &args);
    let lines = firewall_lines(0..10, (300, 2_000));
    for (first, answer) in [
        (String::new(), "ERR first line is not `AUTH <token>`\n"),
        (
            "AUTH sw_wrong\n".to_owned(),
            "ERR unknown or revoked token\n",
        ),
        (
            format!("AUTH {supplier}\n"),
            "ERR token may not send telemetry (needs ingest or ops)\n",
        ),
    ] {
        let mut stream = std::net::TcpStream::connect(service.ingest).unwrap();
        stream.write_all(first.as_bytes()).unwrap();
        let _ = stream.write_all(&lines);
        assert_eq!(read_until_closed(&mut stream).as_deref(), Some(answer));
    }
    let metrics = service.get("/metrics", None).1;
    assert_eq!(
        metric(&metrics, "stormwatch_ingest_lines_total{source=\"tcp\"}").unwrap_or(0.0),
        0.0,
        "nothing from an unauthenticated connection is ingested"
    );
    let mut stream = std::net::TcpStream::connect(service.ingest).unwrap();
    stream
        .write_all(format!("AUTH {exporter}\r\n").as_bytes())
        .unwrap();
    stream.write_all(&lines).unwrap();
    stream.shutdown(std::net::Shutdown::Write).unwrap();
    assert_eq!(read_until_closed(&mut stream).as_deref(), Some("OK\n"));
    let count = lines.iter().filter(|&&b| b == b'\n').count() as f64;
    service.wait_status("/metrics", 200, 30, |m| {
        metric(m, "stormwatch_ingest_lines_total{source=\"tcp\"}") == Some(count)
    });
    assert_eq!(service.json("/api/v1/malformed", &ops)["total"], 0);
}

/// Beyond loopback the handshake is on by default, and cannot be turned off.
#[test]
fn a_telemetry_listener_beyond_loopback_requires_the_handshake() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    token(dir.path(), "ops", "ops", None);
    let service = Service::start(dir.path(), &["--ingest", "0.0.0.0:0"]);
    let address = std::net::SocketAddr::from(([127, 0, 0, 1], service.ingest.port()));
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    stream
        .write_all(&firewall_lines(0..2, (300, 2_000)))
        .unwrap();
    assert_eq!(
        read_until_closed(&mut stream).as_deref(),
        Some("ERR first line is not `AUTH <token>`\n")
    );
    let config = config_file(dir.path(), "ingest_auth = \"none\"\n");
    let refused = binary()
        .args(["serve", "--ingest", "0.0.0.0:0", "--print-config"])
        .args(&config)
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("ingest_auth"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
}

#[test]
fn print_config_shows_every_limit() {
    let output = binary().args(["serve", "--print-config"]).output().unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    for key in [
        "engine_stall_after_s",
        "shutdown_grace_s",
        "ingest_max_connections",
        "ingest_idle_timeout_s",
        "ingest_auth",
        "ingest_auth_timeout_s",
        "http_max_connections",
        "http_header_timeout_s",
        "http_body_timeout_s",
        "http_write_timeout_s",
        "http_max_connections_per_peer",
        "http_max_unauthenticated_connections",
        "http_max_body_mib",
        "http_max_decompressed_mib",
        "ingest_max_connections_per_peer",
        "ingest_max_unauthenticated_connections",
        "ingest_tls_cert",
        "ingest_tls_key",
        "ingest_tls_client_ca",
    ] {
        assert!(
            text.contains(&format!("{key} = ")),
            "{key} missing:\n{text}"
        );
    }
}

/// A truncated gzip POST answered 400 after 197,897 of its lines were already ingested, so a retry
/// double-counted; `br`, `deflate` and `zstd` were read as plain text.
#[test]
fn http_ingest_is_all_or_nothing_and_refuses_unknown_encodings() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let ops = token(dir.path(), "ops", "ops", None);
    let ingest = token(dir.path(), "exporter", "ingest", None);
    let service = Service::start(dir.path(), &[]);
    let lines = firewall_lines(0..20_000, (300, 2_000));
    let count = lines.iter().filter(|&&b| b == b'\n').count() as u64;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(&lines).unwrap();
    let gz = encoder.finish().unwrap();
    let truncated = &gz[..gz.len() * 9 / 10];
    let (status, answer) = service.post(
        "/api/v1/events",
        Some(&ingest),
        truncated,
        &[("Content-Encoding", "gzip")],
    );
    assert_eq!(status, 400, "{answer}");
    assert!(answer.contains("nothing of it was ingested"), "{answer}");
    for encoding in ["br", "deflate", "gzip, br", "compress"] {
        let (status, answer) = service.post(
            "/api/v1/events",
            Some(&ingest),
            &lines[..1_000],
            &[("Content-Encoding", encoding)],
        );
        assert_eq!(status, 415, "{encoding}: {answer}");
    }
    let metrics = service.get("/metrics", None).1;
    assert_eq!(
        metric(&metrics, "stormwatch_ingest_lines_total{source=\"http\"}").unwrap_or(0.0),
        0.0,
        "nothing of a refused body reaches the engine"
    );
    assert_eq!(service.json("/api/v1/users", &ops), serde_json::json!([]));

    let zst = zstd::encode_all(&lines[..], 3).unwrap();
    let (status, answer) = service.post(
        "/api/v1/events",
        Some(&ingest),
        &zst,
        &[("Content-Encoding", "zstd")],
    );
    assert_eq!(status, 200, "{answer}");
    let answer: serde_json::Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(
        (answer["accepted"].as_u64(), answer["malformed"].as_u64()),
        (Some(count), Some(0))
    );
}

/// A 2^64-1 `count` wrapped the queue depth, and invalid UTF-8 inside an unknown field was accepted.
#[test]
fn huge_counts_and_bad_utf8_in_unknown_fields_are_malformed() {
    let dir = tempfile::tempdir().unwrap();
    let ops = token(dir.path(), "ops", "ops", None);
    let ingest = token(dir.path(), "exporter", "ingest", None);
    let service = Service::start(dir.path(), &[]);
    let mut body = format!(
        "{{\"ts\":{T0},\"user\":\"{FIREWALLED}\",\"event\":\"queued\",\"count\":18446744073709551615}}\n\
         {{\"ts\":{T0},\"user\":\"{FIREWALLED}\",\"event\":\"depth\",\"depth\":18446744073709551615}}\n\
         {{\"ts\":{T0},\"user\":\"{FIREWALLED}\",\"event\":\"request\",\"note\":\""
    )
    .into_bytes();
    body.extend([0xff, 0xfe]);
    body.extend(b"\"}\n");
    let (status, answer) = service.post("/api/v1/events", Some(&ingest), &body, &[]);
    assert_eq!(status, 200, "{answer}");
    let answer: serde_json::Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(
        (answer["accepted"].as_u64(), answer["malformed"].as_u64()),
        (Some(0), Some(3))
    );
    let malformed = service.json("/api/v1/malformed", &ops);
    let errors: Vec<_> = malformed["recent"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["error"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert!(
        errors.iter().any(|e| e.contains("`count` must be")),
        "{errors:?}"
    );
    assert!(
        errors.iter().any(|e| e.contains("`depth` event")),
        "{errors:?}"
    );
    assert!(
        errors.iter().any(|e| e.contains("not valid UTF-8")),
        "{errors:?}"
    );
}

/// Change fields had no size limit: a 1 MB title was accepted.
#[test]
fn an_oversized_change_field_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let ops = token(dir.path(), "ops", "ops", None);
    let service = Service::start(dir.path(), &[]);
    let change =
        firewall_change("CHG-BIG", 0, 60).replace("Firewall rule migration", &"x".repeat(1 << 20));
    let (status, answer) = service.post("/api/v1/changes", Some(&ops), change.as_bytes(), &JSON);
    assert_eq!(status, 400, "{}", &answer[..answer.len().min(300)]);
    let answer: serde_json::Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(answer["field"], "title");
    assert!(
        answer["error"]
            .as_str()
            .is_some_and(|e| e.contains("at most 1000")),
        "{answer}"
    );
    assert_eq!(service.get("/api/v1/changes/CHG-BIG", Some(&ops)).0, 404);
}

/// One line stamped 2099 sent to the TCP port hung the engine thread at 100 % CPU while `/readyz` said 200. Sent
/// over TCP here, it is refused as out of range, the engine keeps applying the lines after it, and the service
/// stays ready and answers.
#[test]
fn a_line_stamped_2099_over_tcp_neither_stalls_the_engine_nor_readiness() {
    let dir = tempfile::tempdir().unwrap();
    let ops = token(dir.path(), "ops", "ops", None);
    let service = Service::start(dir.path(), &[]);
    let all = String::from_utf8(firewall_lines(0..30, (300, 2_000))).unwrap();
    let fifth = format!("\"ts\":{}", T0 + 5_000);
    let mut lines = String::new();
    for line in all.lines() {
        if line.contains(&fifth) && !lines.contains("2099") {
            lines.push_str(&format!(
                "{{\"ts\":\"2099-12-31T23:59:00Z\",\"user\":\"{FIREWALLED}\",\"event\":\"request\",\"count\":1}}\n"
            ));
        }
        lines.push_str(line);
        lines.push('\n');
    }
    assert!(lines.contains("2099"));
    service.send_tcp(lines.as_bytes());
    // Lines counted: every line but the refused one.
    let count = (lines.lines().count() - 1) as f64;
    let metrics = service.wait_status("/metrics", 200, 30, |m| {
        metric(m, "stormwatch_ingest_lines_total{source=\"tcp\"}") == Some(count)
    });
    assert_eq!(
        metric(
            &metrics,
            "stormwatch_ingest_refused_total{source=\"tcp\",reason=\"out_of_range\"}"
        ),
        Some(1.0),
        "the 2099 line is refused, with its own reason"
    );
    // The engine applied every line after the 2099 one (counted above), and the User's view still answers.
    assert_eq!(
        service
            .get(&format!("/api/v1/users/{FIREWALLED}"), Some(&ops))
            .0,
        200
    );
    let malformed = service.json("/api/v1/malformed", &ops);
    assert!(
        malformed["recent"][0]["error"]
            .as_str()
            .is_some_and(|e| e.contains("out of range")),
        "{malformed}"
    );
    // Ready, and it stays so across several engine ticks.
    for _ in 0..3 {
        assert_eq!(service.get("/readyz", None).0, 200);
        std::thread::sleep(std::time::Duration::from_millis(1_100));
    }
    assert_eq!(service.get("/readyz", None).0, 200);
}
