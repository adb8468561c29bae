//! Small fixed-size "most frequent recently" tallies (SRVs, alert codes) kept per User without allocating.

/// Space-saving counter of the `N` most frequent keys, halved periodically so it reflects recent traffic.
#[derive(Clone, Copy, Debug)]
pub struct Tally<K: Copy + Eq + Default, const N: usize> {
    entries: [(K, u64); N],
}

impl<K: Copy + Eq + Default, const N: usize> Default for Tally<K, N> {
    fn default() -> Self {
        Tally {
            entries: [(K::default(), 0); N],
        }
    }
}

impl<K: Copy + Eq + Default, const N: usize> Tally<K, N> {
    #[inline]
    pub fn add(&mut self, key: K, count: u64) {
        let mut smallest = 0;
        for index in 0..N {
            let entry = &mut self.entries[index];
            if entry.0 == key && entry.1 > 0 {
                entry.1 += count;
                return;
            }
            if entry.1 < self.entries[smallest].1 {
                smallest = index;
            }
        }
        // Space-saving: the newcomer inherits the evicted count, so heavy hitters are never lost.
        let evicted = self.entries[smallest].1;
        self.entries[smallest] = (key, evicted + count);
    }

    /// Halves every count (called on a fixed cadence of event time).
    pub fn decay(&mut self) {
        for entry in &mut self.entries {
            entry.1 /= 2;
        }
    }

    /// Keys with a count, most frequent first (ties broken by key order for determinism).
    pub fn top(&self) -> Vec<K>
    where
        K: Ord,
    {
        let mut entries: Vec<(K, u64)> = self.entries.iter().copied().filter(|e| e.1 > 0).collect();
        entries.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        entries.into_iter().map(|e| e.0).collect()
    }
}

/// Serialized as its list of (key, count) entries.
impl<K: Copy + Eq + Default + serde::Serialize, const N: usize> serde::Serialize for Tally<K, N> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.entries.iter().filter(|e| e.1 > 0))
    }
}

impl<'de, K: Copy + Eq + Default + serde::Deserialize<'de>, const N: usize> serde::Deserialize<'de>
    for Tally<K, N>
{
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let mut tally = Tally::default();
        for (slot, entry) in tally
            .entries
            .iter_mut()
            .zip(Vec::<(K, u64)>::deserialize(deserializer)?)
        {
            *slot = entry;
        }
        Ok(tally)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_heavy_hitters_and_forgets_old_ones() {
        let mut tally = Tally::<u32, 3>::default();
        for key in 1..=10u32 {
            tally.add(key, 1);
        }
        tally.add(7, 50);
        assert_eq!(tally.top()[0], 7);
        for _ in 0..10 {
            tally.decay();
        }
        tally.add(2, 3);
        assert_eq!(tally.top(), vec![2]);
    }
}
