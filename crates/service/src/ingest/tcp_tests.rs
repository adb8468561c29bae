//! The listener end to end, up to the engine's queue (no engine): blocks of several connections through the parser
//! threads, and backpressure from a full queue back to the sender's socket.

use std::collections::HashMap;
use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crossbeam::channel::Receiver;

use super::{TcpSettings, serve};
use crate::admission::AdmissionLimits;
use crate::engine::EngineInput;
use crate::ingest::parsers::{Parsers, Spent};

const START_MS: i64 = 1_773_097_200_000;

fn settings() -> TcpSettings {
    TcpSettings {
        max_connections: 16,
        admission: AdmissionLimits {
            per_peer: 16,
            unauthenticated: 16,
        },
        idle_timeout: Duration::from_secs(30),
        auth: None,
        auth_timeout: Duration::from_secs(5),
        tls: None,
        openings: Arc::default(),
    }
}

/// A listener on loopback with `threads` parser threads, feeding an engine queue of `queue` batches; batches given
/// back to the `Spent` returned are reused.
fn listen(
    threads: usize,
    queue: usize,
) -> (
    SocketAddr,
    Receiver<EngineInput>,
    Arc<Spent>,
    tokio::runtime::Runtime,
) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let (engine, input) = crossbeam::channel::bounded(queue);
    let spent = Arc::new(Spent::default());
    let parsers = Parsers::start(threads, &engine, spent.clone()).expect("parser threads");
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("a port");
    let address = listener.local_addr().expect("its address");
    runtime.spawn(serve(listener, settings(), parsers));
    (address, input, spent, runtime)
}

/// Line `n` of a sender: a valid event stamped `n` ms after the start, except every 7th line, which is not one.
fn line(n: u64) -> String {
    match n % 7 {
        0 => format!("not an event {n}\n"),
        _ => {
            format!(
                r#"{{"ts":{},"user":"4c-e1-73-00-00-00-00-02","event":"request","count":1,"srv":"4.1.1"}}"#,
                START_MS + n as i64
            ) + "\n"
        }
    }
}

#[test]
fn interleaved_connections_keep_every_line_once_and_in_order() {
    const LINES: u64 = 20_000;
    let (address, input, spent, _runtime) = listen(2, 4);
    let senders: Vec<_> = (0..2)
        .map(|sender| {
            std::thread::spawn(move || {
                let mut stream = TcpStream::connect(address).expect("connects");
                stream.set_nodelay(true).expect("no delay");
                let text: String = (1..=LINES).map(line).collect();
                // Writes of 1 to ~700 bytes, cutting lines anywhere: many small blocks from each connection.
                let (mut at, mut size) = (0, 1 + sender * 3);
                while at < text.len() {
                    let end = (at + size).min(text.len());
                    stream
                        .write_all(&text.as_bytes()[at..end])
                        .expect("written");
                    at = end;
                    size = (size * 7 + 13) % 701 + 1;
                    if at % 5 == 0 {
                        std::thread::sleep(Duration::from_micros(50));
                    }
                }
                stream.local_addr().expect("its address")
            })
        })
        .collect();
    let peers: Vec<SocketAddr> = senders
        .into_iter()
        .map(|sender| sender.join().expect("sent"))
        .collect();

    // Per source: the next line expected, and whether it closed.
    let mut seen: HashMap<Arc<str>, (u64, bool)> = HashMap::new();
    let mut batches = 0;
    while seen.values().filter(|(_, closed)| *closed).count() < peers.len() {
        match input
            .recv_timeout(Duration::from_secs(20))
            .expect("input keeps coming")
        {
            EngineInput::Batch { source, parsed, .. } => {
                batches += 1;
                let (next, closed) = seen.entry(source.clone()).or_insert((1, false));
                assert!(!*closed, "a batch of {source} after its close");
                // Valid lines and malformed ones, merged back into line order.
                let mut lines: Vec<(u64, bool)> = parsed
                    .events
                    .iter()
                    .map(|event| ((event.ts_ms - START_MS) as u64, true))
                    .chain(parsed.malformed.iter().map(|bad| (bad.line, false)))
                    .collect();
                lines.sort_unstable();
                for (number, valid) in lines {
                    assert_eq!(
                        number, *next,
                        "{source}: line {number} where {next} was due"
                    );
                    assert_eq!(valid, number % 7 != 0, "{source}: line {number}");
                    *next += 1;
                }
                // As the engine does: the next blocks and batches reuse this one's memory (and must not show
                // any of its lines again).
                spent.give_back(parsed);
            }
            EngineInput::SourceClosed(source) => {
                let (next, closed) = seen.entry(source.clone()).or_insert((1, false));
                assert_eq!(*next, LINES + 1, "{source} closed before its last line");
                *closed = true;
            }
            _ => {}
        }
    }
    for peer in peers {
        let (next, _) = seen[format!("tcp:{peer}").as_str()];
        assert_eq!(next, LINES + 1);
    }
    assert!(
        batches > 20,
        "the senders' writes came as many blocks ({batches})"
    );
}

#[test]
fn a_full_engine_queue_stops_the_sender_and_loses_nothing() {
    const LINES: u64 = 400_000;
    let (address, input, _spent, _runtime) = listen(2, 1);
    let written = Arc::new(AtomicUsize::new(0));
    let text: String = (1..=LINES).map(line).collect();
    let total = text.len();
    let sender = {
        let written = written.clone();
        std::thread::spawn(move || {
            let mut stream = TcpStream::connect(address).expect("connects");
            for piece in text.as_bytes().chunks(64 * 1024) {
                stream.write_all(piece).expect("written");
                written.fetch_add(piece.len(), Ordering::Relaxed);
            }
        })
    };
    // Nobody takes from the engine's queue: the sender's writes stop once the queue, the lanes and the sockets'
    // buffers are full, short of the whole text.
    let mut last = usize::MAX;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        std::thread::sleep(Duration::from_millis(500));
        let now = written.load(Ordering::Relaxed);
        if now == last {
            break;
        }
        last = now;
        assert!(Instant::now() < deadline, "the sender never stopped");
    }
    assert!(
        last < total,
        "the sender wrote everything ({last} bytes) into a queue nobody took from"
    );

    let mut lines = 0;
    loop {
        match input
            .recv_timeout(Duration::from_secs(20))
            .expect("input keeps coming")
        {
            EngineInput::Batch { parsed, .. } => {
                lines += (parsed.events.len() + parsed.malformed.len()) as u64;
            }
            EngineInput::SourceClosed(_) => break,
            _ => {}
        }
    }
    sender
        .join()
        .expect("the sender finished once the queue was taken from");
    assert_eq!(lines, LINES);
    assert_eq!(written.load(Ordering::Relaxed), total);
}
