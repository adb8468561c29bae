//! Lines whose time is in doubt: held until their clock's offset is learned, their source jumps, or the wait
//! ends; anchoring a source's frontier on its first lines; refusing only the absurd.

use std::collections::VecDeque;

use super::{
    EventClock, Held, IngestError, JumpRun, OffsetRun, Release, Stamper, UNANCHORED, YEAR_2000_MS,
    absurd,
};
use crate::telemetry::{Eui64, Event};

/// Milliseconds of network time after a clock's last agreeing line during which its held lines still wait for more
/// (a small User's exporter may send a line a minute).
const GATHER_QUIET_MS: i64 = 60_000;

/// Milliseconds of network time over which held lines of a source whose frontier stands still (every line of it
/// held), and that run more than `source_max_wait_ms` behind network time, must keep one lead over network time
/// before their clock is taken to run slow. Such a source may be a backfill on a connection of its own, its own time
/// racing ahead of network time; but network time moves in steps (one flush of another connection, or a sender
/// released by watermark alignment), and three lines of a sparse backfilled clock on either side of one step kept
/// one lead over a few seconds: a 20-minute backfill was placed in the live present as clocks 20 minutes slow. Over
/// half a minute of network time a backfill sent faster than real time drifts out of the offset tolerance; a clock
/// that only runs slow keeps its lead.
///
/// Not for lines closer behind: a live sender joining the others 20 s late is such a source too, and the watermark
/// waits for its held lines `hold_ms` of network time, not half a minute. Its lines are placed at its clocks' offset
/// (about where they arrive) only if that offset is learned within that wait; after it they were placed at their own
/// time, whose seconds had closed, and counted late (the first 14 s of a sender 20 s behind: 0.5 % of the sweep
/// test's lines). A source that close is one the watermark would wait for, so it is taken for live; a backfill of a
/// gap that short, mistaken for slow clocks, has its lines placed at most two minutes off.
const STALE_BEHIND_SPAN_MS: i64 = 30_000;

/// What became of a line given to [`EventClock::hold`].
pub(in crate::engine) enum HoldOutcome {
    Held(u64),
    /// The source was anchored by this very line (the outside bound makes that immediate): admit it again.
    Anchored,
}

impl EventClock {
    /// Holds a line that may not be placed at once (or refuses it when its time is absurd). `clock` is `None`
    /// while the source is not anchored.
    #[cold]
    #[inline(never)]
    pub(in crate::engine) fn hold(
        &mut self,
        source: u32,
        clock: Option<u32>,
        event: &Event,
    ) -> Result<HoldOutcome, IngestError> {
        self.refuse_absurd(event.ts_ms)?;
        if !self.anchored(source)
            && let Some(bound) = self.bound
        {
            // With an outside bound there is no need to wait for more lines: the first plausible one anchors.
            let anchor = event.ts_ms.min(bound);
            self.sources[source as usize].frontier = anchor;
            self.join_opened(anchor);
            return Ok(HoldOutcome::Anchored);
        }
        let token = self.next_token;
        self.next_token += 1;
        let frontier = self.sources[source as usize].frontier;
        self.push_held(Held {
            token,
            event: *event,
            source,
            clock,
            held_at: frontier,
            first_held: frontier,
        });
        let Some(clock) = clock.filter(|_| self.anchored(source)) else {
            if self.bootstrap_ready(source) {
                self.anchor(source);
            }
            return Ok(HoldOutcome::Held(token));
        };
        self.consider(clock, event);
        self.expire_held();
        Ok(HoldOutcome::Held(token))
    }

    /// Refused at once: before 2000, or further than `absurd_ms` past the outside bound (the wall clock). A line
    /// days from its source's frontier is held like any other (its source may have jumped over a gap) and refused
    /// only if nothing explains it when its wait ends.
    pub(in crate::engine) fn refuse_absurd(&mut self, ts_ms: i64) -> Result<(), IngestError> {
        let reference = match self.bound {
            Some(bound) if ts_ms - bound > self.config.absurd_ms => bound,
            _ if ts_ms < YEAR_2000_MS => YEAR_2000_MS,
            _ => return Ok(()),
        };
        self.out_of_range += 1;
        Err(absurd(ts_ms, reference))
    }

    fn push_held(&mut self, held: Held) {
        if self.held.len() >= self.config.max_held
            && let Some(oldest) = self.held.pop_front()
        {
            self.judge(oldest, false);
        }
        self.held.push_back(held);
        self.refresh_floor();
    }

    /// A just-held line: does it complete its clock's offset or its source's jump?
    fn consider(&mut self, clock: u32, event: &Event) {
        let config = self.config.clone();
        let c = &self.clocks[clock as usize];
        let source = c.source;
        let net = self.sources[source as usize].frontier;
        // Time moving on, for the run's span: network time too, as a source whose every line is held does not
        // move its own frontier.
        let moving = net.max(self.network_ms().unwrap_or(net));
        let raw_lead = event.ts_ms - net;
        let corrected = event.ts_ms - c.offset_ms;
        if corrected - net > config.ahead_ms && self.note_ahead(clock, corrected) {
            return;
        }
        if let Some(offset) = self.known_offset(clock, event.ts_ms) {
            // No clock (offset back to none, or the one the User's other exporters run at) places it: one line is
            // enough evidence for an offset already seen.
            self.adopt(clock, offset);
            return;
        }
        if raw_lead.abs() > config.max_offset_ms {
            return;
        }
        // A source whose every line is held keeps its own frontier still, so against it the leads of any clock
        // drift with the clock's own time: then they are compared over network time, against which a skewed
        // clock's lead holds and a backfill's (its own time racing ahead) does not.
        let moving_lead = event.ts_ms - moving;
        let run = self.clocks[clock as usize].run.filter(|r| {
            let (lead, first) = if net == r.first_own {
                (moving_lead, r.first_moving_lead)
            } else {
                (raw_lead, r.first_lead)
            };
            (lead - first).abs() <= config.offset_tolerance_ms
        });
        let run = match run {
            Some(mut run) => {
                run.min_lead = run.min_lead.min(raw_lead);
                run.count += 1;
                run.first_ts = run.first_ts.min(event.ts_ms);
                run.last_ts = run.last_ts.max(event.ts_ms);
                run.last_net = moving;
                run
            }
            None => OffsetRun {
                first_lead: raw_lead,
                min_lead: raw_lead,
                count: 1,
                first_ts: event.ts_ms,
                last_ts: event.ts_ms,
                first_net: moving,
                last_net: moving,
                first_own: net,
                first_moving_lead: moving_lead,
            },
        };
        self.clocks[clock as usize].run = Some(run);
        let net_span = if run.first_moving_lead < -config.source_max_wait_ms && net == run.first_own
        {
            STALE_BEHIND_SPAN_MS.max(config.offset_min_span_ms)
        } else {
            config.offset_min_span_ms
        };
        if run.count >= config.offset_min_lines
            && run.last_ts - run.first_ts >= config.offset_min_span_ms
            && moving - run.first_net >= net_span
        {
            // The frontier trails the newest true time, so every lead overstates the offset a little: the least
            // one is the closest, and an offset too small places lines a little early, never late. Whole seconds:
            // disorder blurs anything finer, and rounding down places a line early rather than late.
            let offset = run.min_lead.div_euclid(1000) * 1000;
            self.adopt(clock, offset);
        }
    }

    /// An offset that places a line at `ts_ms` of `clock` in range: none at all, or one another clock of the
    /// same User and source runs at.
    fn known_offset(&self, clock: u32, ts_ms: i64) -> Option<i64> {
        let c = &self.clocks[clock as usize];
        let net = self.sources[c.source as usize].frontier;
        let fits = |offset: i64| {
            let lead = ts_ms - offset - net;
            -self.lag_after_ms <= lead && lead <= self.config.ahead_ms
        };
        if c.offset_ms != 0 && fits(0) {
            return Some(0);
        }
        [Stamper::Ingress, Stamper::Outbound, Stamper::Sampler]
            .into_iter()
            .filter(|&s| s != c.stamper)
            .filter_map(|s| self.clock_slots.get(&(c.source, c.user, s)))
            .map(|&sibling| self.clocks[sibling as usize].offset_ms)
            .find(|&offset| offset != c.offset_ms && fits(offset))
    }

    /// Clock `clock` runs `offset` ahead of its source from now on: its held lines are placed again.
    fn adopt(&mut self, clock: u32, offset: i64) {
        let c = &mut self.clocks[clock as usize];
        c.run = None;
        c.offset_ms = offset;
        let user = c.user;
        self.adopted.push((user, offset));
        let (mine, others): (VecDeque<Held>, VecDeque<Held>) = std::mem::take(&mut self.held)
            .into_iter()
            .partition(|h| h.clock == Some(clock));
        self.held = others;
        self.refresh_floor();
        self.refeed(mine.into_iter().collect());
    }

    /// Counts an ahead line into its source's jump run; true if it completed a jump (and the source's held lines
    /// were placed again).
    fn note_ahead(&mut self, clock: u32, corrected: i64) -> bool {
        let slot = self.clocks[clock as usize].source as usize;
        let tolerance = self.config.offset_tolerance_ms;
        let source = &mut self.sources[slot];
        if source.jump.count > 0 && source.jump.placed_mark != source.placed {
            // A line at the frontier came between: the earlier ahead lines were not a move of the whole source.
            source.jump.count = 0;
        }
        let spread = corrected.max(source.jump.max_ts) - corrected.min(source.jump.min_ts);
        if source.jump.count > 0 && spread > tolerance {
            // Ahead lines that disagree on where time went (one clock 35 s fast, another 10 min) are skewed clocks,
            // each to be recognised on its own, not one move of the whole source.
            source.jump.count = 0;
        }
        if source.jump.count == 0 {
            // Counted in Users, not clocks: one User's three exporters agreeing is one skewed User. The run's
            // User list, emptied for the new run anyway, holds them meanwhile (no allocation per ahead line).
            source.jump_users.clear();
            source.jump_users.extend(
                source
                    .listed
                    .iter()
                    .chain(&source.listed_prev)
                    .map(|&c| self.clocks[c as usize].user),
            );
            source.jump_users.sort_unstable();
            source.jump_users.dedup();
            let active = source.jump_users.len() as u32;
            source.jump_users.clear();
            source.jump = JumpRun {
                count: 0,
                users: 0,
                needed: if active >= 2 {
                    active.div_ceil(2).max(2)
                } else {
                    1
                },
                epoch: source.jump.epoch.wrapping_add(1),
                min_ts: i64::MAX,
                max_ts: i64::MIN,
                placed_mark: 0,
            };
        }
        let run = &mut source.jump;
        run.placed_mark = source.placed;
        run.count += 1;
        run.min_ts = run.min_ts.min(corrected);
        run.max_ts = run.max_ts.max(corrected);
        let user = self.clocks[clock as usize].user;
        if !source.jump_users.contains(&user) {
            source.jump_users.push(user);
            run.users += 1;
        }
        let run = *run;
        let agreed = run.users >= run.needed && (run.needed >= 2 || run.count >= 3);
        if !(agreed || run.count >= self.config.jump_force_lines) {
            return false;
        }
        if let Some(bound) = self.bound
            && run.min_ts > bound + self.config.ahead_ms
        {
            return false;
        }
        let source = &mut self.sources[slot];
        source.jump.count = 0;
        source.frontier = run.min_ts;
        for c in &mut self.clocks {
            if c.source as usize == slot {
                c.run = None;
            }
        }
        let (mine, others): (VecDeque<Held>, VecDeque<Held>) = std::mem::take(&mut self.held)
            .into_iter()
            .partition(|h| h.source as usize == slot);
        self.held = others;
        self.refresh_floor();
        let mut mine: Vec<Held> = mine.into();
        for held in &mut mine {
            held.held_at = run.min_ts;
        }
        self.refeed(mine);
        true
    }

    /// Enough first lines of `source` to anchor on (see [`super::ClockConfig::bootstrap_users`]).
    #[cold]
    fn bootstrap_ready(&self, source: u32) -> bool {
        let config = &self.config;
        let mut held = 0;
        let mut users: Vec<Eui64> = Vec::new();
        let mut newest_user_at = 0;
        for line in self.held.iter().filter(|h| h.source == source) {
            if !users.contains(&line.event.user) {
                users.push(line.event.user);
                newest_user_at = held;
            }
            held += 1;
        }
        if held < config.bootstrap_lines {
            return false;
        }
        held >= config.bootstrap_lines.saturating_mul(16)
            || users.len() >= config.bootstrap_users
            || held - newest_user_at > config.bootstrap_lines / 2
    }

    /// A source's frontier from its first lines (replay), or from the first line and the outside bound (service).
    /// Replay takes the median over Users of each User's median time, one vote per User: a median over lines
    /// followed the chattiest Users, and two skewed ones among the first lines (10 min and 35 s fast) anchored
    /// network time 35 s ahead and made every other User's lines late.
    fn anchor(&mut self, source: u32) {
        let mut lines: Vec<(Eui64, i64)> = self
            .held
            .iter()
            .filter(|h| h.source == source)
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
        let anchor = match self.bound {
            Some(bound) => earliest.min(bound),
            None => median,
        };
        self.sources[source as usize].frontier = anchor;
        let (mine, others): (VecDeque<Held>, VecDeque<Held>) = std::mem::take(&mut self.held)
            .into_iter()
            .partition(|h| h.source == source);
        self.held = others;
        self.refresh_floor();
        let mut mine: Vec<Held> = mine.into();
        for held in &mut mine {
            held.held_at = anchor;
            held.first_held = anchor;
        }
        self.refeed(mine);
    }

    /// Places held lines again in arrival order: in range now, they are released; otherwise held again.
    fn refeed(&mut self, batch: Vec<Held>) {
        for held in batch {
            let clock = self.clock_of(&held);
            match self.admit(clock, held.event.ts_ms) {
                Some(at) => self.releases.push(Release {
                    token: held.token,
                    event: held.event,
                    at: Some(at),
                    clock,
                }),
                None => {
                    let frontier = self.sources[held.source as usize].frontier;
                    self.push_held(Held {
                        clock: Some(clock),
                        held_at: frontier,
                        ..held
                    });
                }
            }
        }
        self.refresh_floor();
    }

    fn clock_of(&mut self, held: &Held) -> u32 {
        match held.clock {
            Some(clock) => clock,
            None => self.clock_for(held.source, held.event.user, Stamper::of(held.event.kind)),
        }
    }

    /// Judges held lines whose wait is over; a line whose clock is still gathering agreeing lines waits on, up to
    /// `hold_max_ms` (a small User's exporter may send one line a minute).
    pub(in crate::engine) fn expire_held(&mut self) {
        while let Some(front) = self.held.front() {
            // Network time (the newest source's) also ends a wait: a source whose every line is held does not
            // move its own frontier.
            let frontier = self.sources[front.source as usize]
                .frontier
                .max(self.network_ms().unwrap_or(i64::MIN))
                .max(self.idle_until);
            if front.held_at >= frontier - self.config.hold_ms {
                break;
            }
            let Some(held) = self.held.pop_front() else {
                break;
            };
            if self.still_gathering(&held, frontier) {
                self.held.push_back(Held {
                    held_at: frontier,
                    ..held
                });
            } else {
                self.judge(held, false);
            }
        }
        self.refresh_floor();
    }

    /// The line's clock has a run of agreeing leads under way (two lines or more: a lone line waits `hold_ms`) that
    /// this line belongs to and that grew within the last `GATHER_QUIET_MS`, and it has not waited `hold_max_ms`.
    fn still_gathering(&self, held: &Held, frontier: i64) -> bool {
        let Some(clock) = held.clock else {
            return false;
        };
        frontier - held.first_held < self.config.hold_max_ms
            && self.clocks[clock as usize].run.is_some_and(|run| {
                run.count >= 2
                    && frontier - run.last_net <= GATHER_QUIET_MS
                    && (held.event.ts_ms - held.first_held - run.first_lead).abs()
                        <= self.config.offset_tolerance_ms
            })
    }

    /// Ends a hold: the line is placed at its clock's time (the engine counts it late if that second has closed),
    /// or, when it is still ahead of its source beyond any placing, counted late. At the end of input a line
    /// within any plausible offset is placed: no line is left for it to make late.
    fn judge(&mut self, held: Held, at_end: bool) {
        if !self.anchored(held.source) {
            self.sources[held.source as usize].frontier = held.event.ts_ms;
        }
        let clock = self.clock_of(&held);
        let at = held.event.ts_ms - self.clocks[clock as usize].offset_ms;
        let frontier = self.sources[held.source as usize].frontier;
        let lead = at - frontier;
        if lead.abs() > self.config.absurd_ms {
            // No offset, no jump and no other source explains it.
            self.out_of_range += 1;
            let error = absurd(held.event.ts_ms, frontier);
            self.settled
                .push(super::Settled::Refused(held.token, error));
            return;
        }
        let limit = if at_end {
            self.config.max_offset_ms
        } else {
            self.config.ahead_ms
        };
        self.releases.push(Release {
            token: held.token,
            event: held.event,
            at: (lead <= limit).then_some(at),
            clock,
        });
    }

    /// End of input: every line still held is judged now.
    pub(in crate::engine) fn settle_all(&mut self) {
        for source in 0..self.sources.len() as u32 {
            if !self.anchored(source) {
                self.anchor(source);
            }
        }
        while let Some(held) = self.held.pop_front() {
            self.refresh_floor();
            self.judge(held, true);
        }
        self.refresh_floor();
    }

    /// True when no source has an event time yet (lines are held for bootstrap).
    pub(in crate::engine) fn unanchored(&self, source: u32) -> bool {
        self.sources[source as usize].frontier == UNANCHORED
    }
}
