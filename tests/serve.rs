//! Drives `stormwatch serve` end to end: TCP and HTTP ingest, incidents, late change registration, tokens,
//! kill -9 and restart, metrics, malformed floods and backpressure.

mod support;

use std::io::Write;

use support::*;

fn open_backlog(incidents: &serde_json::Value) -> Option<&serde_json::Value> {
    incidents
        .as_array()?
        .iter()
        .find(|i| i["user"] == FIREWALLED && i["kind"] == "backlog" && i["resolved"].is_null())
}

#[test]
fn tcp_stream_opens_the_backlog_and_metrics_carry_its_depth() {
    let dir = tempfile::tempdir().unwrap();
    let ops = token(dir.path(), "ops", "ops", None);
    let service = Service::start(dir.path(), &[]);
    service.send_tcp(&firewall_lines(0..500, (300, 2_000)));
    let incidents = service.wait_for("/api/v1/incidents?open=true", &ops, 30, |v| {
        open_backlog(v).is_some()
    });
    let incident = open_backlog(&incidents).unwrap();
    assert_eq!(incident["verdict"], "unregistered_change_suspected");
    let onset = incident["onset"].as_i64().unwrap();
    assert!(
        (onset - (T0 + 300_000)).abs() <= 5_000,
        "onset {}",
        onset - T0
    );

    // Gauges are published once a second: poll until the tick after the opening.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let metrics = loop {
        let (status, metrics) = service.get("/metrics", None);
        assert_eq!(status, 200);
        let depth = regex_free_sample(&metrics, "stormwatch_user_queue_depth", FIREWALLED);
        if depth.is_some_and(|d| d > 5_000.0) {
            break metrics;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "depth gauge of the firewalled User: {depth:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    for line in metrics
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        assert!(valid_sample_line(line), "not Prometheus text: {line}");
    }
    let detail = service.json(
        &format!("/api/v1/incidents/{}", incident["id"].as_str().unwrap()),
        &ops,
    );
    assert!(
        detail["series"][0]["points"]
            .as_array()
            .is_some_and(|p| p.len() > 100),
        "series around the onset"
    );
}

/// The value of `name{user="..."...}` in Prometheus text.
fn regex_free_sample(metrics: &str, name: &str, user: &str) -> Option<f64> {
    metrics
        .lines()
        .find(|l| l.starts_with(&format!("{name}{{")) && l.contains(&format!("user=\"{user}\"")))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

fn valid_sample_line(line: &str) -> bool {
    let Some((series, value)) = line.rsplit_once(' ') else {
        return false;
    };
    let name_end = series.find('{').unwrap_or(series.len());
    let name = &series[..name_end];
    let labels_ok = name_end == series.len()
        || (series.ends_with('}') && series[name_end..].matches('"').count() % 2 == 0);
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
        && labels_ok
        && (value.parse::<f64>().is_ok() || matches!(value, "NaN" | "+Inf" | "-Inf"))
}

#[test]
fn http_ingest_with_gzip_opens_the_backlog_and_counts_lines() {
    let dir = tempfile::tempdir().unwrap();
    let ops = token(dir.path(), "ops", "ops", None);
    let ingest = token(dir.path(), "exporter", "ingest", None);
    let service = Service::start(dir.path(), &[]);
    let mut body = firewall_lines(0..500, (300, 2_000));
    body.extend(b"this line is not telemetry\n");
    let lines = body.iter().filter(|&&b| b == b'\n').count() as u64;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(&body).unwrap();
    let gz = encoder.finish().unwrap();
    let (status, answer) = service.post(
        "/api/v1/events",
        Some(&ingest),
        &gz,
        &[("Content-Encoding", "gzip")],
    );
    assert_eq!(status, 200, "{answer}");
    let answer: serde_json::Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(answer["accepted"], lines - 1);
    assert_eq!(answer["malformed"], 1);
    service.wait_for("/api/v1/incidents?open=true", &ops, 30, |v| {
        open_backlog(v).is_some()
    });
    let malformed = service.json("/api/v1/malformed", &ops);
    assert_eq!(malformed["total"], 1);
    assert_eq!(malformed["recent"][0]["raw"], "this line is not telemetry");
}

#[test]
fn a_change_registered_after_the_incident_opened_becomes_its_top_suspect() {
    let dir = tempfile::tempdir().unwrap();
    let ops = token(dir.path(), "ops", "ops", None);
    let service = Service::start(dir.path(), &[]);
    service.send_tcp(&firewall_lines(0..500, (300, 2_000)));
    let incidents = service.wait_for("/api/v1/incidents?open=true", &ops, 30, |v| {
        open_backlog(v).is_some()
    });
    let id = open_backlog(&incidents).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let change = firewall_change("CHG-LATE-1", 280, 3_600);
    let (status, body) = service.post(
        "/api/v1/changes",
        Some(&ops),
        change.as_bytes(),
        &[("Content-Type", "application/json")],
    );
    assert_eq!(status, 201, "{body}");
    let incident = service.wait_for(&format!("/api/v1/incidents/{id}"), &ops, 20, |v| {
        v["verdict"] == "registered_change"
    });
    assert_eq!(incident["suspects"][0]["change"], "CHG-LATE-1");
    assert!(
        incident["suspects"][0]["reasons"]
            .as_array()
            .is_some_and(|r| r.iter().any(|x| x == "same User"))
    );
}

#[test]
fn tokens_gate_every_write_and_confine_user_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let ops = token(dir.path(), "ops", "ops", None);
    let own = token(dir.path(), "supplier", "user", Some(FIREWALLED));
    let ingest = token(dir.path(), "exporter", "ingest", None);
    let service = Service::start(dir.path(), &[]);
    let json = [("Content-Type", "application/json")];
    let change = firewall_change("CHG-1", 0, 60);
    assert_eq!(
        service
            .post("/api/v1/changes", None, change.as_bytes(), &json)
            .0,
        401
    );
    assert_eq!(service.post("/api/v1/events", None, b"{}\n", &[]).0, 401);
    assert_eq!(
        service
            .post(
                "/api/v1/changes",
                Some("sw_wrong"),
                change.as_bytes(),
                &json
            )
            .0,
        401
    );
    assert_eq!(
        service
            .post("/api/v1/changes", Some(&own), change.as_bytes(), &json)
            .0,
        201
    );
    let other = change
        .replace(FIREWALLED, HEALTHY)
        .replace("CHG-1", "CHG-2");
    assert_eq!(
        service
            .post("/api/v1/changes", Some(&own), other.as_bytes(), &json)
            .0,
        403
    );
    assert_eq!(
        service
            .get(&format!("/api/v1/changes?user={HEALTHY}"), Some(&own))
            .0,
        403
    );
    assert_eq!(
        service
            .get(&format!("/api/v1/users/{HEALTHY}"), Some(&own))
            .0,
        403
    );
    assert_eq!(service.get("/api/v1/changes", Some(&ingest)).0, 403);
    assert_eq!(service.post("/api/v1/events", Some(&own), b"", &[]).0, 403);
    assert_eq!(service.get("/api/v1/malformed", Some(&own)).0, 403);
    let visible = service.json("/api/v1/changes", &own);
    assert_eq!(visible.as_array().map(Vec::len), Some(1));
    assert_eq!(
        service.json("/api/v1/changes/CHG-1", &ops)["audit"][0]["actor"],
        "supplier"
    );
}

#[test]
fn kill_9_and_restart_keep_changes_incidents_and_the_open_incident() {
    let dir = tempfile::tempdir().unwrap();
    let ops = token(dir.path(), "ops", "ops", None);
    let mut service = Service::start(dir.path(), &["--snapshot-every", "1"]);
    let change = firewall_change("CHG-FW", 280, 3_600);
    assert_eq!(
        service
            .post(
                "/api/v1/changes",
                Some(&ops),
                change.as_bytes(),
                &[("Content-Type", "application/json")]
            )
            .0,
        201
    );
    service.send_tcp(&firewall_lines(0..500, (300, 700)));
    let incidents = service.wait_for("/api/v1/incidents?open=true", &ops, 30, |v| {
        open_backlog(v).is_some()
    });
    let id = open_backlog(&incidents).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // Let a snapshot cover the open incident, then kill without warning.
    std::thread::sleep(std::time::Duration::from_millis(2_500));
    service.kill_hard();

    let service = Service::start(dir.path(), &["--snapshot-every", "1"]);
    // Ready once the snapshot and the journal after it are restored: 503 ("restoring") until then.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while service.get("/readyz", None).0 != 200 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(service.get("/readyz", None).0, 200);
    assert_eq!(
        service.json("/api/v1/changes/CHG-FW", &ops)["change"]["id"],
        "CHG-FW"
    );
    let open = service.json("/api/v1/incidents?open=true", &ops);
    assert_eq!(
        open_backlog(&open).map(|i| i["id"].clone()),
        Some(id.clone().into())
    );
    // The rest of the day: the endpoint comes back, the queue drains, the same incident resolves.
    service.send_tcp(&firewall_lines(500..2_400, (300, 700)));
    let all = service.wait_for("/api/v1/incidents", &ops, 30, |v| {
        v.as_array().is_some_and(|a| {
            a.iter()
                .any(|i| i["id"] == id.as_str() && !i["resolved"].is_null())
        })
    });
    let backlogs: Vec<_> = all
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["kind"] == "backlog")
        .collect();
    assert_eq!(
        backlogs.len(),
        1,
        "raised once, not again after the restart: {all}"
    );
    assert_eq!(backlogs[0]["suspects"][0]["change"], "CHG-FW");
}

#[test]
fn a_flood_of_malformed_and_oversized_lines_leaves_the_service_responsive() {
    let dir = tempfile::tempdir().unwrap();
    let ops = token(dir.path(), "ops", "ops", None);
    let service = Service::start(dir.path(), &[]);
    let mut flood = Vec::new();
    for n in 0..200_000u32 {
        flood.extend(format!("{{\"ts\":\"not a time {n}\",\"user\":\"??\"}}\n").as_bytes());
    }
    let oversized = vec![b'x'; 200 * 1024];
    for _ in 0..50 {
        flood.extend(&oversized);
        flood.push(b'\n');
    }
    flood.extend(&[0xff, 0xfe, 0x00, b'\n']);
    service.send_tcp(&flood);
    let malformed = service.wait_for("/api/v1/malformed?limit=5", &ops, 60, |v| {
        v["total"] == 200_051
    });
    assert_eq!(malformed["recent"].as_array().map(Vec::len), Some(5));
    assert_eq!(service.get("/healthz", None), (200, "ok\n".to_owned()));
    let rss = service.rss_kib();
    assert!(
        rss > 0 && rss < 300 * 1024,
        "resident memory {rss} KiB after the flood"
    );
}

#[test]
fn a_slow_engine_makes_tcp_senders_wait_and_loses_no_line() {
    let dir = tempfile::tempdir().unwrap();
    let service = Service::start(dir.path(), &["--engine-queue", "1"]);
    let lines = firewall_lines(0..3_000, (4_000, 4_000));
    let per_sender = lines.iter().filter(|&&b| b == b'\n').count() as u64;
    let senders: Vec<_> = (0..4)
        .map(|_| {
            let (address, lines) = (service.ingest, lines.clone());
            std::thread::spawn(move || {
                let mut stream = std::net::TcpStream::connect(address).unwrap();
                stream.write_all(&lines).unwrap();
            })
        })
        .collect();
    for sender in senders {
        sender.join().unwrap();
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let (_, metrics) = service.get("/metrics", None);
        let counted = metrics
            .lines()
            .find(|l| l.starts_with("stormwatch_ingest_lines_total{source=\"tcp\"}"))
            .and_then(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .unwrap_or(0);
        if counted == 4 * per_sender {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "counted {counted} of {} lines",
            4 * per_sender
        );
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
}

#[test]
fn a_change_registered_from_the_command_line_reaches_the_running_engine() {
    let dir = tempfile::tempdir().unwrap();
    let ops = token(dir.path(), "ops", "ops", None);
    let service = Service::start(dir.path(), &[]);
    service.send_tcp(&firewall_lines(0..500, (300, 2_000)));
    let incidents = service.wait_for("/api/v1/incidents?open=true", &ops, 30, |v| {
        open_backlog(v).is_some()
    });
    let id = open_backlog(&incidents).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let added = binary()
        .args([
            "changes",
            "add",
            "--id",
            "CHG-CLI-1",
            "--user",
            FIREWALLED,
            "--title",
            "New firewall",
            "--category",
            "network",
        ])
        .args([
            "--start",
            "2026-03-10T09:04:00Z",
            "--end",
            "2026-03-10T11:00:00Z",
            "--data-dir",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        added.status.success(),
        "{}",
        String::from_utf8_lossy(&added.stderr)
    );
    let incident = service.wait_for(&format!("/api/v1/incidents/{id}"), &ops, 20, |v| {
        v["verdict"] == "registered_change"
    });
    assert_eq!(incident["suspects"][0]["change"], "CHG-CLI-1");
}

/// A User whose clock runs ten minutes fast is recognised: its offset shows in the User API and the metrics, and
/// nobody's lines are late because of it. A line stamped two days past the wall clock is refused as out of range.
#[test]
fn a_skewed_clock_is_recognised_and_a_line_past_the_wall_clock_is_refused() {
    const SKEWED: &str = "90-B3-D5-1F-30-01-00-09";
    let dir = tempfile::tempdir().unwrap();
    let ops = token(dir.path(), "ops", "ops", None);
    let ingest = token(dir.path(), "exporter", "ingest", None);
    let service = Service::start(dir.path(), &[]);
    let healthy = firewall_lines(0..120, (1_000, 1_000));
    let healthy = String::from_utf8(healthy).unwrap();
    let mut body = String::new();
    // Interleave the skewed User's lines second by second with the others'.
    for (second, chunk) in healthy.lines().collect::<Vec<_>>().chunks(6).enumerate() {
        for line in chunk {
            body.push_str(line);
            body.push('\n');
        }
        let ts = T0 + second as i64 * 1000 + 600_000;
        body.push_str(&format!(
            "{{\"ts\":{},\"user\":\"{SKEWED}\",\"event\":\"request\",\"count\":5}}\n",
            ts + 100
        ));
        body.push_str(&format!(
            "{{\"ts\":{},\"user\":\"{SKEWED}\",\"event\":\"queued\",\"count\":5}}\n",
            ts + 300
        ));
        body.push_str(&format!(
            "{{\"ts\":{},\"user\":\"{SKEWED}\",\"event\":\"delivered\",\"count\":5}}\n",
            ts + 500
        ));
    }
    let wall = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let far = format!(
        "{{\"ts\":{},\"user\":\"{HEALTHY}\",\"event\":\"request\",\"count\":1}}",
        wall + 2 * 86_400_000
    );
    body.push_str(&far);
    body.push('\n');
    let (status, answer) = service.post("/api/v1/events", Some(&ingest), body.as_bytes(), &[]);
    assert_eq!(status, 200, "{answer}");
    let answer: serde_json::Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(answer["refused"], 1, "{answer}");
    assert_eq!(answer["malformed"], 0, "{answer}");
    let user = service.wait_for(&format!("/api/v1/users/{SKEWED}"), &ops, 30, |v| {
        v["clock_offset_s"].as_f64().is_some_and(|o| o != 0.0)
    });
    let offset = user["clock_offset_s"].as_f64().unwrap();
    assert!((offset - 600.0).abs() <= 1.0, "offset {offset}");
    let others = service.json(&format!("/api/v1/users/{FIREWALLED}"), &ops);
    assert_eq!(others["clock_offset_s"], 0.0);
    let malformed = service.json("/api/v1/malformed", &ops);
    assert_eq!(malformed["total"], 1);
    let error = malformed["recent"][0]["error"].as_str().unwrap_or_default();
    assert!(error.contains("out of range"), "{error}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (_, metrics) = service.get("/metrics", None);
        let gauge = regex_free_sample(&metrics, "stormwatch_user_clock_offset_seconds", SKEWED);
        let late = metrics
            .lines()
            .find(|l| l.starts_with("stormwatch_ingest_late_total"))
            .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok());
        if gauge.is_some_and(|g| (g - offset).abs() < 0.001) && late.is_some() {
            assert_eq!(late, Some(0.0), "no line late");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "clock offset gauge of the skewed User: {gauge:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

/// Issue 13: the stored incident froze at the figures it had when it opened, while the engine's backlog kept
/// growing. The API's peak must follow the engine's (the User's depth) within a few seconds, all along.
#[test]
fn an_open_incident_record_follows_the_engines_growing_backlog() {
    let dir = tempfile::tempdir().unwrap();
    let ops = token(dir.path(), "ops", "ops", None);
    let service = Service::start(dir.path(), &[]);
    let user_path = format!("/api/v1/users/{FIREWALLED}");
    let (mut previous_peak, mut previous_failed) = (0, 0);
    for (part, seconds) in [(0, 0..500), (1, 500..1_200), (2, 1_200..2_000)] {
        service.send_tcp(&firewall_lines(seconds.clone(), (300, 3_000)));
        // 50 messages a second wait from second 300 on; the engine has the whole part once its depth is there.
        let expected = (seconds.end - 300 - 10) * 50;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        let depth = loop {
            // 404 until the engine has seen the User's first line.
            let (status, body) = service.get(&user_path, Some(&ops));
            let depth = serde_json::from_str::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v["depth"].as_u64());
            if let Some(depth) = depth.filter(|&d| d >= expected as u64) {
                break depth;
            }
            assert!(std::time::Instant::now() < deadline, "{status} {body}");
            std::thread::sleep(std::time::Duration::from_millis(200));
        };
        let incidents = service.wait_for("/api/v1/incidents?open=true", &ops, 20, |v| {
            open_backlog(v).is_some_and(|i| i["peak_depth"].as_u64() >= Some(depth))
        });
        let incident = open_backlog(&incidents).unwrap();
        let peak = incident["peak_depth"].as_u64().unwrap();
        eprintln!("part {part}: engine depth {depth}, API peak {peak}");
        assert!(
            peak > previous_peak,
            "peak grows: {previous_peak} -> {peak}"
        );
        let failed = incident["evidence"]["failed_deliveries"].as_u64().unwrap();
        assert!(failed > previous_failed, "failures grow: {incident}");
        previous_failed = failed;
        let id = incident["id"].as_str().unwrap();
        let detail = service.json(&format!("/api/v1/incidents/{id}"), &ops);
        assert_eq!(detail["peak_depth"].as_u64(), Some(peak), "{detail}");
        previous_peak = peak;
    }
}

/// Issue 13: the incident chart came from the engine's per-second ring only, so it emptied a quarter of an hour
/// into a backlog. It now covers the incident's life (coarser as it ages) and survives a restart.
#[test]
fn a_long_incidents_chart_keeps_its_onset_and_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let ops = token(dir.path(), "ops", "ops", None);
    let mut service = Service::start(dir.path(), &["--snapshot-every", "1"]);
    service.send_tcp(&firewall_lines(0..2_000, (300, 3_000)));
    // The engine has the whole half hour once the stored peak is there (the record follows it each tick).
    let incidents = service.wait_for("/api/v1/incidents?open=true", &ops, 60, |v| {
        open_backlog(v).is_some_and(|i| i["peak_depth"].as_u64() >= Some((1_990 - 300) * 50))
    });
    let id = open_backlog(&incidents).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let chart = |service: &Service| {
        let detail = service.json(&format!("/api/v1/incidents/{id}"), &ops);
        detail["series"][0]["points"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    };
    let check = |points: &[serde_json::Value], when: &str| {
        let ts: Vec<i64> = points.iter().map(|p| p["ts"].as_i64().unwrap()).collect();
        assert_eq!(
            ts.first(),
            Some(&(T0 + 180_000)),
            "{when}: the run-up before the onset"
        );
        assert!(ts.windows(2).all(|w| w[0] < w[1]), "{when}: in order");
        let last = *ts.last().unwrap();
        assert!(
            last >= T0 + 1_900_000,
            "{when}: up to the end, last {}",
            (last - T0) / 1000
        );
        let per_second = points.iter().filter(|p| p["step_s"] == 1).count();
        assert!(
            per_second >= 400,
            "{when}: per second around onset and detection: {per_second}"
        );
        assert!(
            points.len() < 3_600,
            "{when}: coarser as it ages: {} points",
            points.len()
        );
        let deepest = points
            .iter()
            .filter_map(|p| p["depth"].as_u64())
            .max()
            .unwrap();
        assert!(
            deepest >= 80_000,
            "{when}: the chart shows the backlog ({deepest})"
        );
    };
    let before = chart(&service);
    eprintln!("before the restart: {} points", before.len());
    check(&before, "before the restart");

    service.stop();
    let service = Service::start(dir.path(), &["--snapshot-every", "1"]);
    let after = chart(&service);
    eprintln!("after the restart: {} points", after.len());
    check(&after, "after the restart");
}

/// Issue 13's small API points: a repeated registration is not a creation, a bad query string gets the JSON error
/// body, `user=*` means network-wide incidents, and ratios are rounded.
#[test]
fn small_api_points_answer_as_documented() {
    let dir = tempfile::tempdir().unwrap();
    let ops = token(dir.path(), "ops", "ops", None);
    let service = Service::start(dir.path(), &[]);
    let change = firewall_change("CHG-TWICE", 280, 3_600);
    let json = [("Content-Type", "application/json")];
    let first = service.post("/api/v1/changes", Some(&ops), change.as_bytes(), &json);
    assert_eq!(first.0, 201, "{}", first.1);
    let again = service.post("/api/v1/changes", Some(&ops), change.as_bytes(), &json);
    assert_eq!(again.0, 200, "nothing changed: {}", again.1);
    assert!(again.1.contains("\"unchanged\""), "{}", again.1);

    for path in [
        "/api/v1/incidents?open=maybe",
        "/api/v1/incidents?kind=tsunami",
        "/api/v1/changes?from=1&from=2",
    ] {
        let (status, body) = service.get(path, Some(&ops));
        assert_eq!(status, 400, "{path}: {body}");
        let error: serde_json::Value = serde_json::from_str(&body).expect("a JSON error body");
        assert!(
            error["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{path}: {body}"
        );
    }

    service.send_tcp(&firewall_lines(0..500, (300, 2_000)));
    service.wait_for("/api/v1/incidents?open=true", &ops, 30, |v| {
        open_backlog(v).is_some()
    });
    let network = service.json("/api/v1/incidents?user=*", &ops);
    assert_eq!(
        network,
        serde_json::json!([]),
        "one User's backlog is not network-wide"
    );
    let user = service.json(&format!("/api/v1/users/{FIREWALLED}"), &ops);
    // The cold start, shown: what each model of normal can say yet.
    let models: Vec<(&str, &str)> = user["model"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["flow"].as_str().unwrap(), m["state"].as_str().unwrap()))
        .collect();
    assert_eq!(
        models.iter().map(|m| m.0).collect::<Vec<_>>(),
        ["requests", "queued_alerts", "queued"],
        "{user}"
    );
    assert!(
        models
            .iter()
            .all(|m| ["cold", "level", "daily"].contains(&m.1)),
        "{user}"
    );
    for flow in user["flows"].as_array().unwrap() {
        for key in ["rate", "baseline", "ratio"] {
            if let Some(value) = flow[key].as_f64() {
                assert!(
                    ((value * 100.0).round() - value * 100.0).abs() < 1e-6,
                    "{key} rounded to 2 decimals: {flow}"
                );
            }
        }
    }
}

#[test]
fn a_pending_backlog_is_on_watch_in_the_api_and_metrics_before_any_incident() {
    let dir = tempfile::tempdir().unwrap();
    let ops = token(dir.path(), "ops", "ops", None);
    let service = Service::start(dir.path(), &[]);
    // Refused from 300 s: on watch from about 310 s, and the one-minute rule keeps it from opening before 360 s.
    // The input ends at 340 s, and an idle stream moves event time on by the lateness at most.
    service.send_tcp(&firewall_lines(0..340, (300, 2_000)));
    let user = service.wait_for(&format!("/api/v1/users/{FIREWALLED}"), &ops, 30, |v| {
        v["watch"].as_array().is_some_and(|w| !w.is_empty())
    });
    let watch = &user["watch"][0];
    assert_eq!(watch["kind"], "backlog", "{user}");
    let since = watch["since"].as_i64().unwrap() - T0;
    assert!((300_000..=320_000).contains(&since), "on watch {since} ms");
    assert!((watch["onset"].as_i64().unwrap() - (T0 + 300_000)).abs() <= 5_000);
    assert!(
        user["anomalies"]
            .as_array()
            .unwrap()
            .contains(&"backlog".into())
    );
    let healthy = service.json(&format!("/api/v1/users/{HEALTHY}"), &ops);
    assert_eq!(healthy["watch"], serde_json::json!([]));
    let overview = service.json("/api/v1/console/overview", &ops);
    assert_eq!(overview["incidents"], serde_json::json!([]), "nobody paged");
    assert!(overview["users_in_trouble"][0]["watch"][0]["kind"] == "backlog");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (_, metrics) = service.get("/metrics", None);
        let gauge = metrics
            .lines()
            .find(|l| {
                l.starts_with("stormwatch_user_watch{")
                    && l.contains(&format!("user=\"{FIREWALLED}\""))
                    && l.contains("kind=\"backlog\"")
            })
            .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok());
        if gauge == Some(1.0) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "stormwatch_user_watch never 1: {gauge:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let open = service.json("/api/v1/incidents?open=true", &ops);
    assert_eq!(open, serde_json::json!([]), "still only on watch");
}

/// Issue 23: registering an existing id over HTTP merges the fields given and the answer lists each change;
/// `?replace=true` replaces the notice whole and says so.
#[test]
fn registering_an_existing_id_merges_and_the_answer_names_each_change() {
    let dir = tempfile::tempdir().unwrap();
    let ops = token(dir.path(), "ops", "ops", None);
    let service = Service::start(dir.path(), &[]);
    let json = [("Content-Type", "application/json")];
    let post = |path: &str, body: serde_json::Value| {
        let (status, answer) = service.post(path, Some(&ops), body.to_string().as_bytes(), &json);
        (
            status,
            serde_json::from_str::<serde_json::Value>(&answer).unwrap(),
        )
    };
    let (status, _) = post(
        "/api/v1/changes",
        serde_json::json!({
            "id": "CHG-M", "user": FIREWALLED, "title": "Firewall rule migration", "category": "network",
            "start": "2026-03-10T09:00:00Z", "end": "2026-03-10T10:00:00Z", "status": "in_progress",
            "contact": "netops@example.invalid",
        }),
    );
    assert_eq!(status, 201);
    let (status, answer) = post(
        "/api/v1/changes",
        serde_json::json!({"id": "CHG-M", "end": "2026-03-10T10:30:00Z"}),
    );
    assert_eq!(status, 201, "{answer}");
    let outcome = &answer["changes"][0];
    assert_eq!(outcome["outcome"], "updated");
    assert_eq!(outcome["replaced"], false);
    assert_eq!(
        outcome["changed"],
        serde_json::json!([{"field": "end", "before": "2026-03-10T10:00:00Z", "after": "2026-03-10T10:30:00Z"}])
    );
    let stored = service.json("/api/v1/changes/CHG-M", &ops)["change"].clone();
    assert_eq!(
        (&stored["contact"], &stored["status"]),
        (&"netops@example.invalid".into(), &"in_progress".into())
    );
    // A replace must be a whole notice, and clears what it does not give.
    let (status, refused) = post(
        "/api/v1/changes?replace=true",
        serde_json::json!({"id": "CHG-M", "end": "2026-03-10T10:30:00Z"}),
    );
    assert_eq!(
        (status, &refused["field"]),
        (400, &"user".into()),
        "{refused}"
    );
    let (status, answer) = post(
        "/api/v1/changes?replace=true",
        serde_json::json!({
            "id": "CHG-M", "user": FIREWALLED, "title": "Firewall rule migration", "category": "network",
            "start": "2026-03-10T09:00:00Z", "end": "2026-03-10T10:30:00Z",
        }),
    );
    assert_eq!(status, 201, "{answer}");
    assert_eq!(answer["changes"][0]["replaced"], true);
    let stored = service.json("/api/v1/changes/CHG-M", &ops)["change"].clone();
    assert!(stored.get("contact").is_none(), "{stored}");
    assert_eq!(stored["status"], "planned");
    // In an array, a merge that leaves a new notice incomplete is refused by index and field; nothing is written.
    let (status, refused) = post(
        "/api/v1/changes",
        serde_json::json!([{"id": "CHG-M", "title": "renamed"}, {"id": "CHG-NEW", "title": "half"}]),
    );
    assert_eq!(status, 400, "{refused}");
    assert_eq!(
        (&refused["index"], &refused["field"]),
        (&1.into(), &"user".into())
    );
    assert_eq!(
        service.json("/api/v1/changes/CHG-M", &ops)["change"]["title"],
        "Firewall rule migration"
    );
}

/// Issue 23: a first `serve` logged six "store schema migrated" lines and neither the console's address nor that
/// the console needs a token nobody had made yet.
#[test]
fn the_first_start_names_the_console_and_the_token_command_in_a_few_lines() {
    let dir = tempfile::tempdir().unwrap();
    let log_lines = |service: &Service| -> Vec<serde_json::Value> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            let text =
                std::fs::read_to_string(service.data_dir.join("serve.log")).unwrap_or_default();
            let lines: Vec<serde_json::Value> = text
                .lines()
                .filter_map(|l| serde_json::from_str(l).ok())
                .collect();
            let console = lines.iter().any(|l| l["fields"]["console"].is_string());
            if console || std::time::Instant::now() > deadline {
                return lines;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    };
    let message = |line: &serde_json::Value| {
        line["fields"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    let mut service = Service::start(dir.path(), &[]);
    // The token warning follows the console line; give it a moment.
    std::thread::sleep(std::time::Duration::from_millis(500));
    let lines = log_lines(&service);
    let store_lines: Vec<String> = lines
        .iter()
        .map(message)
        .filter(|m| m.starts_with("store "))
        .collect();
    assert_eq!(store_lines, ["store created"], "one line for a new store");
    let console = format!("http://{}/", service.http);
    assert!(
        lines
            .iter()
            .any(|l| l["fields"]["console"] == console.as_str()),
        "the console's address {console} in the log"
    );
    let hint = lines
        .iter()
        .map(message)
        .find(|m| m.contains("no API token exists yet"))
        .expect("a hint while no token exists");
    assert!(
        hint.contains(&format!(
            "stormwatch tokens add --name ops --role ops --data-dir {}",
            dir.path().display()
        )),
        "{hint}"
    );
    service.stop();
    token(dir.path(), "ops", "ops", None);
    let service = Service::start(dir.path(), &[]);
    std::thread::sleep(std::time::Duration::from_millis(500));
    let again: Vec<String> = log_lines(&service).iter().map(message).collect();
    assert!(
        !again
            .iter()
            .any(|m| m.contains("no API token") || m.starts_with("store ")),
        "{again:?}"
    );
}
