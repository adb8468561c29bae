//! Parsing a framed chunk into events and malformed lines: the step every source (replay, TCP, HTTP, follow)
//! shares, so that the same bytes give the same events and the same quarantine records wherever they come from.

use super::fast_path;
use super::framing::Chunk;
use super::parse::{LineError, MAX_LINE_BYTES, parse_line};
use super::{Event, MalformedLine};

/// A parsed chunk.
#[derive(Debug, Default)]
pub struct ParsedChunk {
    pub first_line: u64,
    /// The chunk's bytes, kept so a line can still be quarantined if the engine later refuses its event.
    pub data: Vec<u8>,
    pub events: Vec<Event>,
    /// Byte offset in `data` of each event's line.
    pub offsets: Vec<u32>,
    pub malformed: Vec<MalformedLine>,
}

/// Where the last [`ParsedChunk::line_at`] stopped counting newlines: asked in increasing event order, each
/// newline of the chunk is counted once, not once per event (counting from the chunk's start for every held
/// event made a chunk quadratic, and was most of the live engine thread's time).
#[derive(Clone, Copy, Debug, Default)]
pub struct LineCursor {
    offset: usize,
    newlines: u64,
}

impl ParsedChunk {
    /// The line an event came from and its number, for quarantining an event the engine refused.
    pub fn line_of(&self, event_index: usize) -> (u64, &[u8]) {
        self.line_at(event_index, &mut LineCursor::default())
    }

    /// [`ParsedChunk::line_of`], counting on from `cursor` (and moving it) when the event lies after it.
    pub fn line_at(&self, event_index: usize, cursor: &mut LineCursor) -> (u64, &[u8]) {
        let start = self
            .offsets
            .get(event_index)
            .map_or(0, |&o| o as usize)
            .min(self.data.len());
        let end = memchr::memchr(b'\n', &self.data[start..]).map_or(self.data.len(), |n| start + n);
        if start < cursor.offset {
            *cursor = LineCursor::default();
        }
        cursor.newlines +=
            memchr::memchr_iter(b'\n', &self.data[cursor.offset..start]).count() as u64;
        cursor.offset = start;
        (self.first_line + cursor.newlines, &self.data[start..end])
    }
}

/// Blank lines (only spaces, tabs or a carriage return) are skipped and not counted.
pub fn is_blank(line: &[u8]) -> bool {
    line.iter().all(|b| matches!(b, b' ' | b'\t' | b'\r'))
}

/// A malformed record keeps at most the first 64 KiB of a line, however the line was framed.
pub fn malformed(source: u32, line: u64, error: String, bytes: &[u8]) -> MalformedLine {
    MalformedLine {
        source,
        line,
        error,
        bytes: bytes[..bytes.len().min(MAX_LINE_BYTES)].to_vec(),
        length: bytes.len() as u64,
    }
}

/// Parses every line of `chunk`, attributing malformed ones to `source`.
pub fn parse_chunk(source: u32, chunk: Chunk) -> ParsedChunk {
    parse_chunk_into(source, chunk, ParsedChunk::default())
}

/// [`parse_chunk`] into the vectors of a spent chunk, so that a long replay stops allocating once warm: memory
/// then stays at what the blocks in flight need, however long the input.
pub fn parse_chunk_into(source: u32, chunk: Chunk, spent: ParsedChunk) -> ParsedChunk {
    let ParsedChunk {
        mut events,
        mut offsets,
        malformed: mut bad,
        ..
    } = spent;
    events.clear();
    offsets.clear();
    bad.clear();
    match chunk {
        Chunk::Oversized {
            line,
            prefix,
            length,
        } => {
            bad.push(MalformedLine {
                source,
                line,
                error: LineError::TooLong(length as usize).to_string(),
                bytes: prefix,
                length,
            });
            ParsedChunk {
                first_line: line,
                data: Vec::new(),
                events,
                offsets,
                malformed: bad,
            }
        }
        Chunk::Lines { first_line, data } => {
            events.reserve(data.len() / 64);
            offsets.reserve(data.len() / 64);
            let (mut start, mut number) = (0, first_line);
            while start < data.len() {
                // The common line is read in one pass that also finds its end; any other is framed and goes
                // the whole way.
                let end = match fast_path::scan(&data, start) {
                    Some((event, end)) => {
                        events.push(event);
                        offsets.push(start as u32);
                        end
                    }
                    None => {
                        let end =
                            memchr::memchr(b'\n', &data[start..]).map_or(data.len(), |n| start + n);
                        let line = &data[start..end];
                        if !is_blank(line) {
                            match parse_line(line) {
                                Ok(event) => {
                                    events.push(event);
                                    offsets.push(start as u32);
                                }
                                Err(error) => {
                                    bad.push(malformed(source, number, error.to_string(), line))
                                }
                            }
                        }
                        end
                    }
                };
                start = end + 1;
                number += 1;
            }
            ParsedChunk {
                first_line,
                data,
                events,
                offsets,
                malformed: bad,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_numbers_through_a_cursor_match_counting_from_the_start() {
        let data = b"first\nnot json\n\nthird event\nfourth event\n".to_vec();
        let parsed = ParsedChunk {
            first_line: 10,
            offsets: vec![0, 16, 28],
            data,
            ..ParsedChunk::default()
        };
        assert_eq!(parsed.line_of(0), (10, &b"first"[..]));
        assert_eq!(parsed.line_of(1), (13, &b"third event"[..]));
        assert_eq!(parsed.line_of(2), (14, &b"fourth event"[..]));
        let mut cursor = LineCursor::default();
        for index in [0, 1, 2, 0, 2, 1] {
            assert_eq!(parsed.line_at(index, &mut cursor), parsed.line_of(index));
        }
    }
}
