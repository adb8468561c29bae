//! A connection's bytes cut into blocks of whole lines, on the connection task and without parsing: the socket is
//! read straight into the block being filled, the block goes out up to its last `\n` as soon as a read brings
//! one, and only the start of the line still arriving is copied into the next block. Line numbers and lines over
//! the limit come out as `LineFramer` gives them (replay, HTTP and follow frame with it), so quarantine records
//! name the same lines whichever way the bytes came in.

use stormwatch_core::telemetry::framing::Chunk;
use stormwatch_core::telemetry::parse::MAX_LINE_BYTES;

/// A line is only declared oversized once this many bytes arrived without a `\n` (the limit, plus a tolerated
/// `\r`), as `LineFramer` does.
const OVERSIZE_AFTER: usize = MAX_LINE_BYTES + 1;

pub(crate) struct Blocks {
    /// The block being filled: the start of a line still arriving, then whatever the last read brought.
    pub(crate) bytes: Vec<u8>,
    /// The first `scanned` bytes of `bytes` hold no `\n` (looked at already).
    scanned: usize,
    next_line: u64,
    /// Set while dropping the rest of a line over the limit: its first bytes and its length so far.
    skipping: Option<(Vec<u8>, u64)>,
    /// The connection has ended: what is left is the last line, even without its `\n`.
    pub(crate) eof: bool,
}

impl Blocks {
    /// Starts with `bytes` already read (after a handshake line).
    pub(crate) fn new(bytes: Vec<u8>) -> Blocks {
        Blocks {
            bytes,
            scanned: 0,
            next_line: 1,
            skipping: None,
            eof: false,
        }
    }

    /// The 1-based number of the next line to go out.
    pub(crate) fn next_line(&self) -> u64 {
        self.next_line
    }

    /// Makes room for a read of `want` bytes in all (less what the block holds, and at least a few KiB); returns
    /// the free room.
    pub(crate) fn room(&mut self, want: usize) -> usize {
        let target = want.max(self.bytes.len() + 4096);
        if self.bytes.capacity() < target {
            self.bytes.reserve(target - self.bytes.len());
        }
        self.bytes.capacity() - self.bytes.len()
    }

    /// The next block ready to go, or `None` when more bytes are needed (or, at the end, nothing is left). The
    /// bytes after the block's last line move to `fresh()`, an empty block.
    pub(crate) fn next_chunk(&mut self, fresh: impl FnOnce() -> Vec<u8>) -> Option<Chunk> {
        loop {
            if let Some((prefix, length)) = self.skipping.take() {
                return match memchr::memchr(b'\n', &self.bytes) {
                    Some(end) => {
                        self.bytes.drain(..=end);
                        self.scanned = 0;
                        Some(self.oversized(prefix, length + end as u64))
                    }
                    None if self.eof => {
                        let length = length + self.bytes.len() as u64;
                        self.bytes.clear();
                        Some(self.oversized(prefix, length))
                    }
                    None => {
                        self.skipping = Some((prefix, length + self.bytes.len() as u64));
                        self.bytes.clear();
                        self.scanned = 0;
                        None
                    }
                };
            }
            if let Some(last) = memchr::memrchr(b'\n', &self.bytes[self.scanned..]) {
                let cut = self.scanned + last + 1;
                let mut next = fresh();
                next.extend_from_slice(&self.bytes[cut..]);
                let mut data = std::mem::replace(&mut self.bytes, next);
                data.truncate(cut);
                self.scanned = self.bytes.len();
                let first_line = self.next_line;
                self.next_line += memchr::memchr_iter(b'\n', &data).count() as u64;
                return Some(Chunk::Lines { first_line, data });
            }
            self.scanned = self.bytes.len();
            if self.bytes.len() > OVERSIZE_AFTER {
                let prefix = self.bytes[..MAX_LINE_BYTES].to_vec();
                self.skipping = Some((prefix, self.bytes.len() as u64));
                self.bytes.clear();
                self.scanned = 0;
                continue;
            }
            if self.eof && !self.bytes.is_empty() {
                let first_line = self.next_line;
                self.next_line += 1;
                self.scanned = 0;
                let data = std::mem::take(&mut self.bytes);
                return Some(Chunk::Lines { first_line, data });
            }
            return None;
        }
    }

    fn oversized(&mut self, prefix: Vec<u8>, length: u64) -> Chunk {
        let line = self.next_line;
        self.next_line += 1;
        Chunk::Oversized {
            line,
            prefix,
            length,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stormwatch_core::telemetry::framing::{LineFramer, lines_of};

    /// Every line with its number, as a sequence of chunks gives them (lines over the limit as their length).
    fn numbered(chunks: Vec<Chunk>) -> Vec<(u64, Vec<u8>)> {
        let mut lines = Vec::new();
        for chunk in chunks {
            match chunk {
                Chunk::Lines { first_line, data } => {
                    for (number, line) in lines_of(first_line, &data) {
                        // A long line that arrived with its `\n` in one read is parsed (and refused) whole.
                        match line.len() > MAX_LINE_BYTES {
                            true => lines
                                .push((number, format!("oversized {}", line.len()).into_bytes())),
                            false => lines.push((number, line.to_vec())),
                        }
                    }
                }
                Chunk::Oversized { line, length, .. } => {
                    lines.push((line, format!("oversized {length}").into_bytes()));
                }
            }
        }
        lines
    }

    /// Feeds `input` in reads of the given sizes (cycled), as a socket would.
    fn cut(input: &[u8], reads: &[usize]) -> Vec<Chunk> {
        let mut blocks = Blocks::new(Vec::new());
        let mut chunks = Vec::new();
        let (mut at, mut turn) = (0, 0);
        loop {
            while let Some(chunk) = blocks.next_chunk(|| Vec::with_capacity(1024)) {
                chunks.push(chunk);
            }
            if blocks.eof {
                return chunks;
            }
            let n = reads[turn % reads.len()].min(input.len() - at);
            turn += 1;
            blocks.room(n);
            blocks.bytes.extend_from_slice(&input[at..at + n]);
            at += n;
            if n == 0 {
                blocks.eof = true;
            }
        }
    }

    fn framed(input: &[u8]) -> Vec<Chunk> {
        let mut framer = LineFramer::new(input);
        let mut chunks = Vec::new();
        while let Some(chunk) = framer.next_chunk().expect("reading a slice") {
            chunks.push(chunk);
        }
        chunks
    }

    #[test]
    fn lines_and_numbers_match_the_framer_whatever_the_reads() {
        let mut input = Vec::new();
        for n in 0..500 {
            input.extend_from_slice(format!("line {n} {}\n", "x".repeat(n % 37)).as_bytes());
            if n % 97 == 0 {
                input.extend_from_slice(b"\n  \r\n");
            }
            if n == 250 {
                input.extend(std::iter::repeat_n(b'y', MAX_LINE_BYTES + 10));
                input.push(b'\n');
            }
        }
        input.extend_from_slice(b"no newline at the end");
        let expected = numbered(framed(&input));
        for reads in [&[1][..], &[7, 300], &[4096], &[70_000, 3], &[1 << 20]] {
            assert_eq!(numbered(cut(&input, reads)), expected, "reads {reads:?}");
        }
    }

    #[test]
    fn an_oversized_last_line_without_newline_is_one_line() {
        let mut input = b"a\n".to_vec();
        input.extend(std::iter::repeat_n(b'z', MAX_LINE_BYTES * 2));
        assert_eq!(numbered(cut(&input, &[5000])), numbered(framed(&input)));
    }
}
