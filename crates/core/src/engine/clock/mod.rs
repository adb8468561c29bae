//! Event time per source: each source (a replayed stream, a TCP connection, an HTTP sender, a followed file, a
//! Kafka topic) has its own frontier, each exporter clock within it its own offset, and the watermark is the
//! minimum over the sources still sending.
//!
//! A *stamp clock* is what stamps a line: within one source, one User's requests are stamped by the DSP's ingress
//! node, its queue lines (queued, delivered, failed, expired) by the outbound node and its depth samples by a
//! sampler, so each (source, User, stamper) has a clock of its own, and one exporter's clock stepping never moves
//! another's lines. A source's *frontier* is the median of the newest times of the clocks that sent lines in its
//! last second, so a clock running ahead never moves it. A line within `[frontier - behind_ms, frontier +
//! ahead_ms]` (after its clock's offset) is placed at once; a clock whose lines run more than the allowed lateness
//! behind is waited for (the watermark trails it), so an exporter a few seconds or a minute slow makes no line
//! late. Further out, lines are held until their clock's offset is learned (several lines agreeing on one lead
//! over a few seconds of their own time and of the frontier), or the whole source moved (most of its clocks jump
//! together: a gap), or the wait ends and they are counted late. Only an absurd time (before 2000, or days away
//! from every source) is refused. The engine's watermark is the minimum over active sources of frontier less lag,
//! and never passes a held line's time while it waits.

mod hold;
pub(super) use hold::HoldOutcome;
mod median;
#[cfg(test)]
mod sweep_tests;
#[cfg(test)]
mod tests;

use std::collections::VecDeque;

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

use super::IngestError;
use crate::telemetry::{Eui64, Event, EventKind};

/// Thresholds of event-time admission (`[engine.clock]` in the service's TOML).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClockConfig {
    /// Milliseconds: a line further than this ahead of its source's frontier (after its clock's offset) is held.
    pub ahead_ms: i64,
    /// Milliseconds: a line further than this behind its source's frontier is held until its clock's offset is
    /// learned; a clock less far behind (but more than the lateness) is waited for by the watermark instead. Only
    /// its lines sent before the watermark stopped for it are late: (lag - lateness) seconds of them, once.
    pub behind_ms: i64,
    /// Milliseconds of frontier time the watermark waits for a held line, and the least a held line waits for its
    /// clock's offset before it is counted late.
    pub hold_ms: i64,
    /// Milliseconds: a held line whose clock is still gathering agreeing lines waits at most this long.
    pub hold_max_ms: i64,
    /// Milliseconds: larger clock offsets are never adopted (such lines are counted late).
    pub max_offset_ms: i64,
    /// Milliseconds: a line this far past the outside bound (the service's wall clock), or still this far from its
    /// source's frontier when its wait ends, is refused as absurd (as is any line before 2000).
    pub absurd_ms: i64,
    /// A clock's offset is adopted after this many held lines agree on a lead...
    pub offset_min_lines: u32,
    /// ... spanning at least this many milliseconds of the clock's own event time (a burst of copies of one line
    /// does not) and of the frontier (a stalled exporter flushing its buffer does not: its lead drifts as it
    /// catches up).
    pub offset_min_span_ms: i64,
    /// Milliseconds: held lines of one clock agree on a lead when within this of the first one.
    pub offset_tolerance_ms: i64,
    /// Replay has no wall clock: a source's frontier is anchored at the median of its first lines' clocks, once
    /// this many lines are held...
    pub bootstrap_lines: usize,
    /// ... from at least this many Users, so that one or two skewed Users cannot outvote the rest. A smaller
    /// network anchors once half of `bootstrap_lines` has passed with no new User (or after 16 times
    /// `bootstrap_lines` in all).
    pub bootstrap_users: usize,
    /// Lines held at most; beyond, the oldest is judged at once.
    pub max_held: usize,
    /// A run of this many ahead lines with no line at the frontier between them is a jump even from few clocks.
    pub jump_force_lines: u32,
    /// Milliseconds of wall time a live source may send nothing before the watermark stops waiting for it.
    pub source_idle_ms: i64,
    /// Milliseconds: a source whose frontier trails the newest source's by more than this (live: for
    /// `source_idle_ms` of wall time, as one big batch of another source can put it there for a moment) is not
    /// waited for (its lines are late where their seconds have closed) and is reported as behind.
    pub source_max_wait_ms: i64,
}

impl Default for ClockConfig {
    fn default() -> Self {
        ClockConfig {
            ahead_ms: 10_000,
            behind_ms: 60_000,
            hold_ms: 10_000,
            hold_max_ms: 600_000,
            max_offset_ms: 6 * 3_600_000,
            absurd_ms: 86_400_000,
            offset_min_lines: 3,
            offset_min_span_ms: 3_000,
            offset_tolerance_ms: 5_000,
            bootstrap_lines: 16,
            bootstrap_users: 5,
            max_held: 65_536,
            jump_force_lines: 4_096,
            source_idle_ms: 30_000,
            source_max_wait_ms: 120_000,
        }
    }
}

/// Who sends a batch of lines: the watermark is per source. Replay is one source (`SourceId::DEFAULT`); the
/// service gives each connection, HTTP sender, followed file and Kafka topic its own.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
pub struct SourceId(pub u32);

impl SourceId {
    pub const DEFAULT: SourceId = SourceId(0);
}

/// Which DSP exporter stamps a kind of line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stamper {
    /// Requests, stamped where they enter the DSP.
    Ingress,
    /// Queue lines (queued, delivered, delivery_failed, expired), stamped by the outbound node.
    Outbound,
    /// Depth samples.
    Sampler,
}

impl Stamper {
    #[inline]
    pub fn of(kind: EventKind) -> Stamper {
        match kind {
            EventKind::Request | EventKind::RejectedRequest => Stamper::Ingress,
            EventKind::Depth => Stamper::Sampler,
            _ => Stamper::Outbound,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Stamper::Ingress => "requests",
            Stamper::Outbound => "queue",
            Stamper::Sampler => "depth",
        }
    }
}

/// What became of a line given to [`Engine::ingest`](super::Engine::ingest).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ingested {
    /// Applied now (possibly as late).
    Taken,
    /// Held while its time is in doubt; a [`Settled`] with this token follows (from
    /// [`Engine::drain_settled`](super::Engine::drain_settled)). The caller keeps the line's bytes until then.
    Held(u64),
}

/// The end of a hold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Settled {
    /// Applied (in its clock's corrected time, or as late).
    Released(u64),
    /// Refused: quarantine the line with this error.
    Refused(u64, IngestError),
}

/// A held line the engine is to apply now: at `at` (aligned time), or as late when `at` is `None`.
#[derive(Clone, Copy, Debug)]
pub(super) struct Release {
    pub token: u64,
    pub event: Event,
    pub at: Option<i64>,
    pub clock: u32,
}

/// Network time is unknown until anchored; this keeps every lead out of range without a second test.
const UNANCHORED: i64 = i64::MIN / 4;
/// Milliseconds of its own progress during which a source that joined others under way learns offsets for
/// clocks behind it rather than waiting for them.
const JOINING_MS: i64 = 15_000;
/// Lines between consensus passes while the frontier trails the newest line by two seconds or more.
const PASS_QUOTA_BEHIND: u64 = 8;
/// Wall-clock milliseconds between looks for sources to forget, and how long a source must have been silent.
const PRUNE_EVERY_MS: i64 = 60_000;
const FORGET_SOURCE_MS: i64 = 3_600_000;
/// Milliseconds since the epoch of 2000-01-01: anything earlier is no DSP's clock.
const YEAR_2000_MS: i64 = 946_684_800_000;

/// One exporter clock: (source, User, stamper).
#[derive(Clone, Debug, Serialize, Deserialize)]
struct StampClock {
    source: u32,
    user: Eui64,
    stamper: Stamper,
    /// How far this clock runs ahead of its source's frontier (negative: behind), once recognised.
    offset_ms: i64,
    /// Newest aligned time placed.
    high: i64,
    /// While its lines run behind the frontier by more than the lateness allows: by how much (the watermark waits).
    #[serde(skip)]
    lag: i64,
    /// Frontier when its latest line came (idle clocks stop being waited for, and are forgotten after long).
    seen_at: i64,
    #[serde(skip)]
    listed: u32,
    #[serde(skip)]
    lagging: bool,
    #[serde(skip)]
    run: Option<OffsetRun>,
}

/// Held lines of one clock that agree on one lead over the frontier.
#[derive(Clone, Copy, Debug)]
struct OffsetRun {
    first_lead: i64,
    min_lead: i64,
    count: u32,
    first_ts: i64,
    last_ts: i64,
    /// Frontier at the run's first line: a skewed clock keeps its lead while the frontier moves on; an exporter
    /// flushing what it buffered races through its own time while the frontier stands still.
    first_net: i64,
    /// Network time at its latest line: a run that stopped growing a minute ago keeps no line waiting.
    last_net: i64,
    /// The clock's own source's frontier at the run's first line, and the first line's lead over network time:
    /// while that frontier stands still (every line of the source held), leads are compared over network time.
    first_own: i64,
    first_moving_lead: i64,
}

/// Ahead lines of one source with no line at its frontier between them.
#[derive(Clone, Copy, Debug, Default)]
struct JumpRun {
    count: u32,
    users: u32,
    needed: u32,
    epoch: u32,
    min_ts: i64,
    max_ts: i64,
    /// Lines placed when the run last grew: any line placed since breaks the run.
    placed_mark: u64,
}

/// One source's event-time progress.
#[derive(Clone, Debug)]
struct Source {
    id: SourceId,
    frontier: i64,
    /// A line past this second may run a consensus pass (the frontier's second, or one past it).
    pass_second: i64,
    /// Clocks that sent a line in the current second of the source's newest time, and those of the second before:
    /// the frontier is their median, so a pass run by one early line still hears a whole second of clocks.
    listed: Vec<u32>,
    listed_prev: Vec<u32>,
    listed_last: u32,
    epoch: u32,
    /// Lines placed at the last pass: passes are at least a quarter of `listed_last` lines apart, so a clock
    /// running ahead (whose every line is past the frontier's second) costs no more than the rest.
    passed_at: u64,
    /// Newest aligned time placed, and the second of it at which the clock lists last turned over.
    newest: i64,
    rotated_second: i64,
    /// Clocks running behind, and the largest lag among those still sending.
    lagging: Vec<u32>,
    lag: i64,
    /// Wall clock (the outside bound) at its latest line placed within reach of its frontier, for idleness: a source
    /// that has sent only lines judged late (a backfill on a connection of its own) is not waited for.
    arrived: i64,
    /// Wall clock since which it has trailed the newest source by more than `source_max_wait_ms` (`i64::MIN`: it
    /// does not).
    behind_since: i64,
    /// Its connection closed, or the service restarted since it sent: not waited for until it sends again. Apart
    /// from `arrived`, which also says when a source is forgotten: a closed connection forgotten at the next look
    /// took network time with it when it was the only source, and the idle clock stopped.
    closed: bool,
    /// Registered when its connection opened, before its first line: waited for (from the first second still open
    /// then) until it places lines, closes or idles, as are those with lines placed.
    opened: bool,
    /// Lines placed from this source, for the jump runs.
    placed: u64,
    /// Its lines counted late (since the engine started): shown per source, so an operator sees whose lines
    /// arrived after their seconds closed.
    late: u64,
    /// The range check: lines further behind than `behind_ms` are held, and `span_ms` is `ahead + behind`. While
    /// a source joins others already under way (its first `JOINING_MS` of progress), a clock behind beyond the
    /// lateness is learned as an offset, not waited for: the seconds it is behind have already closed.
    behind_ms: i64,
    span_ms: u64,
    /// Frontier when it joined, while it is joining.
    joined_at: Option<i64>,
    jump: JumpRun,
    /// The Users of the jump run so far.
    jump_users: Vec<Eui64>,
}

impl Source {
    fn new(id: SourceId) -> Source {
        Source {
            id,
            frontier: UNANCHORED,
            pass_second: i64::MIN,
            listed: Vec::new(),
            listed_prev: Vec::new(),
            listed_last: 0,
            passed_at: 0,
            newest: i64::MIN,
            rotated_second: i64::MIN,
            epoch: 1,
            lagging: Vec::new(),
            lag: 0,
            arrived: i64::MIN,
            behind_since: i64::MIN,
            closed: false,
            opened: false,
            placed: 0,
            late: 0,
            behind_ms: 0,
            span_ms: 0,
            joined_at: None,
            jump: JumpRun::default(),
            jump_users: Vec::new(),
        }
    }

    fn anchored(&self) -> bool {
        self.frontier != UNANCHORED
    }
}

/// A line waiting for its time to be trusted.
#[derive(Clone, Copy, Debug)]
struct Held {
    token: u64,
    event: Event,
    source: u32,
    /// `None` before the source is anchored: clocks and Users are made when the line is placed.
    clock: Option<u32>,
    /// Frontier when it was (last) held: the watermark waits for it for `hold_ms`.
    held_at: i64,
    /// Frontier when it was first held: it waits `hold_max_ms` at most.
    first_held: i64,
}

/// One source as the API and the report show it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SourceView {
    pub source: SourceId,
    /// Its frontier (ms), once anchored.
    pub frontier_ms: Option<i64>,
    /// Milliseconds its frontier trails the newest source's.
    pub behind_ms: i64,
    /// Milliseconds the watermark waits for its slowest clock.
    pub lag_ms: i64,
    /// True when the watermark waits for it.
    pub active: bool,
    /// True when it still sends but trails the newest source too far (for too long) to be waited for: its lines
    /// are late where their seconds closed. Not for a source that is idle or closed.
    pub too_far_behind: bool,
    /// Its lines counted late so far.
    pub late_lines: u64,
}

/// One clock running at a recognised offset.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ClockOffsetView {
    pub source: SourceId,
    pub user: Eui64,
    pub stamper: Stamper,
    pub offset_ms: i64,
}

/// Event-time state of the engine.
#[derive(Debug)]
pub struct EventClock {
    config: ClockConfig,
    /// Lines further behind their frontier than this make the watermark wait for their clock: closer, they are
    /// ordinary disorder within the allowed lateness.
    lag_after_ms: i64,
    /// The smaller of `lag_after_ms` and `behind_ms`: a line less far behind its frontier than this is ordinary.
    near_ms: i64,
    /// `behind_ms` and `ahead_ms + behind_ms`, for the one-comparison range check.
    behind_ms: i64,
    span_ms: u64,
    sources: Vec<Source>,
    source_slots: FxHashMap<SourceId, u32>,
    /// The source of the previous line and its slot.
    last_source: Option<(SourceId, u32)>,
    clocks: Vec<StampClock>,
    clock_slots: FxHashMap<(u32, Eui64, Stamper), u32>,
    held: VecDeque<Held>,
    /// While held lines are being placed again, the earliest `held_at` among those not yet placed.
    refeed_floor: i64,
    /// The watermark may not pass this: the earliest `held_at` of any held line.
    floor: i64,
    next_token: u64,
    /// An upper bound on event time from outside (the service's wall clock), and its arrival clock.
    bound: Option<i64>,
    /// Event time the caller moved to while every source was quiet.
    idle_until: i64,
    releases: Vec<Release>,
    settled: Vec<Settled>,
    /// Offsets adopted since the engine last asked: (User, offset).
    adopted: Vec<(Eui64, i64)>,
    scratch: Vec<i64>,
    /// Wall clock of the last look for sources to forget.
    pruned_at: i64,
    out_of_range: u64,
    /// Empty seconds closed in one step after idle stretches.
    pub(super) skipped_seconds: u64,
}

/// Clock state carried in an engine snapshot: frontiers, offsets and every held line.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ClockSnapshot {
    /// The default source's frontier (older snapshots' network time).
    pub net_ms: Option<i64>,
    pub out_of_range: u64,
    #[serde(default)]
    sources: Vec<(SourceId, i64)>,
    #[serde(default)]
    clocks: Vec<StampClock>,
    #[serde(default)]
    held: Vec<HeldSnapshot>,
}

/// A held line as data (events have no serde of their own: they are parsed, never stored).
#[derive(Clone, Debug, Serialize, Deserialize)]
struct HeldSnapshot {
    token: u64,
    source: SourceId,
    ts_ms: i64,
    user: Eui64,
    kind: u8,
    value: u64,
    srv: u32,
    alert: u64,
    reason: u8,
    held_at: i64,
    first_held: i64,
}

impl EventClock {
    pub(super) fn new(config: &ClockConfig, lateness_ms: i64) -> EventClock {
        EventClock {
            config: config.clone(),
            lag_after_ms: (lateness_ms - 1_000).max(1_000),
            near_ms: (lateness_ms - 1_000).max(1_000).min(config.behind_ms),
            behind_ms: config.behind_ms,
            span_ms: (config.ahead_ms + config.behind_ms).max(0) as u64,
            sources: Vec::new(),
            source_slots: FxHashMap::default(),
            last_source: None,
            clocks: Vec::new(),
            clock_slots: FxHashMap::default(),
            held: VecDeque::new(),
            refeed_floor: i64::MAX,
            floor: i64::MAX,
            next_token: 0,
            bound: None,
            idle_until: i64::MIN,
            releases: Vec::new(),
            settled: Vec::new(),
            adopted: Vec::new(),
            scratch: Vec::new(),
            pruned_at: i64::MIN / 2,
            out_of_range: 0,
            skipped_seconds: 0,
        }
    }

    /// The slot of source `id`, made on its first line. A new source starts at the newest frontier of the
    /// others (so a connection whose exporter runs behind is recognised as an offset, and a backfill as late),
    /// or unanchored when it is the first; it is waited for once it places a line within reach of its frontier.
    #[inline]
    pub(super) fn source_slot(&mut self, id: SourceId) -> u32 {
        // Lines come in batches from one source: the last one answers without a hash lookup per line.
        if let Some((last, slot)) = self.last_source
            && last == id
        {
            return slot;
        }
        let slot = match self.source_slots.get(&id) {
            Some(&slot) => slot,
            None => self.new_source(id),
        };
        self.last_source = Some((id, slot));
        slot
    }

    #[cold]
    fn new_source(&mut self, id: SourceId) -> u32 {
        let slot = self.sources.len() as u32;
        let mut source = Source::new(id);
        source.behind_ms = self.behind_ms;
        source.span_ms = self.span_ms;
        if let Some(newest) = self.newest_frontier() {
            source.frontier = newest;
            source.joined_at = Some(newest);
            source.behind_ms = self.lag_after_ms.min(self.behind_ms);
            source.span_ms = (self.config.ahead_ms + source.behind_ms).max(0) as u64;
        }
        self.sources.push(source);
        self.source_slots.insert(id, slot);
        slot
    }

    fn newest_frontier(&self) -> Option<i64> {
        self.sources
            .iter()
            .filter(|s| s.anchored())
            .map(|s| s.frontier)
            .max()
    }

    /// True when clock `clock` is (source slot, User, stamper): the engine caches clock numbers per User.
    #[inline]
    pub(super) fn is_clock(&self, clock: u32, source: u32, user: Eui64, stamper: Stamper) -> bool {
        self.clocks
            .get(clock as usize)
            .is_some_and(|c| c.source == source && c.stamper == stamper && c.user == user)
    }

    /// The clock of (source slot, User, stamper), made on first use.
    #[cold]
    pub(super) fn clock_for(&mut self, source: u32, user: Eui64, stamper: Stamper) -> u32 {
        if let Some(&clock) = self.clock_slots.get(&(source, user, stamper)) {
            return clock;
        }
        let clock = self.clocks.len() as u32;
        let frontier = self.sources[source as usize].frontier;
        self.clocks.push(StampClock {
            source,
            user,
            stamper,
            offset_ms: 0,
            high: i64::MIN,
            lag: 0,
            seen_at: frontier,
            listed: 0,
            lagging: false,
            run: None,
        });
        self.clock_slots.insert((source, user, stamper), clock);
        clock
    }

    /// The aligned time of a line of clock `clock` if it may be placed at once, or `None` to hold it.
    #[inline]
    pub(super) fn admit(&self, clock: u32, ts_ms: i64) -> Option<i64> {
        let clock = &self.clocks[clock as usize];
        let at = ts_ms - clock.offset_ms;
        let source = &self.sources[clock.source as usize];
        let from_low = at
            .wrapping_sub(source.frontier)
            .wrapping_add(source.behind_ms);
        (from_low as u64 <= source.span_ms).then_some(at)
    }

    /// A line of `clock` was placed at `at`. True when its source's consensus pass is due (a new second).
    #[inline]
    pub(super) fn placed(&mut self, clock: u32, at: i64) -> bool {
        let c = &mut self.clocks[clock as usize];
        let slot = c.source as usize;
        let source = &mut self.sources[slot];
        source.placed += 1;
        if at > c.high {
            c.high = at;
            source.newest = source.newest.max(at);
        }
        if c.listed != source.epoch {
            c.listed = source.epoch;
            source.listed.push(clock);
        }
        let lead = at - source.frontier;
        // The common line, near its frontier from a clock not running behind, costs two comparisons; the rest of
        // the bookkeeping is out of line.
        if lead >= -self.near_ms && !c.lagging && self.bound.is_none() {
            source.closed = false;
        } else {
            self.placed_off_frontier(clock, lead);
        }
        let source = &self.sources[slot];
        let second = at.div_euclid(1000);
        if second <= source.pass_second {
            return false;
        }
        // Passes cost the clocks of two seconds: at least a quarter of that many lines apart, or, for a line two
        // seconds or more past the frontier (the network moved on while many clocks of the last seconds sent one
        // line and fell silent), a few lines apart.
        let mut quota = u64::from(source.listed_last / 4).max(1);
        if second > source.pass_second + 1 {
            quota = quota.min(PASS_QUOTA_BEHIND);
        }
        source.placed - source.passed_at >= quota
    }

    /// The rest of [`EventClock::placed`]: a line behind its frontier by more than the lateness (its clock is
    /// waited for), a clock that was, or a live source (its arrival is noted).
    #[cold]
    #[inline(never)]
    fn placed_off_frontier(&mut self, clock: u32, lead: i64) {
        let c = &mut self.clocks[clock as usize];
        let source = &mut self.sources[c.source as usize];
        // A line further behind is one judged late after its hold (a backfill): nothing the watermark could wait
        // for, and no sign that its source still sends live lines.
        if lead >= -self.behind_ms {
            if lead < -self.lag_after_ms {
                c.lag = -lead;
                c.seen_at = source.frontier;
                source.lag = source.lag.max(-lead);
                if !c.lagging {
                    c.lagging = true;
                    source.lagging.push(clock);
                }
            } else if c.lagging {
                c.lag = 0;
            }
            source.closed = false;
            if let Some(now) = self.bound {
                source.arrived = now;
            }
        }
    }

    /// The consensus pass of the source of `clock`: its frontier becomes the median of the newest times of the
    /// clocks that sent lines in its current and previous second (never going back), and its lag the largest
    /// among clocks still running behind.
    pub(super) fn pass(&mut self, clock: u32) {
        let slot = self.clocks[clock as usize].source as usize;
        let mut highs = std::mem::take(&mut self.scratch);
        highs.clear();
        let source = &mut self.sources[slot];
        let frontier = source.frontier;
        // Two plain loops: a chained iterator cost twice as much per clock.
        for list in [&source.listed, &source.listed_prev] {
            for &c in list {
                let c = &mut self.clocks[c as usize];
                highs.push(c.high);
                if !c.lagging {
                    c.seen_at = frontier;
                }
            }
        }
        // The lower median: with two clocks, the slower one leads.
        if let Some(median) = median::lower_median(&mut highs) {
            source.frontier = source.frontier.max(median);
        }
        self.scratch = highs;
        if source
            .joined_at
            .is_some_and(|joined| source.frontier - joined >= JOINING_MS)
        {
            source.joined_at = None;
            source.behind_ms = self.behind_ms;
            source.span_ms = self.span_ms;
        }
        let now = source.frontier.div_euclid(1000);
        let newest_second = source.newest.div_euclid(1000);
        if newest_second > source.rotated_second {
            // A generation per second of the source's newest time: a clock silent for two of them has no say.
            source.rotated_second = newest_second;
            std::mem::swap(&mut source.listed, &mut source.listed_prev);
            source.listed.clear();
            source.listed_last = source.listed_prev.len() as u32;
            source.epoch = source.epoch.wrapping_add(1);
        }
        source.passed_at = source.placed;
        // One past the frontier's second: the next second's lines run the next pass, however far ahead a few
        // clocks are.
        let newest = self.clocks[clock as usize].high.div_euclid(1000);
        source.pass_second = newest.min(now + 1).max(now);
        let idle_after = source.frontier - self.config.source_idle_ms.min(self.config.behind_ms);
        let mut lag = 0;
        let clocks = &mut self.clocks;
        source.lagging.retain(|&c| {
            let c = &mut clocks[c as usize];
            let keep = c.lag > 0 && c.seen_at >= idle_after;
            if keep {
                lag = lag.max(c.lag);
            } else {
                c.lagging = false;
                c.lag = 0;
            }
            keep
        });
        source.lag = lag;
        if !self.held.is_empty() {
            self.expire_held();
        }
    }

    /// Event time every active source has reached (less the lag of its slowest clock), not past a held line:
    /// the engine closes seconds up to this less the allowed lateness.
    pub(super) fn progress(&self) -> i64 {
        let newest = self.newest_frontier().unwrap_or(UNANCHORED);
        let mut progress = i64::MAX;
        for source in &self.sources {
            if self.waits_for(source, newest) {
                progress = progress.min(source.frontier - source.lag);
            }
        }
        if progress == i64::MAX {
            progress = newest;
        }
        progress.max(self.idle_until).min(self.floor)
    }

    /// The watermark waits for an anchored source that sent lately (by the wall clock, when there is one) and is
    /// not hopelessly behind the newest. Live, a source stays waited for while it has been behind for less than
    /// `source_idle_ms` of wall time: senders flushing flat out hand over a minute or more of event time per batch,
    /// and one batch put a source more than `source_max_wait_ms` ahead of the others, whose lines then all counted
    /// late, though watermark alignment would have held it back at its next batch.
    fn waits_for(&self, source: &Source, newest: i64) -> bool {
        self.still_sending(source) && self.close_enough(source, newest)
    }

    /// A source still sending (anchored, not closed, not idle) that the watermark does not wait for: let go as too
    /// far behind.
    fn let_go_behind(&self, source: &Source, newest: i64) -> bool {
        self.still_sending(source) && !self.close_enough(source, newest)
    }

    /// Anchored, not closed, and sent lately (by the wall clock, when there is one).
    fn still_sending(&self, source: &Source) -> bool {
        // A source none of whose lines were placed yet has made no progress of its own to wait for, unless its
        // connection registered it: then the others wait for its first lines at the time it joined.
        source.anchored()
            && (source.placed > 0 || source.opened)
            && !source.closed
            && self
                .bound
                .is_none_or(|now| now.saturating_sub(source.arrived) <= self.config.source_idle_ms)
    }

    /// Not hopelessly behind the newest source (live: or behind for less than `source_idle_ms` of wall time).
    fn close_enough(&self, source: &Source, newest: i64) -> bool {
        newest - source.frontier <= self.config.source_max_wait_ms
            || self.bound.is_some_and(|now| {
                source.behind_since == i64::MIN
                    || now - source.behind_since < self.config.source_idle_ms
            })
    }

    /// A line of clock `clock` was counted late.
    #[cold]
    pub(super) fn count_late(&mut self, clock: u32) {
        if let Some(c) = self.clocks.get(clock as usize) {
            self.sources[c.source as usize].late += 1;
        }
    }

    /// Held lines are in `held_at` order: the oldest sets the floor (for `hold_ms` at most).
    fn refresh_floor(&mut self) {
        self.floor = self
            .held
            .front()
            .map_or(i64::MAX, |h| h.held_at)
            .min(self.refeed_floor);
    }

    pub(super) fn anchored(&self, source: u32) -> bool {
        self.sources[source as usize].anchored()
    }

    /// Some source has an event time.
    pub(super) fn any_anchored(&self) -> bool {
        self.sources.iter().any(Source::anchored)
    }

    pub(super) fn held_lines(&self) -> usize {
        self.held.len()
    }

    pub(super) fn out_of_range(&self) -> u64 {
        self.out_of_range
    }

    pub(super) fn set_bound(&mut self, bound: Option<i64>) {
        self.bound = bound;
        if let Some(now) = bound {
            let newest = self.newest_frontier().unwrap_or(UNANCHORED);
            for source in &mut self.sources {
                let behind =
                    source.anchored() && newest - source.frontier > self.config.source_max_wait_ms;
                source.behind_since = match (behind, source.behind_since) {
                    (false, _) => i64::MIN,
                    (true, i64::MIN) => now,
                    (true, since) => since,
                };
            }
        }
        if let Some(now) = bound
            && now - self.pruned_at >= PRUNE_EVERY_MS
            && self.held.is_empty()
            && self.releases.is_empty()
        {
            self.pruned_at = now;
            self.forget_sources(now - FORGET_SOURCE_MS);
        }
    }

    /// Forgets live sources (never the default one) that sent nothing since `before` (wall clock), with their
    /// clocks: connections come and go, and the watermark looks at every source it knows. Only while nothing is
    /// held (held lines name sources and clocks by place).
    #[cold]
    fn forget_sources(&mut self, before: i64) {
        let keep: Vec<bool> = self
            .sources
            .iter()
            .map(|s| s.id == SourceId::DEFAULT || s.arrived >= before)
            .collect();
        if keep.iter().all(|&k| k) {
            return;
        }
        let mut renumber = vec![u32::MAX; self.sources.len()];
        let mut kept = Vec::new();
        for (slot, source) in std::mem::take(&mut self.sources).into_iter().enumerate() {
            if keep[slot] {
                renumber[slot] = kept.len() as u32;
                kept.push(source);
            }
        }
        self.sources = kept;
        self.clocks.retain(|c| keep[c.source as usize]);
        self.clock_slots.clear();
        for (index, clock) in self.clocks.iter_mut().enumerate() {
            clock.source = renumber[clock.source as usize];
            clock.listed = 0;
            clock.lagging = false;
            clock.lag = 0;
            self.clock_slots
                .insert((clock.source, clock.user, clock.stamper), index as u32);
        }
        self.last_source = None;
        self.source_slots = self
            .sources
            .iter()
            .enumerate()
            .map(|(slot, s)| (s.id, slot as u32))
            .collect();
        for source in &mut self.sources {
            source.listed.clear();
            source.listed_prev.clear();
            source.lagging.clear();
            source.lag = 0;
            source.epoch = source.epoch.wrapping_add(1);
        }
    }

    /// Source `id`'s connection opened. Senders connecting together at start do not reach the engine together:
    /// the first batch of one ran a minute or more ahead before another's first batch made it known, and that
    /// one's first minutes were late. Registered now, it is waited for until it places lines, closes, or sends
    /// nothing for `source_idle_ms`, from `open_from`, the start of the first second still open (when no source
    /// has an event time yet, from the first one's anchor): every second still open may yet get its lines. It
    /// joined at the newest source's frontier before, and while a slower source held the watermark minutes behind
    /// the newest one (a flushing sender is let a batch or two ahead before watermark alignment stops it), the new
    /// sender's lines between the two were held as behind its frontier, did not hold the watermark back (a held
    /// line does so at the frontier it was held at), and were counted late, though their seconds had been open.
    pub(super) fn source_opened(&mut self, id: SourceId, open_from: Option<i64>) {
        let slot = self.source_slot(id) as usize;
        let source = &mut self.sources[slot];
        if source.placed == 0 {
            source.opened = true;
            source.closed = false;
            source.arrived = self.bound.unwrap_or(i64::MIN);
            if let Some(from) = open_from
                && source.anchored()
                && from < source.frontier
            {
                source.frontier = from;
                source.joined_at = Some(from);
            }
        }
    }

    /// Source `slot` was anchored at `anchor`: registered sources with no event time yet join there.
    fn join_opened(&mut self, anchor: i64) {
        let behind_ms = self.lag_after_ms.min(self.behind_ms);
        let span_ms = (self.config.ahead_ms + behind_ms).max(0) as u64;
        for source in &mut self.sources {
            if source.opened && !source.anchored() {
                source.frontier = anchor;
                source.joined_at = Some(anchor);
                source.behind_ms = behind_ms;
                source.span_ms = span_ms;
            }
        }
    }

    /// Source `id`'s connection closed: it sends nothing more, so the watermark stops waiting for it now rather
    /// than after `source_idle_ms` (or longer, for a source one big batch of another left behind): the others'
    /// seconds closed half a minute late, and watermark alignment held the next connection back for it meanwhile.
    /// A source sending again under the same name is waited for again.
    pub(super) fn source_closed(&mut self, id: SourceId) {
        if let Some(&slot) = self.source_slots.get(&id) {
            self.sources[slot as usize].closed = true;
        }
    }

    /// After a restart no connection of before is open: no source is waited for until it sends again.
    pub(super) fn all_quiet(&mut self) {
        for source in &mut self.sources {
            source.closed = true;
        }
    }

    /// Every source fell quiet: event time moves to `now_ms` (the service's idle clock) for all of them.
    pub(super) fn idle_to(&mut self, now_ms: i64) {
        if self.any_anchored() && now_ms > self.idle_until {
            self.idle_until = now_ms;
            for source in self.sources.iter_mut().filter(|s| s.anchored()) {
                source.frontier = source.frontier.max(now_ms);
            }
            self.expire_held();
        }
    }

    /// Held lines to apply now, in order.
    pub(super) fn take_releases(&mut self) -> Vec<Release> {
        std::mem::take(&mut self.releases)
    }

    pub(super) fn has_releases(&self) -> bool {
        !self.releases.is_empty()
    }

    pub(super) fn settle(&mut self, settled: Settled) {
        self.settled.push(settled);
    }

    pub(super) fn drain_settled(&mut self) -> std::vec::Drain<'_, Settled> {
        self.settled.drain(..)
    }

    pub(super) fn drain_adopted(&mut self) -> std::vec::Drain<'_, (Eui64, i64)> {
        self.adopted.drain(..)
    }

    /// The newest frontier of any source (network time), once known.
    pub(super) fn network_ms(&self) -> Option<i64> {
        self.newest_frontier()
    }

    /// Clocks running at an offset, by source, User and stamper.
    pub fn offsets(&self) -> Vec<ClockOffsetView> {
        let mut offsets: Vec<ClockOffsetView> = self
            .clocks
            .iter()
            .filter(|c| c.offset_ms != 0)
            .map(|c| ClockOffsetView {
                source: self.sources[c.source as usize].id,
                user: c.user,
                stamper: c.stamper,
                offset_ms: c.offset_ms,
            })
            .collect();
        offsets.sort_by_key(|o| (o.source, o.user, o.stamper));
        offsets
    }

    /// Every source's progress.
    pub fn sources(&self) -> Vec<SourceView> {
        let newest = self.newest_frontier().unwrap_or(UNANCHORED);
        self.sources
            .iter()
            .map(|s| SourceView {
                source: s.id,
                frontier_ms: s.anchored().then_some(s.frontier),
                behind_ms: if s.anchored() { newest - s.frontier } else { 0 },
                lag_ms: s.lag,
                active: self.waits_for(s, newest),
                too_far_behind: self.let_go_behind(s, newest),
                late_lines: s.late,
            })
            .collect()
    }

    pub(super) fn snapshot(&self) -> ClockSnapshot {
        let default = self.source_slots.get(&SourceId::DEFAULT);
        ClockSnapshot {
            net_ms: default
                .map(|&s| &self.sources[s as usize])
                .filter(|s| s.anchored())
                .map(|s| s.frontier),
            out_of_range: self.out_of_range,
            sources: self.sources.iter().map(|s| (s.id, s.frontier)).collect(),
            clocks: self.clocks.clone(),
            held: self
                .held
                .iter()
                .map(|h| HeldSnapshot {
                    token: h.token,
                    source: self.sources[h.source as usize].id,
                    ts_ms: h.event.ts_ms,
                    user: h.event.user,
                    kind: h.event.kind as u8,
                    value: h.event.value,
                    srv: h.event.srv.0,
                    alert: h.event.alert.0,
                    reason: h.event.reason as u8,
                    held_at: h.held_at,
                    first_held: h.first_held,
                })
                .collect(),
        }
    }

    pub(super) fn restore(&mut self, snapshot: ClockSnapshot) {
        self.out_of_range = snapshot.out_of_range;
        if snapshot.sources.is_empty()
            && let Some(net) = snapshot.net_ms
        {
            let slot = self.source_slot(SourceId::DEFAULT);
            self.sources[slot as usize].frontier = net;
        }
        for (id, frontier) in snapshot.sources {
            let slot = self.source_slot(id);
            self.sources[slot as usize].frontier = frontier;
        }
        for clock in snapshot.clocks {
            if (clock.source as usize) < self.sources.len() {
                let slot = self.clocks.len() as u32;
                self.clock_slots
                    .insert((clock.source, clock.user, clock.stamper), slot);
                self.clocks.push(clock);
            }
        }
        for held in snapshot.held {
            let Some(event) = held.event() else { continue };
            let source = self.source_slot(held.source);
            let clock = self.sources[source as usize]
                .anchored()
                .then(|| self.clock_for(source, event.user, Stamper::of(event.kind)));
            self.next_token = self.next_token.max(held.token + 1);
            self.held.push_back(Held {
                token: held.token,
                event,
                source,
                clock,
                held_at: held.held_at,
                first_held: held.first_held,
            });
        }
        self.refresh_floor();
    }
}

impl HeldSnapshot {
    fn event(&self) -> Option<Event> {
        use crate::telemetry::{AlertCode, FailureReason, Srv};
        Some(Event {
            ts_ms: self.ts_ms,
            user: self.user,
            kind: *EventKind::ALL.get(self.kind as usize)?,
            value: self.value,
            srv: Srv(self.srv),
            alert: AlertCode(self.alert),
            reason: *FailureReason::ALL.get(self.reason as usize)?,
        })
    }
}

fn rfc3339(ms: i64) -> String {
    crate::rfc3339::format_ms(ms).unwrap_or_else(|| format!("{ms} ms"))
}

/// The error for a line refused as absurd.
fn absurd(ts_ms: i64, network_ms: i64) -> IngestError {
    IngestError::OutOfRange {
        ts: rfc3339(ts_ms),
        lead_s: (ts_ms - network_ms) / 1000,
        network: rfc3339(network_ms),
    }
}
