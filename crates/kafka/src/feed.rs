//! Event-time alignment of the partitions one instance consumes. Kafka orders records within a partition only,
//! and a consumer fetches partitions at uneven speeds (one may be minutes of event time ahead of another). The
//! engine's watermark follows the newest event it is given, so feeding partitions as fetched would make the
//! slower partitions' events "late" and change what is detected. Instead every fetched record waits here, and
//! events are released merged in event-time order, never past the ceiling: the newest event time every
//! partition still being read has reached. A partition at its end stops holding the others back once it has
//! stayed there for a grace period (an idle partition must not stall the rest; a producer that is merely a
//! few milliseconds behind must not make its partition's next events late).
//!
//! Pure bookkeeping, no Kafka types and no clock (the caller passes `now`), so it is tested without a broker.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use stormwatch_core::telemetry::batch::ParsedChunk;
use stormwatch_service::engine::LogPosition;

/// Fetched records of one partition parsed together as one block, released from event `next` on.
struct Pending {
    parsed: ParsedChunk,
    /// Each record holding events: its first event's index and its offset, in offset order.
    records: Vec<(usize, i64)>,
    next: usize,
    /// The record holding event `next`.
    record: usize,
}

/// Consecutive records of one partition, parsed as one chunk (so a fetch costs a few blocks, not an allocation
/// per record).
#[derive(Debug, Default)]
pub struct Block {
    /// The records' valid events (malformed lines are quarantined by the caller, not held here).
    pub parsed: ParsedChunk,
    /// Each record holding events: its first event's index in `parsed` and its offset, in offset order.
    pub records: Vec<(usize, i64)>,
    /// Offset of the block's last record, whether it held events or not.
    pub last_offset: i64,
}

/// Spent blocks kept for reuse (a few MiB): as many as are released between two bursts of a steady
/// consumption; more are freed, so memory goes back down after a catch-up that held many.
const SPENT_KEPT: usize = 16;
/// What an instance knows about one assigned partition.
#[derive(Default)]
struct Partition {
    pending: VecDeque<Pending>,
    /// Offset after the newest record fetched (`None` until the first one, when starting from the beginning).
    fetched: Option<i64>,
    /// Newest event time fetched.
    frontier: Option<i64>,
    /// Since when everything there is has been fetched (the broker's end of the partition).
    at_end: Option<Instant>,
    /// Event time of the newest event released.
    released_ms: Option<i64>,
    /// Where the previous owner's committed position was: events before it are history being replayed to warm
    /// the windows, events from it on are new. `None`: everything is new.
    live_from: Option<i64>,
}

impl Partition {
    /// Offset from which nothing has been released yet.
    fn position(&self) -> Option<i64> {
        self.pending
            .front()
            .map(|p| p.records[p.record].1)
            .or(self.fetched)
    }

    fn caught_up(&self) -> bool {
        match self.live_from {
            None => true,
            Some(live) => self.at_end.is_some() || self.position().is_some_and(|p| p >= live),
        }
    }
}

/// Where an assigned partition starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Start {
    pub partition: i32,
    /// The offset reading starts at, when known (`None`: the beginning of the partition).
    pub offset: Option<i64>,
    /// The previous owner's committed offset (see [`Feeds`]); `None` when nobody committed.
    pub live_from: Option<i64>,
}

/// The assigned partitions' fetched-but-unreleased records.
pub struct Feeds {
    partitions: BTreeMap<i32, Partition>,
    /// How long a partition at its end still holds the others back.
    idle_grace: Duration,
    spent: Vec<Block>,
}

impl Feeds {
    pub fn new(idle_grace: Duration) -> Feeds {
        Feeds {
            partitions: BTreeMap::new(),
            idle_grace,
            spent: Vec::new(),
        }
    }

    /// An empty block to fill, with the vectors of one already released when there is one.
    pub fn spent(&mut self) -> Block {
        self.spent.pop().unwrap_or_default()
    }

    /// A block handed back for reuse.
    pub fn recycle(&mut self, block: Block) {
        if self.spent.len() < SPENT_KEPT {
            self.spent.push(block);
        }
    }
}

impl Feeds {
    /// Forgets everything and starts on a new assignment.
    pub fn assign(&mut self, starts: &[Start]) {
        self.partitions = starts
            .iter()
            .map(|s| {
                let partition = Partition {
                    fetched: s.offset,
                    live_from: s.live_from,
                    ..Partition::default()
                };
                (s.partition, partition)
            })
            .collect();
    }

    pub fn assigned(&self) -> impl Iterator<Item = i32> + '_ {
        self.partitions.keys().copied()
    }

    pub fn is_assigned(&self, partition: i32) -> bool {
        self.partitions.contains_key(&partition)
    }

    /// A fetched record's valid events (malformed lines are quarantined by the caller, not held here).
    pub fn push(&mut self, partition: i32, offset: i64, parsed: ParsedChunk) {
        let records = match parsed.events.is_empty() {
            true => Vec::new(),
            false => vec![(0, offset)],
        };
        self.push_block(
            partition,
            Block {
                parsed,
                records,
                last_offset: offset,
            },
        );
    }

    /// Fetched records of one partition, in offset order.
    pub fn push_block(&mut self, partition: i32, block: Block) {
        let Some(state) = self.partitions.get_mut(&partition) else {
            self.recycle(block);
            return;
        };
        state.at_end = None;
        state.fetched = Some(block.last_offset + 1);
        if let Some(newest) = block.parsed.events.iter().map(|e| e.ts_ms).max() {
            state.frontier = Some(state.frontier.map_or(newest, |f| f.max(newest)));
        }
        if block.parsed.events.is_empty() || block.records.is_empty() {
            self.recycle(block);
            return;
        }
        state.pending.push_back(Pending {
            parsed: block.parsed,
            records: block.records,
            next: 0,
            record: 0,
        });
    }

    /// The partition has nothing more to fetch for now.
    pub fn at_end(&mut self, partition: i32, now: Instant) {
        if let Some(state) = self.partitions.get_mut(&partition) {
            state.at_end.get_or_insert(now);
        }
    }

    /// Events up to this time may be released; `None` while a partition still being read has shown no event.
    pub fn ceiling(&self, now: Instant) -> Option<i64> {
        self.partitions
            .values()
            .filter(|p| {
                p.at_end
                    .is_none_or(|since| now.saturating_duration_since(since) < self.idle_grace)
            })
            .try_fold(i64::MAX, |ceiling, p| p.frontier.map(|f| ceiling.min(f)))
    }

    /// Up to `max` events, merged across partitions in event-time order (ties by partition), none past the
    /// ceiling. `None` when nothing can be released now.
    pub fn release(&mut self, max: usize, now: Instant) -> Option<ParsedChunk> {
        let mut out = ParsedChunk {
            first_line: 1,
            ..ParsedChunk::default()
        };
        self.release_into(max, now, &mut out);
        (!out.events.is_empty()).then_some(out)
    }

    /// [`Feeds::release`] appended to `out`; how many events it took.
    pub fn release_into(&mut self, max: usize, now: Instant, out: &mut ParsedChunk) -> usize {
        let Some(ceiling) = self.ceiling(now) else {
            return 0;
        };
        let start = out.events.len();
        let max = start + max;
        while out.events.len() < max {
            // The two earliest heads, linear over the assigned partitions (a handful to a few dozen per
            // instance): the earliest partition's events go out in a run, without looking at the others again,
            // until one is not before the runner-up.
            let mut first: Option<(i64, i32)> = None;
            let mut second: Option<(i64, i32)> = None;
            for (&id, p) in &self.partitions {
                let Some(head) = p.pending.front() else {
                    continue;
                };
                let key = (head.parsed.events[head.next].ts_ms, id);
                if key.0 > ceiling {
                    continue;
                }
                if first.is_none_or(|f| key < f) {
                    second = first;
                    first = Some(key);
                } else if second.is_none_or(|s| key < s) {
                    second = Some(key);
                }
            }
            let Some((_, id)) = first else {
                break;
            };
            let Some(state) = self.partitions.get_mut(&id) else {
                break;
            };
            let Some(head) = state.pending.front_mut() else {
                break;
            };
            let mut released = state.released_ms;
            loop {
                let event = head.parsed.events[head.next];
                if event.ts_ms > ceiling
                    || second.is_some_and(|s| (event.ts_ms, id) > s)
                    || out.events.len() >= max
                {
                    break;
                }
                let data = &head.parsed.data;
                let from = head.parsed.offsets[head.next] as usize;
                let to = memchr::memchr(b'\n', &data[from..]).map_or(data.len(), |n| from + n);
                out.offsets.push(out.data.len() as u32);
                out.data.extend_from_slice(&data[from..to]);
                out.data.push(b'\n');
                out.events.push(event);
                released = Some(released.map_or(event.ts_ms, |r: i64| r.max(event.ts_ms)));
                head.next += 1;
                if head.next == head.parsed.events.len() {
                    break;
                }
                while head
                    .records
                    .get(head.record + 1)
                    .is_some_and(|&(first, _)| first <= head.next)
                {
                    head.record += 1;
                }
            }
            state.released_ms = released;
            if head.next == head.parsed.events.len()
                && let Some(done) = state.pending.pop_front()
            {
                self.recycle(Block {
                    parsed: done.parsed,
                    records: done.records,
                    last_offset: 0,
                });
            }
        }
        out.events.len() - start
    }

    /// For each partition that has released anything and is past its previous owner's commit: the offset
    /// before which everything was released. A partition still replaying history is left out, so a commit never
    /// moves back behind what the previous owner had already covered.
    pub fn positions(&self) -> Vec<LogPosition> {
        self.partitions
            .iter()
            .filter(|(_, p)| p.caught_up())
            .filter_map(|(&partition, p)| {
                Some(LogPosition {
                    partition,
                    offset: p.position()?,
                    event_ms: p.released_ms?,
                })
            })
            .collect()
    }

    /// Every partition has reached the point where its previous owner stopped.
    /// Every assigned partition has reached its end and handed over all it fetched: the log has nothing more
    /// for now, so a quiet engine is really quiet (and not waiting for a slow fetch).
    pub fn drained(&self) -> bool {
        self.partitions
            .values()
            .all(|p| p.at_end.is_some() && p.pending.is_empty())
    }

    pub fn caught_up(&self) -> bool {
        self.partitions.values().all(Partition::caught_up)
    }

    /// Records of `partition` with events fetched but not yet (all) released.
    pub fn waiting(&self, partition: i32) -> usize {
        self.partitions.get(&partition).map_or(0, |p| {
            p.pending
                .iter()
                .map(|block| block.records.len() - block.record)
                .sum()
        })
    }

    /// Newest event time released from `partition`.
    pub fn released_ms(&self, partition: i32) -> Option<i64> {
        self.partitions.get(&partition)?.released_ms
    }

    /// Offset from which nothing of `partition` has been released.
    pub fn position(&self, partition: i32) -> Option<i64> {
        self.partitions.get(&partition)?.position()
    }
}

#[cfg(test)]
#[path = "feed_tests.rs"]
mod tests;
