//! Fixed workloads for counting instructions under callgrind (`benches/instruction_counts.sh`): on a shared,
//! noisy machine wall-clock medians move by tens of percent between runs, instruction counts do not.
//!
//! `ICOUNT_WORKLOAD=name ICOUNT_RUNS=n icount` runs the workload n times inside `icount::measured` (the only
//! function callgrind is told to count) and prints how many operations one run is (lines or events). Without
//! those variables (as a plain `cargo bench` runs it, with criterion's flags) it does nothing.

mod support;

use std::hint::black_box;

use stormwatch_core::changes::ChangeRegister;
use stormwatch_core::engine::{Engine, EngineConfig};
use stormwatch_core::telemetry::{Eui64, Event, EventKind, parse_line};

use support::{START_MS, Spec};

const USERS: usize = 100;
const AGGREGATED: &[u8] = br#"{"ts":1773133200104,"user":"90-B3-D5-1F-30-01-00-07","event":"request","srv":"4.1.1","count":181}"#;
const RFC3339: &[u8] = br#"{"ts":"2026-03-10T09:00:00.512Z","user":"4ce1730000001101","event":"request","srv":"2.2","device":"00-1B-C5-0A-11-22-33-44","req_id":"4C-E1-73-00-00-00-11-01:00-1B-C5-0A-11-22-33-44:1773133200512"}"#;
const FAILED: &[u8] = br#"{"ts":1773133201020,"user":"90-B3-D5-1F-30-01-00-07","event":"delivery_failed","reason":"refused","count":120}"#;

/// An engine fed pass after pass of the same events, each pass shifted to follow the previous one in event time.
struct Endless {
    engine: Engine,
    events: Vec<Event>,
    span_ms: i64,
    pass: i64,
}

impl Endless {
    /// Two passes ahead, so baselines are warm and every ring slot has been claimed before counting starts.
    fn warmed(events: Vec<Event>) -> Self {
        let first = events.iter().map(|e| e.ts_ms.div_euclid(1000)).min();
        let last = events.iter().map(|e| e.ts_ms.div_euclid(1000)).max();
        let span_ms = (last.unwrap_or(0) - first.unwrap_or(0) + 1) * 1000;
        let mut endless = Endless {
            engine: Engine::new(EngineConfig::default(), ChangeRegister::new()),
            events,
            span_ms,
            pass: -1,
        };
        endless.pass();
        endless.pass();
        endless
    }

    fn pass(&mut self) {
        self.pass += 1;
        let shift = self.pass * self.span_ms;
        for event in &self.events {
            let mut event = *event;
            event.ts_ms += shift;
            self.engine
                .ingest(black_box(&event))
                .expect("100 Users fit the User table");
        }
    }
}

fn steady_requests(seconds: i64, per_user_second: i64) -> Vec<Event> {
    let mut events = Vec::new();
    for second in 0..seconds {
        for k in 0..per_user_second {
            for user in 0..USERS as u64 {
                let ts = START_MS + second * 1000 + k * 1000 / per_user_second;
                events.push(Event::new(
                    ts,
                    Eui64(0x90B3_D51F_3001_0000 + user),
                    EventKind::Request,
                    3,
                ));
            }
        }
    }
    events
}

enum Workload {
    Parse(&'static [u8]),
    Engine(Box<Endless>),
}

/// The counted region: callgrind is run with `--toggle-collect=icount::measured`.
#[inline(never)]
fn measured(workload: &mut Workload, runs: u64) -> u64 {
    let mut sink = 0;
    for _ in 0..runs {
        match workload {
            Workload::Parse(line) => {
                sink += parse_line(black_box(line)).map_or(0, |e| e.value);
            }
            Workload::Engine(endless) => endless.pass(),
        }
    }
    sink
}

fn main() {
    // Environment, not arguments: `cargo bench` hands every bench target criterion's flags.
    let name = std::env::var("ICOUNT_WORKLOAD").unwrap_or_default();
    let Some(runs) = std::env::var("ICOUNT_RUNS")
        .ok()
        .and_then(|n| n.parse().ok())
    else {
        eprintln!("icount: nothing to do (run by benches/instruction_counts.sh)");
        return;
    };
    // Operations per run, so that the script can divide.
    let (mut workload, ops): (Workload, u64) = match name.as_str() {
        "parse_aggregated" => (Workload::Parse(AGGREGATED), 1),
        "parse_rfc3339" => (Workload::Parse(RFC3339), 1),
        "parse_delivery_failed" => (Workload::Parse(FAILED), 1),
        "ingest_traffic" => {
            let events = support::events(Spec::about_lines(USERS, 200_000, 1));
            let ops = events.len() as u64;
            (Workload::Engine(Box::new(Endless::warmed(events))), ops)
        }
        "tick_1" | "tick_8" => {
            let per = if name == "tick_1" { 1 } else { 8 };
            let events = steady_requests(600, per);
            let ops = events.len() as u64;
            (Workload::Engine(Box::new(Endless::warmed(events))), ops)
        }
        other => {
            eprintln!("icount: unknown workload {other}");
            std::process::exit(2);
        }
    };
    let sink = measured(&mut workload, runs);
    println!("ops_per_run {ops} sink {sink}");
}
