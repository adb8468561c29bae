//! The opt-in acknowledged TCP protocol. A sender whose first line (after `AUTH`) is `ACK ON <stream>` is told
//! `ACK <n>`: the service holds the stream's first n lines, durably, so the sender goes on from line n+1. Later
//! `ACK <n>` lines follow as the engine applies and syncs what arrives; after a crash or a dropped connection
//! the sender reconnects, is told where the service got to, and resends exactly the rest. Plain senders never
//! see any of this.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{oneshot, watch};

use crate::engine::EngineInput;
use crate::engine::sources::stream_name as streams_source;
use crate::engine::streams::{self, Attach, StreamMark};
use crate::ingest::feed::Feed;
use crate::ingest::parsers::{Lane, Work};

const PREFIX: &[u8] = b"ACK ON ";
/// Longest `ACK ON <stream>` line read.
const MAX_LINE: usize = PREFIX.len() + streams::MAX_NAME + 2;

/// A connection speaking for an acknowledged stream.
pub struct Acked {
    name: Arc<str>,
    attachment: u64,
    /// The stream's position when this connection took it over: its line k is the stream's line base + k.
    base: u64,
    /// The stream's durable position, as the engine publishes it.
    pub acks: watch::Receiver<u64>,
}

impl Acked {
    /// The event-time source the stream's lines count for (not the connection's).
    pub fn source(&self) -> Arc<str> {
        Arc::from(streams_source(&self.name))
    }

    /// The mark of a batch that ends with this connection's line `lines`.
    pub fn mark(&self, lines: u64) -> StreamMark {
        StreamMark {
            name: self.name.clone(),
            attachment: self.attachment,
            through: self.base + lines,
        }
    }

    /// The sender has finished: writes `ACK`s until the last line `last` is acknowledged (or `patience` passes
    /// with nothing new).
    pub async fn finish<S: AsyncWrite + Unpin>(
        &mut self,
        stream: &mut S,
        last: u64,
        patience: Duration,
    ) {
        loop {
            let through = *self.acks.borrow_and_update();
            if through >= last {
                let _ = write_ack(stream, through).await;
                return;
            }
            match tokio::time::timeout(patience, self.acks.changed()).await {
                Ok(Ok(())) => {
                    let through = *self.acks.borrow();
                    if write_ack(stream, through).await.is_err() {
                        return;
                    }
                }
                Ok(Err(_)) | Err(_) => return,
            }
        }
    }
}

pub async fn write_ack<S: AsyncWrite + Unpin>(stream: &mut S, through: u64) -> std::io::Result<()> {
    stream
        .write_all(format!("ACK {through}\n").as_bytes())
        .await
}

/// Reads the connection's first line when it might be `ACK ON <stream>`; for one, attaches the stream in the
/// engine and answers `ACK <position>`. `Ok(None)` for a plain sender (its bytes stay in `feed`).
pub async fn negotiate<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    feed: &mut Feed,
    timeout: Duration,
    lane: &Lane,
) -> Result<Option<Acked>, &'static str> {
    let line_end = loop {
        let waiting = &feed.bytes[feed.taken..];
        let compared = waiting.len().min(PREFIX.len());
        if waiting[..compared] != PREFIX[..compared] {
            return Ok(None);
        }
        if let Some(end) = waiting.iter().position(|&b| b == b'\n') {
            break end;
        }
        if waiting.len() > MAX_LINE {
            return Err("the `ACK ON <stream>` line is too long");
        }
        if feed.eof {
            return Ok(None);
        }
        feed.room(MAX_LINE);
        match tokio::time::timeout(timeout, stream.read_buf(&mut feed.bytes)).await {
            Ok(Ok(n)) if n > 0 => {}
            _ => feed.eof = true,
        }
    };
    let line = &feed.bytes[feed.taken..feed.taken + line_end];
    let name = std::str::from_utf8(&line[PREFIX.len().min(line.len())..])
        .map(|name| name.trim_end_matches('\r').trim())
        .unwrap_or_default();
    if !streams::valid_name(name) {
        return Err("stream names are 1-128 letters, digits or -_.:@/");
    }
    let name: Arc<str> = Arc::from(name);
    feed.taken += line_end + 1;
    let (acks, receiver) = watch::channel(0);
    let (reply, attached) = oneshot::channel();
    let attach = EngineInput::Attach(Attach {
        name: name.clone(),
        acks,
        reply,
    });
    // Through the connection's lane: the engine attaches the stream before any of its batches.
    if !lane.send(Work::Forward(attach)).await {
        return Err("the engine stopped");
    }
    let attached = attached.await.map_err(|_| "the engine stopped")??;
    write_ack(stream, attached.position)
        .await
        .map_err(|_| "write failed")?;
    tracing::info!(stream = %name, position = attached.position, "acknowledged stream resumed");
    Ok(Some(Acked {
        name,
        attachment: attached.attachment,
        base: attached.position,
        acks: receiver,
    }))
}
