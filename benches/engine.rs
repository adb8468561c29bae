//! Criterion benchmarks of the hot path: line parsing, the per-User window, engine ingest, the per-second
//! detector tick and a whole file replay, all on the deterministic traffic of `support`.
//!
//! `cargo bench --bench engine` (add `-- --warm-up-time 1 --measurement-time 3` for a quicker pass), then
//! `benches/criterion_medians.sh` for the medians (criterion's summary line is the mean). On a shared machine the
//! wall-clock figures move a lot between runs; `benches/instruction_counts.sh` gives noise-free counts.

mod support;

use std::hint::black_box;
use std::io::Write;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use stormwatch_core::changes::ChangeRegister;
use stormwatch_core::engine::window::{Flow, UserWindow};
use stormwatch_core::engine::{Engine, EngineConfig};
use stormwatch_core::telemetry::framing::lines_of;
use stormwatch_core::telemetry::{Eui64, Event, EventKind, parse_line};
use stormwatch_replay::{ReplayOptions, replay};

use support::{Lcg, START_MS, Spec};

const USERS: usize = 100;
const SEED: u64 = 1;

/// The traffic of `engine_ingest` and `replay_file`: about a million lines (~40 min of 100 Users).
fn million() -> Spec {
    Spec::about_lines(USERS, 1_000_000, SEED)
}

fn parse(c: &mut Criterion) {
    let mut group = c.benchmark_group("parse");
    group.throughput(Throughput::Elements(1));
    let lines: [(&str, &[u8]); 3] = [
        (
            "aggregated_int_ts",
            br#"{"ts":1773133200104,"user":"90-B3-D5-1F-30-01-00-07","event":"request","srv":"4.1.1","count":181}"#,
        ),
        (
            "per_message_rfc3339",
            br#"{"ts":"2026-03-10T09:00:00.512Z","user":"4ce1730000001101","event":"request","srv":"2.2","device":"00-1B-C5-0A-11-22-33-44","req_id":"4C-E1-73-00-00-00-11-01:00-1B-C5-0A-11-22-33-44:1773133200512"}"#,
        ),
        (
            "delivery_failed_reason",
            br#"{"ts":1773133201020,"user":"90-B3-D5-1F-30-01-00-07","event":"delivery_failed","reason":"refused","count":120}"#,
        ),
    ];
    for (name, line) in lines {
        parse_line(line).expect("benchmark lines are valid");
        group.bench_function(name, |b| b.iter(|| parse_line(black_box(line))));
    }

    // What a replay parser thread does with one framed block: split lines, parse each, keep the events.
    let (block, count) = support::ndjson(Spec::about_lines(USERS, 10_000, SEED));
    group.throughput(Throughput::Elements(count));
    group.bench_function("generated_block_10k_lines", |b| {
        let mut events = Vec::with_capacity(count as usize);
        b.iter(|| {
            events.clear();
            for (_, line) in lines_of(1, black_box(&block)) {
                if let Ok(event) = parse_line(line) {
                    events.push(event);
                }
            }
            events.len()
        })
    });
    group.finish();
}

fn window_update(c: &mut Criterion) {
    // One mid-sized User's seconds: four flows every second, a reject or a failure now and then, over 4096
    // seconds so every ring slot is claimed afresh eight times, as in a long run.
    let mut rng = Lcg::new(SEED);
    let mut adds = Vec::new();
    for second in 0..4096i64 {
        let second = START_MS / 1000 + second;
        adds.push((second, Flow::Requests, rng.count(8.0)));
        if rng.below(100) < 3 {
            adds.push((second, Flow::Rejected, 1));
        }
        adds.push((second, Flow::QueuedResponses, rng.count(8.0)));
        adds.push((second, Flow::QueuedAlerts, rng.count(24.0)));
        if rng.below(100) < 1 {
            adds.push((second, Flow::Failed, 1));
        }
        adds.push((second, Flow::Delivered, rng.count(32.0)));
    }
    let mut group = c.benchmark_group("window_update");
    group.throughput(Throughput::Elements(adds.len() as u64));
    let window = UserWindow::default();
    group.bench_function("add_4096_seconds", |b| {
        b.iter(|| {
            for &(second, flow, count) in black_box(&adds) {
                window.add(second, flow, count);
            }
        })
    });
    group.finish();
}

fn ingest_all(events: &[Event]) -> Engine {
    let mut engine = Engine::new(EngineConfig::default(), ChangeRegister::new());
    for event in events {
        engine.ingest(event).expect("100 Users fit the User table");
    }
    engine
}

/// Feeds the same events to one long-lived engine pass after pass, each pass shifted in event time to follow
/// the previous one, so that what is timed is the steady state of a long replay: baselines warm, every User's
/// ring already paged in, no engine set-up or tear-down.
struct Endless<'a> {
    engine: Engine,
    events: &'a [Event],
    span_ms: i64,
    pass: i64,
}

impl<'a> Endless<'a> {
    fn warmed(events: &'a [Event]) -> Self {
        let seconds = |pick: fn(i64, i64) -> i64| {
            events
                .iter()
                .map(|e| e.ts_ms.div_euclid(1000))
                .reduce(pick)
                .expect("events")
        };
        let span_ms = (seconds(i64::max) - seconds(i64::min) + 1) * 1000;
        let mut endless = Endless {
            engine: ingest_all(events),
            events,
            span_ms,
            pass: 0,
        };
        endless.pass();
        endless
    }

    fn pass(&mut self) {
        self.pass += 1;
        let shift = self.pass * self.span_ms;
        for event in self.events {
            let mut event = *event;
            event.ts_ms += shift;
            self.engine
                .ingest(black_box(&event))
                .expect("100 Users fit the User table");
        }
    }

    fn time(&mut self, passes: u64) -> Duration {
        let start = Instant::now();
        for _ in 0..passes {
            self.pass();
        }
        start.elapsed()
    }
}

fn engine_ingest(c: &mut Criterion) {
    let events = support::events(million());
    let mut group = c.benchmark_group("engine_ingest");
    group.sample_size(10);
    group.throughput(Throughput::Elements(events.len() as u64));
    // A fresh engine per run, as a short replay sees it: the first 300 s learn baselines and every ring page is
    // touched for the first time. Dropping the engine is not timed.
    group.bench_function("fresh_engine_1M_events", |b| {
        b.iter_with_large_drop(|| ingest_all(black_box(&events)))
    });
    let mut endless = Endless::warmed(&events);
    group.bench_function("steady_1M_events", |b| {
        b.iter_custom(|passes| endless.time(passes))
    });
    group.finish();
    assert_eq!(
        endless.engine.incident_records().len(),
        0,
        "healthy traffic"
    );
}

/// `per_user_second` request events for each of `USERS` Users in each of `seconds` seconds, spread over the second.
fn steady_requests(seconds: i64, per_user_second: i64) -> Vec<Event> {
    let mut events = Vec::new();
    for second in 0..seconds {
        for k in 0..per_user_second {
            for user in 0..USERS as u64 {
                let ts = START_MS + second * 1000 + k * 1000 / per_user_second;
                let id = Eui64(0x90B3_D51F_3001_0000 + user);
                events.push(Event::new(ts, id, EventKind::Request, 3));
            }
        }
    }
    events
}

/// The engine closes every second for every User whatever the traffic; this separates that fixed per-User-second
/// cost (closing, plus the first touch of the second's ring slots) from the per-event cost. Both runs cover the same 1800 seconds of 100 Users in the steady state and differ only in
/// events per User-second, so with T(n) = seconds x tick + events x per_event:
/// tick = (8 T(1) - T(8)) / (7 x 1800) and per_event = (T(8) - T(1)) / (7 x 180 000).
/// Throughput is in closed seconds (each closing 100 Users).
fn detector_tick(c: &mut Criterion) {
    const SECONDS: i64 = 1800;
    let mut group = c.benchmark_group("detector_tick");
    group.sample_size(10);
    group.throughput(Throughput::Elements(SECONDS as u64));
    for per_user_second in [1, 8] {
        let events = steady_requests(SECONDS, per_user_second);
        let mut endless = Endless::warmed(&events);
        group.bench_function(format!("{per_user_second}_event_per_user_second"), |b| {
            b.iter_custom(|passes| endless.time(passes))
        });
    }
    group.finish();
}

fn replay_file(c: &mut Criterion) {
    let (bytes, lines) = support::ndjson(million());
    let mut file = tempfile::Builder::new()
        .suffix(".ndjson")
        .tempfile()
        .expect("temp file");
    file.write_all(&bytes).expect("write temp file");
    file.flush().expect("flush temp file");
    let options = ReplayOptions::new(vec![file.path().to_owned()], vec![]);
    let report = replay(&options).expect("replay of generated traffic");
    assert_eq!(
        report.summary.events, lines,
        "every generated line is an event"
    );
    assert_eq!(report.summary.malformed, 0);

    let mut group = c.benchmark_group("replay_file");
    group.sample_size(10);
    for (name, throughput) in [
        ("1M_lines", Throughput::Elements(lines)),
        ("1M_lines_bytes", Throughput::Bytes(bytes.len() as u64)),
    ] {
        group.throughput(throughput);
        group.bench_function(name, |b| {
            b.iter(|| replay(black_box(&options)).expect("replay"))
        });
    }
    group.finish();
}

criterion_group!(
    benches,
    parse,
    window_update,
    engine_ingest,
    detector_tick,
    replay_file
);
criterion_main!(benches);
