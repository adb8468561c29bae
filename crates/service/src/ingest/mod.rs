//! Blocking live sources: the shared `pump` (frame, parse, forward; a full engine queue blocks it) and
//! `--follow` files that survive rotation. The TCP listener is async, in `tcp.rs`, and parses on threads of its
//! own (`parsers.rs`).

mod ack;
mod blocks;
mod feed;
pub mod malformed;
pub mod parsers;
pub mod tcp;
pub mod tls;

use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crossbeam::channel::Sender;

use crate::engine::{EngineInput, SourceKind};
use stormwatch_core::telemetry::batch::parse_chunk;
use stormwatch_core::telemetry::framing::LineFramer;

/// Block size for live sources: small enough for latency, large enough to amortise the channel.
const LIVE_BLOCK: usize = 256 * 1024;

/// Frames, parses and forwards everything `reader` yields until it ends. Returns the lines framed.
pub fn pump(
    reader: impl Read,
    source: Arc<str>,
    kind: SourceKind,
    engine: &Sender<EngineInput>,
) -> io::Result<u64> {
    let mut framer = LineFramer::streaming(reader, LIVE_BLOCK);
    while let Some(chunk) = framer.next_chunk()? {
        let received = Instant::now();
        let parsed = parse_chunk(0, chunk);
        let batch = EngineInput::Batch {
            source: source.clone(),
            kind,
            parsed,
            received,
            reply: None,
        };
        if engine.send(batch).is_err() {
            return Err(io::Error::new(io::ErrorKind::BrokenPipe, "engine stopped"));
        }
    }
    Ok(framer.next_line() - 1)
}

/// Tails `path` from its start, following appends and starting again from the top when the file is rotated
/// (replaced by a new file) or truncated.
pub fn follow(path: PathBuf, engine: Sender<EngineInput>, stop: Arc<AtomicBool>) {
    let source: Arc<str> = Arc::from(format!("file:{}", path.display()));
    // Each trouble is logged once when it starts, not on every retry: a retry loop must not flood the log.
    let mut waiting = false;
    let mut failing: Option<String> = None;
    while !stop.load(Ordering::Acquire) {
        match std::fs::File::open(&path) {
            Ok(file) => {
                if file.metadata().is_ok_and(|m| m.is_dir()) {
                    tracing::error!(path = %path.display(), "cannot follow a directory; following stopped");
                    return;
                }
                if std::mem::take(&mut waiting) {
                    tracing::info!(path = %path.display(), "the followed file is there; following it");
                }
                let reader = Tail {
                    file,
                    path: path.clone(),
                    stop: stop.clone(),
                    read: 0,
                };
                match pump(reader, source.clone(), SourceKind::File, &engine) {
                    Ok(_) => failing = None,
                    Err(error) if error.kind() == io::ErrorKind::BrokenPipe => return,
                    Err(error) => {
                        let text = error.to_string();
                        if failing.as_deref() != Some(text.as_str()) {
                            tracing::warn!(path = %path.display(), %error, "reading the followed file failed; retrying every second");
                            failing = Some(text);
                        }
                        std::thread::sleep(Duration::from_secs(1));
                    }
                }
            }
            Err(error) => {
                if !waiting {
                    tracing::warn!(path = %path.display(), %error, "the followed file cannot be opened; waiting for it");
                    waiting = true;
                }
                std::thread::sleep(Duration::from_millis(500));
            }
        }
    }
}

/// A reader that waits at end of file for more, and ends (so the caller reopens) when the file was rotated.
struct Tail {
    file: std::fs::File,
    path: PathBuf,
    stop: Arc<AtomicBool>,
    read: u64,
}

impl Read for Tail {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let n = self.file.read(buf)?;
            if n > 0 {
                self.read += n as u64;
                return Ok(n);
            }
            if self.stop.load(Ordering::Acquire) || rotated(&self.file, &self.path, self.read) {
                return Ok(0);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// The path now names another file, or the file shrank below what we read.
fn rotated(file: &std::fs::File, path: &Path, read: u64) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (file.metadata(), std::fs::metadata(path)) {
        (Ok(open), Ok(named)) => {
            open.ino() != named.ino() || open.dev() != named.dev() || named.len() < read
        }
        (Ok(_), Err(_)) => false,
        _ => true,
    }
}
