//! Writing the events file: the merge of two exporters (with their short stalls, the only disorder), and line
//! formatting with the contract's spellings, malformed lines mixed in. The bytes go to [`Sink`].

use std::path::{Path, PathBuf};

use rand::Rng;
use rand::rngs::StdRng;

use super::GenError;
use super::format::{Spelling, push_eui, push_i64, push_rfc3339, push_u64};
use super::line::{Line, LineEvent, QueuedKind};
use super::malformed::push_malformed;
use super::options::Compression;
use super::sink::Sink;

/// An exporter that stops for up to 3 s now and then; its lines stamped in the stall come out when it resumes.
#[derive(Copy, Clone, Debug)]
struct Stall {
    from: i64,
    until: i64,
}

/// Bytes handed to the sink at a time.
const CHUNK: usize = 1 << 20;
/// Room for one second's lines past `CHUNK` (the buffer is checked once a second).
const MAX_LINE_GUESS: usize = 1 << 18;

/// Longest stall: the contract allows 5 s of disorder; stay well inside it.
const MAX_STALL_MS: i64 = 3000;

/// Merges the two exporters' lines into file order and writes them.
pub(crate) struct EventWriter {
    sink: Option<Sink>,
    path: std::path::PathBuf,
    buf: Vec<u8>,
    pending: Vec<(i64, u64, Line)>,
    sequence: u64,
    stalls: [Stall; 2],
    rng: StdRng,
    users: Vec<u64>,
    /// Ms each User's exporter clock is off by (positive: fast); lines are ordered by true time, stamped with this.
    skews: Vec<i64>,
    /// Chance of a malformed line before each valid one.
    malformed_before: f64,
    /// Chance that a valid line is written again right after itself (at-least-once export).
    duplicate: f64,
    pub events: u64,
    pub malformed: u64,
}

/// `events.ndjson` -> `events.ndjson.partial`, where the file is written until it is complete.
pub fn partial_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".partial");
    PathBuf::from(name)
}

impl EventWriter {
    pub fn create(
        path: &Path,
        compression: Compression,
        level: Option<i32>,
        malformed_rate: f64,
        users: Vec<u64>,
        rng: StdRng,
    ) -> Result<EventWriter, GenError> {
        // Written under a `.partial` name and renamed when complete: an interrupted run leaves a file that says
        // what it is, never one that passes for a whole events file.
        let partial = partial_path(path);
        let sink = Sink::create(&partial, compression, level).map_err(|source| GenError::Io {
            path: partial.clone(),
            cause: source,
        })?;
        // Placeholders in the past: the first real stalls are drawn in the first second.
        let past = Stall {
            from: i64::MIN,
            until: i64::MIN,
        };
        let stalls = [past, past];
        Ok(EventWriter {
            sink: Some(sink),
            path: path.to_path_buf(),
            buf: Vec::with_capacity(CHUNK + MAX_LINE_GUESS),
            pending: Vec::new(),
            sequence: 0,
            stalls,
            rng,
            skews: vec![0; users.len()],
            users,
            malformed_before: malformed_rate / (1.0 - malformed_rate),
            duplicate: 0.0,
            events: 0,
            malformed: 0,
        })
    }

    /// Sets the Users' exporter clock errors.
    pub fn set_skews(&mut self, skews: &[(usize, i64)]) {
        for &(user, skew) in skews {
            if let Some(slot) = self.skews.get_mut(user) {
                *slot = skew;
            }
        }
    }

    /// Sets the share of valid lines written twice.
    pub fn set_duplicates(&mut self, share: f64) {
        self.duplicate = share;
    }

    /// Takes second `t`'s lines and writes every line that can no longer be overtaken.
    pub fn second(&mut self, t: i64, lines: &mut Vec<Line>) -> Result<(), GenError> {
        for (exporter, stall) in self.stalls.iter_mut().enumerate() {
            if stall.until <= t * 1000 {
                let after = stall.until.max(t * 1000) + exporter as i64;
                *stall = next_stall(&mut self.rng, after);
            }
        }
        for line in lines.drain(..) {
            let stall = self.stalls[line.exporter()];
            let key = if stall.from <= line.ts && line.ts < stall.until {
                stall.until
            } else {
                line.ts
            };
            self.pending.push((key, self.sequence, line));
            self.sequence += 1;
        }
        // Every later line has ts >= (t + 1) s, and no key is below its ts.
        self.flush_below((t + 1) * 1000)
    }

    fn flush_below(&mut self, limit: i64) -> Result<(), GenError> {
        self.pending
            .sort_unstable_by_key(|&(key, sequence, line)| (key, line.ts, sequence));
        let ready = self.pending.partition_point(|p| p.0 < limit);
        let lines: Vec<Line> = self.pending.drain(..ready).map(|p| p.2).collect();
        for line in &lines {
            self.write(line);
        }
        if self.buf.len() >= CHUNK {
            self.drain_buf()?;
        }
        Ok(())
    }

    fn drain_buf(&mut self) -> Result<(), GenError> {
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK + MAX_LINE_GUESS));
        if let Some(sink) = self.sink.as_mut() {
            sink.write(chunk).map_err(|source| GenError::Io {
                path: partial_path(&self.path),
                cause: source,
            })?;
        }
        Ok(())
    }

    pub fn finish(mut self) -> Result<(u64, u64), GenError> {
        self.flush_below(i64::MAX)?;
        self.drain_buf()?;
        if let Some(sink) = self.sink.take() {
            let partial = partial_path(&self.path);
            sink.finish().map_err(|source| GenError::Io {
                path: partial.clone(),
                cause: source,
            })?;
            std::fs::rename(&partial, &self.path).map_err(|source| GenError::Io {
                path: self.path.clone(),
                cause: source,
            })?;
        }
        Ok((self.events, self.malformed))
    }

    fn write(&mut self, line: &Line) {
        let user = self
            .users
            .get(line.user as usize)
            .copied()
            .unwrap_or_default();
        if self.malformed_before > 0.0 {
            if self.rng.random::<f64>() < self.malformed_before {
                push_malformed(&mut self.buf, &mut self.rng, line.ts, user);
                self.buf.push(b'\n');
                self.malformed += 1;
            }
            // A messy stream also has blank lines (skipped, not counted).
            if self.rng.random::<f64>() < self.malformed_before * 0.05 {
                self.buf.push(b'\n');
            }
        }
        let ts = line.ts + self.skews.get(line.user as usize).copied().unwrap_or(0);
        let begins = self.buf.len();
        let roll = self.rng.random_range(0..1000u32);
        self.buf.extend_from_slice(b"{\"ts\":");
        if roll < 40 {
            // Some exporters write RFC 3339, a few in local time.
            self.buf.push(b'"');
            let offset = if roll < 10 { 60 } else { 0 };
            push_rfc3339(&mut self.buf, ts, offset, true);
            self.buf.push(b'"');
        } else {
            push_i64(&mut self.buf, ts);
        }
        self.buf.extend_from_slice(b",\"user\":\"");
        let spelling = match self.rng.random_range(0..100u32) {
            0..80 => Spelling::Hyphen,
            80..90 => Spelling::Compact,
            90..96 => Spelling::Colon,
            _ => Spelling::HyphenLower,
        };
        push_eui(&mut self.buf, user, spelling);
        self.buf.extend_from_slice(b"\",\"event\":\"");
        let event: &[u8] = match line.event {
            LineEvent::Request => b"request",
            LineEvent::Queued(_) => b"queued",
            LineEvent::Delivered => b"delivered",
            LineEvent::DeliveryFailed => b"delivery_failed",
            LineEvent::Expired => b"expired",
            LineEvent::Depth => b"depth",
        };
        self.buf.extend_from_slice(event);
        self.buf.push(b'"');
        match line.event {
            LineEvent::Depth => self.field_u64(b"depth", line.count),
            _ if line.per_message && line.count == 1 => {}
            _ => self.field_u64(b"count", line.count),
        }
        match line.event {
            LineEvent::Queued(QueuedKind::DeviceAlert) => self.field_str(b"kind", b"device_alert"),
            LineEvent::Queued(QueuedKind::DccAlert) => self.field_str(b"kind", b"dcc_alert"),
            _ => {}
        }
        if let Some(srv) = line.srv {
            self.field_str(b"srv", srv.as_bytes());
        }
        if let Some(code) = line.code {
            self.field_str(b"code", code.as_bytes());
        }
        if let Some(alert) = line.alert {
            self.field_str(b"alert", alert.as_bytes());
        }
        if let Some(reason) = line.reason {
            self.field_str(b"reason", reason.as_str().as_bytes());
        }
        if line.device != 0 {
            self.buf.extend_from_slice(b",\"device\":\"");
            push_eui(&mut self.buf, line.device, Spelling::Hyphen);
            self.buf.push(b'"');
        }
        if line.req != 0 {
            self.buf.extend_from_slice(b",\"req_id\":\"");
            push_eui(&mut self.buf, user, Spelling::Hyphen);
            self.buf.push(b':');
            push_eui(&mut self.buf, line.device, Spelling::Hyphen);
            self.buf.push(b':');
            push_u64(&mut self.buf, line.req);
            self.buf.push(b'"');
        }
        if line.latency_ms != 0 {
            self.field_u64(b"latency_ms", u64::from(line.latency_ms));
        }
        if roll % 97 == 0 {
            // Unknown fields are ignored by contract; one exporter adds its name.
            self.field_str(b"exporter", b"dsp-out-2");
        }
        self.buf.push(b'}');
        if self.malformed_before > 0.0 && roll == 999 {
            self.buf.push(b'\r');
        }
        self.buf.push(b'\n');
        self.events += 1;
        // Drawn only when asked for, so that runs without duplicates stay byte-identical.
        if self.duplicate > 0.0 && self.rng.random::<f64>() < self.duplicate {
            self.buf.extend_from_within(begins..);
            self.events += 1;
        }
    }

    fn field_u64(&mut self, name: &[u8], value: u64) {
        self.buf.extend_from_slice(b",\"");
        self.buf.extend_from_slice(name);
        self.buf.extend_from_slice(b"\":");
        push_u64(&mut self.buf, value);
    }

    fn field_str(&mut self, name: &[u8], value: &[u8]) {
        self.buf.extend_from_slice(b",\"");
        self.buf.extend_from_slice(name);
        self.buf.extend_from_slice(b"\":\"");
        self.buf.extend_from_slice(value);
        self.buf.push(b'"');
    }
}

/// The next stall after `after` ms: about every 20 minutes per exporter, 0.5-3 s long.
fn next_stall(rng: &mut StdRng, after: i64) -> Stall {
    let gap = (rng.random::<f64>().max(1e-12).ln() * -1_200_000.0) as i64;
    let from = after + gap.max(1000);
    Stall {
        from,
        until: from + rng.random_range(500..=MAX_STALL_MS),
    }
}
