//! The deterministic engine core: events in, incidents out. No sockets, clocks or files: replay, the live service
//! and the tests all drive this same type, so the same lines give the same incidents.

pub mod baseline;
pub mod clock;
pub mod config;
pub mod detect;
pub mod evict;
mod grouping;
pub mod incident_numbers;
pub mod incidents;
pub mod lifecycle;
pub mod queue_age;
#[cfg(test)]
mod scenario_tests;
pub mod snapshot;
pub mod tally;
pub mod user;
pub mod window;

use rustc_hash::{FxHashMap, FxHashSet};
use slotmap::SecondaryMap;

pub use clock::{ClockConfig, ClockOffsetView, Ingested, Settled, SourceId, SourceView, Stamper};
pub use config::{DetectorConfig, EngineConfig, NetworkConfig};
use incidents::{Anomaly, IncidentBook};
pub use user::UserKey;
use user::{UserState, Users};

use crate::changes::ChangeRegister;
use crate::incident::IncidentKind;
use crate::report::IncidentRecord;
use crate::telemetry::{Eui64, Event};

/// Why an event was not taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IngestError {
    #[error("User table full ({0} Users): line for a new User refused")]
    UserTableFull(usize),
    #[error(
        "event time {ts} is {lead_s} s ahead of the network's event time {network}: out of range, refused"
    )]
    OutOfRange {
        ts: String,
        lead_s: i64,
        network: String,
    },
    /// A User directory is set and does not list this User.
    #[error("unknown User {0}: not in the User directory")]
    UnknownUser(Eui64),
}

/// Counters over everything ingested.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct EngineStats {
    pub events: u64,
    pub late: u64,
    pub first_ts: Option<i64>,
    pub last_ts: Option<i64>,
}

/// An incident changed: the live service persists and notifies on these.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IncidentUpdate {
    Opened(usize),
    Resolved(usize),
    /// Folded into the common-cause incident given second.
    Merged(usize, usize),
}

/// An anomaly on watch: pending, not (yet, or ever) an incident. Operators see it before anyone is paged.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Watch {
    /// The User's key in the engine's table (see [`Engine::user`]).
    #[serde(skip)]
    pub user: UserKey,
    pub kind: IncidentKind,
    /// Event time (ms) the anomaly went on watch: the end of its first bad second.
    pub since: i64,
    /// The engine's estimate of when the anomaly began.
    pub onset: i64,
}

/// A User's key in the table, and the event clock's numbers for its clocks by [`Stamper`] as last used (checked on
/// use). Beside the ID every line is looked up by, the clock is found without waiting on the User's state, which
/// is large and often out of cache.
#[derive(Clone, Copy, Debug)]
struct Place {
    user: UserKey,
    stamps: [u32; 3],
}

impl Place {
    fn new(user: UserKey) -> Place {
        Place {
            user,
            stamps: [u32::MAX; 3],
        }
    }
}

pub struct Engine {
    config: EngineConfig,
    changes: ChangeRegister,
    index: FxHashMap<Eui64, Place>,
    users: Users,
    /// Every User's anomalies by kind, under the User's key.
    anomalies: SecondaryMap<UserKey, [Option<Anomaly>; 4]>,
    /// The keys of the Users a closing second visits, in table order: kept to spare an allocation per second
    /// (an incident opening needs the whole engine while the Users are visited), and listed again only after the
    /// table changed (`None`), not every second.
    closing: Option<Vec<UserKey>>,
    incidents: IncidentBook,
    /// Numbers for `INC-nnnnnn` IDs (unused with `stable_ids`).
    numbers: incident_numbers::IncidentNumbers,
    /// The open common-cause incident of each kind, if any.
    network_open: [Option<usize>; 4],
    updates: Vec<IncidentUpdate>,
    /// Every second before this one is closed.
    next_close: Option<i64>,
    /// Newest event time of a line taken (aligned).
    max_ts: i64,
    /// A gap in all the data longer than a ring: (last second before it, first second after it). Its seconds
    /// are skipped in one step when the watermark reaches them.
    gap: Option<(i64, i64)>,
    stats: EngineStats,
    clock: clock::EventClock,
    /// The Users that exist, when known: others are refused as unknown and never take a slot of the table, so
    /// made-up IDs cannot lock out a real User. Consulted only when a User is first seen (the cold path).
    directory: Option<FxHashSet<Eui64>>,
    /// The sweep for idle Users under way (see [`evict`]).
    evict_sweep: evict::Sweep,
    evicted: evict::EvictedUsers,
    /// The first second closed after the latest gap in all the data: idleness is counted from here at the earliest.
    live_since: i64,
}

impl Engine {
    pub fn new(mut config: EngineConfig, changes: ChangeRegister) -> Engine {
        config.correlator = config.correlator();
        Engine {
            clock: clock::EventClock::new(&config.clock, config.allowed_lateness_ms),
            config,
            changes,
            index: FxHashMap::default(),
            users: Users::with_key(),
            anomalies: SecondaryMap::new(),
            closing: None,
            incidents: IncidentBook::default(),
            numbers: incident_numbers::IncidentNumbers::default(),
            network_open: [None; 4],
            updates: Vec::new(),
            next_close: None,
            max_ts: i64::MIN,
            gap: None,
            stats: EngineStats::default(),
            directory: None,
            evict_sweep: evict::Sweep::default(),
            evicted: evict::EvictedUsers::default(),
            live_since: i64::MIN,
        }
    }

    /// Sets the User directory (or clears it with `None`). Users already tracked stay; the table grows to hold
    /// every listed User, whatever `max_users` says.
    pub fn set_directory(&mut self, directory: Option<FxHashSet<Eui64>>) {
        if let Some(listed) = &directory {
            self.config.max_users = self.config.max_users.max(listed.len());
        }
        self.directory = directory;
    }

    /// The User directory, if one is set.
    pub fn directory(&self) -> Option<&FxHashSet<Eui64>> {
        self.directory.as_ref()
    }

    /// Takes one event of the default source (replay's one stream). See [`Engine::ingest_from`].
    #[inline]
    pub fn ingest(&mut self, event: &Event) -> Result<Ingested, IngestError> {
        self.ingest_from(SourceId::DEFAULT, event)
    }

    /// Takes one event from `source`. The hot path: a hash lookup, the clock's range check on event time and a
    /// few stores, except when a second of the source's time ends. A line whose time is in doubt is held (see
    /// [`clock`]).
    #[inline]
    pub fn ingest_from(
        &mut self,
        source: SourceId,
        event: &Event,
    ) -> Result<Ingested, IngestError> {
        let slot = self.clock.source_slot(source);
        self.ingest_at(slot, event)
    }

    /// A line is placed at once when its User is in the table and its time is plausible (the hot path); any
    /// other goes the cold way.
    #[inline]
    fn ingest_at(&mut self, slot: u32, event: &Event) -> Result<Ingested, IngestError> {
        if let Some((user, clock)) = self.stamp_clock(slot, event)
            && let Some(at) = self.clock.admit(clock, event.ts_ms)
        {
            self.take(user, at, event, clock);
            return Ok(Ingested::Taken);
        }
        self.ingest_cold(slot, event)
    }

    /// A line of a User not in the table, or whose time is in doubt. Users are made as their lines are placed: a
    /// line held while its source has no event time yet makes none (as it would have made none without the hold),
    /// and a line no clock could explain does not take a place in the table. A held line may anchor its source
    /// instead of waiting (see `EventClock::hold`): it is then admitted again, as any line of an anchored source.
    #[cold]
    fn ingest_cold(&mut self, slot: u32, event: &Event) -> Result<Ingested, IngestError> {
        // A hold anchors only a source not anchored yet, so a line goes round at most twice.
        loop {
            let stamped = match self.stamp_clock(slot, event) {
                Some(stamped) => Some(stamped),
                None if self.admits_new_user(slot, event)? => {
                    self.add_user(event.user, event.ts_ms.div_euclid(1000))?;
                    self.stamp_clock(slot, event)
                }
                None => None,
            };
            if let Some((user, clock)) = stamped
                && let Some(at) = self.clock.admit(clock, event.ts_ms)
            {
                self.take(user, at, event, clock);
                return Ok(Ingested::Taken);
            }
            match self
                .clock
                .hold(slot, stamped.map(|(_, clock)| clock), event)?
            {
                clock::HoldOutcome::Held(token) => {
                    self.apply_releases();
                    return Ok(Ingested::Held(token));
                }
                clock::HoldOutcome::Anchored => {}
            }
        }
    }

    /// The User of the line and the event clock that stamped it, if the User is in the table.
    #[inline]
    fn stamp_clock(&mut self, slot: u32, event: &Event) -> Option<(UserKey, u32)> {
        let place = self.index.get_mut(&event.user)?;
        let stamper = Stamper::of(event.kind);
        let cached = place.stamps[stamper as usize];
        let clock = if self.clock.is_clock(cached, slot, event.user, stamper) {
            cached
        } else {
            let clock = self.clock.clock_for(slot, event.user, stamper);
            place.stamps[stamper as usize] = clock;
            clock
        };
        Some((place.user, clock))
    }

    /// True when a line of a User not in the table may make the User now; false to hold it while its source has
    /// no event time yet. Refuses a User the directory does not list, and a line no clock could explain.
    #[cold]
    fn admits_new_user(&mut self, slot: u32, event: &Event) -> Result<bool, IngestError> {
        self.listed(event.user)?;
        if self.clock.unanchored(slot) {
            return Ok(false);
        }
        self.clock.refuse_absurd(event.ts_ms)?;
        Ok(true)
    }

    /// Places an admitted line; when its source's second ended, runs the clock's pass and closes what it allows.
    #[inline]
    fn take(&mut self, user: UserKey, at: i64, event: &Event, clock: u32) {
        if self.place(user, at, event, clock) {
            self.clock.pass(clock);
            self.apply_releases();
        }
    }

    /// Places a line at `at` (aligned time): in its second, or as late once that second has closed. True when
    /// its source's second ended (the caller runs the clock's pass and closes seconds).
    #[inline]
    fn place(&mut self, user: UserKey, at: i64, event: &Event, clock: u32) -> bool {
        let second = at.div_euclid(1000);
        let next_close = *self
            .next_close
            .get_or_insert_with(|| second - self.config.allowed_lateness_ms.div_euclid(1000) - 1);
        self.stats.events += 1;
        self.stats.first_ts = Some(self.stats.first_ts.map_or(at, |t| t.min(at)));
        self.stats.last_ts = Some(self.stats.last_ts.map_or(at, |t| t.max(at)));
        if second < next_close {
            self.stats.late += 1;
            self.clock.count_late(clock);
            self.users[user].apply_late(event);
        } else {
            self.users[user].apply(second, event);
        }
        if at > self.max_ts {
            let before = self.max_ts.div_euclid(1000);
            if self.max_ts != i64::MIN && second - before > window::RING_SECONDS as i64 {
                self.gap = Some((before, second));
            }
            self.max_ts = at;
        }
        self.clock.placed(clock, at)
    }

    /// Applies the lines the clock released (their offset learned, their source moved, or their wait over),
    /// then closes the seconds the watermark has passed.
    #[cold]
    fn apply_releases(&mut self) {
        while self.clock.has_releases() {
            for release in self.clock.take_releases() {
                let user = match self.index.get(&release.event.user) {
                    Some(place) => place.user,
                    None => match self
                        .add_user(release.event.user, release.event.ts_ms.div_euclid(1000))
                    {
                        Ok(user) => user,
                        Err(error) => {
                            self.clock.settle(Settled::Refused(release.token, error));
                            continue;
                        }
                    },
                };
                match release.at {
                    Some(at) => {
                        if self.place(user, at, &release.event, release.clock) {
                            self.clock.pass(release.clock);
                        }
                    }
                    None => {
                        self.stats.events += 1;
                        self.stats.late += 1;
                        self.clock.count_late(release.clock);
                        self.users[user].apply_late(&release.event);
                    }
                }
                self.clock.settle(Settled::Released(release.token));
            }
        }
        for (id, offset) in self.clock.drain_adopted() {
            if let Some(place) = self.index.get(&id) {
                self.users[place.user].clock_offset_ms = offset;
            }
        }
        self.close_through();
    }

    /// With a User directory, a User it does not list is refused.
    #[cold]
    fn listed(&self, id: Eui64) -> Result<(), IngestError> {
        match &self.directory {
            Some(listed) if !listed.contains(&id) => Err(IngestError::UnknownUser(id)),
            _ => Ok(()),
        }
    }

    #[cold]
    fn add_user(&mut self, id: Eui64, second: i64) -> Result<UserKey, IngestError> {
        self.listed(id)?;
        if self.users.len() >= self.config.max_users {
            return Err(IngestError::UserTableFull(self.config.max_users));
        }
        self.evicted.returned(id);
        let user = self.users.insert(UserState::new(id, second));
        self.closing = None;
        self.index.insert(id, Place::new(user));
        self.anomalies.insert(user, [None, None, None, None]);
        Ok(user)
    }

    /// Every source is quiet: moves event time to `now_ms` (the service's wall clock, only ever the lateness
    /// window past the newest line) and closes every second the watermark has passed.
    pub fn advance_to(&mut self, now_ms: i64) {
        self.clock.idle_to(now_ms);
        self.apply_releases();
    }

    /// Closes every second before the clock's progress less the lateness (never past a held line's time). A gap
    /// in the data (no line from anyone for more than a ring of seconds) is skipped in one step, so a gap of days
    /// costs no more than one of seconds, and the detectors do not learn silence from missing data (a network
    /// resuming after a gap is not a storm).
    fn close_through(&mut self) {
        let Some(mut next) = self.next_close else {
            return;
        };
        let target = (self.clock.progress() - self.config.allowed_lateness_ms).div_euclid(1000);
        while next < target {
            if let Some((before, after)) = self.gap
                && next > before
            {
                let to = after.min(target);
                for user in self.users.values_mut() {
                    user.skip_idle(next, to);
                }
                self.clock.skipped_seconds += (to - next).max(0) as u64;
                next = next.max(to);
                self.live_since = next;
                if next >= after {
                    self.gap = None;
                }
                continue;
            }
            self.close_second(next);
            next += 1;
        }
        self.next_close = Some(next);
    }

    /// End of input: settles held lines, then closes every second up to the newest event.
    pub fn finish(&mut self) {
        self.clock.settle_all();
        self.apply_releases();
        if self.max_ts > i64::MIN {
            let end = self.max_ts + self.config.allowed_lateness_ms + 1000;
            self.clock.idle_to(end);
            self.close_through();
        }
        self.correlate_all();
    }

    /// Bounds event time from outside: a line further than `absurd_ms` beyond `bound` is refused, sources are idle
    /// after `source_idle_ms` of it without a line, and a source's jump never passes `bound + ahead`. The live
    /// service passes its wall clock; the core never reads one.
    pub fn set_now_bound(&mut self, bound: Option<i64>) {
        self.clock.set_bound(bound);
    }

    /// The service restarted: the sources it knows (from the snapshot and the journal) were connections that are
    /// gone, so none is waited for until it sends again (a stream reconnecting under its name does at once).
    pub fn sources_disconnected(&mut self) {
        self.clock.all_quiet();
        // The seconds they held open close now, not at the first line or idle tick after the restart.
        self.apply_releases();
    }

    /// Source `id` (a connection) opened: the watermark waits for its first lines from now on (see
    /// `EventClock::source_opened`).
    pub fn source_opened(&mut self, id: SourceId) {
        let open_from = self.next_close.map(|second| second * 1000);
        self.clock.source_opened(id, open_from);
    }

    /// Source `id` (a connection) closed: the watermark no longer waits for it, and the seconds it held open close.
    pub fn source_closed(&mut self, id: SourceId) {
        self.clock.source_closed(id);
        self.apply_releases();
    }

    /// Lines whose hold ended since the last call.
    pub fn drain_settled(&mut self) -> std::vec::Drain<'_, Settled> {
        self.clock.drain_settled()
    }

    /// Lines refused for an absurd time so far.
    pub fn out_of_range(&self) -> u64 {
        self.clock.out_of_range()
    }

    /// Clocks running at a recognised offset, for the report: by User and the lines its clock stamps.
    pub fn clock_offsets(&self) -> Vec<crate::report::ClockOffset> {
        self.clock
            .offsets()
            .into_iter()
            .map(|o| crate::report::ClockOffset {
                user: o.user.to_string(),
                offset_s: o.offset_ms / 1000,
                lines: Some(o.stamper.as_str().to_owned()),
                source: (o.source != SourceId::DEFAULT).then_some(o.source.0),
            })
            .collect()
    }

    /// Clocks running at a recognised offset, by source.
    pub fn stamp_offsets(&self) -> Vec<ClockOffsetView> {
        self.clock.offsets()
    }

    /// Every source's event-time progress.
    pub fn sources(&self) -> Vec<SourceView> {
        self.clock.sources()
    }

    /// Empty seconds skipped in one step after idle stretches (instead of closing each).
    pub fn seconds_skipped(&self) -> u64 {
        self.clock.skipped_seconds
    }

    /// Network event time (ms): the newest source's frontier, once known.
    pub fn network_time_ms(&self) -> Option<i64> {
        self.clock.network_ms()
    }

    /// Lines held right now.
    pub fn held_lines(&self) -> usize {
        self.clock.held_lines()
    }

    /// Closes `second` for every User in table order (an anomaly opening weighs the Users before it, closed,
    /// against those after it, not yet), then keeps open incidents' peaks and sweeps for idle Users.
    fn close_second(&mut self, second: i64) {
        let closing = match self.closing.take() {
            Some(closing) => closing,
            None => self.users.keys().collect(),
        };
        for &user in &closing {
            let transitions = self.users[user].close(second, &self.config);
            for kind in IncidentKind::ALL {
                if let Some(anomaly) = &mut self.anomalies[user][kind as usize] {
                    anomaly.observe(&self.users[user], kind);
                }
                if let Some(transition) = transitions[kind as usize] {
                    self.on_transition(user, kind, second, transition);
                }
            }
        }
        self.closing = Some(closing);
        self.track_network_peaks();
        self.evict_idle(second, evict::SCAN_PER_SECOND);
    }

    /// Where incident numbers come from (the live service reserves them in its store; replay counts from 1).
    pub fn incident_numbers(&self) -> &incident_numbers::IncidentNumbers {
        &self.numbers
    }

    /// Replaces where incident numbers come from; whatever was left of the previous source is dropped.
    pub fn set_incident_numbers(&mut self, numbers: incident_numbers::IncidentNumbers) {
        self.numbers = numbers;
    }

    /// Adds a block of numbers reserved after those already held.
    pub fn add_incident_numbers(&mut self, block: std::ops::Range<u64>) {
        self.numbers.add(block);
    }

    /// Forgets incidents that closed more than `keep_s` seconds of event time ago (the live service persists them
    /// first), so a long-running engine's memory stays bounded. Returns how many were dropped.
    pub fn prune_closed(&mut self, keep_s: i64) -> usize {
        match self.next_close {
            Some(now) => self.incidents.prune_closed_before(now - keep_s),
            None => 0,
        }
    }

    /// Replaces the change register and re-correlates every incident.
    pub fn set_changes(&mut self, changes: ChangeRegister) {
        self.changes = changes;
        self.correlate_all();
    }

    /// Adds or replaces these notices in the register (by id) and re-correlates every incident: a write of a few
    /// notices costs the same whatever the register's size.
    pub fn upsert_changes(&mut self, notices: Vec<crate::changes::ChangeNotice>) {
        self.changes.extend(notices);
        self.correlate_all();
    }

    /// Incidents as report records, in the order they opened (merged ones left out: their common cause lists them).
    pub fn incident_records(&self) -> Vec<IncidentRecord> {
        self.incidents
            .iter()
            .filter(|i| i.merged_into.is_none())
            .map(|i| i.record(&self.users))
            .collect()
    }

    pub fn incident_record(&self, index: usize) -> Option<IncidentRecord> {
        self.incidents.get(index).map(|i| i.record(&self.users))
    }

    pub fn drain_updates(&mut self) -> std::vec::Drain<'_, IncidentUpdate> {
        self.updates.drain(..)
    }

    /// Event time (ms) up to which every second is closed.
    pub fn watermark_ms(&self) -> Option<i64> {
        self.next_close.map(|second| second * 1000)
    }

    /// Newest event time seen.
    pub fn max_ts(&self) -> Option<i64> {
        (self.max_ts > i64::MIN).then_some(self.max_ts)
    }

    /// Open incidents as report records.
    pub fn open_incidents(&self) -> Vec<IncidentRecord> {
        let open = self.incidents.open_indices().iter();
        open.filter_map(|&i| self.incidents.get(i))
            .map(|i| i.record(&self.users))
            .collect()
    }

    /// The anomalies of User `user` that are on watch, by kind (none when the key no longer names a User).
    pub fn watches_of(&self, user: UserKey) -> [Option<Watch>; 4] {
        IncidentKind::ALL.map(|kind| {
            let state = self.users.get(user)?;
            let lifecycle::Phase::Pending { since, .. } = state.trackers[kind as usize].phase
            else {
                return None;
            };
            let anomaly = self.anomalies[user][kind as usize].as_ref()?;
            Some(Watch {
                user,
                kind,
                since: (anomaly.watched_second.min(since) + 1) * 1000,
                onset: anomaly.onset_second * 1000,
            })
        })
    }

    /// Every anomaly on watch, User by User. Computed on demand (once per tick at most), never per event.
    pub fn watches(&self) -> impl Iterator<Item = Watch> + '_ {
        self.users
            .keys()
            .flat_map(|user| self.watches_of(user).into_iter().flatten())
    }

    pub fn stats(&self) -> EngineStats {
        self.stats
    }

    pub fn user_count(&self) -> usize {
        self.users.len()
    }

    /// The key of User `id`, if it is in the table. A key names its User until the User is evicted, and never
    /// names another: a User that comes back gets a new key.
    pub fn user_key(&self, id: Eui64) -> Option<UserKey> {
        self.index.get(&id).map(|place| place.user)
    }

    /// The User `user` names, if it is still in the table.
    pub fn user(&self, user: UserKey) -> Option<&UserState> {
        self.users.get(user)
    }

    /// User `id`, if it is in the table.
    pub fn user_by_id(&self, id: Eui64) -> Option<&UserState> {
        self.user_key(id).and_then(|user| self.user(user))
    }

    /// The Users in the table with their keys, in table order.
    pub fn users(&self) -> impl ExactSizeIterator<Item = (UserKey, &UserState)> + '_ {
        self.users.iter()
    }

    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    pub fn changes(&self) -> &ChangeRegister {
        &self.changes
    }
}
