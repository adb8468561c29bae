//! Overload of `stormwatch serve` (issue 14): senders push flat out, beyond what the engine applies, for a
//! bounded time. Backpressure must hold (senders wait), memory must stay bounded, and every line sent must be
//! counted. `STORMWATCH_OVERLOAD_SECONDS` sets the length (default 15; scripts/test-all, and so CI,
//! runs the full 60).

mod support;

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use support::*;

#[test]
fn senders_beyond_capacity_wait_lose_nothing_and_memory_stays_bounded() {
    let seconds: u64 = std::env::var("STORMWATCH_OVERLOAD_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(15);
    let dir = tempfile::tempdir().unwrap();
    // A small engine queue makes backpressure reach the senders at once.
    let service = Service::start(dir.path(), &["--engine-queue", "4"]);
    let block = firewall_lines(0..2_000, (300, 700));
    let lines_per_block = block.iter().filter(|&&b| b == b'\n').count() as u64;
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let senders: Vec<_> = (0..4)
        .map(|_| {
            let (address, block, stop, sent) =
                (service.ingest, block.clone(), stop.clone(), sent.clone());
            std::thread::spawn(move || {
                let mut stream = std::net::TcpStream::connect(address).unwrap();
                while !stop.load(Ordering::Relaxed) {
                    stream.write_all(&block).unwrap();
                    sent.fetch_add(lines_per_block, Ordering::Relaxed);
                }
            })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut peak_rss = 0;
    let mut behind = 0u64;
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(500));
        peak_rss = peak_rss.max(service.rss_kib());
        let counted = metric(
            &service.get("/metrics", None).1,
            "stormwatch_ingest_lines_total{source=\"tcp\"}",
        )
        .unwrap_or(0.0) as u64;
        behind = behind.max(sent.load(Ordering::Relaxed).saturating_sub(counted));
    }
    stop.store(true, Ordering::Relaxed);
    for sender in senders {
        sender.join().unwrap();
    }
    let total = sent.load(Ordering::Relaxed);
    // Kernel socket buffers hold megabytes per connection, so what is still in flight when the senders stop
    // depends on the machine: wait while the count moves, and fail only once it stops short of the total.
    let mut last = (0u64, Instant::now());
    loop {
        let counted = metric(
            &service.get("/metrics", None).1,
            "stormwatch_ingest_lines_total{source=\"tcp\"}",
        )
        .unwrap_or(0.0) as u64;
        if counted == total {
            break;
        }
        if counted != last.0 {
            last = (counted, Instant::now());
        }
        assert!(
            last.1.elapsed() < Duration::from_secs(60),
            "{counted} of {total} lines counted, and no progress for 60 s"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    eprintln!(
        "{seconds} s flat out: {total} lines sent and counted, at most {behind} lines in flight, peak RSS {peak_rss} KiB"
    );
    assert!(
        behind > 0,
        "the senders outran the engine (else this is no overload)"
    );
    assert!(
        peak_rss < 400 * 1024,
        "peak RSS {peak_rss} KiB under overload"
    );
    let ops = token(dir.path(), "ops", "ops", None);
    assert_eq!(service.json("/api/v1/malformed", &ops)["total"], 0);
}
