//! The change register: notices keyed by id (registering an id again updates it), iterated by window start then id,
//! with a time index so that the notices overlapping a window are found without scanning the whole register.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use super::notice::{ChangeNotice, ChangeOwner};
use crate::telemetry::Eui64;

/// An in-memory register. Iteration order is deterministic, so everything derived from it is too.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ChangeRegister {
    by_window: BTreeMap<(i64, String), Arc<ChangeNotice>>,
    /// id -> start, to find a notice's place in `by_window` when only its id is known.
    starts: HashMap<String, i64>,
    /// The same keys split by window length class (class `c` holds lengths in `[2^(c-1), 2^c)` ms, class 0 the
    /// zero-length ones), each sorted by start. A window of class `c` that overlaps `[from, to]` starts in
    /// `[from - 2^c, to]`, so each class is read from one bounded range instead of from the register's beginning.
    /// The notices are shared with `by_window`, so a query reads them without a second lookup.
    by_length: BTreeMap<u32, BTreeMap<(i64, String), Arc<ChangeNotice>>>,
}

/// The length class of a window (see `ChangeRegister::by_length`).
fn length_class(notice: &ChangeNotice) -> u32 {
    let length = notice.end_ms.saturating_sub(notice.start_ms).max(0) as u64;
    u64::BITS - length.leading_zeros()
}

impl ChangeRegister {
    pub fn new() -> ChangeRegister {
        ChangeRegister::default()
    }

    /// Adds the notice, or replaces the one with the same id (last wins). Returns the replaced notice.
    pub fn upsert(&mut self, notice: ChangeNotice) -> Option<ChangeNotice> {
        let previous = self.remove(&notice.id);
        self.starts.insert(notice.id.clone(), notice.start_ms);
        let key = (notice.start_ms, notice.id.clone());
        let notice = Arc::new(notice);
        self.by_length
            .entry(length_class(&notice))
            .or_default()
            .insert(key.clone(), notice.clone());
        self.by_window.insert(key, notice);
        previous
    }

    pub fn remove(&mut self, id: &str) -> Option<ChangeNotice> {
        let start = self.starts.remove(id)?;
        let key = (start, id.to_owned());
        let notice = self.by_window.remove(&key)?;
        let class = length_class(&notice);
        if let Some(keys) = self.by_length.get_mut(&class) {
            keys.remove(&key);
            if keys.is_empty() {
                self.by_length.remove(&class);
            }
        }
        Some(Arc::unwrap_or_clone(notice))
    }

    pub fn get(&self, id: &str) -> Option<&ChangeNotice> {
        let start = *self.starts.get(id)?;
        self.by_window.get(&(start, id.to_owned())).map(|n| &**n)
    }

    /// Every notice, by window start, then id.
    pub fn iter(&self) -> impl Iterator<Item = &ChangeNotice> + '_ {
        self.by_window.values().map(|n| &**n)
    }

    pub fn len(&self) -> usize {
        self.by_window.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_window.is_empty()
    }

    /// Notices whose window contains `t_ms` and that can touch `user`: its own, and the DCC's.
    pub fn covering(&self, user: Eui64, t_ms: i64) -> impl Iterator<Item = &ChangeNotice> + '_ {
        self.iter().filter(move |notice| {
            let owned = matches!(notice.owner, ChangeOwner::User(owner) if owner == user);
            (owned || notice.owner == ChangeOwner::Dcc) && notice.window_contains(t_ms)
        })
    }

    /// Notices whose window overlaps `[from_ms, to_ms]`, ends included, by window start then id. The cost is the
    /// answer plus, per length class, the windows of that class that end in the class's length before `from_ms`.
    pub fn overlapping(&self, from_ms: i64, to_ms: i64) -> Vec<&ChangeNotice> {
        if to_ms < from_ms {
            return Vec::new();
        }
        let mut found: Vec<&ChangeNotice> = Vec::new();
        for (&class, keys) in &self.by_length {
            // Every length in the class is below 2^class (class 63 holds lengths up to i64::MAX).
            let longest = if class >= 63 {
                i64::MAX
            } else {
                1_i64 << class
            };
            let earliest = from_ms.saturating_sub(longest);
            let range = (
                std::ops::Bound::Included((earliest, String::new())),
                std::ops::Bound::Unbounded,
            );
            for ((start, _), notice) in keys.range(range) {
                if *start > to_ms {
                    break;
                }
                if notice.end_ms >= from_ms {
                    found.push(&**notice);
                }
            }
        }
        // One sorted run per class: a stable (merging) sort joins them in O(k log classes).
        found.sort_by(|a, b| (a.start_ms, &a.id).cmp(&(b.start_ms, &b.id)));
        found
    }
}

impl Extend<ChangeNotice> for ChangeRegister {
    /// In order, so that a later notice with the same id wins, as in a file.
    fn extend<I: IntoIterator<Item = ChangeNotice>>(&mut self, notices: I) {
        for notice in notices {
            self.upsert(notice);
        }
    }
}

impl FromIterator<ChangeNotice> for ChangeRegister {
    fn from_iter<I: IntoIterator<Item = ChangeNotice>>(notices: I) -> Self {
        let mut register = ChangeRegister::new();
        register.extend(notices);
        register
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::changes::notice::{Category, ChangeStatus};

    fn notice(id: &str, owner: ChangeOwner, start_ms: i64, end_ms: i64) -> ChangeNotice {
        ChangeNotice::planned(id, owner, Category::Network, start_ms, end_ms)
    }

    const A: Eui64 = Eui64(0xA);
    const B: Eui64 = Eui64(0xB);

    #[test]
    fn the_same_id_again_updates_the_notice_even_when_its_window_moves() {
        let mut register = ChangeRegister::new();
        assert!(
            register
                .upsert(notice("CHG-1", ChangeOwner::User(A), 100, 200))
                .is_none()
        );
        let mut moved = notice("CHG-1", ChangeOwner::User(A), 500, 600);
        moved.status = ChangeStatus::Cancelled;
        let previous = register.upsert(moved);
        assert_eq!(previous.map(|p| p.start_ms), Some(100));
        assert_eq!(register.len(), 1);
        let current = register.get("CHG-1").unwrap();
        assert_eq!(
            (current.start_ms, current.status),
            (500, ChangeStatus::Cancelled)
        );
        assert!(register.remove("CHG-1").is_some());
        assert!(register.is_empty() && register.get("CHG-1").is_none());
    }

    #[test]
    fn iterates_by_start_then_id_whatever_the_insertion_order() {
        let register: ChangeRegister = [
            notice("CHG-3", ChangeOwner::User(A), 200, 300),
            notice("CHG-2", ChangeOwner::User(A), 100, 300),
            notice("CHG-1", ChangeOwner::User(B), 200, 300),
        ]
        .into_iter()
        .collect();
        let ids: Vec<_> = register.iter().map(|n| n.id.as_str()).collect();
        assert_eq!(ids, ["CHG-2", "CHG-1", "CHG-3"]);
    }

    #[test]
    fn covering_finds_the_users_own_and_the_dccs_changes_in_window() {
        let register: ChangeRegister = [
            notice("MINE", ChangeOwner::User(A), 100, 200),
            notice("THEIRS", ChangeOwner::User(B), 100, 200),
            notice("DCC", ChangeOwner::Dcc, 150, 150),
            notice("LATER", ChangeOwner::User(A), 201, 300),
        ]
        .into_iter()
        .collect();
        let ids: Vec<_> = register.covering(A, 150).map(|n| n.id.as_str()).collect();
        assert_eq!(ids, ["MINE", "DCC"]);
        let ids: Vec<_> = register.covering(A, 200).map(|n| n.id.as_str()).collect();
        assert_eq!(ids, ["MINE"]);
    }

    #[test]
    fn overlapping_includes_touching_windows() {
        let register: ChangeRegister = [
            notice("EARLY", ChangeOwner::Dcc, 0, 99),
            notice("TOUCH", ChangeOwner::Dcc, 50, 100),
            notice("INSIDE", ChangeOwner::Dcc, 120, 130),
            notice("EDGE", ChangeOwner::Dcc, 200, 250),
            notice("LATE", ChangeOwner::Dcc, 201, 250),
        ]
        .into_iter()
        .collect();
        let ids: Vec<_> = register
            .overlapping(100, 200)
            .into_iter()
            .map(|n| n.id.as_str())
            .collect();
        assert_eq!(ids, ["TOUCH", "INSIDE", "EDGE"]);
    }

    #[test]
    fn a_moved_or_removed_window_leaves_the_time_index() {
        let mut register: ChangeRegister = [
            notice("LONG", ChangeOwner::Dcc, 0, 1_000_000),
            notice("SHORT", ChangeOwner::Dcc, 10, 20),
        ]
        .into_iter()
        .collect();
        register.upsert(notice("LONG", ChangeOwner::Dcc, 5_000_000, 5_000_001));
        let ids: Vec<_> = register
            .overlapping(500, 600)
            .into_iter()
            .map(|n| n.id.as_str())
            .collect();
        assert!(ids.is_empty(), "{ids:?}");
        register.remove("SHORT");
        assert!(register.overlapping(0, 100).is_empty());
        assert_eq!(register.overlapping(0, i64::MAX).len(), 1);
        assert_eq!(register.overlapping(i64::MIN, i64::MAX).len(), 1);
    }

    proptest::proptest! {
        /// The index finds exactly what a scan of every notice finds, in the same order.
        #[test]
        fn overlapping_matches_a_full_scan(
            windows in proptest::collection::vec((0_i64..10_000, 0_i64..3_000), 0..60),
            moves in proptest::collection::vec((0_usize..60, 0_i64..10_000, 0_i64..3_000), 0..20),
            query in (-1_000_i64..11_000, 0_i64..4_000),
        ) {
            let mut register = ChangeRegister::new();
            for (n, (start, length)) in windows.iter().enumerate() {
                register.upsert(notice(&format!("C{n}"), ChangeOwner::Dcc, *start, start + length));
            }
            for (n, start, length) in moves {
                if n % 3 == 0 {
                    register.remove(&format!("C{n}"));
                } else {
                    register.upsert(notice(&format!("C{n}"), ChangeOwner::Dcc, start, start + length));
                }
            }
            let (from, to) = (query.0, query.0 + query.1);
            let indexed: Vec<&str> = register.overlapping(from, to).into_iter().map(|n| n.id.as_str()).collect();
            let scanned: Vec<&str> = register
                .iter()
                .filter(|n| n.start_ms <= to && n.end_ms >= from)
                .map(|n| n.id.as_str())
                .collect();
            proptest::prop_assert_eq!(indexed, scanned);
        }
    }
}
