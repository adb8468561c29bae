//! Guards the hot path's no-allocation rule: once warm, parsing the exporter's lines and ingesting their events
//! (watermark closes, detectors and baselines included) allocates nothing. A counting global allocator, in this
//! test binary only, counts the allocations of the one thread that asks for it.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use stormwatch_core::changes::ChangeRegister;
use stormwatch_core::engine::{Engine, EngineConfig};
use stormwatch_core::telemetry::{Event, parse_line};

struct Counting;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

fn note_allocation() {
    // `try_with`: the allocator also runs while thread-locals are being torn down.
    let _ = COUNTING.try_with(|counting| {
        if counting.get() {
            let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        }
    });
}

// SAFETY: every method forwards to the system allocator with the caller's arguments unchanged; the counting
// touches only const-initialised thread-locals, which never allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note_allocation();
        // SAFETY: the caller upholds `alloc`'s contract, which `System` shares.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note_allocation();
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note_allocation();
        // SAFETY: `ptr` came from this allocator, which is `System`'s, with `layout`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as for `realloc`.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Allocations made by `work` on this thread.
fn allocations_in(work: impl FnOnce()) -> u64 {
    ALLOCATIONS.with(|n| n.set(0));
    COUNTING.with(|counting| counting.set(true));
    work();
    COUNTING.with(|counting| counting.set(false));
    ALLOCATIONS.with(Cell::get)
}

const T0_MS: i64 = 1_773_133_200_000;
const USERS: u64 = 50;

/// One second of steady traffic for every User, as the exporter writes it (aggregated, per-message, RFC 3339).
fn lines_for(second: i64) -> Vec<String> {
    let ts = T0_MS + second * 1000;
    let mut lines = Vec::new();
    for user in 0..USERS {
        let id = format!("90-B3-D5-1F-30-01-{:02X}-{:02X}", user / 256, user % 256);
        lines.push(format!(
            r#"{{"ts":{ts},"user":"{id}","event":"request","srv":"4.1.1","count":{}}}"#,
            20 + user
        ));
        lines.push(format!(
            r#"{{"ts":{},"user":"{id}","event":"queued","kind":"response","count":{}}}"#,
            ts + 10,
            20 + user
        ));
        lines.push(format!(
            r#"{{"ts":{},"user":"{id}","event":"delivered","count":{}}}"#,
            ts + 20,
            20 + user
        ));
        lines.push(format!(
            r#"{{"ts":{},"user":"{id}","event":"depth","depth":3}}"#,
            ts + 30
        ));
    }
    let text = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ts + 500) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default();
    lines.push(format!(
        r#"{{"ts":"{text}","user":"4ce1730000001101","event":"request","srv":"2.2","device":"00-1B-C5-0A-11-22-33-44"}}"#
    ));
    lines
}

fn feed(engine: &mut Engine, lines: &[Vec<String>]) {
    for line in lines.iter().flatten() {
        let event: Event = parse_line(line.as_bytes()).expect("a valid line");
        engine.ingest(&event).expect("the Users fit the table");
    }
}

#[test]
fn warm_parse_and_ingest_allocate_nothing() {
    // Past the baselines' warm-up and with every ring slot claimed, so that what follows is the steady state.
    let warmup: Vec<Vec<String>> = (0..900).map(lines_for).collect();
    let measured: Vec<Vec<String>> = (900..1_200).map(lines_for).collect();
    let events = measured.iter().map(Vec::len).sum::<usize>();
    let mut engine = Engine::new(EngineConfig::default(), ChangeRegister::new());
    feed(&mut engine, &warmup);
    let allocations = allocations_in(|| feed(&mut engine, &measured));
    assert!(events > 50_000, "the measured stretch is {events} events");
    assert_eq!(
        allocations, 0,
        "{allocations} allocations while parsing and ingesting {events} events of steady traffic"
    );
    // And the counter does count: a line the fast path refuses is worded by serde_json, which allocates.
    let refused = allocations_in(|| {
        let _ = parse_line(br#"{"ts": 1, "user": "x", "event": "nope"}"#);
    });
    assert!(
        refused > 0,
        "the counting allocator saw no allocation at all"
    );
}
