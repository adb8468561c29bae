//! The lower median of a source's clock highs, found by counting into buckets rather than by a general select.
//!
//! The consensus pass takes this median once per second of each source's time, over the clocks of two seconds
//! (120 on the 24 h 5x file). `select_nth_unstable` spent about 8,000 instructions on that; the highs lie within
//! a few seconds of each other, so one counting pass over 64 buckets leaves a handful of values to select among.

/// Fewer values than this go straight to `select_nth_unstable`.
const SMALL: usize = 32;
const BUCKETS: usize = 64;

/// The lower median of `values` (the `(len - 1) / 2`-th smallest), reordering them; `None` when empty. The same
/// value a select or a sort gives, whatever the spread.
pub(super) fn lower_median(values: &mut [i64]) -> Option<i64> {
    let middle = values.len().checked_sub(1)? / 2;
    if values.len() < SMALL {
        return Some(*values.select_nth_unstable(middle).1);
    }
    let (mut min, mut max) = (i64::MAX, i64::MIN);
    for &value in values.iter() {
        min = min.min(value);
        max = max.max(value);
    }
    // Offsets from the least value fit a u64 whatever the values; the shift makes the largest fall in the last
    // bucket or before.
    let span = max.wrapping_sub(min) as u64;
    let shift = (u64::BITS - span.leading_zeros()).saturating_sub(BUCKETS.trailing_zeros());
    let bucket = |value: i64| (value.wrapping_sub(min) as u64 >> shift) as usize;
    let mut counts = [0u32; BUCKETS];
    for &value in values.iter() {
        counts[bucket(value)] += 1;
    }
    let mut rank = middle;
    let mut chosen = 0;
    while rank >= counts[chosen] as usize {
        rank -= counts[chosen] as usize;
        chosen += 1;
    }
    // The chosen bucket's values to the front: the median is the `rank`-th smallest of them.
    let mut kept = 0;
    for index in 0..values.len() {
        if bucket(values[index]) == chosen {
            values.swap(kept, index);
            kept += 1;
        }
    }
    Some(*values[..kept].select_nth_unstable(rank).1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn by_sorting(values: &[i64]) -> Option<i64> {
        let mut sorted = values.to_vec();
        sorted.sort_unstable();
        sorted.get(sorted.len().checked_sub(1)? / 2).copied()
    }

    proptest! {
        #[test]
        fn agrees_with_sorting_near_each_other(base in -4_000_000_000_000i64..4_000_000_000_000, offsets in proptest::collection::vec(-70_000i64..15_000, 0..300)) {
            let mut values: Vec<i64> = offsets.iter().map(|o| base + o).collect();
            prop_assert_eq!(lower_median(&mut values.clone()), by_sorting(&values));
            values.sort_unstable();
            prop_assert_eq!(lower_median(&mut values.clone()), by_sorting(&values));
        }

        #[test]
        fn agrees_with_sorting_anywhere(values in proptest::collection::vec(any::<i64>(), 0..200)) {
            prop_assert_eq!(lower_median(&mut values.clone()), by_sorting(&values));
        }

        #[test]
        fn agrees_with_sorting_with_repeats(values in proptest::collection::vec(prop_oneof![Just(i64::MIN), Just(i64::MAX), Just(0i64), 0i64..5], 0..200)) {
            prop_assert_eq!(lower_median(&mut values.clone()), by_sorting(&values));
        }
    }
}
