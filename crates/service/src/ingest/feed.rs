//! What a TCP connection task holds between the socket and the engine: the bytes read and not yet framed
//! (`Feed`), and the handoff of a batch to the engine's bounded queue (`send_to_engine`). Shared by the plain
//! listener (`tcp.rs`) and the acknowledged protocol (`ack.rs`).

use std::io::{self, Read};
use std::time::Duration;

use crossbeam::channel::{Sender, TrySendError};

use crate::engine::EngineInput;

/// Hands a batch to the engine's bounded queue, waiting while it is full: the backpressure every connection
/// feels. False once the engine has stopped.
pub(crate) async fn send_to_engine(engine: &Sender<EngineInput>, mut batch: EngineInput) -> bool {
    // A source far ahead of the watermark waits for the others first (watermark alignment).
    match &batch {
        EngineInput::Batch { source, .. } => crate::pace::wait_turn(source).await,
        EngineInput::StreamBatch { mark, .. } => {
            crate::pace::wait_turn(&crate::engine::sources::stream_name(&mark.name)).await;
        }
        _ => {}
    }
    let mut pause = Duration::from_millis(1);
    loop {
        match engine.try_send(batch) {
            Ok(()) => return true,
            Err(TrySendError::Disconnected(_)) => return false,
            Err(TrySendError::Full(again)) => {
                batch = again;
                // The queue holds tens of milliseconds of engine work, so a short poll never starves it.
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_millis(8));
            }
        }
    }
}

/// The framer's reader: bytes the connection task has read from the socket, `WouldBlock` when it has none yet.
#[derive(Default)]
pub(crate) struct Feed {
    pub(crate) bytes: Vec<u8>,
    pub(crate) taken: usize,
    pub(crate) eof: bool,
}

impl Feed {
    pub(crate) fn push(&mut self, data: &[u8]) {
        self.room(data.len());
        self.bytes.extend_from_slice(data);
    }

    /// Makes room for at least `want` more bytes (starting over once everything was taken); returns the room.
    pub(crate) fn room(&mut self, want: usize) -> usize {
        if self.taken == self.bytes.len() {
            self.bytes.clear();
            self.taken = 0;
        }
        self.bytes.reserve(want);
        self.bytes.capacity() - self.bytes.len()
    }
}

impl Read for Feed {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let waiting = &self.bytes[self.taken..];
        if waiting.is_empty() {
            return if self.eof {
                Ok(0)
            } else {
                Err(io::ErrorKind::WouldBlock.into())
            };
        }
        let n = waiting.len().min(buf.len());
        buf[..n].copy_from_slice(&waiting[..n]);
        self.taken += n;
        Ok(n)
    }
}
