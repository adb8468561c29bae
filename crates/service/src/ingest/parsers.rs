//! The TCP listener's parser threads: connection tasks hand them raw blocks of whole lines over bounded async
//! channels (one lane per thread), and they parse the blocks and hand the batches to the engine's queue.
//!
//! Parsing on the tokio workers took them away from reading sockets and answering `ACK`s, and the engine's
//! crossbeam queue could only be polled from async code (try, sleep, try again: up to 8 ms lost per full queue).
//! Here a parser thread blocks on the engine's queue when it is full; its lane then fills, the connection tasks'
//! `send().await` waits, they stop reading, and TCP pushes back on the senders. A connection keeps one lane for
//! its life, so its blocks, its `Attach` and its close reach the engine in the order it sent them. What the engine
//! has applied comes back (`Spent`): parser threads parse into the vectors of spent batches and connection tasks
//! read into their blocks, so under load nothing is allocated (or freed on the engine thread) per block.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use crossbeam::channel::Sender;
use crossbeam::queue::ArrayQueue;
use tokio::sync::mpsc;

use crate::engine::streams::StreamMark;
use crate::engine::{EngineInput, SourceKind};
use stormwatch_core::telemetry::batch::{ParsedChunk, parse_chunk_into};
use stormwatch_core::telemetry::framing::Chunk;

/// Blocks a lane holds before its connections wait: enough to keep the parser busy while a connection reads its
/// next block, few enough that the time a block waits here stays well under a millisecond at a steady rate.
pub const LANE_DEPTH: usize = 8;

/// Spent batches and blocks kept for reuse: about what is in flight between the sockets and the engine at full
/// speed (beyond that they are freed, so a burst leaves little memory behind).
const KEPT: usize = 16;
/// Blocks smaller than this are not worth keeping, and a connection asking for less (one not yet busy) gets a
/// block of its own size rather than a kept one.
const KEPT_BLOCK: usize = 64 * 1024;

/// Memory the engine has finished with, for parser threads and connection tasks to reuse.
pub struct Spent {
    chunks: ArrayQueue<ParsedChunk>,
    blocks: ArrayQueue<Vec<u8>>,
}

impl Default for Spent {
    fn default() -> Self {
        Spent {
            chunks: ArrayQueue::new(KEPT),
            blocks: ArrayQueue::new(KEPT),
        }
    }
}

impl Spent {
    /// Engine thread: a batch it has applied (from any source). Kept when there is room, freed otherwise.
    pub fn give_back(&self, mut parsed: ParsedChunk) {
        let block = std::mem::take(&mut parsed.data);
        if block.capacity() >= KEPT_BLOCK {
            let _ = self.blocks.push(block);
        }
        let _ = self.chunks.push(parsed);
    }

    /// An empty block with room for `bytes`.
    fn block(&self, bytes: usize) -> Vec<u8> {
        if bytes >= KEPT_BLOCK
            && let Some(mut block) = self.blocks.pop()
            && block.capacity() >= bytes
        {
            block.clear();
            return block;
        }
        Vec::with_capacity(bytes)
    }
}

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
    spent: Arc<Spent>,
}

impl Parsers {
    /// Starts `threads` parser threads feeding `engine`. They end once every lane's sender is gone, or when the
    /// engine stops (their lanes close, and connections see the engine gone).
    /// Batches are parsed into the vectors of those given back to `spent`.
    pub fn start(
        threads: usize,
        engine: &Sender<EngineInput>,
        spent: Arc<Spent>,
    ) -> std::io::Result<Parsers> {
        let mut lanes = Vec::with_capacity(threads.max(1));
        for index in 0..threads.max(1) {
            let (lane, work) = mpsc::channel(LANE_DEPTH);
            let (engine, spent) = (engine.clone(), spent.clone());
            std::thread::Builder::new()
                .name(format!("tcp-parse-{index}"))
                .spawn(move || parse(work, &engine, &spent))?;
            lanes.push(lane);
        }
        Ok(Parsers {
            lanes: lanes.into(),
            next: Arc::default(),
            spent,
        })
    }

    /// The lane of a new connection: each in turn, so a few busy senders spread over the threads.
    pub(crate) fn lane(&self) -> Lane {
        let index = self.next.fetch_add(1, Ordering::Relaxed) % self.lanes.len();
        Lane(self.lanes[index].clone(), self.spent.clone())
    }
}

/// One connection's way to its parser thread, and the blocks it reads into.
pub(crate) struct Lane(mpsc::Sender<Work>, Arc<Spent>);

impl Lane {
    /// An empty block to read into, with room for `bytes`: a spent one when the connection is busy.
    pub(crate) fn block(&self, bytes: usize) -> Vec<u8> {
        self.1.block(bytes)
    }

    /// Waits while the lane is full (backpressure). False once the engine has stopped.
    pub(crate) async fn send(&self, work: Work) -> bool {
        self.0.send(work).await.is_ok()
    }
}

/// A parser thread: parses each block as it comes and waits on the engine's queue as long as it is full.
fn parse(mut work: mpsc::Receiver<Work>, engine: &Sender<EngineInput>, spent: &Spent) {
    while let Some(next) = work.blocking_recv() {
        let input = match next {
            Work::Lines {
                source,
                chunk,
                received,
                mark,
            } => {
                let parsed = parse_chunk_into(0, chunk, spent.chunks.pop().unwrap_or_default());
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spent_blocks_come_back_empty_and_only_to_busy_connections() {
        let spent = Spent::default();
        let mut parsed = ParsedChunk {
            data: Vec::with_capacity(256 * 1024),
            ..ParsedChunk::default()
        };
        parsed.data.extend_from_slice(b"old line\n");
        let kept = parsed.data.as_ptr();
        spent.give_back(parsed);
        // A connection not yet busy gets a small block of its own; a busy one the kept block, emptied.
        assert!(spent.block(8 * 1024).capacity() < 256 * 1024);
        let block = spent.block(256 * 1024);
        assert_eq!((block.as_ptr(), block.len()), (kept, 0));
        assert!(
            spent
                .chunks
                .pop()
                .is_some_and(|chunk| chunk.data.is_empty())
        );
    }
}
