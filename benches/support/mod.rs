//! Deterministic synthetic DSP telemetry for the benchmarks: per-second aggregated NDJSON lines for N Users.
//!
//! Each User emits, every second, a request line, a queued response line, a queued device-alert line and a
//! delivered line, plus a depth sample every 10 s and the odd rejected request or failed delivery: about 4.2
//! lines per User-second. Deliveries drain the previous second's queue, so the traffic is healthy and the
//! engine finds no incidents; what is measured is the steady-state cost. The same seed gives the same bytes, so
//! the criterion benches and `benches/replay_throughput.sh` measure identical traffic.

// Each bench target includes this module and uses a different part of it.
#![allow(dead_code)]

use std::io::Write;

use stormwatch_core::telemetry::{Event, parse_line};

/// 2026-03-10T00:00:00Z: traffic starts at midnight so a 24 h file walks through the whole daily shape.
pub const START_MS: i64 = 1_773_100_800_000;

/// Knuth's MMIX LCG: enough randomness for traffic jitter, with no dependency and a stable sequence.
#[derive(Clone, Debug)]
pub struct Lcg(u64);

impl Lcg {
    pub fn new(seed: u64) -> Self {
        Lcg(seed ^ 0x9E37_79B9_7F4A_7C15)
    }

    pub fn next_u32(&mut self) -> u32 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        // The low bits of a power-of-two LCG are weak; the top ones are not.
        (self.0 >> 32) as u32
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        f64::from(self.next_u32()) / 4_294_967_296.0
    }

    /// Uniform in [0, n).
    pub fn below(&mut self, n: u32) -> u32 {
        ((u64::from(self.next_u32()) * u64::from(n)) >> 32) as u32
    }

    /// A per-second count around `mean` (+-15 %), never 0: an aggregated line stands for at least one message.
    pub fn count(&mut self, mean: f64) -> u64 {
        ((mean * (0.85 + 0.3 * self.unit())).round() as u64).max(1)
    }

    /// A millisecond stamp in `[base + from, base + from + span)`.
    pub fn ts(&mut self, base: i64, from: u32, span: u32) -> i64 {
        base + i64::from(from + self.below(span))
    }
}

/// What traffic to make.
#[derive(Clone, Copy, Debug)]
pub struct Spec {
    pub users: usize,
    pub seconds: u64,
    pub seed: u64,
}

impl Spec {
    /// About `lines` lines of traffic for `users` Users (whole seconds, so slightly more).
    pub fn about_lines(users: usize, lines: u64, seed: u64) -> Spec {
        let per_second = (users as f64 * LINES_PER_USER_SECOND).max(1.0);
        Spec {
            users,
            seconds: (lines as f64 / per_second).ceil() as u64,
            seed,
        }
    }
}

/// Average lines per User-second of this generator (4 flows, depth every 10 s, rare rejects and failures).
pub const LINES_PER_USER_SECOND: f64 = 4.0 + 0.1 + 0.03 + 0.01;

const SRVS: [&str; 6] = ["4.1.1", "8.1.1", "11.3", "2.2", "6.15.1", "1.1.1"];
const ALERTS: [&str; 4] = ["0x8F36", "AD1", "N24", "0x8F0A"];
const REASONS: [&str; 3] = ["refused", "timeout", "http_5xx"];

struct Profile {
    id: String,
    /// Mean messages per second at the daily average.
    rate: f64,
    srvs: [&'static str; 2],
    alert: &'static str,
    /// Messages queued in the previous second, delivered in this one.
    queued_before: u64,
}

/// Streams the traffic second by second.
pub struct Traffic {
    spec: Spec,
    rng: Lcg,
    users: Vec<Profile>,
    second: u64,
}

impl Traffic {
    pub fn new(spec: Spec) -> Self {
        let mut rng = Lcg::new(spec.seed);
        let users = (0..spec.users)
            .map(|index| {
                let id = 0x90B3_D51F_3001_0000u64 + index as u64;
                let b = id.to_be_bytes();
                Profile {
                    id: format!(
                        "{:02X}-{:02X}-{:02X}-{:02X}-{:02X}-{:02X}-{:02X}-{:02X}",
                        b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]
                    ),
                    // Log-uniform over 0.5 .. 250 messages/s: Users differ by orders of magnitude.
                    rate: 0.5 * 500f64.powf(rng.unit()),
                    srvs: [
                        SRVS[rng.below(SRVS.len() as u32) as usize],
                        SRVS[rng.below(SRVS.len() as u32) as usize],
                    ],
                    alert: ALERTS[rng.below(ALERTS.len() as u32) as usize],
                    queued_before: 0,
                }
            })
            .collect();
        Traffic {
            spec,
            rng,
            users,
            second: 0,
        }
    }

    /// Appends the next second's lines to `out`; returns how many, or `None` once the duration is done.
    pub fn next_second(&mut self, out: &mut Vec<u8>) -> Option<u64> {
        if self.second >= self.spec.seconds {
            return None;
        }
        let second = self.second;
        self.second += 1;
        let base = START_MS + second as i64 * 1000;
        // Daily shape: quietest at 04:00, busiest at 16:00, 0.4x .. 1.6x the mean.
        let phase = ((second % 86_400) as f64 / 86_400.0 - 1.0 / 6.0) * std::f64::consts::TAU;
        let daily = 1.0 - 0.6 * phase.cos();
        let mut lines = 0;
        for (index, user) in self.users.iter_mut().enumerate() {
            let rng = &mut self.rng;
            let rate = user.rate * daily;
            // Device alerts are about 60 % of the traffic (domain.md).
            let requests = rng.count(rate * 0.2);
            let responses = rng.count(rate * 0.19);
            let alerts = rng.count(rate * 0.6);
            let id = &user.id;
            // A depth sample every 10 s per User, staggered so they do not all land in the same second.
            if second % 10 == index as u64 % 10 {
                let t = rng.ts(base, 0, 50);
                writeln!(
                    out,
                    r#"{{"ts":{t},"user":"{id}","event":"depth","depth":{}}}"#,
                    user.queued_before
                )
                .unwrap();
                lines += 1;
            }
            let t = rng.ts(base, 50, 250);
            let srv = user.srvs[(second % 2) as usize];
            writeln!(
                out,
                r#"{{"ts":{t},"user":"{id}","event":"request","srv":"{srv}","count":{requests}}}"#
            )
            .unwrap();
            lines += 1;
            if rng.below(100) < 3 {
                let t = rng.ts(base, 300, 50);
                writeln!(
                    out,
                    r#"{{"ts":{t},"user":"{id}","event":"request","srv":"{srv}","code":"E19","count":1}}"#
                )
                .unwrap();
                lines += 1;
            }
            let t = rng.ts(base, 350, 200);
            writeln!(
                out,
                r#"{{"ts":{t},"user":"{id}","event":"queued","count":{responses}}}"#
            )
            .unwrap();
            let t = rng.ts(base, 550, 150);
            writeln!(
                out,
                r#"{{"ts":{t},"user":"{id}","event":"queued","kind":"device_alert","alert":"{}","count":{alerts}}}"#,
                user.alert
            )
            .unwrap();
            lines += 2;
            if rng.below(100) < 1 {
                let t = rng.ts(base, 700, 50);
                let reason = REASONS[rng.below(REASONS.len() as u32) as usize];
                writeln!(
                    out,
                    r#"{{"ts":{t},"user":"{id}","event":"delivery_failed","reason":"{reason}","count":1}}"#
                )
                .unwrap();
                lines += 1;
            }
            if user.queued_before > 0 {
                let t = rng.ts(base, 750, 249);
                writeln!(
                    out,
                    r#"{{"ts":{t},"user":"{id}","event":"delivered","count":{}}}"#,
                    user.queued_before
                )
                .unwrap();
                lines += 1;
            }
            user.queued_before = responses + alerts;
        }
        Some(lines)
    }
}

/// The whole traffic as one NDJSON buffer, and its line count.
pub fn ndjson(spec: Spec) -> (Vec<u8>, u64) {
    let mut traffic = Traffic::new(spec);
    let mut out =
        Vec::with_capacity((spec.seconds as f64 * spec.users as f64 * 4.2 * 100.0) as usize);
    let mut lines = 0;
    while let Some(n) = traffic.next_second(&mut out) {
        lines += n;
    }
    (out, lines)
}

/// The traffic parsed by the library's own parser, exactly as `replay` would hand it to the engine.
pub fn events(spec: Spec) -> Vec<Event> {
    let (bytes, lines) = ndjson(spec);
    let mut events = Vec::with_capacity(lines as usize);
    for line in bytes.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        events.push(parse_line(line).expect("the generator writes valid lines"));
    }
    events
}
