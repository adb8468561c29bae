//! The change register: notices keyed by id (registering an id again updates it), iterated by window start then id.

use std::collections::{BTreeMap, HashMap};

use super::notice::{ChangeNotice, ChangeOwner};
use crate::telemetry::Eui64;

/// An in-memory register. Iteration order is deterministic, so everything derived from it is too.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ChangeRegister {
    by_window: BTreeMap<(i64, String), ChangeNotice>,
    /// id -> start, to find a notice's place in `by_window` when only its id is known.
    starts: HashMap<String, i64>,
}

impl ChangeRegister {
    pub fn new() -> ChangeRegister {
        ChangeRegister::default()
    }

    /// Adds the notice, or replaces the one with the same id (last wins). Returns the replaced notice.
    pub fn upsert(&mut self, notice: ChangeNotice) -> Option<ChangeNotice> {
        let previous = self.remove(&notice.id);
        self.starts.insert(notice.id.clone(), notice.start_ms);
        self.by_window
            .insert((notice.start_ms, notice.id.clone()), notice);
        previous
    }

    pub fn remove(&mut self, id: &str) -> Option<ChangeNotice> {
        let start = self.starts.remove(id)?;
        self.by_window.remove(&(start, id.to_owned()))
    }

    pub fn get(&self, id: &str) -> Option<&ChangeNotice> {
        let start = *self.starts.get(id)?;
        self.by_window.get(&(start, id.to_owned()))
    }

    /// Every notice, by window start, then id.
    pub fn iter(&self) -> impl Iterator<Item = &ChangeNotice> + '_ {
        self.by_window.values()
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

    /// Notices whose window overlaps `[from_ms, to_ms]`, ends included.
    pub fn overlapping(
        &self,
        from_ms: i64,
        to_ms: i64,
    ) -> impl Iterator<Item = &ChangeNotice> + '_ {
        // Sorted by start, so the scan can stop at the first window opening after `to_ms`.
        self.iter()
            .take_while(move |notice| notice.start_ms <= to_ms)
            .filter(move |notice| notice.end_ms >= from_ms)
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
            .map(|n| n.id.as_str())
            .collect();
        assert_eq!(ids, ["TOUCH", "INSIDE", "EDGE"]);
    }
}
