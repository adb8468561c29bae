//! The deterministic engine core: events in, incidents out. No sockets, clocks or files: replay, the live service
//! and the tests all drive this same type, so the same lines give the same incidents.

pub mod baseline;
pub mod clock;
pub mod config;
pub mod detect;
pub mod evict;
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

pub use clock::{ClockConfig, ClockOffsetView, Ingested, Settled, SourceId, SourceView, Stamper};
pub use config::{DetectorConfig, EngineConfig, NetworkConfig};
use detect::backlog::DeliveryState;
use incidents::{Anomaly, Incident, IncidentBook};
use lifecycle::Transition;
use user::UserState;
use window::Flow;

use crate::changes::{ChangeRegister, correlate};
use crate::incident::{Affected, IncidentKind};
use crate::report::IncidentRecord;
use crate::telemetry::{Eui64, Event};

/// Seconds after a backlog's onset in which deliveries may still be of messages queued before it.
const DELIVERY_SETTLE_S: i64 = 5;

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

/// An open incident is correlated again once its peak ratio has grown by this fraction since it last was: the
/// verdict weighs the peak against a change's declared impact. Growth in steps bounds the work (about 230
/// correlations for a tenfold rise).
const RECORRELATE_GROWTH: f64 = 0.01;

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
    /// Index of the User in [`Engine::users`].
    #[serde(skip)]
    pub user: usize,
    pub kind: IncidentKind,
    /// Event time (ms) the anomaly went on watch: the end of its first bad second.
    pub since: i64,
    /// The engine's estimate of when the anomaly began.
    pub onset: i64,
}

/// A User's place in [`Engine::users`], and the event clock's numbers for its clocks by [`Stamper`] as last used
/// (checked on use). Beside the ID every line is looked up by, the clock is found without waiting on the User's
/// state, which is large and often out of cache.
#[derive(Clone, Copy, Debug)]
struct Place {
    user: u32,
    stamps: [u32; 3],
}

impl Place {
    fn new(user: usize) -> Place {
        Place {
            user: user as u32,
            stamps: [u32::MAX; 3],
        }
    }
}

pub struct Engine {
    config: EngineConfig,
    changes: ChangeRegister,
    index: FxHashMap<Eui64, Place>,
    users: Vec<UserState>,
    anomalies: Vec<[Option<Anomaly>; 4]>,
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
    /// Where the next sweep for idle Users starts (see [`evict`]).
    evict_cursor: usize,
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
            users: Vec::new(),
            anomalies: Vec::new(),
            incidents: IncidentBook::default(),
            numbers: incident_numbers::IncidentNumbers::default(),
            network_open: [None; 4],
            updates: Vec::new(),
            next_close: None,
            max_ts: i64::MIN,
            gap: None,
            stats: EngineStats::default(),
            directory: None,
            evict_cursor: 0,
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

    #[inline]
    fn ingest_at(&mut self, slot: u32, event: &Event) -> Result<Ingested, IngestError> {
        let Some(place) = self.index.get_mut(&event.user) else {
            return self.ingest_new_user(slot, event);
        };
        let user = place.user as usize;
        let stamper = Stamper::of(event.kind);
        let cached = place.stamps[stamper as usize];
        let clock = if self.clock.is_clock(cached, slot, event.user, stamper) {
            cached
        } else {
            let clock = self.clock.clock_for(slot, event.user, stamper);
            place.stamps[stamper as usize] = clock;
            clock
        };
        match self.clock.admit(clock, event.ts_ms) {
            Some(at) => {
                if self.place(user, at, event, clock) {
                    self.clock.pass(clock);
                    self.apply_releases();
                }
                Ok(Ingested::Taken)
            }
            None => self.hold(slot, Some(clock), event),
        }
    }

    /// A line of a User not in the table: held while its source has no event time yet (Users are made as their
    /// lines are placed, as they would have been without the hold); a line no clock could explain does not take a
    /// place in the table.
    #[cold]
    fn ingest_new_user(&mut self, slot: u32, event: &Event) -> Result<Ingested, IngestError> {
        self.listed(event.user)?;
        if self.clock.unanchored(slot) {
            return self.hold(slot, None, event);
        }
        self.clock.refuse_absurd(event.ts_ms)?;
        self.add_user(event.user, event.ts_ms.div_euclid(1000))?;
        self.ingest_at(slot, event)
    }

    #[cold]
    fn hold(
        &mut self,
        slot: u32,
        clock: Option<u32>,
        event: &Event,
    ) -> Result<Ingested, IngestError> {
        match self.clock.hold(slot, clock, event)? {
            clock::HoldOutcome::Held(token) => {
                self.apply_releases();
                Ok(Ingested::Held(token))
            }
            clock::HoldOutcome::Anchored => self.ingest_at(slot, event),
        }
    }

    /// Places a line at `at` (aligned time): in its second, or as late once that second has closed. True when
    /// its source's second ended (the caller runs the clock's pass and closes seconds).
    #[inline]
    fn place(&mut self, user: usize, at: i64, event: &Event, clock: u32) -> bool {
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
                    Some(place) => place.user as usize,
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
                self.users[place.user as usize].clock_offset_ms = offset;
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
    fn add_user(&mut self, id: Eui64, second: i64) -> Result<usize, IngestError> {
        self.listed(id)?;
        if self.users.len() >= self.config.max_users {
            return Err(IngestError::UserTableFull(self.config.max_users));
        }
        self.evicted.returned(id);
        self.index.insert(id, Place::new(self.users.len()));
        self.users.push(UserState::new(id, second));
        self.anomalies.push([None, None, None, None]);
        Ok(self.users.len() - 1)
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
                for user in &mut self.users {
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

    fn close_second(&mut self, second: i64) {
        for index in 0..self.users.len() {
            let transitions = self.users[index].close(second, &self.config);
            for kind in IncidentKind::ALL {
                if let Some(anomaly) = &mut self.anomalies[index][kind as usize] {
                    anomaly.observe(&self.users[index], kind);
                }
                if let Some(transition) = transitions[kind as usize] {
                    self.on_transition(index, kind, second, transition);
                }
            }
        }
        self.track_network_peaks();
        self.evict_idle(second, evict::SCAN_PER_SECOND);
    }

    fn on_transition(
        &mut self,
        user: usize,
        kind: IncidentKind,
        second: i64,
        transition: Transition,
    ) {
        let slot = kind as usize;
        match transition {
            Transition::Started { since } => {
                let onset = self.users[user].onset(kind, since);
                self.anomalies[user][slot] =
                    Some(Anomaly::start(&self.users[user], kind, onset, since));
            }
            Transition::Cancelled => self.anomalies[user][slot] = None,
            Transition::Opened { pending_since } => {
                // A flapping series opens dated from its first episode, before this episode's own onset.
                if let Some(anomaly) = self.anomalies[user][slot].as_mut()
                    && pending_since < anomaly.onset_second
                {
                    let back = match kind {
                        IncidentKind::Backlog => self.config.detectors.backlog.min_age_s as i64,
                        _ => 0,
                    };
                    anomaly.onset_second = pending_since - back;
                    anomaly.watched_second = anomaly.watched_second.min(pending_since);
                }
                self.open(user, kind, second)
            }
            Transition::Resolved { at } => {
                if let Some(anomaly) = self.anomalies[user][slot].take()
                    && let Some(incident) = anomaly.incident
                {
                    self.resolve_member(incident, at);
                }
            }
        }
    }

    /// Users with an anomaly of `kind` whose onset is within the grouping window of `onset`.
    fn concurrent(&self, kind: IncidentKind, onset: i64) -> Vec<usize> {
        let window = self.config.network.onset_window_s;
        (0..self.users.len())
            .filter(|&u| {
                self.anomalies[u][kind as usize]
                    .as_ref()
                    .is_some_and(|a| (a.onset_second - onset).abs() <= window)
            })
            .collect()
    }

    /// The Users of `concurrent` whose onsets fall within the coincidence window of `onset`.
    fn coincident(&self, kind: IncidentKind, onset: i64, concurrent: &[usize]) -> Vec<usize> {
        let window = self.config.network.coincidence_window_s;
        concurrent
            .iter()
            .copied()
            .filter(|&u| {
                self.anomalies[u][kind as usize]
                    .as_ref()
                    .is_some_and(|a| (a.onset_second - onset).abs() <= window)
            })
            .collect()
    }

    fn active_users(&self, second: i64) -> usize {
        let since = second - self.config.network.active_window_s;
        self.users
            .iter()
            .filter(|u| u.last_event_second >= since)
            .count()
    }

    fn open(&mut self, user: usize, kind: IncidentKind, second: i64) {
        let Some(onset) = self.anomalies[user][kind as usize]
            .as_ref()
            .map(|a| a.onset_second)
        else {
            return;
        };
        let network = &self.config.network;
        if let Some(common) = self.network_open[kind as usize]
            && (self.incidents[common].onset_second - network.onset_window_s
                ..=self.incidents[common].onset_second + network.join_window_s)
                .contains(&onset)
        {
            self.join(common, user, kind);
            return;
        }
        let concurrent = self.concurrent(kind, onset);
        let active = self.active_users(second);
        let by_share = concurrent.len() >= network.min_users
            && concurrent.len() as f64 >= network.min_share * active as f64;
        let coincident = if by_share {
            Vec::new()
        } else {
            self.coincident(kind, onset, &concurrent)
        };
        let improbable = coincident.len() >= network.min_users
            && network.coincidence_probability(active.max(coincident.len()), coincident.len())
                <= network.max_coincidence_probability;
        if !(by_share || improbable) {
            let incident = self.new_incident(
                Affected::User(self.users[user].id),
                kind,
                second,
                onset,
                concurrent.len(),
            );
            self.join(incident, user, kind);
            return;
        }
        let concurrent = if by_share { concurrent } else { coincident };
        let mut onsets: Vec<i64> = concurrent
            .iter()
            .filter_map(|&u| {
                self.anomalies[u][kind as usize]
                    .as_ref()
                    .map(|a| a.onset_second)
            })
            .collect();
        onsets.sort_unstable();
        let median = onsets[onsets.len() / 2];
        let common = self.new_incident(Affected::Network, kind, second, median, concurrent.len());
        self.incidents[common].onset_second = median;
        self.network_open[kind as usize] = Some(common);
        // Users already open on their own with the same onset are folded in; pending ones join as they open.
        for &member in &concurrent {
            if let Some(own) = self.anomalies[member][kind as usize]
                .as_ref()
                .and_then(|a| a.incident)
            {
                self.incidents[own].merged_into = Some(common);
                self.incidents.closed(own);
                self.updates.push(IncidentUpdate::Merged(own, common));
                self.join(common, member, kind);
            }
        }
        self.join(common, user, kind);
    }

    fn new_incident(
        &mut self,
        affected: Affected,
        kind: IncidentKind,
        second: i64,
        onset: i64,
        concurrent: usize,
    ) -> usize {
        let index = self.incidents.next_index();
        let id = if self.config.stable_ids {
            stable_id(affected, kind, onset)
        } else {
            format!("INC-{:06}", self.numbers.take())
        };
        self.incidents.push(Incident {
            id,
            affected,
            kind,
            onset_second: second,
            detected_second: second + 1,
            watched_second: None,
            resolved_second: None,
            members: Vec::new(),
            open_members: 0,
            peak_depth: 0,
            depth_at_detection: 0,
            peak_level: 0.0,
            baseline: 0.0,
            peak_age_s: 0,
            failed: 0,
            delivery_state: None,
            last_delivery: None,
            failure_reason: None,
            failures: [0; 6],
            delivered: 0,
            srvs: Vec::new(),
            alert_code: None,
            concurrent_users: concurrent.max(1) as u32,
            merged_into: None,
            correlation: None,
            correlated_ratio: 0.0,
        });
        self.updates.push(IncidentUpdate::Opened(index));
        index
    }

    fn join(&mut self, incident: usize, user: usize, kind: IncidentKind) {
        let Some(anomaly) = self.anomalies[user][kind as usize].as_mut() else {
            return;
        };
        if anomaly.incident == Some(incident) {
            return;
        }
        anomaly.incident = Some(incident);
        let state = &self.users[user];
        let target = &mut self.incidents[incident];
        target.members.push(user);
        target.open_members += 1;
        target.depth_at_detection += state.depth();
        if target.members.len() == 1 && target.affected != Affected::Network {
            target.onset_second = anomaly.onset_second;
        }
        target.baseline += anomaly.baseline;
        target.watched_second = Some(
            target
                .watched_second
                .map_or(anomaly.watched_second, |w| w.min(anomaly.watched_second)),
        );
        target.last_delivery = target.last_delivery.max(anomaly.last_delivery);
        if kind == IncidentKind::Backlog {
            // Judged over the seconds since the onset, less a few in which messages queued just before it may still
            // have been delivered: an outage opening a minute after its onset must not count the last deliveries
            // before it as "some still succeed".
            let since_onset = state.view.second - anomaly.onset_second - DELIVERY_SETTLE_S;
            let seconds = since_onset.clamp(10, 60);
            let delivered = state.recent_sum(Flow::Delivered, seconds);
            let failed = state.recent_sum(Flow::Failed, seconds);
            target
                .delivery_state
                .get_or_insert(DeliveryState::judge(delivered, failed));
            // The failure reason is evidence only when failures are a real share of the attempts of every member
            // so far: a stray timeout beside deliveries that merely slowed (shared capacity) is not the mechanism.
            let failures = state.failures_since(&anomaly.failures_at_start);
            for (total, count) in target.failures.iter_mut().zip(failures) {
                *total += count;
            }
            target.delivered += anomaly.delivered;
            target.failure_reason = detect::backlog::failing_reason(
                &target.failures,
                target.delivered,
                self.config.detectors.backlog.failing_share,
            );
        }
        if target.srvs.is_empty()
            && matches!(kind, IncidentKind::RequestStorm | IncidentKind::RejectStorm)
        {
            target.srvs = state.request_srvs.top().into_iter().take(3).collect();
        }
        if kind == IncidentKind::AlertStorm {
            target.alert_code = target
                .alert_code
                .or(state.alert_codes.top().first().copied());
        }
        self.correlate_one(incident);
        if kind == IncidentKind::RequestStorm {
            // A storm may explain backlogs already open elsewhere (shared capacity): judge them again.
            for position in 0..self.incidents.open_indices().len() {
                let open = self.incidents.open_indices()[position];
                if self.incidents[open].kind == IncidentKind::Backlog {
                    self.correlate_one(open);
                }
            }
        }
    }

    fn correlate_one(&mut self, incident: usize) {
        let horizon_s = self.config.correlator.storm_horizon_s;
        if let Some(facts) = self
            .incidents
            .facts_with_storms(incident, &self.users, horizon_s)
        {
            let correlation = correlate(&self.config.correlator, &facts, &self.changes);
            let record = &mut self.incidents[incident];
            record.correlation = Some(correlation);
            record.correlated_ratio = facts.peak_ratio;
        }
    }

    fn resolve_member(&mut self, incident: usize, at: i64) {
        let target = self
            .incidents
            .get(incident)
            .and_then(|i| i.merged_into)
            .unwrap_or(incident);
        let record = &mut self.incidents[target];
        record.open_members = record.open_members.saturating_sub(1);
        if record.open_members == 0 {
            record.resolved_second = Some(at.max(record.detected_second));
            if let Some(open) = self.network_open.iter_mut().find(|o| **o == Some(target)) {
                *open = None;
            }
            // Its figures are final: the verdict is judged on them, as a replay judges it at the end.
            self.correlate_one(target);
            self.incidents.closed(target);
            self.updates.push(IncidentUpdate::Resolved(target));
        }
    }

    /// Peaks of open incidents: single-User ones from their anomaly, common-cause ones summed over members.
    fn track_network_peaks(&mut self) {
        for position in 0..self.incidents.open_indices().len() {
            let index = self.incidents.open_indices()[position];
            let Some(incident) = self.incidents.get_mut(index) else {
                continue;
            };
            let kind = incident.kind as usize;
            let (mut depth, mut level, mut age, mut failed) = (0, 0.0, 0, 0);
            for &member in &incident.members {
                if let Some(anomaly) = &self.anomalies[member][kind] {
                    depth += self.users[member].depth();
                    level += self.users[member].readings[kind].level;
                    age = age.max(anomaly.peak_age_s);
                    failed += anomaly.failed;
                }
            }
            incident.peak_depth = incident.peak_depth.max(depth);
            incident.peak_age_s = incident.peak_age_s.max(age);
            incident.failed = incident.failed.max(failed);
            if incident.kind == IncidentKind::RejectStorm {
                // Shares do not add up across Users: keep the worst.
                level = incident
                    .members
                    .iter()
                    .map(|&m| self.users[m].readings[kind].level)
                    .fold(0.0, f64::max);
            }
            incident.peak_level = incident.peak_level.max(level);
        }
        for position in 0..self.incidents.open_indices().len() {
            let index = self.incidents.open_indices()[position];
            if self.incidents.get(index).is_some_and(|incident| {
                incident.correlation.is_some()
                    && incident.ratio() > incident.correlated_ratio * (1.0 + RECORRELATE_GROWTH)
            }) {
                self.correlate_one(index);
            }
        }
    }

    /// Re-runs correlation for every incident (at the end of input, or when the change register changed).
    pub fn correlate_all(&mut self) {
        for index in self.incidents.indices() {
            self.correlate_one(index);
        }
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

    /// The anomalies of User `user` (an index into [`Engine::users`]) that are on watch, by kind.
    pub fn watches_of(&self, user: usize) -> [Option<Watch>; 4] {
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
        (0..self.users.len()).flat_map(|user| self.watches_of(user).into_iter().flatten())
    }

    pub fn stats(&self) -> EngineStats {
        self.stats
    }

    pub fn user_count(&self) -> usize {
        self.users.len()
    }

    /// The place of User `id` in [`Engine::users`], if it is in the table. Places change when Users are evicted:
    /// look a User up again rather than keep its place across calls that may close seconds.
    pub fn user_index(&self, id: Eui64) -> Option<usize> {
        self.index.get(&id).map(|place| place.user as usize)
    }

    pub fn users(&self) -> &[UserState] {
        &self.users
    }

    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    pub fn changes(&self) -> &ChangeRegister {
        &self.changes
    }
}

/// `INC-backlog-90B3D51F30010007-1773133500`: kind, User (or `NET`) and onset second. The onset is a function
/// of the User's own events, so any engine that has seen enough of them derives the same name.
fn stable_id(affected: Affected, kind: IncidentKind, onset_second: i64) -> String {
    let who = match affected {
        Affected::User(user) => format!("{:016X}", user.0),
        Affected::Network => "NET".to_owned(),
    };
    format!("INC-{}-{who}-{onset_second}", kind.as_str())
}
