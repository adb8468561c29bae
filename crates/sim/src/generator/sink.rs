//! The events file's byte sink. Compression runs on its own thread, so that formatting and compressing use both
//! cores of a small machine.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;
use std::sync::mpsc::{SyncSender, sync_channel};
use std::thread::JoinHandle;

use super::options::Compression;

enum Encoder {
    Plain(BufWriter<File>),
    Gzip(flate2::write::GzEncoder<BufWriter<File>>),
    Zstd(zstd::Encoder<'static, BufWriter<File>>),
}

impl Encoder {
    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self {
            Encoder::Plain(w) => w.write_all(bytes),
            Encoder::Gzip(w) => w.write_all(bytes),
            Encoder::Zstd(w) => w.write_all(bytes),
        }
    }

    fn finish(self) -> io::Result<()> {
        match self {
            Encoder::Plain(mut w) => w.flush(),
            Encoder::Gzip(w) => w.finish()?.flush(),
            Encoder::Zstd(w) => w.finish()?.flush(),
        }
    }
}

/// Chunks of finished lines go in; the thread compresses and writes them in order.
pub(crate) struct Sink {
    chunks: Option<SyncSender<Vec<u8>>>,
    worker: Option<JoinHandle<io::Result<()>>>,
}

impl Sink {
    /// `level`: gzip 0-9 (default 1: gzip is the slow one), zstd 1-22 (default 3).
    pub fn create(path: &Path, compression: Compression, level: Option<i32>) -> io::Result<Sink> {
        let file = BufWriter::with_capacity(1 << 20, File::create(path)?);
        let mut encoder = match compression {
            Compression::None => Encoder::Plain(file),
            Compression::Gzip => {
                let level = flate2::Compression::new(level.unwrap_or(1).clamp(0, 9) as u32);
                Encoder::Gzip(flate2::write::GzEncoder::new(file, level))
            }
            Compression::Zstd => Encoder::Zstd(zstd::Encoder::new(file, level.unwrap_or(3))?),
        };
        // A few chunks in flight are enough to keep both threads busy without holding much memory.
        let (chunks, incoming) = sync_channel::<Vec<u8>>(4);
        let worker = std::thread::Builder::new()
            .name("gen-sink".into())
            .spawn(move || {
                for chunk in incoming {
                    encoder.write_all(&chunk)?;
                }
                encoder.finish()
            })?;
        Ok(Sink {
            chunks: Some(chunks),
            worker: Some(worker),
        })
    }

    pub fn write(&mut self, chunk: Vec<u8>) -> io::Result<()> {
        let sent = self.chunks.as_ref().is_some_and(|c| c.send(chunk).is_ok());
        if sent {
            Ok(())
        } else {
            // The worker stopped: its own error says why.
            self.join()
                .and(Err(io::Error::other("the writer thread stopped")))
        }
    }

    pub fn finish(mut self) -> io::Result<()> {
        self.join()
    }

    fn join(&mut self) -> io::Result<()> {
        self.chunks = None;
        match self.worker.take() {
            Some(worker) => worker
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("the writer thread panicked"))),
            None => Ok(()),
        }
    }
}
