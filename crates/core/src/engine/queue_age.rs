//! The age of the oldest message waiting in a User's queue, from the cumulative count of messages queued.
//!
//! Queues are first in, first out: if `left` messages have ever left the queue, the oldest waiting one is message
//! number `left + 1`, queued in the first second whose cumulative count reached it. Per-second history covers
//! the recent ring; per-minute checkpoints cover two days (the DSP's failed-queue retention) in bounded memory.

use super::window::RING_SECONDS;

const CHECKPOINT_EVERY_S: i64 = 60;
/// 51 hours of checkpoints.
const CHECKPOINTS: usize = 3_072;
/// Room reserved at first: an hour and a bit.
const FIRST_CHECKPOINTS: usize = 64;

#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct QueueHistory {
    /// Cumulative messages queued at the end of each recent second, indexed by second mod ring.
    per_second: Box<[i64]>,
    /// (second, cumulative queued) every minute, a ring in time order once full. It starts with room for an hour
    /// and grows (doubling, at most six times in two days, at a second's close, never per event) rather than
    /// taking its full 48 KiB for a User seen for minutes. Until full, `checkpoints.len() == checkpoint_count`.
    checkpoints: Vec<(i64, i64)>,
    checkpoint_count: usize,
    first_second: Option<i64>,
    last_second: i64,
}

impl Default for QueueHistory {
    fn default() -> Self {
        QueueHistory {
            per_second: vec![0; RING_SECONDS].into_boxed_slice(),
            checkpoints: Vec::with_capacity(FIRST_CHECKPOINTS),
            checkpoint_count: 0,
            first_second: None,
            last_second: 0,
        }
    }
}

impl QueueHistory {
    /// Records the cumulative count at the end of `second`; seconds must come in order, without gaps.
    pub fn record(&mut self, second: i64, cumulative_queued: i64) {
        self.first_second.get_or_insert(second);
        self.last_second = second;
        self.per_second[second.rem_euclid(RING_SECONDS as i64) as usize] = cumulative_queued;
        if second.rem_euclid(CHECKPOINT_EVERY_S) == 0 {
            if self.checkpoints.len() < CHECKPOINTS {
                self.checkpoints.push((second, cumulative_queued));
            } else {
                self.checkpoints[self.checkpoint_count % CHECKPOINTS] = (second, cumulative_queued);
            }
            self.checkpoint_count += 1;
        }
    }

    fn at(&self, second: i64) -> i64 {
        self.per_second[second.rem_euclid(RING_SECONDS as i64) as usize]
    }

    /// Age in seconds, at the last recorded second, of the oldest waiting message when `depth` are waiting.
    pub fn oldest_age(&self, depth: u64) -> u64 {
        let Some(first) = self.first_second else {
            return 0;
        };
        if depth == 0 {
            return 0;
        }
        let now = self.last_second;
        let cumulative_now = self.at(now);
        // Number (1-based) of the oldest waiting message among all ever queued.
        let oldest = cumulative_now - depth as i64 + 1;
        if oldest <= 0 {
            // Some waiting messages were queued before we started watching: at least this old.
            return (now - first) as u64;
        }
        let earliest_held = first.max(now - RING_SECONDS as i64 + 1);
        if self.at(earliest_held) >= oldest {
            return (now
                - self
                    .checkpoint_second_reaching(oldest)
                    .unwrap_or(earliest_held)) as u64;
        }
        // Smallest second in (earliest_held, now] whose cumulative count reached `oldest`.
        let (mut low, mut high) = (earliest_held, now);
        while high - low > 1 {
            let middle = low + (high - low) / 2;
            if self.at(middle) >= oldest {
                high = middle
            } else {
                low = middle
            }
        }
        (now - high) as u64
    }

    /// The earliest checkpoint whose cumulative count had reached `oldest` (or the oldest checkpoint held).
    fn checkpoint_second_reaching(&self, oldest: i64) -> Option<i64> {
        let held = self.checkpoint_count.min(CHECKPOINTS);
        let start = self.checkpoint_count - held;
        (start..self.checkpoint_count)
            .map(|i| self.checkpoints[i % CHECKPOINTS])
            .find(|&(_, cumulative)| cumulative >= oldest)
            .or_else(|| (held > 0).then(|| self.checkpoints[start % CHECKPOINTS]))
            .map(|(second, _)| second)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn healthy_queue_is_young_and_a_stalled_one_ages() {
        let mut history = QueueHistory::default();
        let mut cumulative = 0;
        for second in 0..100 {
            cumulative += 10;
            history.record(second, cumulative);
        }
        assert_eq!(
            history.oldest_age(10),
            0,
            "only this second's messages wait"
        );
        assert_eq!(history.oldest_age(25), 2);
        assert_eq!(history.oldest_age(0), 0);
    }

    #[test]
    fn ages_beyond_the_ring_come_from_minute_checkpoints() {
        let mut history = QueueHistory::default();
        let mut cumulative = 0;
        for second in 0..10_000 {
            cumulative += 5;
            history.record(second, cumulative);
        }
        // Nothing delivered since second 3_000: 7_000 s of messages wait.
        let age = history.oldest_age(5 * 7_000);
        assert!((6_990..=7_060).contains(&age), "{age}");
        // Messages older than anything we watched.
        assert_eq!(history.oldest_age(10_000_000), 9_999);
    }

    #[test]
    fn checkpoints_grow_with_time_then_wrap_and_snapshots_of_the_full_ring_still_load() {
        let mut history = QueueHistory::default();
        assert!(history.checkpoints.is_empty());
        let mut cumulative = 0;
        for second in 0..(CHECKPOINTS as i64 + 10) * CHECKPOINT_EVERY_S {
            cumulative += 1;
            history.record(second, cumulative);
            if second == 600 {
                assert_eq!(history.checkpoints.len(), 11, "one a minute so far");
            }
        }
        assert_eq!(history.checkpoints.len(), CHECKPOINTS);
        let now = history.last_second;
        // Nothing delivered for 40 hours: found through the wrapped ring.
        let age = history.oldest_age(40 * 3_600);
        assert!(
            (40 * 3_600 - 60..=40 * 3_600 + 60).contains(&(age as i64)),
            "{age}"
        );
        let again: QueueHistory =
            serde_json::from_str(&serde_json::to_string(&history).unwrap()).unwrap();
        assert_eq!(again.oldest_age(40 * 3_600), age);
        assert_eq!(again.last_second, now);
    }
}
