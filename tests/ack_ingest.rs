//! Acknowledged TCP ingest (issue 20, item 8): with `ACK ON <stream>`, a sender killed under three times (the
//! service, with kill -9) resends exactly what was not applied, and the engine ends up where a service that was
//! never killed ends up with the same lines.

mod support;

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::ack_sender::AckSender;
use support::*;

/// No idle clock during the test (a restart takes a moment), and no snapshot but the ones at graceful stops: the
/// journal carries the state across the kills.
const ARGS: [&str; 4] = ["--lateness", "3600", "--snapshot-every", "3600"];

fn views(service: &Service, ops: &str) -> Vec<serde_json::Value> {
    [FIREWALLED, HEALTHY]
        .iter()
        .map(|user| service.json(&format!("/api/v1/users/{user}"), ops))
        .collect()
}

fn incidents(service: &Service, ops: &str) -> Vec<(String, String, String)> {
    let list = service.json("/api/v1/incidents", ops);
    let mut kinds: Vec<_> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["kind"].to_string(),
                i["user"].to_string(),
                i["onset"].to_string(),
            )
        })
        .collect();
    kinds.sort();
    kinds
}

#[test]
fn three_kill_9s_lose_and_repeat_nothing_an_acknowledged_sender_sent() {
    let lines = firewall_lines(0..40_000, (300, 700));
    let total = lines.iter().filter(|&&b| b == b'\n').count() as u64;

    let dir = tempfile::tempdir().unwrap();
    let ops = token(dir.path(), "ops", "ops", None);
    let config = config_file(dir.path(), "journal_sync_every_ms = 50\n");
    let mut args: Vec<&str> = ARGS.to_vec();
    args.extend(config.iter().map(String::as_str));
    let mut service = Service::start(dir.path(), &args);
    let address = Arc::new(Mutex::new(service.ingest));

    let mut sender = AckSender::new("meters-1", lines.clone());
    let acked = sender.acked.clone();
    let target = address.clone();
    let sending = std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(300);
        loop {
            let at = *target.lock().unwrap();
            if sender.run(at, 500) {
                return sender;
            }
            assert!(Instant::now() < deadline, "the sender never finished");
            std::thread::sleep(Duration::from_millis(50));
        }
    });
    let mut kills = 0;
    for round in 1..=3u64 {
        let want = total * round / 5;
        let deadline = Instant::now() + Duration::from_secs(120);
        while acked.load(Ordering::SeqCst) < want && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(2));
        }
        if acked.load(Ordering::SeqCst) >= total {
            break;
        }
        service.kill_hard();
        kills += 1;
        service = Service::start(dir.path(), &args);
        *address.lock().unwrap() = service.ingest;
    }
    let sender = sending.join().unwrap();
    assert_eq!(kills, 3, "the stream outran the kills");
    assert_eq!(sender.acked.load(Ordering::SeqCst), total);
    eprintln!(
        "{total} lines, 3 kills: {} resent, {} applied beyond the last ACK heard",
        sender.resent, sender.resumed_ahead
    );
    let after_kills = views(&service, &ops);
    let incidents_after_kills = incidents(&service, &ops);
    drop(service);

    // The same lines, once, to a service that is never killed.
    let clean = tempfile::tempdir().unwrap();
    let clean_ops = token(clean.path(), "ops", "ops", None);
    let clean_service = Service::start(clean.path(), &ARGS);
    clean_service.send_tcp(&lines);
    clean_service.wait_status("/metrics", 200, 120, |m| {
        metric(m, "stormwatch_ingest_lines_total{source=\"tcp\"}") == Some(total as f64)
    });
    assert_eq!(after_kills, views(&clean_service, &clean_ops));
    assert_eq!(incidents_after_kills, incidents(&clean_service, &clean_ops));
}

#[test]
fn plain_senders_are_unchanged_and_a_bad_stream_name_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let service = Service::start(dir.path(), &[]);
    let lines = firewall_lines(0..10, (300, 700));
    service.send_tcp(&lines);
    service.wait_status("/metrics", 200, 60, |m| {
        metric(m, "stormwatch_ingest_lines_total{source=\"tcp\"}") == Some(60.0)
    });
    let mut socket = std::net::TcpStream::connect(service.ingest).unwrap();
    std::io::Write::write_all(&mut socket, b"ACK ON has spaces\n").unwrap();
    let mut answer = String::new();
    std::io::Read::read_to_string(&mut socket, &mut answer).unwrap();
    assert!(answer.starts_with("ERR stream names"), "{answer:?}");
}
