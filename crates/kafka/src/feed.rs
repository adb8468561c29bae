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

/// One fetched record's events, released from `next` on.
struct Pending {
    offset: i64,
    parsed: ParsedChunk,
    next: usize,
}

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
        self.pending.front().map(|p| p.offset).or(self.fetched)
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
}

impl Feeds {
    pub fn new(idle_grace: Duration) -> Feeds {
        Feeds {
            partitions: BTreeMap::new(),
            idle_grace,
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
        let Some(state) = self.partitions.get_mut(&partition) else {
            return;
        };
        state.at_end = None;
        state.fetched = Some(offset + 1);
        if let Some(newest) = parsed.events.iter().map(|e| e.ts_ms).max() {
            state.frontier = Some(state.frontier.map_or(newest, |f| f.max(newest)));
        }
        if !parsed.events.is_empty() {
            state.pending.push_back(Pending {
                offset,
                parsed,
                next: 0,
            });
        }
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
        let ceiling = self.ceiling(now)?;
        let mut out = ParsedChunk {
            first_line: 1,
            ..ParsedChunk::default()
        };
        while out.events.len() < max {
            // Linear over the assigned partitions: a handful to a few dozen per instance.
            let next = self
                .partitions
                .iter()
                .filter_map(|(&id, p)| {
                    let head = p.pending.front()?;
                    let ts = head.parsed.events[head.next].ts_ms;
                    (ts <= ceiling).then_some((ts, id))
                })
                .min();
            let Some((ts, id)) = next else {
                break;
            };
            let Some(state) = self.partitions.get_mut(&id) else {
                break;
            };
            let Some(head) = state.pending.front_mut() else {
                break;
            };
            let (_, line) = head.parsed.line_of(head.next);
            out.offsets.push(out.data.len() as u32);
            out.data.extend_from_slice(line);
            out.data.push(b'\n');
            out.events.push(head.parsed.events[head.next]);
            head.next += 1;
            if head.next == head.parsed.events.len() {
                state.pending.pop_front();
            }
            state.released_ms = Some(state.released_ms.map_or(ts, |r| r.max(ts)));
        }
        (!out.events.is_empty()).then_some(out)
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

    /// Records of `partition` fetched but not yet released.
    pub fn waiting(&self, partition: i32) -> usize {
        self.partitions
            .get(&partition)
            .map_or(0, |p| p.pending.len())
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
