//! Cuts a byte stream into blocks of whole lines with line numbers, whatever the read sizes, and sets aside
//! lines longer than the limit without ever buffering more than a bounded amount.

use std::io::{self, Read};

use super::parse::MAX_LINE_BYTES;

/// Target size of a block handed to a parser.
pub const BLOCK_BYTES: usize = 256 << 10;

/// A line is only declared oversized once this many bytes arrived without a `\n` (the limit, plus a tolerated `\r`).
const OVERSIZE_AFTER: usize = MAX_LINE_BYTES + 1;

/// What the framer yields.
#[derive(Debug, PartialEq, Eq)]
pub enum Chunk {
    /// Whole lines, each ending in `\n` except perhaps the last line of the stream. `first_line` is 1-based.
    Lines { first_line: u64, data: Vec<u8> },
    /// A line over the limit: its first `MAX_LINE_BYTES` bytes and its full length (without the `\n`).
    Oversized {
        line: u64,
        prefix: Vec<u8>,
        length: u64,
    },
}

/// Line framer over any reader.
pub struct LineFramer<R> {
    reader: R,
    /// Read buffer, allocated once and reused: `buf[start..end]` holds bytes read but not yet handed out, always
    /// beginning at a line start. (Handing blocks out by copying beats zero-filling a fresh buffer per read.)
    buf: Vec<u8>,
    start: usize,
    end: usize,
    next_line: u64,
    eof: bool,
    /// Set while discarding the rest of an oversized line.
    skipping: Option<(Vec<u8>, u64)>,
    block_bytes: usize,
    /// Hand out complete lines as soon as a read brings them, instead of waiting for a full block: live sources
    /// want latency, replay wants big blocks.
    streaming: bool,
    /// A spent block's buffer to copy the next block into, instead of allocating one.
    spare: Option<Vec<u8>>,
}

impl<R: Read> LineFramer<R> {
    pub fn new(reader: R) -> Self {
        Self::with_block_size(reader, BLOCK_BYTES)
    }

    /// A smaller block size, for tests that want many blocks.
    pub fn with_block_size(reader: R, block_bytes: usize) -> Self {
        LineFramer {
            reader,
            buf: Vec::new(),
            start: 0,
            end: 0,
            next_line: 1,
            eof: false,
            skipping: None,
            block_bytes,
            streaming: false,
            spare: None,
        }
    }

    /// A framer for live sources: lines go out as soon as they are complete.
    pub fn streaming(reader: R, block_bytes: usize) -> Self {
        LineFramer {
            streaming: true,
            ..Self::with_block_size(reader, block_bytes)
        }
    }

    /// Gives back the buffer of a block that has been used up, for the next block to reuse.
    pub fn recycle(&mut self, buffer: Vec<u8>) {
        if buffer.capacity() > 0 {
            self.spare = Some(buffer);
        }
    }

    /// `pending()[..end]` as a buffer of its own. With a spare buffer (a caller that recycles) and the block
    /// at the front of the read buffer, the read buffer itself is handed out and only the bytes after `end` (the
    /// start of the next line, shorter than the block) move to the spare, which becomes the read buffer: a block
    /// is then copied once (by the kernel), not twice. The spare keeps its length, so no zero-filling either.
    /// Otherwise (a live source, whose blocks may be a line long) the block is copied out.
    fn take_pending(&mut self, end: usize) -> Vec<u8> {
        let rest = self.end - self.start - end;
        if self.start == 0
            && rest < end
            && let Some(mut next) = self.spare.take()
        {
            if next.len() < rest {
                next.resize(rest, 0);
            }
            next[..rest].copy_from_slice(&self.buf[end..self.end]);
            let mut data = std::mem::replace(&mut self.buf, next);
            data.truncate(end);
            self.end = rest;
            return data;
        }
        let mut data = self.spare.take().unwrap_or_default();
        data.clear();
        data.extend_from_slice(&self.pending()[..end]);
        self.start += end;
        data
    }

    /// The reader, for a caller that feeds it: a reader may answer `WouldBlock` when it has nothing yet, and
    /// `next_chunk` then returns that error with its state intact, to be called again once bytes were added.
    pub fn get_mut(&mut self) -> &mut R {
        &mut self.reader
    }

    /// The 1-based number of the next line to be handed out.
    pub fn next_line(&self) -> u64 {
        self.next_line
    }

    fn pending(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    fn discard_pending(&mut self) {
        self.start = self.end;
    }

    /// The next chunk, or `None` at the end of the stream.
    pub fn next_chunk(&mut self) -> io::Result<Option<Chunk>> {
        loop {
            if let Some((prefix, length)) = self.skipping.take() {
                match memchr::memchr(b'\n', self.pending()) {
                    Some(end) => {
                        self.start += end + 1;
                        return Ok(Some(self.oversized(prefix, length + end as u64)));
                    }
                    None if self.eof => {
                        let length = length + self.pending().len() as u64;
                        self.discard_pending();
                        return Ok(Some(self.oversized(prefix, length)));
                    }
                    None => {
                        self.skipping = Some((prefix, length + self.pending().len() as u64));
                        self.discard_pending();
                        self.fill()?;
                        continue;
                    }
                }
            }
            let complete_line_waiting =
                self.streaming && memchr::memchr(b'\n', self.pending()).is_some();
            if !self.eof && self.pending().len() < self.block_bytes && !complete_line_waiting {
                self.fill()?;
                continue;
            }
            if let Some(last_newline) = memchr::memrchr(b'\n', self.pending()) {
                let data = self.take_pending(last_newline + 1);
                let first_line = self.next_line;
                self.next_line += memchr::memchr_iter(b'\n', &data).count() as u64;
                return Ok(Some(Chunk::Lines { first_line, data }));
            }
            if self.pending().len() > OVERSIZE_AFTER {
                let prefix = self.pending()[..MAX_LINE_BYTES].to_vec();
                let length = self.pending().len() as u64;
                self.discard_pending();
                self.skipping = Some((prefix, length));
                continue;
            }
            if self.eof {
                if self.pending().is_empty() {
                    return Ok(None);
                }
                let first_line = self.next_line;
                self.next_line += 1;
                let data = self.take_pending(self.pending().len());
                return Ok(Some(Chunk::Lines { first_line, data }));
            }
            self.fill()?;
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

    /// Reads once more, into the free end of the buffer (moving the pending bytes to the front first, and growing
    /// the buffer only when the pending bytes leave less than a block of room).
    fn fill(&mut self) -> io::Result<()> {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        let want = self.block_bytes.max(4096);
        if self.buf.len() - self.end < want {
            self.buf.resize(self.end + want, 0);
        }
        let read = loop {
            match self.reader.read(&mut self.buf[self.end..]) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        };
        self.end += read;
        if read == 0 {
            self.eof = true;
        }
        Ok(())
    }
}

/// Iterates the lines of a `Chunk::Lines` block with their numbers, without the `\n`.
pub fn lines_of(first_line: u64, data: &[u8]) -> impl Iterator<Item = (u64, &[u8])> {
    let mut rest = data;
    let mut number = first_line;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let (line, tail) = match memchr::memchr(b'\n', rest) {
            Some(end) => (&rest[..end], &rest[end + 1..]),
            None => (rest, &rest[rest.len()..]),
        };
        rest = tail;
        number += 1;
        Some((number - 1, line))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::collection::vec;
    use proptest::prelude::*;

    /// A reader that hands out its bytes in the given read sizes, cycling.
    pub(crate) struct Chunked<'a> {
        pub data: &'a [u8],
        pub sizes: Vec<usize>,
        pub turn: usize,
    }

    impl Read for Chunked<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let want = self.sizes[self.turn % self.sizes.len()].max(1);
            self.turn += 1;
            let n = want.min(buf.len()).min(self.data.len());
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    fn all_lines(data: &[u8], sizes: Vec<usize>, block: usize) -> Vec<(u64, Vec<u8>)> {
        collect(data, sizes, block, false, false)
    }

    /// The lines framed; with `recycle`, each block's buffer is given back as replay does (the framer then hands
    /// out its read buffer and keeps reading into the spent one).
    fn collect(
        data: &[u8],
        sizes: Vec<usize>,
        block: usize,
        streaming: bool,
        recycle: bool,
    ) -> Vec<(u64, Vec<u8>)> {
        let mut framer = LineFramer::with_block_size(
            Chunked {
                data,
                sizes,
                turn: 0,
            },
            block,
        );
        framer.streaming = streaming;
        let mut out = Vec::new();
        while let Some(chunk) = framer.next_chunk().unwrap() {
            match chunk {
                // Consumers keep the first 64 KiB of any over-long line, however it was framed.
                Chunk::Lines { first_line, data } => {
                    out.extend(lines_of(first_line, &data).map(|(n, l)| {
                        if l.len() > OVERSIZE_AFTER {
                            (
                                n,
                                format!("OVERSIZED {} {}", l.len(), MAX_LINE_BYTES).into_bytes(),
                            )
                        } else {
                            (n, l.to_vec())
                        }
                    }));
                    if recycle {
                        framer.recycle(data);
                    }
                }
                Chunk::Oversized {
                    line,
                    prefix,
                    length,
                } => out.push((
                    line,
                    format!("OVERSIZED {length} {}", prefix.len()).into_bytes(),
                )),
            }
        }
        out
    }

    #[test]
    fn numbers_lines_and_keeps_the_unterminated_last_one() {
        let lines = all_lines(b"a\n\nbc\nd", vec![2], 3);
        let expected: Vec<(u64, Vec<u8>)> = vec![
            (1, b"a".to_vec()),
            (2, b"".to_vec()),
            (3, b"bc".to_vec()),
            (4, b"d".to_vec()),
        ];
        assert_eq!(lines, expected);
    }

    #[test]
    fn oversized_line_is_set_aside_with_its_length() {
        let mut data = b"first\n".to_vec();
        data.extend(std::iter::repeat_n(b'x', MAX_LINE_BYTES + 10));
        data.extend(b"\nlast\n");
        let lines = all_lines(&data, vec![1000, 7, 65536], 4096);
        assert_eq!(lines.len(), 3);
        assert_eq!(
            lines[1],
            (
                2,
                format!("OVERSIZED {} {}", MAX_LINE_BYTES + 10, MAX_LINE_BYTES).into_bytes()
            )
        );
        assert_eq!(lines[2], (3, b"last".to_vec()));
    }

    proptest! {
        #[test]
        fn any_chunking_gives_the_same_lines(
            bytes in vec(prop_oneof![Just(b'\n'), Just(b'a'), Just(b'\r'), any::<u8>()], 0..3000),
            sizes in vec(1usize..700, 1..8),
            block in 1usize..2000,
        ) {
            let one_read = all_lines(&bytes, vec![usize::MAX / 2], 1 << 20);
            prop_assert_eq!(all_lines(&bytes, sizes.clone(), block), one_read.clone());
            prop_assert_eq!(collect(&bytes, sizes.clone(), block, true, false), one_read.clone());
            prop_assert_eq!(collect(&bytes, sizes.clone(), block, false, true), one_read.clone());
            prop_assert_eq!(collect(&bytes, sizes.clone(), block, true, true), one_read.clone());
            prop_assert_eq!(stuttering(&bytes, sizes, block), one_read);
        }
    }

    /// Like a non-blocking socket fed between calls: every other read has nothing yet (`WouldBlock`).
    fn stuttering(data: &[u8], sizes: Vec<usize>, block: usize) -> Vec<(u64, Vec<u8>)> {
        struct Stutter<'a> {
            inner: Chunked<'a>,
            wait: bool,
        }
        impl Read for Stutter<'_> {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                self.wait = !self.wait;
                if self.wait {
                    return Err(io::ErrorKind::WouldBlock.into());
                }
                self.inner.read(buf)
            }
        }
        let inner = Chunked {
            data,
            sizes,
            turn: 0,
        };
        let mut framer = LineFramer::streaming(Stutter { inner, wait: false }, block);
        let mut out = Vec::new();
        loop {
            match framer.next_chunk() {
                Ok(Some(Chunk::Lines { first_line, data })) => {
                    out.extend(lines_of(first_line, &data).map(|(n, l)| {
                        if l.len() > OVERSIZE_AFTER {
                            (
                                n,
                                format!("OVERSIZED {} {}", l.len(), MAX_LINE_BYTES).into_bytes(),
                            )
                        } else {
                            (n, l.to_vec())
                        }
                    }))
                }
                Ok(Some(Chunk::Oversized {
                    line,
                    prefix,
                    length,
                })) => out.push((
                    line,
                    format!("OVERSIZED {length} {}", prefix.len()).into_bytes(),
                )),
                Ok(None) => return out,
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                    assert!(framer.get_mut().wait, "only the reader's own WouldBlock");
                }
                Err(error) => panic!("{error}"),
            }
        }
    }
}
