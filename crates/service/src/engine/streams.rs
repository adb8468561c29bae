//! Acknowledged TCP streams (`ACK ON <name>`): how many lines of each named stream the engine has applied, which
//! connection currently speaks for it, and the `ACK <n>` each is owed once what it sent is durable. Positions are
//! journalled with the batches and saved in snapshots, so after a crash a reconnecting sender learns exactly
//! where to resume: nothing applied twice, nothing lost.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::{oneshot, watch};

/// Each acknowledged stream's name and the lines of it applied, as snapshots keep them.
pub type Positions = Vec<(String, u64)>;

/// Streams remembered at most; beyond this the one unused longest (with no connection) is forgotten.
pub const MAX_STREAMS: usize = 4096;
/// Longest stream name accepted (bytes).
pub const MAX_NAME: usize = 128;

/// Whether `name` may name a stream: 1-128 bytes of letters, digits and `-_.:@/`.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:@/".contains(&b))
}

/// A connection asks to speak for a stream; the engine answers with its position, once that is durable.
pub struct Attach {
    pub name: Arc<str>,
    /// Where the engine publishes the stream's durable line count.
    pub acks: watch::Sender<u64>,
    pub reply: oneshot::Sender<Result<Attached, &'static str>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Attached {
    /// Identifies this connection's hold on the stream; batches from an earlier one are refused.
    pub attachment: u64,
    /// Lines of the stream the engine holds: the sender resumes after them.
    pub position: u64,
}

/// Which stream a batch belongs to and the stream's line count once it is applied.
#[derive(Clone, Debug)]
pub struct StreamMark {
    pub name: Arc<str>,
    pub attachment: u64,
    pub through: u64,
}

struct Stream {
    position: u64,
    /// The last position published to the connection.
    acked: u64,
    attachment: u64,
    acks: Option<watch::Sender<u64>>,
    /// Order of last use, for forgetting the stalest stream when full.
    used: u64,
}

#[derive(Default)]
pub struct Streams {
    by_name: HashMap<Arc<str>, Stream>,
    next_attachment: u64,
    clock: u64,
    /// Some stream's position moved past what it was last told.
    owed: bool,
}

impl Streams {
    /// Positions from a snapshot.
    pub fn restore(positions: Positions) -> Streams {
        let mut streams = Streams::default();
        for (name, position) in positions {
            streams.set_position(&name, position);
        }
        streams
    }

    /// Every stream's position, for a snapshot.
    pub fn positions(&self) -> Positions {
        let mut positions: Vec<_> = self
            .by_name
            .iter()
            .map(|(name, stream)| (name.to_string(), stream.position))
            .collect();
        positions.sort();
        positions
    }

    /// A replayed journal entry: the stream had sent `through` lines.
    pub fn set_position(&mut self, name: &str, through: u64) {
        self.clock += 1;
        let used = self.clock;
        match self.by_name.get_mut(name) {
            Some(stream) => {
                stream.position = through;
                stream.used = used;
            }
            None => {
                self.make_room();
                self.by_name.insert(
                    Arc::from(name),
                    Stream {
                        position: through,
                        acked: through,
                        attachment: 0,
                        acks: None,
                        used,
                    },
                );
            }
        }
    }

    /// A connection takes over `name`; an earlier connection for it is cut off (its late batches are refused).
    pub fn attach(
        &mut self,
        name: &Arc<str>,
        acks: watch::Sender<u64>,
    ) -> Result<Attached, &'static str> {
        if !self.by_name.contains_key(name) {
            if !self.make_room() {
                return Err("too many acknowledged streams are connected");
            }
            self.set_position(name, 0);
        }
        self.next_attachment += 1;
        self.clock += 1;
        let (attachment, used) = (self.next_attachment, self.clock);
        let Some(stream) = self.by_name.get_mut(name) else {
            return Err("stream table inconsistent");
        };
        stream.attachment = attachment;
        stream.used = used;
        stream.acked = stream.position;
        stream.acks = Some(acks);
        Ok(Attached {
            attachment,
            position: stream.position,
        })
    }

    /// True when `mark` comes from the connection that currently holds its stream.
    pub fn accepts(&self, mark: &StreamMark) -> bool {
        self.by_name
            .get(&mark.name)
            .is_some_and(|stream| stream.attachment == mark.attachment)
    }

    /// The batch of `mark` is applied (and journalled).
    pub fn applied(&mut self, mark: &StreamMark) {
        if let Some(stream) = self.by_name.get_mut(&mark.name) {
            stream.position = mark.through;
            self.owed = true;
        }
    }

    /// Everything applied is durable now: tells each connection how far its stream got.
    pub fn acknowledge(&mut self) {
        if !std::mem::take(&mut self.owed) {
            return;
        }
        for stream in self.by_name.values_mut() {
            if stream.position > stream.acked {
                stream.acked = stream.position;
                if let Some(acks) = &stream.acks {
                    // No receiver: the connection has gone; the position stays for its successor.
                    let _ = acks.send(stream.position);
                }
            }
        }
    }

    /// Frees a slot when full by forgetting the stream unused longest that has no live connection.
    fn make_room(&mut self) -> bool {
        if self.by_name.len() < MAX_STREAMS {
            return true;
        }
        let stalest = self
            .by_name
            .iter()
            .filter(|(_, stream)| stream.acks.as_ref().is_none_or(|acks| acks.is_closed()))
            .min_by_key(|(_, stream)| stream.used)
            .map(|(name, _)| name.clone());
        match stalest {
            Some(name) => {
                tracing::info!(stream = %name, "forgetting the longest-unused acknowledged stream");
                self.by_name.remove(&name);
                true
            }
            None => false,
        }
    }
}

/// Appends the stream positions to a snapshot's bytes: count (u32 LE), then each name (u16 LE length, bytes)
/// and position (u64 LE).
pub fn encode(positions: &[(String, u64)], out: &mut Vec<u8>) {
    out.extend_from_slice(&(positions.len() as u32).to_le_bytes());
    for (name, position) in positions {
        out.extend_from_slice(&(name.len() as u16).to_le_bytes());
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(&position.to_le_bytes());
    }
}

/// The positions `encode` wrote at the start of `bytes`, and the bytes after them.
pub fn decode(bytes: &[u8]) -> Option<(Positions, &[u8])> {
    let count = u32::from_le_bytes(bytes.get(..4)?.try_into().ok()?) as usize;
    let mut at = 4;
    let mut positions = Vec::with_capacity(count.min(MAX_STREAMS));
    for _ in 0..count {
        let length = usize::from(u16::from_le_bytes(bytes.get(at..at + 2)?.try_into().ok()?));
        let name = std::str::from_utf8(bytes.get(at + 2..at + 2 + length)?).ok()?;
        at += 2 + length;
        let position = u64::from_le_bytes(bytes.get(at..at + 8)?.try_into().ok()?);
        at += 8;
        positions.push((name.to_owned(), position));
    }
    Some((positions, &bytes[at..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attach(streams: &mut Streams, name: &str) -> (Attached, watch::Receiver<u64>) {
        let (acks, receiver) = watch::channel(0);
        (streams.attach(&Arc::from(name), acks).unwrap(), receiver)
    }

    #[test]
    fn a_new_connection_cuts_off_the_old_one_and_resumes_at_the_position() {
        let mut streams = Streams::default();
        let (first, receiver) = attach(&mut streams, "s");
        assert_eq!(first.position, 0);
        let mark = StreamMark {
            name: Arc::from("s"),
            attachment: first.attachment,
            through: 10,
        };
        assert!(streams.accepts(&mark));
        streams.applied(&mark);
        streams.acknowledge();
        assert_eq!(*receiver.borrow(), 10);
        let (second, _receiver) = attach(&mut streams, "s");
        assert_eq!(second.position, 10);
        assert!(
            !streams.accepts(&mark),
            "the old connection's late batch is refused"
        );
    }

    #[test]
    fn positions_survive_a_snapshot() {
        let mut streams = Streams::default();
        streams.set_position("a", 5);
        streams.set_position("b:2", 7);
        let mut bytes = Vec::new();
        encode(&streams.positions(), &mut bytes);
        bytes.extend_from_slice(b"engine");
        let (positions, rest) = decode(&bytes).unwrap();
        assert_eq!(positions, [("a".to_owned(), 5), ("b:2".to_owned(), 7)]);
        assert_eq!(rest, b"engine");
        assert_eq!(decode(&bytes[..5]), None);
    }

    #[test]
    fn names_are_short_and_plain() {
        assert!(valid_name("meter-gw-01:/var/log/a.ndjson"));
        assert!(!valid_name(""));
        assert!(!valid_name("has space"));
        assert!(!valid_name(&"x".repeat(MAX_NAME + 1)));
    }
}
