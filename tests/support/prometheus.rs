//! Real Prometheus and Alertmanager processes for the end-to-end test: finding the binaries, free loopback
//! ports, a start that waits for `/-/ready`, a stop on drop, and a small HTTP client for their JSON APIs.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The first of `names` found on PATH.
pub fn find_binary(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| names.iter().map(move |name| dir.join(name)))
        .find(|candidate| candidate.is_file())
}

/// A loopback address with a port the kernel just handed out. Prometheus and Alertmanager cannot report a port
/// they chose themselves, so the port is taken, released and passed on; another process grabbing it in between
/// makes the start fail loudly, never silently.
pub fn free_address() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral loopback port");
    listener.local_addr().expect("local address")
}

/// A server process that is stopped when dropped; its output goes to `log`, shown when a test fails.
pub struct Server {
    name: &'static str,
    child: Child,
    log: PathBuf,
    pub address: SocketAddr,
}

impl Server {
    /// Starts `command` and waits until `GET /-/ready` on `address` answers 200.
    pub fn start(
        name: &'static str,
        mut command: Command,
        address: SocketAddr,
        log: &Path,
    ) -> Server {
        let output = std::fs::File::create(log).expect("create server log");
        let child = command
            .stdin(Stdio::null())
            .stdout(output.try_clone().expect("clone log handle"))
            .stderr(output)
            .spawn()
            .unwrap_or_else(|e| panic!("start {name}: {e}"));
        let mut server = Server {
            name,
            child,
            log: log.to_owned(),
            address,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok((200, _)) = http(address, "GET", "/-/ready", None) {
                return server;
            }
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!("{name} exited with {status}:\n{}", server.log_tail());
            }
            assert!(
                Instant::now() < deadline,
                "{name} not ready on {address}:\n{}",
                server.log_tail()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    pub fn get_json(&self, path: &str) -> serde_json::Value {
        let (status, body) = http(self.address, "GET", path, None)
            .unwrap_or_else(|e| panic!("GET {path} from {}: {e}", self.name));
        assert_eq!(status, 200, "GET {path} from {}: {body}", self.name);
        serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("GET {path} from {}: {e}: {body}", self.name))
    }

    pub fn post_json(&self, path: &str, body: &serde_json::Value) {
        let (status, answer) = http(self.address, "POST", path, Some(body))
            .unwrap_or_else(|e| panic!("POST {path} to {}: {e}", self.name));
        assert_eq!(status, 200, "POST {path} to {}: {answer}", self.name);
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "--- {} log (last lines) ---\n{}",
                self.name,
                self.log_tail()
            );
        }
        // SIGTERM first so they shut down cleanly; SIGKILL if that takes too long.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP/1.0 request: the answer is never chunked and the connection closes after it.
pub fn http(
    address: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&serde_json::Value>,
) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect(address)?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let head = format!(
        "{method} {path} HTTP/1.0\r\nHost: {address}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(body.as_bytes())?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}

/// Calls `probe` every 250 ms until it returns `Some`, or panics after `seconds` naming `what` and the last
/// thing `describe` says about the state.
pub fn poll<T>(
    what: &str,
    seconds: u64,
    mut probe: impl FnMut() -> Option<T>,
    describe: impl Fn() -> String,
) -> T {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    loop {
        if let Some(value) = probe() {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {seconds} s waiting for {what}; last state:\n{}",
            describe()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}
