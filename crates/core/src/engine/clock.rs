//! Event time that no single source can break: the network's event time, lines held while their time is in
//! doubt, per-User clock offsets, network-wide jumps (gaps) and lines refused as out of range.
//!
//! Network time moves with the lines it accepts. A line more than `ahead_ms` in front of it (or `behind_ms`
//! behind it) is held, not applied: either its User's clock runs at an offset (several lines agree on one lead
//! over a few seconds of that User's own time and of network time: the offset is adopted and the User's lines are
//! placed in network time; an exporter flushing a stalled buffer races through its own time, so it is late, not
//! skewed), or the whole network moved (a gap: lines from most active Users, with no line at the old time between
//! them), or it is out of range, and after `hold_ms` of network time an ahead line is refused and a behind one
//! counts as late. While lines are held the watermark waits for them (at most `hold_ms`), so a line held and then
//! placed is not late. Nothing here is per event on the hot path except one range check.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use super::{Engine, IngestError};
use crate::telemetry::{Eui64, Event};

/// Thresholds of event-time admission (`[engine.clock]` in the service's TOML).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClockConfig {
    /// A line further than this ahead of network time is held.
    pub ahead_ms: i64,
    /// A line further than this behind network time is held (shorter lateness is ordinary: counted late).
    pub behind_ms: i64,
    /// Network time a held line waits for its User's offset or a network jump before it is judged.
    pub hold_ms: i64,
    /// Larger clock offsets are never adopted: such a line is out of range (ahead) or late (behind).
    pub max_offset_ms: i64,
    /// A User's offset is adopted after this many held lines agree on a lead...
    pub offset_min_lines: u32,
    /// ... spanning at least this much of the User's own event time (a burst of copies of one line does not)
    /// and of network time (a stalled exporter flushing its buffer does not: its lead drifts as it catches up).
    pub offset_min_span_ms: i64,
    /// Held lines of one User agree on a lead when within this of the first one.
    pub offset_tolerance_ms: i64,
    /// Replay has no wall clock: network time is anchored at the median of the first lines' Users, once this many
    /// lines are held...
    pub bootstrap_lines: usize,
    /// ... from at least this many Users, so that one or two skewed Users cannot outvote the rest. A smaller
    /// network anchors once half of `bootstrap_lines` has passed with no new User (or after 16 times
    /// `bootstrap_lines` in all).
    pub bootstrap_users: usize,
    /// Lines held at most; beyond, the oldest is judged at once.
    pub max_held: usize,
    /// A run of this many ahead lines with no line at network time between them is a jump even from few Users.
    pub jump_force_lines: u32,
}

impl Default for ClockConfig {
    fn default() -> Self {
        ClockConfig {
            ahead_ms: 10_000,
            behind_ms: 60_000,
            hold_ms: 10_000,
            max_offset_ms: 6 * 3_600_000,
            offset_min_lines: 5,
            offset_min_span_ms: 3_000,
            offset_tolerance_ms: 5_000,
            bootstrap_lines: 16,
            bootstrap_users: 5,
            max_held: 65_536,
            jump_force_lines: 4_096,
        }
    }
}

/// What became of a line given to [`Engine::ingest`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ingested {
    /// Applied now (possibly as late).
    Taken,
    /// Held while its time is in doubt; a [`Settled`] with this token follows (from [`Engine::drain_settled`]).
    /// The caller keeps the line's bytes until then, to quarantine it if it is refused.
    Held(u64),
}

/// The end of a hold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Settled {
    /// Applied (in its User's corrected time, or as late).
    Released(u64),
    /// Refused: quarantine the line with this error.
    Refused(u64, IngestError),
}

/// A line waiting for its time to be trusted.
#[derive(Clone, Copy, Debug)]
struct Held {
    token: u64,
    event: Event,
    /// `None` before network time is anchored: Users are created when their lines are placed, as they would
    /// have been without the hold.
    user: Option<u32>,
    /// Network time when it was held: the watermark waits for it, and it is judged `hold_ms` later.
    held_at: i64,
}

/// Held lines of one User that agree on one lead over network time.
#[derive(Clone, Copy, Debug)]
struct UserRun {
    first_lead: i64,
    min_lead: i64,
    count: u32,
    first_ts: i64,
    last_ts: i64,
    /// Network time at the run's first line: a skewed clock keeps its lead while network time moves on; an
    /// exporter flushing what it buffered races through its own time while network time stands still.
    first_net: i64,
}

/// Ahead lines with no line at network time between them.
#[derive(Clone, Copy, Debug, Default)]
struct NetRun {
    count: u32,
    users: u32,
    needed: u32,
    epoch: u32,
    min_ts: i64,
    max_ts: i64,
    /// Lines taken when the run last grew: any line taken since breaks the run.
    taken_mark: u64,
}

/// Network time is unknown until anchored; this keeps every lead out of range without a second test.
const UNANCHORED: i64 = i64::MIN / 4;

/// Event-time state of the engine.
#[derive(Debug)]
pub struct EventClock {
    /// Network event time (ms): the newest accepted line, or newer when the caller advanced time.
    pub(super) net_ms: i64,
    held: VecDeque<Held>,
    /// While held lines are being placed again, the earliest `held_at` among those not yet placed.
    refeed_floor: i64,
    /// The watermark may not pass this: the earliest `held_at` of any held line (kept up to date on every change
    /// to the held lines, so the hot path reads one field).
    floor: i64,
    /// `behind_ms` and `ahead_ms + behind_ms`, for the one-comparison range check.
    behind_ms: i64,
    span_ms: u64,
    next_token: u64,
    runs: Vec<Option<UserRun>>,
    user_epochs: Vec<u32>,
    run: NetRun,
    /// An upper bound on event time from outside (the service's wall clock).
    bound: Option<i64>,
    settled: Vec<Settled>,
    pub(super) out_of_range: u64,
    /// Empty seconds closed in one step after idle stretches.
    pub(super) skipped_seconds: u64,
}

impl Default for EventClock {
    fn default() -> Self {
        EventClock {
            net_ms: UNANCHORED,
            held: VecDeque::new(),
            refeed_floor: i64::MAX,
            floor: i64::MAX,
            behind_ms: ClockConfig::default().behind_ms,
            span_ms: (ClockConfig::default().ahead_ms + ClockConfig::default().behind_ms) as u64,
            next_token: 0,
            runs: Vec::new(),
            user_epochs: Vec::new(),
            run: NetRun::default(),
            bound: None,
            settled: Vec::new(),
            out_of_range: 0,
            skipped_seconds: 0,
        }
    }
}

/// Clock state carried in an engine snapshot (held lines are not: they settle within `hold_ms`).
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize)]
pub struct ClockSnapshot {
    pub net_ms: Option<i64>,
    pub out_of_range: u64,
}

impl EventClock {
    pub(super) fn new(config: &ClockConfig) -> EventClock {
        EventClock {
            behind_ms: config.behind_ms,
            span_ms: (config.ahead_ms + config.behind_ms).max(0) as u64,
            ..EventClock::default()
        }
    }

    /// True when a line at `ts` (already corrected for its User's offset) may be applied at once: within
    /// `[net - behind, net + ahead]`, in one comparison.
    #[inline]
    pub(super) fn in_range(&self, ts: i64) -> bool {
        let from_low = ts.wrapping_sub(self.net_ms).wrapping_add(self.behind_ms);
        from_low as u64 <= self.span_ms
    }

    /// The watermark may not pass this (network time of the oldest held line), so placed lines are not late.
    #[inline]
    pub(super) fn floor(&self) -> i64 {
        self.floor
    }

    /// Held lines are in `held_at` order: the oldest sets the floor.
    fn refresh_floor(&mut self) {
        self.floor = self
            .held
            .front()
            .map_or(i64::MAX, |h| h.held_at)
            .min(self.refeed_floor);
    }

    pub(super) fn anchored(&self) -> bool {
        self.net_ms != UNANCHORED
    }

    pub(super) fn add_user(&mut self) {
        self.runs.push(None);
        self.user_epochs.push(0);
    }

    /// No offset run of User `user` is under way.
    pub(super) fn user_quiet(&self, user: usize) -> bool {
        self.runs.get(user).is_none_or(Option::is_none)
    }

    /// User `user` left the table and the last User took its place (`Vec::swap_remove`). Only called while
    /// nothing is [`holding`](EventClock::holding), as held lines name Users by place.
    pub(super) fn remove_user(&mut self, user: usize) {
        if user < self.runs.len() {
            self.runs.swap_remove(user);
            self.user_epochs.swap_remove(user);
        }
    }

    /// Lines are held, or held lines are being placed again: either way some name Users by their place.
    pub(super) fn holding(&self) -> bool {
        self.floor != i64::MAX
    }

    pub(super) fn has_held(&self) -> bool {
        !self.held.is_empty()
    }

    pub(super) fn snapshot(&self) -> ClockSnapshot {
        ClockSnapshot {
            net_ms: self.anchored().then_some(self.net_ms),
            out_of_range: self.out_of_range,
        }
    }

    pub(super) fn restore(&mut self, snapshot: ClockSnapshot) {
        self.net_ms = snapshot.net_ms.unwrap_or(UNANCHORED);
        self.out_of_range = snapshot.out_of_range;
    }
}

fn rfc3339(ms: i64) -> String {
    crate::rfc3339::format_ms(ms).unwrap_or_else(|| format!("{ms} ms"))
}

/// The error for a line refused as out of range.
fn out_of_range(ts_ms: i64, network_ms: i64) -> IngestError {
    IngestError::OutOfRange {
        ts: rfc3339(ts_ms),
        lead_s: (ts_ms - network_ms) / 1000,
        network: rfc3339(network_ms),
    }
}

impl Engine {
    /// Bounds event time from outside: no line beyond `bound + max_offset` is accepted, and network time never
    /// jumps past `bound + ahead`. The live service passes its wall clock; the core never reads one.
    pub fn set_now_bound(&mut self, bound: Option<i64>) {
        self.clock.bound = bound;
        if bound.is_some() && !self.clock.anchored() && self.clock.has_held() {
            self.anchor();
        }
    }

    /// Lines whose hold ended since the last call.
    pub fn drain_settled(&mut self) -> std::vec::Drain<'_, Settled> {
        self.clock.settled.drain(..)
    }

    /// Lines refused as out of range so far.
    pub fn out_of_range(&self) -> u64 {
        self.clock.out_of_range
    }

    /// Users whose clock runs at a recognised offset.
    pub fn clock_offsets(&self) -> Vec<crate::report::ClockOffset> {
        self.users
            .iter()
            .filter(|u| u.clock_offset_ms != 0)
            .map(|u| crate::report::ClockOffset {
                user: u.id.to_string(),
                offset_s: u.clock_offset_ms / 1000,
            })
            .collect()
    }

    /// Empty seconds skipped in one step after idle stretches (instead of closing each).
    pub fn seconds_skipped(&self) -> u64 {
        self.clock.skipped_seconds
    }

    /// Network event time (ms), once known.
    pub fn network_time_ms(&self) -> Option<i64> {
        self.clock.anchored().then_some(self.clock.net_ms)
    }

    /// Lines held right now.
    pub fn held_lines(&self) -> usize {
        self.clock.held.len()
    }

    #[cold]
    #[inline(never)]
    pub(super) fn hold(
        &mut self,
        user: Option<usize>,
        event: &Event,
    ) -> Result<Ingested, IngestError> {
        self.refuse_beyond_bound(event)?;
        if !self.clock.anchored()
            && let Some(bound) = self.clock.bound
        {
            // With an outside bound there is no need to wait for more lines: the first plausible one anchors.
            self.clock.net_ms = event.ts_ms.min(bound);
            return self.ingest(event);
        }
        let token = self.clock.next_token;
        self.clock.next_token += 1;
        self.push_held(Held {
            token,
            event: *event,
            user: user.map(|u| u as u32),
            held_at: self.clock.net_ms,
        });
        let Some(user) = user.filter(|_| self.clock.anchored()) else {
            if self.clock.bound.is_some() || self.bootstrap_ready() {
                self.anchor();
            }
            return Ok(Ingested::Held(token));
        };
        self.consider(user, event);
        self.expire_held();
        Ok(Ingested::Held(token))
    }

    /// With an outside bound, a line further past it than any clock offset we adopt is refused at once.
    #[cold]
    pub(super) fn refuse_beyond_bound(&mut self, event: &Event) -> Result<(), IngestError> {
        match self.clock.bound {
            Some(bound) if event.ts_ms - bound > self.config.clock.max_offset_ms => {
                self.clock.out_of_range += 1;
                Err(out_of_range(event.ts_ms, bound))
            }
            _ => Ok(()),
        }
    }

    fn push_held(&mut self, held: Held) {
        if self.clock.held.len() >= self.config.clock.max_held
            && let Some(oldest) = self.clock.held.pop_front()
        {
            self.judge(oldest, false);
        }
        self.clock.held.push_back(held);
        self.clock.refresh_floor();
    }

    /// A just-held line: does it complete a User's offset or a network jump?
    fn consider(&mut self, user: usize, event: &Event) {
        let config = self.config.clock.clone();
        let net = self.clock.net_ms;
        let raw_lead = event.ts_ms - net;
        let corrected = event.ts_ms - self.users[user].clock_offset_ms;
        if corrected - net > config.ahead_ms && self.note_ahead(user, corrected) {
            return;
        }
        if raw_lead.abs() > config.max_offset_ms {
            return;
        }
        let run = self.clock.runs[user]
            .filter(|r| (raw_lead - r.first_lead).abs() <= config.offset_tolerance_ms);
        let run = match run {
            Some(mut run) => {
                run.min_lead = run.min_lead.min(raw_lead);
                run.count += 1;
                run.first_ts = run.first_ts.min(event.ts_ms);
                run.last_ts = run.last_ts.max(event.ts_ms);
                run
            }
            None => UserRun {
                first_lead: raw_lead,
                min_lead: raw_lead,
                count: 1,
                first_ts: event.ts_ms,
                last_ts: event.ts_ms,
                first_net: net,
            },
        };
        self.clock.runs[user] = Some(run);
        if run.count >= config.offset_min_lines
            && run.last_ts - run.first_ts >= config.offset_min_span_ms
            && net - run.first_net >= config.offset_min_span_ms
        {
            // Network time trails the newest true time, so every lead overstates the offset a little: the least
            // one is the closest, and an offset too small places lines a little early, never late. Whole seconds:
            // disorder blurs anything finer.
            let mut offset = (run.min_lead as f64 / 1000.0).round() as i64 * 1000;
            if offset.abs() < config.ahead_ms {
                offset = 0;
            }
            self.clock.runs[user] = None;
            self.users[user].clock_offset_ms = offset;
            let (mine, others): (VecDeque<Held>, VecDeque<Held>) =
                std::mem::take(&mut self.clock.held)
                    .into_iter()
                    .partition(|h| h.user == Some(user as u32));
            self.clock.held = others;
            self.clock.refresh_floor();
            self.refeed(mine.into_iter().collect());
        }
    }

    /// Counts an ahead line into the network run; true if it completed a jump (and the held lines were placed).
    fn note_ahead(&mut self, user: usize, corrected: i64) -> bool {
        if self.clock.run.count > 0 && self.clock.run.taken_mark != self.stats.events {
            // A line at network time came between: the earlier ahead lines were not a network-wide move.
            self.clock.run.count = 0;
        }
        let spread = corrected.max(self.clock.run.max_ts) - corrected.min(self.clock.run.min_ts);
        if self.clock.run.count > 0 && spread > self.config.clock.offset_tolerance_ms {
            // Ahead lines that disagree on where time went (one User 35 s fast, another 10 min) are skewed
            // clocks, each to be recognised on its own, not one move of the whole network.
            self.clock.run.count = 0;
        }
        if self.clock.run.count == 0 {
            let since = (self.clock.net_ms / 1000) - self.config.network.active_window_s;
            let active = self
                .users
                .iter()
                .filter(|u| u.last_event_second >= since)
                .count() as u32;
            let epoch = self.clock.run.epoch.wrapping_add(1);
            self.clock.run = NetRun {
                count: 0,
                users: 0,
                needed: if active >= 2 {
                    active.div_ceil(2).max(2)
                } else {
                    1
                },
                epoch,
                min_ts: i64::MAX,
                max_ts: i64::MIN,
                taken_mark: 0,
            };
        }
        let run = &mut self.clock.run;
        run.taken_mark = self.stats.events;
        run.count += 1;
        run.min_ts = run.min_ts.min(corrected);
        run.max_ts = run.max_ts.max(corrected);
        if self.clock.user_epochs[user] != run.epoch {
            self.clock.user_epochs[user] = run.epoch;
            run.users += 1;
        }
        let run = *run;
        let agreed = run.users >= run.needed && (run.needed >= 2 || run.count >= 3);
        if !(agreed || run.count >= self.config.clock.jump_force_lines) {
            return false;
        }
        if let Some(bound) = self.clock.bound
            && run.min_ts > bound + self.config.clock.ahead_ms
        {
            return false;
        }
        self.clock.run.count = 0;
        self.clock.net_ms = run.min_ts;
        for run in &mut self.clock.runs {
            *run = None;
        }
        let mut all: Vec<Held> = std::mem::take(&mut self.clock.held).into();
        self.clock.refresh_floor();
        for held in &mut all {
            held.held_at = run.min_ts;
        }
        self.refeed(all);
        true
    }

    /// Enough first lines to anchor on (see [`ClockConfig::bootstrap_users`]). Only before anchoring.
    #[cold]
    fn bootstrap_ready(&self) -> bool {
        let config = &self.config.clock;
        let held = self.clock.held.len();
        if held < config.bootstrap_lines {
            return false;
        }
        if held >= config.bootstrap_lines.saturating_mul(16) {
            return true;
        }
        let mut users: Vec<Eui64> = Vec::new();
        let mut newest_user_at = 0;
        for (position, line) in self.clock.held.iter().enumerate() {
            if !users.contains(&line.event.user) {
                users.push(line.event.user);
                newest_user_at = position;
            }
        }
        // Enough Users to outvote one or two skewed ones, or no new User for a while: a small network.
        users.len() >= config.bootstrap_users || held - newest_user_at > config.bootstrap_lines / 2
    }

    /// Network time from the first lines (replay), or from the first line and the outside bound (service).
    /// Replay takes the median over Users of each User's median time, one vote per User: a median over lines
    /// followed the chattiest Users, and two skewed ones among the first lines (10 min and 35 s fast) anchored
    /// network time 35 s ahead and made every other User's lines late.
    fn anchor(&mut self) {
        let mut lines: Vec<(Eui64, i64)> = self
            .clock
            .held
            .iter()
            .map(|h| (h.event.user, h.event.ts_ms))
            .collect();
        lines.sort_unstable();
        let Some(earliest) = lines.iter().map(|&(_, ts)| ts).min() else {
            return;
        };
        let mut per_user: Vec<i64> = lines
            .chunk_by(|a, b| a.0 == b.0)
            .map(|user| user[(user.len() - 1) / 2].1)
            .collect();
        per_user.sort_unstable();
        let median = per_user[(per_user.len() - 1) / 2];
        let anchor = match self.clock.bound {
            Some(bound) => earliest.min(bound),
            None => median,
        };
        self.clock.net_ms = anchor;
        let mut all: Vec<Held> = std::mem::take(&mut self.clock.held).into();
        self.clock.refresh_floor();
        for held in &mut all {
            held.held_at = anchor;
        }
        self.refeed(all);
    }

    /// Places held lines again in arrival order: in range now, they are taken; otherwise held again.
    fn refeed(&mut self, batch: Vec<Held>) {
        for (position, held) in batch.iter().enumerate() {
            self.clock.refeed_floor = batch.get(position + 1).map_or(i64::MAX, |h| h.held_at);
            self.clock.refresh_floor();
            let Some(user) = self.user_of(held) else {
                continue;
            };
            let ts = held.event.ts_ms - self.users[user].clock_offset_ms;
            if self.clock.in_range(ts) {
                self.take(user, ts, &held.event);
                self.clock.settled.push(Settled::Released(held.token));
            } else {
                self.push_held(Held {
                    held_at: self.clock.net_ms,
                    user: Some(user as u32),
                    ..*held
                });
            }
        }
        self.clock.refeed_floor = i64::MAX;
        self.clock.refresh_floor();
    }

    /// Judges held lines whose wait is over.
    #[inline]
    pub(super) fn expire_held(&mut self) {
        let deadline = self.clock.net_ms - self.config.clock.hold_ms;
        while self
            .clock
            .held
            .front()
            .is_some_and(|h| h.held_at < deadline)
        {
            if let Some(held) = self.clock.held.pop_front() {
                self.clock.refresh_floor();
                self.judge(held, false);
            }
        }
    }

    /// Ends a hold: an ahead line is refused, any other is taken (late if its second has closed). At the end of
    /// input an ahead line within any plausible clock offset is taken: no line is left for it to make late.
    fn judge(&mut self, held: Held, at_end: bool) {
        let Some(user) = self.user_of(&held) else {
            return;
        };
        let ts = held.event.ts_ms - self.users[user].clock_offset_ms;
        let lead = ts - self.clock.net_ms;
        let limit = if at_end {
            self.config.clock.max_offset_ms
        } else {
            self.config.clock.ahead_ms
        };
        if lead > limit {
            self.clock.out_of_range += 1;
            let error = out_of_range(ts, self.clock.net_ms);
            self.clock.settled.push(Settled::Refused(held.token, error));
        } else {
            self.take(user, ts, &held.event);
            self.clock.settled.push(Settled::Released(held.token));
        }
    }

    /// The held line's User, created now if the line was held before network time was anchored; a line the
    /// User table has no room for is refused.
    fn user_of(&mut self, held: &Held) -> Option<usize> {
        if let Some(user) = held.user {
            return Some(user as usize);
        }
        if let Some(&index) = self.index.get(&held.event.user) {
            return Some(index as usize);
        }
        match self.add_user(held.event.user, held.event.ts_ms.div_euclid(1000)) {
            Ok(user) => Some(user),
            Err(error) => {
                self.clock.settled.push(Settled::Refused(held.token, error));
                None
            }
        }
    }

    /// End of input: every line still held is judged now.
    pub(super) fn settle_all(&mut self) {
        if !self.clock.anchored() {
            self.anchor();
        }
        while let Some(held) = self.clock.held.pop_front() {
            self.clock.refresh_floor();
            self.judge(held, true);
        }
    }
}

#[cfg(test)]
#[path = "clock_tests.rs"]
mod tests;
