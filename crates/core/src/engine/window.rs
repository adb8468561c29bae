//! The per-User ring of per-second slots: single writer (the engine), lock-free readers (API, metrics exporter).
//!
//! Each slot carries the second it belongs to, so a reader never mixes seconds. The writer bumps a slot's
//! sequence to odd before rewriting it and back to even after (a seqlock), and readers retry on a change.
//! Because only one thread ever writes, updates are plain load + store: no read-modify-write instructions.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::*};

/// Seconds of per-second history kept per User (a power of two). Enough for lateness, the short windows, onset
/// search and the series around an incident's onset.
pub const RING_SECONDS: usize = 512;

/// The flows counted per second.
#[derive(Copy, Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[repr(usize)]
pub enum Flow {
    /// All requests, acknowledged or rejected.
    Requests,
    Rejected,
    QueuedResponses,
    QueuedAlerts,
    Delivered,
    Failed,
    Expired,
}

pub const FLOWS: usize = 7;

impl Flow {
    pub const ALL: [Flow; FLOWS] = [
        Flow::Requests,
        Flow::Rejected,
        Flow::QueuedResponses,
        Flow::QueuedAlerts,
        Flow::Delivered,
        Flow::Failed,
        Flow::Expired,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Flow::Requests => "requests",
            Flow::Rejected => "rejected",
            Flow::QueuedResponses => "queued_responses",
            Flow::QueuedAlerts => "queued_alerts",
            Flow::Delivered => "delivered",
            Flow::Failed => "delivery_failed",
            Flow::Expired => "expired",
        }
    }
}

/// A consistent copy of one second for one User.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SecondCounts {
    pub flows: [u64; FLOWS],
    /// Queue depth at the end of the second, once the second is closed.
    pub depth_end: u64,
}

impl SecondCounts {
    pub fn get(&self, flow: Flow) -> u64 {
        self.flows[flow as usize]
    }

    pub fn queued(&self) -> u64 {
        self.get(Flow::QueuedResponses) + self.get(Flow::QueuedAlerts)
    }

    /// Messages that left the queue: delivered or expired.
    pub fn left_queue(&self) -> u64 {
        self.get(Flow::Delivered) + self.get(Flow::Expired)
    }
}

const EMPTY: i64 = i64::MIN;

#[derive(Default)]
struct Slot {
    /// Even: stable; odd: being rewritten.
    sequence: AtomicU64,
    second: AtomicI64,
    flows: [AtomicU64; FLOWS],
    depth_end: AtomicU64,
}

/// One User's window. Shared as `Arc<UserWindow>` between the engine (writer) and readers.
///
/// Slots are packed (80 bytes), not padded to cache lines: the writer touches one slot at a time and readers
/// are rare, so false sharing costs little, while padding cost 48 KiB of every User's memory.
pub struct UserWindow {
    slots: Box<[Slot]>,
    /// Published once per closed second.
    depth: AtomicU64,
    closed_through: AtomicI64,
}

impl Default for UserWindow {
    fn default() -> Self {
        let slots = (0..RING_SECONDS)
            .map(|_| {
                let slot = Slot::default();
                slot.second.store(EMPTY, Relaxed);
                slot
            })
            .collect();
        UserWindow {
            slots,
            depth: AtomicU64::new(0),
            closed_through: AtomicI64::new(EMPTY),
        }
    }
}

/// A hint to bring `value`'s cache line in ahead of use; it changes no result. The rings are written a new slot
/// per User and second, 2 MiB for 40 Users, and the first line of each User's second waited for that slot to come
/// from memory (the replay engine's top stalls): the line before asks for the next second's slot.
#[inline(always)]
pub(super) fn prefetch<T>(value: &T) {
    #[cfg(all(target_arch = "x86_64", target_feature = "sse"))]
    // SAFETY: the cfg makes SSE present (it is part of every x86_64 target); a prefetch reads nothing into the
    // program and cannot fault, and `value` is a live reference besides.
    unsafe {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        _mm_prefetch::<_MM_HINT_T0>((value as *const T).cast());
    }
    #[cfg(not(all(target_arch = "x86_64", target_feature = "sse")))]
    let _ = value;
}

/// The writer's half of the seqlock: `change` runs while the slot's sequence is odd, so a reader that overlaps
/// it sees the sequence move and reads again rather than mixing two seconds.
#[inline]
fn write(slot: &Slot, change: impl FnOnce()) {
    let sequence = slot.sequence.load(Relaxed);
    slot.sequence.store(sequence + 1, Relaxed);
    std::sync::atomic::fence(Release);
    change();
    slot.sequence.store(sequence + 2, Release);
}

impl UserWindow {
    #[inline]
    fn slot(&self, second: i64) -> &Slot {
        &self.slots[second.rem_euclid(RING_SECONDS as i64) as usize]
    }

    /// Writer only: asks for `second`'s slot to be brought into cache before its first line (see [`prefetch`]).
    #[inline]
    pub fn prefetch(&self, second: i64) {
        let slot = self.slot(second);
        prefetch(slot);
        prefetch(&slot.flows[FLOWS - 1]);
    }

    /// Writer only: adds `count` to `flow` in `second`, claiming the slot if it still holds an older second.
    #[inline]
    pub fn add(&self, second: i64, flow: Flow, count: u64) {
        let slot = self.slot(second);
        if slot.second.load(Relaxed) != second {
            self.claim(slot, second);
        }
        write(slot, || {
            let counter = &slot.flows[flow as usize];
            counter.store(counter.load(Relaxed) + count, Relaxed);
        });
    }

    #[cold]
    fn claim(&self, slot: &Slot, second: i64) {
        write(slot, || {
            for counter in &slot.flows {
                counter.store(0, Relaxed);
            }
            slot.depth_end.store(0, Relaxed);
            slot.second.store(second, Relaxed);
        });
    }

    /// Writer only: records the closed second's end depth and publishes it.
    pub fn close(&self, second: i64, depth_end: u64) {
        let slot = self.slot(second);
        if slot.second.load(Relaxed) != second {
            self.claim(slot, second);
        }
        write(slot, || slot.depth_end.store(depth_end, Relaxed));
        self.depth.store(depth_end, Relaxed);
        self.closed_through.store(second, Release);
    }

    /// Any thread: the counts of `second`, or zeros if the ring no longer (or not yet) holds it.
    pub fn read(&self, second: i64) -> SecondCounts {
        let slot = self.slot(second);
        loop {
            let before = slot.sequence.load(Acquire);
            if before % 2 == 1 {
                std::hint::spin_loop();
                continue;
            }
            let held = slot.second.load(Relaxed);
            let mut counts = SecondCounts::default();
            if held == second {
                for (value, counter) in counts.flows.iter_mut().zip(&slot.flows) {
                    *value = counter.load(Relaxed);
                }
                counts.depth_end = slot.depth_end.load(Relaxed);
            }
            std::sync::atomic::fence(Acquire);
            if slot.sequence.load(Relaxed) == before {
                return counts;
            }
        }
    }

    /// Every second the ring still holds, oldest first (for snapshots).
    pub fn held(&self) -> Vec<(i64, SecondCounts)> {
        let mut held: Vec<(i64, SecondCounts)> = self
            .slots
            .iter()
            .map(|slot| slot.second.load(Acquire))
            .filter(|&second| second != EMPTY)
            .map(|second| (second, self.read(second)))
            .collect();
        held.sort_by_key(|&(second, _)| second);
        held
    }

    /// A window holding `held` seconds (from [`UserWindow::held`]), as the single writer would have left it.
    pub fn restored(
        held: &[(i64, SecondCounts)],
        depth: u64,
        closed_through: Option<i64>,
    ) -> UserWindow {
        let window = UserWindow::default();
        for &(second, counts) in held {
            for flow in Flow::ALL {
                if counts.get(flow) > 0 {
                    window.add(second, flow, counts.get(flow));
                }
            }
            window.close(second, counts.depth_end);
        }
        window.depth.store(depth, Relaxed);
        window
            .closed_through
            .store(closed_through.unwrap_or(EMPTY), Release);
        window
    }

    /// Queue depth at the end of the last closed second.
    pub fn depth(&self) -> u64 {
        self.depth.load(Relaxed)
    }

    /// The last closed second, if any.
    pub fn closed_through(&self) -> Option<i64> {
        Some(self.closed_through.load(Acquire)).filter(|&s| s != EMPTY)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn seconds_do_not_mix_across_the_ring() {
        let window = UserWindow::default();
        window.add(10, Flow::Requests, 5);
        window.add(10 + RING_SECONDS as i64, Flow::Requests, 7);
        assert_eq!(
            window.read(10).get(Flow::Requests),
            0,
            "overwritten second reads as empty"
        );
        assert_eq!(window.read(10 + RING_SECONDS as i64).get(Flow::Requests), 7);
        window.close(10 + RING_SECONDS as i64, 42);
        assert_eq!(window.depth(), 42);
    }

    #[test]
    fn readers_on_other_threads_see_whole_seconds() {
        let window = std::sync::Arc::new(UserWindow::default());
        let reader = {
            let window = window.clone();
            std::thread::spawn(move || {
                for _ in 0..20_000 {
                    let counts = window.read(3);
                    // The writer always adds to both flows together, so a torn read would show a difference.
                    assert_eq!(counts.get(Flow::Requests), counts.get(Flow::Delivered));
                }
            })
        };
        for _ in 0..20_000 {
            window.add(3, Flow::Requests, 1);
            window.add(3, Flow::Delivered, 1);
        }
        // Torn reads between the two adds are legitimate (two writes); this only checks no panic or garbage.
        let _ = reader.join();
        assert_eq!(window.read(3).get(Flow::Requests), 20_000);
    }

    proptest! {
        #[test]
        fn rotation_never_loses_a_count(adds in proptest::collection::vec((0i64..2000, 0usize..FLOWS, 1u64..1000), 1..400)) {
            // Adds arrive in second order with at most RING_SECONDS of spread, as the engine guarantees.
            let mut adds = adds;
            adds.sort_by_key(|a| a.0);
            let window = UserWindow::default();
            let mut expected = std::collections::BTreeMap::<(i64, usize), u64>::new();
            for &(second, flow, count) in &adds {
                window.add(second, Flow::ALL[flow], count);
                *expected.entry((second, flow)).or_default() += count;
            }
            let last = adds.last().map_or(0, |a| a.0);
            for (&(second, flow), &count) in &expected {
                if last - second < RING_SECONDS as i64 {
                    prop_assert_eq!(window.read(second).flows[flow], count);
                }
            }
        }
    }
}
