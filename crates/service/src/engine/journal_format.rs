//! The journal's bytes on disk: a checksummed file header naming the generation, then frames that each carry a
//! sequence number and a CRC, so that reading tells a torn tail (cut) from damage in the middle (counted) and
//! never replays bytes that are not what was written.
//!
//! File header (20 bytes): `SWJRNL02`, generation (u64 LE), CRC-32 of those 16 bytes (u32 LE).
//! Frame: tag (1), payload length (u32 LE), sequence (u64 LE), payload CRC-32 (u32 LE), CRC-32 of the 17 bytes
//! before it (u32 LE), then the payload. The head's own CRC lets a reader that lost its place find the next
//! frame by scanning, without trusting a damaged length.

use crc32fast::Hasher;

pub const FILE_MAGIC: &[u8; 8] = b"SWJRNL02";
pub const FILE_HEADER_LEN: usize = 20;
pub const FRAME_HEAD_LEN: usize = 21;
pub const BATCH: u8 = b'B';
pub const ADVANCE: u8 = b'A';
/// A batch with its event-time source: the source number (u32 LE), then the lines.
pub const SOURCED_BATCH: u8 = b'C';
/// A batch from an acknowledged TCP stream: the stream's name and line count after it, then the lines.
pub const STREAM_BATCH: u8 = b'S';
/// A frame longer than this is damage, not data (batches are 256 KiB blocks of lines).
pub const MAX_FRAME: usize = 64 << 20;

/// One record of the journal, in the order the engine applied them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Entry {
    /// The raw lines of a batch (valid and malformed alike; replay parses them again), from the default source.
    Batch(Vec<u8>),
    /// The same, from the numbered event-time source.
    SourcedBatch { source: u32, lines: Vec<u8> },
    /// The idle clock moved event time to this instant (ms).
    Advance(i64),
    /// The lines of a batch from an acknowledged stream, which has sent `through` lines once they are applied.
    Stream {
        name: String,
        through: u64,
        lines: Vec<u8>,
    },
}

pub fn file_header(generation: u64) -> [u8; FILE_HEADER_LEN] {
    let mut header = [0u8; FILE_HEADER_LEN];
    header[..8].copy_from_slice(FILE_MAGIC);
    header[8..16].copy_from_slice(&generation.to_le_bytes());
    let crc = crc32fast::hash(&header[..16]);
    header[16..].copy_from_slice(&crc.to_le_bytes());
    header
}

/// The head of a frame whose payload is `parts` joined (hashed in place: no copy of the lines).
pub fn frame_head(tag: u8, sequence: u64, parts: &[&[u8]]) -> [u8; FRAME_HEAD_LEN] {
    let mut payload_crc = Hasher::new();
    let mut length = 0usize;
    for part in parts {
        payload_crc.update(part);
        length += part.len();
    }
    let mut head = [0u8; FRAME_HEAD_LEN];
    head[0] = tag;
    head[1..5].copy_from_slice(&(length as u32).to_le_bytes());
    head[5..13].copy_from_slice(&sequence.to_le_bytes());
    head[13..17].copy_from_slice(&payload_crc.finalize().to_le_bytes());
    let head_crc = crc32fast::hash(&head[..17]);
    head[17..].copy_from_slice(&head_crc.to_le_bytes());
    head
}

/// The prefix of a stream batch's payload before its lines.
pub fn stream_prefix(name: &str, through: u64) -> Vec<u8> {
    let mut prefix = Vec::with_capacity(name.len() + 10);
    prefix.extend_from_slice(&(name.len() as u16).to_le_bytes());
    prefix.extend_from_slice(name.as_bytes());
    prefix.extend_from_slice(&through.to_le_bytes());
    prefix
}

fn le_u32(bytes: &[u8]) -> u32 {
    let mut four = [0u8; 4];
    four.copy_from_slice(&bytes[..4]);
    u32::from_le_bytes(four)
}

fn le_u64(bytes: &[u8]) -> u64 {
    let mut eight = [0u8; 8];
    eight.copy_from_slice(&bytes[..8]);
    u64::from_le_bytes(eight)
}

/// The generation in a whole, intact file header; `None` for anything else (an old format, damage, too short).
pub fn read_file_header(bytes: &[u8]) -> Option<u64> {
    let header = bytes.get(..FILE_HEADER_LEN)?;
    (header[..8] == FILE_MAGIC[..] && crc32fast::hash(&header[..16]) == le_u32(&header[16..]))
        .then(|| le_u64(&header[8..16]))
}

/// The frame starting at `at`, its sequence and where the next one starts, if every check passes.
fn frame_at(bytes: &[u8], at: usize) -> Option<(Entry, u64, usize)> {
    let head = bytes.get(at..at + FRAME_HEAD_LEN)?;
    if crc32fast::hash(&head[..17]) != le_u32(&head[17..]) {
        return None;
    }
    let length = le_u32(&head[1..5]) as usize;
    if length > MAX_FRAME {
        return None;
    }
    let start = at + FRAME_HEAD_LEN;
    let payload = bytes.get(start..start + length)?;
    if crc32fast::hash(payload) != le_u32(&head[13..17]) {
        return None;
    }
    let entry = match head[0] {
        BATCH => Entry::Batch(payload.to_vec()),
        SOURCED_BATCH => Entry::SourcedBatch {
            source: le_u32(payload.get(..4)?),
            lines: payload[4..].to_vec(),
        },
        ADVANCE => Entry::Advance(i64::from_le_bytes(<[u8; 8]>::try_from(payload).ok()?)),
        STREAM_BATCH => {
            let name_len = usize::from(u16::from_le_bytes([*payload.first()?, *payload.get(1)?]));
            let name = std::str::from_utf8(payload.get(2..2 + name_len)?).ok()?;
            let through = le_u64(payload.get(2 + name_len..10 + name_len)?);
            Entry::Stream {
                name: name.to_owned(),
                through,
                lines: payload[10 + name_len..].to_vec(),
            }
        }
        _ => return None,
    };
    Some((entry, le_u64(&head[5..13]), start + length))
}

/// What reading a journal found besides its entries.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Damage {
    /// Bytes after the last whole frame with no whole frame after them: a write cut short (by a crash, or by
    /// someone truncating the file). They are cut off.
    pub torn_tail_bytes: u64,
    /// Stretches of bad bytes with whole frames after them: damage in the middle.
    pub corrupt_regions: u64,
    /// Frames known lost: gaps in the sequence numbers of the frames that were read.
    pub lost_frames: u64,
}

impl Damage {
    /// True when something that had been applied may be missing (a torn tail alone was never applied).
    pub fn loses_data(&self) -> bool {
        self.corrupt_regions > 0 || self.lost_frames > 0
    }

    pub fn is_clean(&self) -> bool {
        *self == Damage::default()
    }
}

/// The entries of a journal file, checked.
#[derive(Debug, Default)]
pub struct Read {
    /// The header's generation; `None` when the file has no intact header.
    pub generation: Option<u64>,
    pub entries: Vec<Entry>,
    /// Where the last good frame ends: appends go there (cutting a torn tail).
    pub good_len: usize,
    /// The sequence number the next frame takes.
    pub next_sequence: u64,
    pub damage: Damage,
}

/// Reads every good frame. A bad frame is skipped by scanning for the next good one (its head CRC makes a false
/// find a 1-in-4-billion chance); bad bytes with nothing good after them are a torn tail.
pub fn read(bytes: &[u8]) -> Read {
    let Some(generation) = read_file_header(bytes) else {
        return Read::default();
    };
    let mut read = Read {
        generation: Some(generation),
        good_len: FILE_HEADER_LEN,
        ..Read::default()
    };
    let mut at = FILE_HEADER_LEN;
    while at < bytes.len() {
        if let Some((entry, sequence, next)) = frame_at(bytes, at)
            && sequence >= read.next_sequence
        {
            read.damage.lost_frames += sequence - read.next_sequence;
            read.next_sequence = sequence + 1;
            read.entries.push(entry);
            at = next;
            read.good_len = next;
            continue;
        }
        let expected = read.next_sequence;
        let resume = (at + 1..bytes.len().saturating_sub(FRAME_HEAD_LEN - 1))
            .find(|&p| frame_at(bytes, p).is_some_and(|(_, sequence, _)| sequence >= expected));
        match resume {
            Some(p) => {
                read.damage.corrupt_regions += 1;
                at = p;
            }
            None => {
                read.damage.torn_tail_bytes = (bytes.len() - at) as u64;
                break;
            }
        }
    }
    read
}

#[cfg(test)]
#[path = "journal_format_tests.rs"]
mod tests;
