//! Idle Users leave the User table: a User silent for `evict_idle_after_s` of event time that nothing needs gives
//! back its slot and its memory, so made-up User IDs that stop sending cannot lock real Users out for good.
//!
//! Users are addressed by their [`UserKey`] (incidents' members, anomalies, the ID index; the clock names Users by
//! ID). A leaving User frees its slot and nothing else moves: a key is generational, so the freed slot's next User
//! gets another key, and a key kept past its User's eviction resolves to nothing rather than to that User.
//!
//! Baselines are relearned, not kept: a returning User starts cold, and a cold baseline never pages until it has
//! warmed up on the User's own traffic (`BaselineConfig::warmup_s`). An hour on, the User's traffic may well have
//! another daily level than the one it left with. What is kept is only when each evicted User was
//! last heard from and when it left, in a record bounded by `max_users`, for the API.

use std::collections::VecDeque;

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

use super::Engine;
use super::user::UserKey;
use crate::telemetry::Eui64;

/// Users examined per closed second: the whole 4,096-User table is swept every 16 s of event time, and no second
/// pays for more than this many cheap checks.
pub const SCAN_PER_SECOND: usize = 256;

/// The sweep for idle Users under way: the table's keys as the sweep began, and how far it got. Users that came in
/// since wait for the next sweep (they are not idle), those evicted since are passed over.
#[derive(Clone, Debug, Default)]
pub(super) struct Sweep {
    keys: Vec<UserKey>,
    next: usize,
}

/// What is left of a User after it left the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evicted {
    /// Event time (ms) of the second of its last line.
    pub last_event_ms: i64,
    /// Event time (ms) of the second it was evicted.
    pub evicted_ms: i64,
}

/// The Users evicted lately, newest kept when the record is full, and how many were evicted in all.
#[derive(Clone, Debug, Default)]
pub struct EvictedUsers {
    total: u64,
    sequence: u64,
    by_user: FxHashMap<Eui64, (u64, Evicted)>,
    /// Eviction order; entries whose User came back (or was evicted again) are stale and skipped.
    order: VecDeque<(u64, Eui64)>,
}

impl EvictedUsers {
    fn record(&mut self, user: Eui64, evicted: Evicted, capacity: usize) {
        self.total += 1;
        self.sequence += 1;
        self.by_user.insert(user, (self.sequence, evicted));
        self.order.push_back((self.sequence, user));
        let capacity = capacity.max(1);
        while self.by_user.len() > capacity || self.order.len() > 2 * capacity {
            let Some((sequence, oldest)) = self.order.pop_front() else {
                break;
            };
            if self
                .by_user
                .get(&oldest)
                .is_some_and(|(s, _)| *s == sequence)
            {
                self.by_user.remove(&oldest);
            }
        }
    }

    /// The User is back in the table.
    pub(super) fn returned(&mut self, user: Eui64) {
        self.by_user.remove(&user);
    }

    pub fn get(&self, user: Eui64) -> Option<Evicted> {
        self.by_user.get(&user).map(|&(_, evicted)| evicted)
    }

    pub fn total(&self) -> u64 {
        self.total
    }

    /// Evicted Users recorded and not back since.
    pub fn len(&self) -> usize {
        self.by_user.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_user.is_empty()
    }

    /// Oldest first, as a snapshot keeps them.
    pub(super) fn entries(&self) -> Vec<(Eui64, Evicted)> {
        self.order
            .iter()
            .filter_map(|&(sequence, user)| match self.by_user.get(&user) {
                Some(&(s, evicted)) if s == sequence => Some((user, evicted)),
                _ => None,
            })
            .collect()
    }

    pub(super) fn restored(total: u64, entries: Vec<(Eui64, Evicted)>, capacity: usize) -> Self {
        let mut users = EvictedUsers::default();
        for (user, evicted) in entries {
            users.record(user, evicted, capacity);
        }
        users.total = total;
        users
    }
}

impl Engine {
    /// Examines up to `budget` Users from where the last call stopped and evicts those idle since before `second -
    /// evict_idle_after_s` that nothing needs. Runs as seconds close, never per event.
    pub(super) fn evict_idle(&mut self, second: i64, budget: usize) {
        let idle = self.config.evict_idle_after_s;
        let cutoff = second - idle;
        // After a gap in all the data (an outage, a restart) silence is missing data, not idleness: the clock
        // starts again when the data resumes.
        if idle <= 0 || self.live_since > cutoff {
            return;
        }
        // A User's answer cannot change within the second: visiting one twice in a second is waste.
        for _ in 0..budget.min(self.users.len()) {
            if self.evict_sweep.next >= self.evict_sweep.keys.len() {
                if self.users.is_empty() {
                    return;
                }
                self.evict_sweep.keys.clear();
                self.evict_sweep.keys.extend(self.users.keys());
                self.evict_sweep.next = 0;
            }
            let user = self.evict_sweep.keys[self.evict_sweep.next];
            self.evict_sweep.next += 1;
            if self.evictable(user, cutoff) {
                self.evict(user, second);
            }
        }
    }

    fn evictable(&self, user: UserKey, cutoff: i64) -> bool {
        let Some(state) = self.users.get(user) else {
            return false;
        };
        state.last_event_second <= cutoff
            && state.quiescent()
            && self.anomalies[user].iter().all(Option::is_none)
            && !self.incidents.names_user(user)
    }

    fn evict(&mut self, user: UserKey, second: i64) {
        let Some(state) = self.users.remove(user) else {
            return;
        };
        self.anomalies.remove(user);
        self.index.remove(&state.id);
        self.closing = None;
        let evicted = Evicted {
            last_event_ms: state.last_event_second * 1000,
            evicted_ms: second * 1000,
        };
        self.evicted
            .record(state.id, evicted, self.config.max_users);
    }

    /// When User `user` was evicted, if it was lately and has not come back.
    pub fn evicted(&self, user: Eui64) -> Option<Evicted> {
        self.evicted.get(user)
    }

    /// Users evicted since the engine began (carried across snapshots).
    pub fn evicted_total(&self) -> u64 {
        self.evicted.total()
    }

    /// The bounded record of evicted Users (for a copy published off the engine thread).
    pub fn evicted_users(&self) -> &EvictedUsers {
        &self.evicted
    }

    /// Distinct Users seen: those in the table and those evicted and not back. Exact unless more than `max_users`
    /// Users were evicted and not back (the record keeps the newest), then a lower bound.
    pub fn users_seen(&self) -> usize {
        self.users.len() + self.evicted.len()
    }
}

#[cfg(test)]
#[path = "evict_tests.rs"]
mod tests;
