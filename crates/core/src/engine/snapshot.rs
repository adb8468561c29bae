//! Engine snapshots: the whole engine state as plain data, so a restarted service keeps its windows, baselines
//! and open incidents instead of relearning from zero or raising an open incident again.
//!
//! Users are stored as a list in the table's order, and incidents name their members by place in that list: keys
//! are the table's own, and a restored table hands out new ones.

use serde::{Deserialize, Serialize};

use slotmap::SecondaryMap;

use super::incidents::{Anomaly, IncidentBook};
use super::user::{UserKey, UserSnapshot, UserState};
use super::{Engine, EngineConfig, EngineStats};
use crate::changes::ChangeRegister;

/// Bumped whenever the snapshot's shape changes; an old snapshot is refused rather than misread.
pub const SNAPSHOT_VERSION: u32 = 1;

#[derive(Serialize, Deserialize)]
pub struct EngineSnapshot {
    version: u32,
    next_close: Option<i64>,
    max_ts: i64,
    stats: EngineStats,
    users: Vec<UserSnapshot>,
    /// In the order of `users`.
    anomalies: Vec<[Option<Anomaly>; 4]>,
    incidents: IncidentBook<usize>,
    network_open: [Option<usize>; 4],
    #[serde(default)]
    clock: super::clock::ClockSnapshot,
    /// Users evicted in all, and the latest ones with when they left (bounded by `max_users`).
    #[serde(default)]
    evicted_total: u64,
    #[serde(default)]
    evicted: Vec<(crate::telemetry::Eui64, super::evict::Evicted)>,
    #[serde(default = "long_ago")]
    live_since: i64,
    /// Absent from snapshots written before reservations: numbering then goes on after the last index.
    #[serde(default)]
    numbers: Option<super::incident_numbers::IncidentNumbers>,
}

fn long_ago() -> i64 {
    i64::MIN
}

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// The cause is in the message, so it is not also a `source()` (a printed chain would repeat it).
    #[error("engine snapshot is unreadable: {0}")]
    Decode(serde_json::Error),
    #[error("engine snapshot has version {found}, this build reads version {SNAPSHOT_VERSION}")]
    Version { found: u32 },
    #[error(
        "engine snapshot is inconsistent: an incident names a User its {users} Users do not include"
    )]
    UnknownMember { users: usize },
}

impl Engine {
    /// The engine's state as JSON bytes.
    pub fn snapshot(&self) -> Result<Vec<u8>, serde_json::Error> {
        let places: SecondaryMap<UserKey, usize> = self
            .users
            .keys()
            .enumerate()
            .map(|(place, key)| (key, place))
            .collect();
        let incidents = self
            .incidents
            .rename_members(|&key| places.get(key).copied())
            .ok_or_else(|| {
                serde::ser::Error::custom("an incident names a User not in the table")
            })?;
        serde_json::to_vec(&EngineSnapshot {
            version: SNAPSHOT_VERSION,
            next_close: self.next_close,
            max_ts: self.max_ts,
            stats: self.stats,
            users: self.users.values().map(UserState::snapshot).collect(),
            anomalies: self
                .users
                .keys()
                .map(|key| self.anomalies[key].clone())
                .collect(),
            incidents,
            network_open: self.network_open,
            clock: self.clock.snapshot(),
            evicted_total: self.evicted.total(),
            evicted: self.evicted.entries(),
            live_since: self.live_since,
            numbers: Some(self.numbers.clone()),
        })
    }

    /// An engine continuing from `bytes` (from [`Engine::snapshot`]), with the current config and change register.
    pub fn restore(
        bytes: &[u8],
        config: EngineConfig,
        changes: ChangeRegister,
    ) -> Result<Engine, SnapshotError> {
        let snapshot: EngineSnapshot =
            serde_json::from_slice(bytes).map_err(SnapshotError::Decode)?;
        if snapshot.version != SNAPSHOT_VERSION {
            return Err(SnapshotError::Version {
                found: snapshot.version,
            });
        }
        let mut engine = Engine::new(config, changes);
        let mut anomalies = snapshot.anomalies.into_iter();
        let keys: Vec<UserKey> = snapshot
            .users
            .into_iter()
            .map(|user| {
                let user = UserState::restore(user);
                let id = user.id;
                let key = engine.users.insert(user);
                engine.index.insert(id, super::Place::new(key));
                let anomalies = anomalies.next().unwrap_or_default();
                engine.anomalies.insert(key, anomalies);
                key
            })
            .collect();
        engine.incidents = snapshot
            .incidents
            .rename_members(|&place| keys.get(place).copied())
            .ok_or(SnapshotError::UnknownMember { users: keys.len() })?;
        engine.numbers = snapshot.numbers.unwrap_or_else(|| {
            super::incident_numbers::IncidentNumbers::counting_from(
                engine.incidents.next_index() as u64 + 1,
            )
        });
        engine.network_open = snapshot.network_open;
        engine.next_close = snapshot.next_close;
        engine.max_ts = snapshot.max_ts;
        engine.stats = snapshot.stats;
        engine.clock.restore(snapshot.clock);
        engine.evicted = super::evict::EvictedUsers::restored(
            snapshot.evicted_total,
            snapshot.evicted,
            engine.config.max_users,
        );
        engine.live_since = snapshot.live_since;
        Ok(engine)
    }
}
