//! `stormwatch serve` configuration and integrations: precedence of flags, environment and TOML, the loopback
//! rule, following a rotating file, and pushing incidents to an Alertmanager.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::time::{Duration, Instant};

use support::*;

#[test]
fn print_config_shows_flags_over_environment_over_toml() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("stormwatch.toml");
    std::fs::write(
        &file,
        "http = \"127.0.0.1:7001\"\ningest = \"127.0.0.1:7002\"\nlateness = 9.0\n",
    )
    .unwrap();
    let output = binary()
        .args(["serve", "--print-config", "--config"])
        .arg(&file)
        .args(["--http", "127.0.0.1:7003"])
        .env("STORMWATCH_INGEST", "127.0.0.1:7004")
        .env("STORMWATCH_HTTP", "127.0.0.1:7005")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let config: toml::Value = toml::from_str(&String::from_utf8_lossy(&output.stdout)).unwrap();
    assert_eq!(
        config["http"].as_str(),
        Some("127.0.0.1:7003"),
        "flag beats environment"
    );
    assert_eq!(
        config["ingest"].as_str(),
        Some("127.0.0.1:7004"),
        "environment beats the file"
    );
    assert_eq!(
        config["lateness"].as_float(),
        Some(9.0),
        "the file beats defaults"
    );
}

#[test]
fn a_config_file_with_an_unknown_key_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.toml");
    std::fs::write(&file, "htpp = \"127.0.0.1:1\"\n").unwrap();
    let output = binary()
        .args(["serve", "--print-config", "--config"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("htpp") && stderr.contains("bad.toml"),
        "{stderr}"
    );
}

#[test]
fn listening_beyond_loopback_without_tokens_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let output = binary()
        .args([
            "serve",
            "--http",
            "0.0.0.0:0",
            "--ingest",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("beyond loopback") && stderr.contains("tokens add"),
        "{stderr}"
    );
}

fn tcp_lines_counted(service: &Service, source: &str) -> u64 {
    let (_, metrics) = service.get("/metrics", None);
    metrics
        .lines()
        .find(|l| {
            l.starts_with(&format!(
                "stormwatch_ingest_lines_total{{source=\"{source}\"}}"
            ))
        })
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0)
}

#[test]
fn follow_reads_appends_and_survives_rotation() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("telemetry.ndjson");
    let lines = firewall_lines(0..300, (1_000, 1_000));
    let total = lines.iter().filter(|&&b| b == b'\n').count() as u64;
    // Cut at a line end in the middle: the first half is there at start, the second arrives after rotation.
    let cut = lines[..lines.len() / 2]
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |p| p + 1);
    let first = &lines[..cut];
    std::fs::write(&log, first).unwrap();
    let service = Service::start(dir.path(), &["--follow", log.to_str().unwrap()]);
    let wait = |want: u64| {
        let deadline = Instant::now() + Duration::from_secs(20);
        while tcp_lines_counted(&service, "file") != want {
            assert!(
                Instant::now() < deadline,
                "counted {} of {want}",
                tcp_lines_counted(&service, "file")
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    let first_count = first.iter().filter(|&&b| b == b'\n').count() as u64;
    wait(first_count);
    // Rotate: the old file moves away and a new one takes its name.
    std::fs::rename(&log, dir.path().join("telemetry.ndjson.1")).unwrap();
    std::fs::write(&log, &lines[cut..]).unwrap();
    wait(total);
}

/// A file that is not there yet is reported once, waited for, and followed when it appears.
#[test]
fn follow_of_a_missing_file_says_so_once_and_reads_it_when_it_appears() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("later.ndjson");
    let mut service = Service::start(dir.path(), &["--follow", log.to_str().unwrap()]);
    let serve_log = dir.path().join("serve.log");
    let waiting = |text: &str| {
        text.lines()
            .filter(|l| l.contains("the followed file cannot be opened; waiting for it"))
            .count()
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while waiting(&std::fs::read_to_string(&serve_log).unwrap_or_default()) == 0 {
        assert!(Instant::now() < deadline, "no word about the missing file");
        std::thread::sleep(Duration::from_millis(100));
    }
    let lines = firewall_lines(0..10, (1_000, 1_000));
    let total = lines.iter().filter(|&&b| b == b'\n').count() as u64;
    std::fs::write(&log, &lines).unwrap();
    while tcp_lines_counted(&service, "file") != total {
        assert!(Instant::now() < deadline, "the file was not read");
        std::thread::sleep(Duration::from_millis(200));
    }
    service.stop();
    let text = std::fs::read_to_string(&serve_log).unwrap();
    assert_eq!(waiting(&text), 1, "{text}");
    assert!(
        text.contains("the followed file is there; following it"),
        "{text}"
    );
}

#[test]
fn follow_of_a_directory_is_refused_at_start_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let output = serve_on_loopback(dir.path().join("data"))
        .arg("--follow")
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains(&format!("--follow {} is a directory", dir.path().display())),
        "{stderr}"
    );
}

/// A stand-in Alertmanager that records every POST body.
fn fake_alertmanager() -> (String, std::sync::mpsc::Receiver<serde_json::Value>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming().map_while(Result::ok) {
            let mut reader = BufReader::new(stream);
            let mut length = 0;
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" {
                if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = value.trim().parse().unwrap_or(0);
                }
                line.clear();
            }
            let mut body = vec![0; length];
            if reader.read_exact(&mut body).is_ok()
                && let Ok(value) = serde_json::from_slice(&body)
            {
                let _ = sender.send(value);
            }
            let _ = reader
                .get_mut()
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        }
    });
    (url, receiver)
}

#[test]
fn incidents_are_pushed_to_alertmanager_and_resolved() {
    let dir = tempfile::tempdir().unwrap();
    let ops = token(dir.path(), "ops", "ops", None);
    let (url, posts) = fake_alertmanager();
    let service = Service::start(
        dir.path(),
        &[
            "--alertmanager",
            &url,
            "--public-url",
            "http://stormwatch.example",
        ],
    );
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
    service.send_tcp(&firewall_lines(0..2_400, (300, 700)));
    let deadline = Instant::now() + Duration::from_secs(30);
    let (mut fired, mut resolved) = (None, None);
    while resolved.is_none() && Instant::now() < deadline {
        let Ok(body) = posts.recv_timeout(Duration::from_secs(1)) else {
            continue;
        };
        for alert in body.as_array().into_iter().flatten() {
            if alert["endsAt"].is_null() {
                fired.get_or_insert(alert.clone());
            } else {
                resolved = Some(alert.clone());
            }
        }
    }
    let fired = fired.expect("a firing alert");
    assert_eq!(fired["labels"]["user"], FIREWALLED);
    assert_eq!(fired["labels"]["kind"], "backlog");
    assert!(
        fired["labels"].get("verdict").is_none(),
        "the verdict is an annotation: {fired}"
    );
    assert_eq!(fired["annotations"]["verdict"], "registered_change");
    assert!(
        fired["annotations"]["top_suspect"]
            .as_str()
            .is_some_and(|s| s.starts_with("CHG-FW")),
        "{fired}"
    );
    assert!(
        fired["generatorURL"]
            .as_str()
            .is_some_and(|u| u.starts_with("http://stormwatch.example/#/incident/INC-")),
        "the console page: {fired}"
    );
    let resolved = resolved.expect("the resolution");
    assert_eq!(resolved["labels"]["incident"], fired["labels"]["incident"]);
}

/// A value for every top-level setting, none of them the default. A setting `--print-config` prints without a
/// value here fails the walk below: each new setting must be walked too.
fn sample(key: &str) -> Option<toml::Value> {
    use toml::Value::{Array, Boolean, Float, Integer, String as Text};
    let text = |s: &str| Some(Text(s.to_owned()));
    match key {
        "http" => text("127.0.0.1:7101"),
        "ingest" => text("127.0.0.1:7102"),
        "data_dir" => text("/tmp/stormwatch-walk"),
        "follow" => Some(Array(vec![Text("/tmp/stormwatch-walk.ndjson".into())])),
        "alertmanager" => text("http://127.0.0.1:7103"),
        "public_url" => text("http://stormwatch.example"),
        "lateness" => Some(Float(7.5)),
        "log_format" => text("json"),
        "user_directory" => text("/tmp/stormwatch-users.csv"),
        "ingest_auth" => text("token"),
        "ingest_tls_cert" => text("/tmp/cert.pem"),
        "ingest_tls_key" => text("/tmp/key.pem"),
        "ingest_tls_client_ca" => text("/tmp/ca.pem"),
        "replay_mode" => Some(Boolean(true)),
        "kafka_brokers" => text("127.0.0.1:9092"),
        "kafka_topic" => text("telemetry-walk"),
        "kafka_group" => text("walkers"),
        "snapshot_every"
        | "journal_sync_every_ms"
        | "engine_stall_after_s"
        | "shutdown_grace_s"
        | "store_probe_every_s"
        | "retention_days"
        | "ingest_max_connections"
        | "ingest_max_connections_per_peer"
        | "ingest_max_unauthenticated_connections"
        | "ingest_idle_timeout_s"
        | "ingest_auth_timeout_s"
        | "http_max_connections"
        | "http_header_timeout_s"
        | "http_body_timeout_s"
        | "http_write_timeout_s"
        | "http_max_connections_per_peer"
        | "http_max_unauthenticated_connections"
        | "http_max_body_mib"
        | "http_max_decompressed_mib"
        | "kafka_warmup" => {
            // Distinct per key, so a value landing on the wrong setting shows.
            let bump = key.bytes().map(i64::from).sum::<i64>() % 97;
            Some(Integer(1_000 + bump))
        }
        _ => None,
    }
}

/// `serve --print-config` with `args` and `env`: the printed settings.
fn printed(args: &[String], env: &[(String, String)]) -> toml::Table {
    let output = binary()
        .args(["serve", "--print-config"])
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{args:?} {env:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    toml::from_str(&String::from_utf8_lossy(&output.stdout)).unwrap()
}

/// The top-level settings `--print-config` names, set or not (`# key = "..."` under `# Not set:`), and the keys
/// of its `[engine]` and `[coordination]` tables.
fn every_key() -> (Vec<String>, Vec<(String, String)>) {
    let output = binary().args(["serve", "--print-config"]).output().unwrap();
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let mut top = Vec::new();
    let mut nested = Vec::new();
    let mut table: Option<String> = None;
    for line in text.lines() {
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            table = Some(name.to_owned());
            continue;
        }
        let line = line.strip_prefix("# ").unwrap_or(line);
        let Some((key, _)) = line.split_once(" = ") else {
            continue;
        };
        match &table {
            None => top.push(key.trim().to_owned()),
            Some(table) => nested.push((key.trim().to_owned(), table.clone())),
        }
    }
    (top, nested)
}

/// Issue 23: `STORMWATCH_USER_DIRECTORY` and `STORMWATCH_INGEST_AUTH` were ignored and `serve` refused
/// `--user-directory`. Every setting is walked through its flag, its TOML key and its variable, and each must land.
#[test]
fn every_setting_has_one_name_as_flag_toml_key_and_variable() {
    let (keys, _) = every_key();
    assert!(keys.len() >= 30, "{keys:?}");
    let missing: Vec<&String> = keys.iter().filter(|k| sample(k).is_none()).collect();
    assert!(missing.is_empty(), "no sample value for {missing:?}");
    let dir = tempfile::tempdir().unwrap();

    let mut file = toml::Table::new();
    let mut flags = Vec::new();
    let mut env = Vec::new();
    for key in &keys {
        let value = sample(key).unwrap();
        file.insert(key.clone(), value.clone());
        let flag = format!("--{}", key.replace('_', "-"));
        let variable = format!("STORMWATCH_{}", key.to_ascii_uppercase());
        match &value {
            toml::Value::Array(items) => {
                for item in items {
                    flags.extend([flag.clone(), item.as_str().unwrap().to_owned()]);
                }
                env.push((variable, items[0].as_str().unwrap().to_owned()));
            }
            // A switch given alone means true.
            toml::Value::Boolean(true) => {
                flags.push(flag);
                env.push((variable, "true".into()));
            }
            toml::Value::String(text) => {
                flags.extend([flag, text.clone()]);
                env.push((variable, text.clone()));
            }
            other => {
                flags.extend([flag, other.to_string()]);
                env.push((variable, other.to_string()));
            }
        }
    }
    let path = dir.path().join("walk.toml");
    std::fs::write(&path, toml::to_string(&file).unwrap()).unwrap();
    let routes = [
        (
            "the TOML file",
            printed(&["--config".into(), path.display().to_string()], &[]),
        ),
        ("the flags", printed(&flags, &[])),
        ("the variables", printed(&[], &env)),
    ];
    for (route, config) in &routes {
        for key in &keys {
            assert_eq!(
                config.get(key),
                sample(key).as_ref(),
                "`{key}` given through {route}"
            );
        }
    }
}

/// An `[engine]` or `[coordination]` setting is set only in the file: as a flag or a variable it is refused,
/// naming its table; the file itself and one-off flags are refused where they cannot be given.
#[test]
fn a_setting_given_where_it_cannot_be_set_is_refused_saying_where_it_can() {
    let (top, nested) = every_key();
    let refused = |mut command: std::process::Command| {
        let output = command.output().unwrap();
        assert_eq!(output.status.code(), Some(2), "{command:?} was accepted");
        String::from_utf8_lossy(&output.stderr).into_owned()
    };
    let mut walked = 0;
    for (key, table) in nested.iter().filter(|(key, _)| !top.contains(key)) {
        let mut flag = binary();
        flag.args([
            "serve",
            "--print-config",
            &format!("--{}", key.replace('_', "-")),
            "1",
        ]);
        let text = refused(flag);
        assert!(
            text.contains(&format!("[{table}]")) && text.contains("--config"),
            "--{key}: {text}"
        );
        let mut variable = binary();
        variable
            .args(["serve", "--print-config"])
            .env(format!("STORMWATCH_{}", key.to_ascii_uppercase()), "1");
        let text = refused(variable);
        assert!(text.contains(&format!("[{table}]")), "{key}: {text}");
        walked += 1;
    }
    assert!(walked >= 40, "only {walked} table settings walked");

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("self.toml");
    std::fs::write(&file, "config = \"other.toml\"\n").unwrap();
    let mut named = binary();
    named
        .args(["serve", "--print-config", "--config"])
        .arg(&file);
    assert!(refused(named).contains("STORMWATCH_CONFIG"));
    let mut one_off = binary();
    one_off
        .args(["serve", "--print-config"])
        .env("STORMWATCH_ACCEPT_LOST_JOURNAL", "1");
    assert!(refused(one_off).contains("--accept-lost-journal"));
}

/// Issue 23: Prometheus paged (blind, lagging) as soon as a replayed feed ended. `--replay-mode` publishes
/// `stormwatch_replay_mode 1`, which the shipped rules read (their promtool tests hold what they then do).
#[test]
fn replay_mode_is_published_for_the_rules() {
    for (args, value) in [(&["--replay-mode"][..], 1.0), (&[][..], 0.0)] {
        let dir = tempfile::tempdir().unwrap();
        let service = Service::start(dir.path(), args);
        let (_, page) = service.get("/metrics", None);
        assert_eq!(
            metric(&page, "stormwatch_replay_mode"),
            Some(value),
            "{args:?}"
        );
    }
}
