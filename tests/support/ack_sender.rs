//! A sender for acknowledged TCP ingest (`ACK ON <stream>`, docs/telemetry.md): it keeps every line the service
//! has not acknowledged, and after a reconnect resends exactly from the position the service names.

use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

pub struct AckSender {
    stream: String,
    /// Byte offset of each line's start in `data`, and one past the end.
    starts: Vec<usize>,
    data: Vec<u8>,
    /// Lines the service has acknowledged as durable (shared with the test, to pick kill moments).
    pub acked: Arc<AtomicU64>,
    /// Lines sent again because a connection broke before they were acknowledged.
    pub resent: u64,
    /// Lines the service said it held beyond the last `ACK` the sender had heard (applied, not yet synced).
    pub resumed_ahead: u64,
    sent_through: u64,
}

impl AckSender {
    pub fn new(stream: &str, data: Vec<u8>) -> AckSender {
        let mut starts = vec![0];
        starts.extend(
            data.iter()
                .enumerate()
                .filter(|&(_, &b)| b == b'\n')
                .map(|(i, _)| i + 1),
        );
        if starts.last() != Some(&data.len()) {
            starts.push(data.len());
        }
        AckSender {
            stream: stream.to_owned(),
            starts,
            data,
            acked: Arc::new(AtomicU64::new(0)),
            resent: 0,
            resumed_ahead: 0,
            sent_through: 0,
        }
    }

    pub fn lines(&self) -> u64 {
        (self.starts.len() - 1) as u64
    }

    /// One connection: says `ACK ON`, resumes where the service says, sends the rest in `chunk_lines` pieces
    /// and waits for the last `ACK`. True once every line is acknowledged; false when the connection broke
    /// (the service was killed, say), to be called again with the new address.
    pub fn run(&mut self, address: SocketAddr, chunk_lines: u64) -> bool {
        let Ok(mut socket) = TcpStream::connect(address) else {
            return false;
        };
        let _ = socket.set_read_timeout(Some(Duration::from_secs(30)));
        if socket
            .write_all(format!("ACK ON {}\n", self.stream).as_bytes())
            .is_err()
        {
            return false;
        }
        let Ok(reading) = socket.try_clone() else {
            return false;
        };
        let mut replies = BufReader::new(reading);
        let mut first = String::new();
        if replies.read_line(&mut first).unwrap_or(0) == 0 {
            return false;
        }
        let resume: u64 = first
            .trim()
            .strip_prefix("ACK ")
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("the service answered {first:?} to ACK ON, not `ACK <n>`"));
        let acked = self.acked.load(Ordering::SeqCst);
        assert!(
            resume >= acked,
            "the service resumes at {resume} but had acknowledged {acked}: acknowledged lines were lost"
        );
        assert!(resume <= self.lines(), "resume {resume} past the end");
        self.resumed_ahead += resume - acked;
        self.resent += self.sent_through.saturating_sub(resume);
        self.acked.store(resume, Ordering::SeqCst);
        let total = self.lines();
        let shared = self.acked.clone();
        let listener = std::thread::spawn(move || {
            let mut line = String::new();
            loop {
                line.clear();
                if replies.read_line(&mut line).unwrap_or(0) == 0 {
                    return false;
                }
                let Some(n) = line
                    .trim()
                    .strip_prefix("ACK ")
                    .and_then(|n| n.parse::<u64>().ok())
                else {
                    panic!("unexpected reply {line:?}");
                };
                let before = shared.swap(n, Ordering::SeqCst);
                assert!(n >= before, "ACK went backwards: {before} then {n}");
                if n == total {
                    return true;
                }
            }
        });
        let mut at = resume;
        while at < total {
            let end = (at + chunk_lines).min(total);
            let bytes = &self.data[self.starts[at as usize]..self.starts[end as usize]];
            if socket.write_all(bytes).is_err() {
                break;
            }
            at = end;
            self.sent_through = self.sent_through.max(at);
        }
        if at == total {
            let _ = socket.shutdown(Shutdown::Write);
        }
        let done = listener
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        done && self.acked.load(Ordering::SeqCst) == total
    }
}
