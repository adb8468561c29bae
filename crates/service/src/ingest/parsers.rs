//! The TCP listener's parser threads: connection tasks hand them raw blocks of whole lines over bounded async
//! channels (one lane per thread), and they parse the blocks and hand the batches to the engine's queue.
//!
//! Parsing on the tokio workers took them away from reading sockets and answering `ACK`s, and the engine's
//! crossbeam queue could only be polled from async code (try, sleep, try again: up to 8 ms lost per full queue).
//! Here a parser thread blocks on the engine's queue when it is full; its lane then fills, the connection tasks'
//! `send().await` waits, they stop reading, and TCP pushes back on the senders. A connection keeps one lane for
//! its life, so its blocks, its `Attach` and its close reach the engine in the order it sent them.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use crossbeam::channel::Sender;
use tokio::sync::mpsc;

use crate::engine::streams::StreamMark;
use crate::engine::{EngineInput, SourceKind};
use stormwatch_core::telemetry::batch::parse_chunk;
use stormwatch_core::telemetry::framing::Chunk;

/// Blocks a lane holds before its connections wait: enough to keep the parser busy while a connection reads its
/// next block, few enough that the time a block waits here stays well under a millisecond at a steady rate.
pub const LANE_DEPTH: usize = 8;

/// What a connection task hands its lane.
pub(crate) enum Work {
    /// Whole lines of one connection (or one line over the limit). `received`: when their last bytes were read,
    /// so the ingest-to-window latency covers the wait here and the parse. `mark`: the position of the batch's
    /// last line on an acknowledged stream.
    Lines {
        source: Arc<str>,
        chunk: Chunk,
        received: Instant,
        mark: Option<StreamMark>,
    },
    /// Goes to the engine after everything the connection handed over before it (an `Attach`, a close).
    Forward(EngineInput),
}

/// The parser threads' lanes; cloned into the accept loop, which gives each connection one.
#[derive(Clone)]
pub struct Parsers {
    lanes: Arc<[mpsc::Sender<Work>]>,
    next: Arc<AtomicUsize>,
}

impl Parsers {
    /// Starts `threads` parser threads feeding `engine`. They end once every lane's sender is gone, or when the
    /// engine stops (their lanes close, and connections see the engine gone).
    pub fn start(threads: usize, engine: &Sender<EngineInput>) -> std::io::Result<Parsers> {
        let mut lanes = Vec::with_capacity(threads.max(1));
        for index in 0..threads.max(1) {
            let (lane, work) = mpsc::channel(LANE_DEPTH);
            let engine = engine.clone();
            std::thread::Builder::new()
                .name(format!("tcp-parse-{index}"))
                .spawn(move || parse(work, &engine))?;
            lanes.push(lane);
        }
        Ok(Parsers {
            lanes: lanes.into(),
            next: Arc::default(),
        })
    }

    /// The lane of a new connection: each in turn, so a few busy senders spread over the threads.
    pub(crate) fn lane(&self) -> Lane {
        let index = self.next.fetch_add(1, Ordering::Relaxed) % self.lanes.len();
        Lane(self.lanes[index].clone())
    }
}

/// One connection's way to its parser thread.
pub(crate) struct Lane(mpsc::Sender<Work>);

impl Lane {
    /// Waits while the lane is full (backpressure). False once the engine has stopped.
    pub(crate) async fn send(&self, work: Work) -> bool {
        self.0.send(work).await.is_ok()
    }
}

/// A parser thread: parses each block as it comes and waits on the engine's queue as long as it is full.
fn parse(mut work: mpsc::Receiver<Work>, engine: &Sender<EngineInput>) {
    while let Some(next) = work.blocking_recv() {
        let input = match next {
            Work::Lines {
                source,
                chunk,
                received,
                mark,
            } => {
                let parsed = parse_chunk(0, chunk);
                match mark {
                    None => EngineInput::Batch {
                        source,
                        kind: SourceKind::Tcp,
                        parsed,
                        received,
                        reply: None,
                    },
                    Some(mark) => EngineInput::StreamBatch {
                        mark,
                        source,
                        parsed,
                        received,
                    },
                }
            }
            Work::Forward(input) => input,
        };
        if engine.send(input).is_err() {
            return;
        }
    }
}
