//! Where the numbers of `INC-nnnnnn` IDs come from. Replay counts from 1 without limit; the live service hands
//! the engine blocks of numbers reserved in its store ahead of need, so that naming an incident never waits on
//! the store and no number is handed out twice, across restarts and lost snapshots alike.

use std::collections::VecDeque;
use std::ops::Range;

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IncidentNumbers {
    next: u64,
    /// End (exclusive) of the block `next` is in; `None` counts on without limit.
    block_end: Option<u64>,
    /// Reserved blocks not yet started, in the order they were reserved.
    ahead: VecDeque<Range<u64>>,
    /// Numbers handed out past every reservation because none was left: never a wait, but the owner must reserve
    /// past them (see [`IncidentNumbers::next`]).
    overdrawn: u64,
}

impl Default for IncidentNumbers {
    fn default() -> Self {
        IncidentNumbers::counting_from(1)
    }
}

impl IncidentNumbers {
    /// Numbers from `first` on, without limit (replay, tests, and snapshots written before reservations).
    pub fn counting_from(first: u64) -> IncidentNumbers {
        IncidentNumbers {
            next: first,
            block_end: None,
            ahead: VecDeque::new(),
            overdrawn: 0,
        }
    }

    /// Only numbers from reserved blocks, starting with `block`.
    pub fn reserved(block: Range<u64>) -> IncidentNumbers {
        IncidentNumbers {
            next: block.start,
            block_end: Some(block.end),
            ahead: VecDeque::new(),
            overdrawn: 0,
        }
    }

    /// Adds a block reserved after the ones already held. A block that starts below the next number (it was
    /// reserved before an overdraft passed it) keeps only its part above. Counting without limit ends here:
    /// from now on only reserved numbers are used.
    pub fn add(&mut self, block: Range<u64>) {
        if self.block_end.is_none() {
            self.next = self.next.max(block.start);
            self.block_end = Some(block.end);
            return;
        }
        let floor = self
            .ahead
            .back()
            .map_or(0, |last| last.end)
            .max(self.block_end.unwrap_or(0))
            .max(self.next);
        let block = block.start.max(floor)..block.end;
        if !block.is_empty() {
            self.ahead.push_back(block);
        }
    }

    /// Whether numbers come only from reserved blocks.
    pub fn is_reserved(&self) -> bool {
        self.block_end.is_some()
    }

    /// Never hands out a number below `first` (numbers already stored elsewhere).
    pub fn skip_to(&mut self, first: u64) {
        if self.next >= first {
            return;
        }
        self.next = first;
        if self.block_end.is_some_and(|end| first >= end) {
            while self.ahead.front().is_some_and(|block| block.end <= first) {
                self.ahead.pop_front();
            }
            if let Some(front) = self.ahead.front_mut() {
                front.start = front.start.max(first);
            }
        }
    }

    /// Reserved numbers still to hand out (unbounded counting never runs low).
    pub fn left(&self) -> u64 {
        match self.block_end {
            None => u64::MAX,
            Some(end) => {
                end.saturating_sub(self.next)
                    + self.ahead.iter().map(|b| b.end - b.start).sum::<u64>()
            }
        }
    }

    /// The number the next incident gets if no further block arrives: a new reservation must start here or later.
    pub fn next(&self) -> u64 {
        self.next
    }

    /// Numbers handed out past every reservation so far.
    pub fn overdrawn(&self) -> u64 {
        self.overdrawn
    }

    /// The next number. Never waits: with the reservations used up it goes on past the last one and counts the
    /// overdraft.
    pub fn take(&mut self) -> u64 {
        if let Some(end) = self.block_end
            && self.next >= end
        {
            match self.ahead.pop_front() {
                Some(block) => {
                    self.next = block.start.max(self.next);
                    self.block_end = Some(block.end);
                }
                None => self.overdrawn += 1,
            }
        }
        let number = self.next;
        self.next += 1;
        number
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counting_hands_out_one_two_three() {
        let mut numbers = IncidentNumbers::default();
        assert_eq!([numbers.take(), numbers.take(), numbers.take()], [1, 2, 3]);
        assert_eq!(numbers.left(), u64::MAX);
    }

    #[test]
    fn reserved_blocks_are_used_in_order_and_never_twice() {
        let mut numbers = IncidentNumbers::reserved(101..104);
        numbers.add(104..106);
        numbers.add(200..202);
        assert_eq!(numbers.left(), 7);
        let taken: Vec<u64> = (0..7).map(|_| numbers.take()).collect();
        assert_eq!(taken, [101, 102, 103, 104, 105, 200, 201]);
        assert_eq!(numbers.left(), 0);
        assert_eq!(numbers.overdrawn(), 0);
    }

    #[test]
    fn running_dry_goes_on_past_the_reservation_and_a_late_block_skips_what_was_used() {
        let mut numbers = IncidentNumbers::reserved(10..12);
        assert_eq!([numbers.take(), numbers.take()], [10, 11]);
        // No block came in time: the engine is not made to wait.
        assert_eq!([numbers.take(), numbers.take()], [12, 13]);
        assert_eq!(numbers.overdrawn(), 2);
        assert_eq!(numbers.next(), 14);
        // A block reserved from before the overdraft keeps only the numbers above it.
        numbers.add(12..20);
        assert_eq!(numbers.left(), 6);
        assert_eq!(numbers.take(), 14);
    }

    #[test]
    fn a_block_overlapping_one_already_held_keeps_only_the_new_numbers() {
        let mut numbers = IncidentNumbers::reserved(1..5);
        numbers.add(3..8);
        let taken: Vec<u64> = (0..7).map(|_| numbers.take()).collect();
        assert_eq!(taken, [1, 2, 3, 4, 5, 6, 7]);
        assert_eq!(numbers.overdrawn(), 0);
    }

    #[test]
    fn counting_ends_with_the_first_reserved_block() {
        let mut numbers = IncidentNumbers::counting_from(3);
        assert!(!numbers.is_reserved());
        numbers.take();
        numbers.add(1..10);
        assert!(numbers.is_reserved());
        assert_eq!(numbers.left(), 6);
        assert_eq!(numbers.take(), 4);
    }

    #[test]
    fn skipping_past_stored_numbers_never_hands_them_out() {
        let mut numbers = IncidentNumbers::reserved(1..5);
        numbers.add(5..9);
        numbers.add(20..30);
        numbers.skip_to(3);
        assert_eq!(numbers.take(), 3);
        numbers.skip_to(7);
        assert_eq!(numbers.left(), 12);
        let taken: Vec<u64> = (0..4).map(|_| numbers.take()).collect();
        assert_eq!(taken, [7, 8, 20, 21]);
        numbers.skip_to(2);
        assert_eq!(numbers.take(), 22);
    }

    #[test]
    fn survives_a_snapshot_round_trip() {
        let mut numbers = IncidentNumbers::reserved(5..7);
        numbers.add(9..12);
        numbers.take();
        let json = serde_json::to_string(&numbers).unwrap();
        let back: IncidentNumbers = serde_json::from_str(&json).unwrap();
        assert_eq!(back, numbers);
    }
}
