//! Shared helpers for integration tests: a running `stormwatch serve` on ephemeral ports, a tiny HTTP client,
//! and a small firewall-backlog scenario built in memory.

#![allow(dead_code)]

pub mod ack_sender;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub fn binary() -> Command {
    Command::new(env!("CARGO_BIN_EXE_stormwatch"))
}

/// Runs a `stormwatch` command that must succeed; its standard output.
pub fn run_ok(command: &mut Command) -> String {
    let output = command.output().expect("run stormwatch");
    assert!(
        output.status.success(),
        "{command:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// `stormwatch replay EVENTS --changes CHANGES --report REPORT`: the report.
pub fn replay_report(events: &Path, changes: &Path, report: &Path) -> serde_json::Value {
    run_ok(
        binary()
            .arg("replay")
            .arg(events)
            .arg("--changes")
            .arg(changes)
            .arg("--report")
            .arg(report),
    );
    serde_json::from_slice(&std::fs::read(report).expect("report")).expect("report JSON")
}

/// Creates a token in `data_dir` and returns its secret.
pub fn token(data_dir: &Path, name: &str, role: &str, user: Option<&str>) -> String {
    let mut command = binary();
    command
        .args([
            "tokens",
            "add",
            "--name",
            name,
            "--role",
            role,
            "--data-dir",
        ])
        .arg(data_dir);
    if let Some(user) = user {
        command.args(["--user", user]);
    }
    let output = command.output().expect("run tokens add");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .last()
        .unwrap_or_default()
        .trim()
        .to_owned()
}

pub struct Service {
    pub child: Child,
    /// Every log line the service wrote to stderr so far (the first 200,000).
    pub logs: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    pub http: SocketAddr,
    pub ingest: SocketAddr,
    pub data_dir: PathBuf,
}

impl Service {
    pub fn start(data_dir: &Path, extra: &[&str]) -> Service {
        Service::start_command(binary(), data_dir, extra)
    }

    /// Like `start`, with `command` running the binary (a tracer such as strace wrapping it, say).
    pub fn start_command(mut command: Command, data_dir: &Path, extra: &[&str]) -> Service {
        // Ephemeral loopback ports unless `extra` names its own.
        command.arg("serve");
        for flag in ["--http", "--ingest"] {
            if !extra.contains(&flag) {
                command.args([flag, "127.0.0.1:0"]);
            }
        }
        let mut child = command
            .args(["--log-format", "json", "--data-dir"])
            .arg(data_dir)
            .args(extra)
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("start stormwatch serve");
        let stderr = child.stderr.take().expect("piped stderr");
        let (sender, receiver) = std::sync::mpsc::channel();
        // Every log line also goes to `serve.log` in the data directory, for a failing test to show.
        let mut log = std::fs::File::create(data_dir.join("serve.log")).ok();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(file) = log.as_mut() {
                    let _ = writeln!(file, "{line}");
                }
                let _ = sender.send(line);
            }
        });
        let (mut http, mut ingest) = (None, None);
        let deadline = Instant::now() + Duration::from_secs(30);
        while (http.is_none() || ingest.is_none()) && Instant::now() < deadline {
            let Ok(line) = receiver.recv_timeout(Duration::from_secs(1)) else {
                continue;
            };
            let Ok(log) = serde_json::from_str::<serde_json::Value>(&line) else {
                continue;
            };
            let address = log["fields"]["address"]
                .as_str()
                .and_then(|a| a.parse::<SocketAddr>().ok());
            match log["fields"]["message"].as_str() {
                Some("HTTP API up") => http = address,
                Some("telemetry TCP listener up") => ingest = address,
                _ => {}
            }
        }
        // Keep draining the logs so the service never blocks on a full pipe.
        let logs = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let kept = logs.clone();
        std::thread::spawn(move || {
            while let Ok(line) = receiver.recv() {
                if let Ok(mut kept) = kept.lock()
                    && kept.len() < 200_000
                {
                    kept.push(line);
                }
            }
        });
        Service {
            child,
            logs,
            http: http.expect("HTTP address in the logs"),
            ingest: ingest.expect("ingest address in the logs"),
            data_dir: data_dir.to_owned(),
        }
    }

    pub fn get(&self, path: &str, token: Option<&str>) -> (u16, String) {
        request(self.http, "GET", path, token, &[], &[])
    }

    pub fn post(
        &self,
        path: &str,
        token: Option<&str>,
        body: &[u8],
        headers: &[(&str, &str)],
    ) -> (u16, String) {
        request(self.http, "POST", path, token, headers, body)
    }

    pub fn json(&self, path: &str, token: &str) -> serde_json::Value {
        let (status, body) = self.get(path, Some(token));
        assert_eq!(status, 200, "GET {path}: {body}");
        serde_json::from_str(&body).expect("JSON body")
    }

    /// Polls `path` until `check` holds (or panics after `seconds`). A 404 is "not there yet" (a User the engine
    /// has not applied a line of), any other status but 200 fails at once.
    pub fn wait_for(
        &self,
        path: &str,
        token: &str,
        seconds: u64,
        check: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(seconds);
        loop {
            let (status, body) = self.get(path, Some(token));
            assert!(
                status == 200 || status == 404,
                "GET {path}: {status} {body}"
            );
            if status == 200 {
                let value: serde_json::Value = serde_json::from_str(&body).expect("JSON body");
                if check(&value) {
                    return value;
                }
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting on {path}: last {status} {body}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Registers the notices of a change file (a JSON array) through the API with `token`.
    pub fn register_changes(&self, token: &str, changes: &Path) {
        let (status, answer) = self.post(
            "/api/v1/changes",
            Some(token),
            &std::fs::read(changes).unwrap(),
            &[("Content-Type", "application/json")],
        );
        assert!(status == 200 || status == 201, "{status}: {answer}");
    }

    pub fn send_tcp(&self, data: &[u8]) {
        let mut stream = TcpStream::connect(self.ingest).expect("connect to ingest");
        stream.write_all(data).expect("send telemetry");
    }

    pub fn kill_hard(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn stop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM and waits up to `seconds` for the process to exit; its exit code, or `None` if it is still
    /// running (then it is killed).
    pub fn terminate_within(&mut self, seconds: u64) -> Option<i32> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(seconds);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status.code().unwrap_or(-1));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        self.kill_hard();
        None
    }

    /// Polls `path` (no token) until its status is `status` and `check` holds for the body.
    pub fn wait_status(
        &self,
        path: &str,
        status: u16,
        seconds: u64,
        check: impl Fn(&str) -> bool,
    ) -> String {
        let deadline = Instant::now() + Duration::from_secs(seconds);
        loop {
            let (got, body) = self.get(path, None);
            if got == status && check(&body) {
                return body;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {status} on {path}: last {got} {body}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// How many log lines so far contain `text`.
    pub fn log_count(&self, text: &str) -> usize {
        self.logs
            .lock()
            .map(|logs| logs.iter().filter(|l| l.contains(text)).count())
            .unwrap_or(0)
    }

    pub fn rss_kib(&self) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("VmRSS:"))
                    .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
            })
            .unwrap_or(0)
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.kill_hard();
    }
}

/// A minimal HTTP/1.1 client (one request per connection), enough for tests.
pub fn request(
    address: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String) {
    let mut stream = TcpStream::connect(address).expect("connect to HTTP");
    stream.set_read_timeout(Some(Duration::from_secs(60))).ok();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if let Some(token) = token {
        head.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).expect("send request");
    stream.write_all(body).expect("send body");
    let mut response = Vec::new();
    stream.read_to_end(&mut response).expect("read response");
    let (status, body) = status_and_body(&response);
    (status, dechunk(&body))
}

/// A raw HTTP/1.1 answer's status (0 when there is none) and the bytes after its head, as text.
pub fn status_and_body(response: &[u8]) -> (u16, String) {
    let text = String::from_utf8_lossy(response);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// Undoes chunked transfer encoding if the body looks chunked.
fn dechunk(body: &str) -> String {
    let mut out = String::new();
    let mut rest = body;
    loop {
        let Some((size, after)) = rest.split_once("\r\n") else {
            return body.to_owned();
        };
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else {
            return body.to_owned();
        };
        if size == 0 {
            return out;
        }
        if after.len() < size {
            return body.to_owned();
        }
        out.push_str(&after[..size]);
        rest = after[size..].trim_start_matches("\r\n");
    }
}

/// Writes `toml` as a config file in `dir` and returns the `--config` arguments for it.
/// `stormwatch serve` on ephemeral loopback ports with `data_dir`; add flags, then run it.
pub fn serve_on_loopback(data_dir: impl AsRef<Path>) -> Command {
    let mut command = binary();
    command
        .args([
            "serve",
            "--http",
            "127.0.0.1:0",
            "--ingest",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(data_dir.as_ref());
    command
}

pub fn config_file(dir: &Path, toml: &str) -> [String; 2] {
    let path = dir.join("stormwatch.toml");
    std::fs::write(&path, toml).expect("write config file");
    ["--config".to_owned(), path.display().to_string()]
}

/// The value of an unlabelled or exactly-labelled sample (`name` or `name{labels}`) in Prometheus text.
pub fn metric(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

/// Lines the service has taken (valid and malformed) by its `/metrics`, summed over sources.
pub fn lines_taken(metrics: &str) -> u64 {
    metrics
        .lines()
        .filter(|l| {
            l.starts_with("stormwatch_ingest_lines_total{")
                || l.starts_with("stormwatch_ingest_malformed_total{")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// Runs `command` to the end, failing the test with its stderr unless it succeeds; returns its stdout.
pub fn succeed(command: &mut Command) -> Vec<u8> {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    assert!(
        output.status.success(),
        "{command:?} failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

pub const T0: i64 = 1_773_133_200_000;
pub const FIREWALLED: &str = "90-B3-D5-1F-30-01-00-07";
pub const HEALTHY: &str = "4C-E1-73-00-00-00-11-01";

/// Per-second telemetry of two Users; the first one's endpoint refuses everything from `down.0` to `down.1`
/// (seconds after T0), then drains at twice its inbound rate.
pub fn firewall_lines(seconds: std::ops::Range<i64>, down: (i64, i64)) -> Vec<u8> {
    let mut out = Vec::new();
    let mut waiting = 0i64;
    for second in 0..seconds.end {
        let ts = T0 + second * 1000;
        let mut lines = Vec::new();
        for (user, rate) in [(FIREWALLED, 50i64), (HEALTHY, 20)] {
            lines.push(format!(
                r#"{{"ts":{ts},"user":"{user}","event":"request","count":{rate}}}"#
            ));
            lines.push(format!(
                r#"{{"ts":{},"user":"{user}","event":"queued","count":{rate}}}"#,
                ts + 200
            ));
            let is_down = user == FIREWALLED && (down.0..down.1).contains(&second);
            if is_down {
                waiting += rate;
                lines.push(format!(r#"{{"ts":{},"user":"{user}","event":"delivery_failed","reason":"refused","count":{rate}}}"#, ts + 400));
            } else {
                let delivered = if user == FIREWALLED {
                    (waiting + rate).min(rate * 2)
                } else {
                    rate
                };
                if user == FIREWALLED {
                    waiting = waiting + rate - delivered;
                }
                lines.push(format!(
                    r#"{{"ts":{},"user":"{user}","event":"delivered","count":{delivered}}}"#,
                    ts + 400
                ));
            }
        }
        if seconds.contains(&second) {
            for line in lines {
                out.extend(line.as_bytes());
                out.push(b'\n');
            }
        }
    }
    out
}

pub fn firewall_change(id: &str, start_s: i64, end_s: i64) -> String {
    let at = |s: i64| {
        time::OffsetDateTime::from_unix_timestamp(T0 / 1000 + s)
            .ok()
            .and_then(|t| {
                t.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            })
            .unwrap_or_default()
    };
    format!(
        r#"{{"id":"{id}","user":"{FIREWALLED}","title":"Firewall rule migration","category":"network","start":"{}","end":"{}","status":"in_progress"}}"#,
        at(start_s),
        at(end_s)
    )
}
