//! One User's engine-private state: queue depth bookkeeping, evidence tallies, detectors and their trackers.

use std::sync::Arc;

use super::EngineConfig;
use super::detect::{
    BacklogDetector, DRAIN_LOOKBACK_S, RateStormDetector, Reading, RejectStormDetector,
    SHORT_WINDOW_S, UserSecond,
};
use super::lifecycle::{Tracker, Transition};
use super::queue_age::QueueHistory;
use super::tally::Tally;
use super::window::{FLOWS, Flow, RING_SECONDS, UserWindow};
use crate::incident::IncidentKind;
use crate::telemetry::{AlertCode, Eui64, Event, EventKind, Srv};

slotmap::new_key_type! {
    /// A User's key in the engine's table: it names the User until it is evicted, and never another User after
    /// (the slot's generation changes), so nothing is renumbered when a User leaves. Not kept across snapshots.
    pub struct UserKey;
}

/// The engine's User table. Iterates in slot order: the order Users came in until one is evicted, and a
/// deterministic one after (freed slots are taken again, newest freed first).
pub type Users = slotmap::SlotMap<UserKey, UserState>;

/// A depth sample that arrived for a second not yet closed, and the queue movement recorded after it.
#[derive(Clone, Copy, Debug, Default, serde::Serialize, serde::Deserialize)]
struct DepthSample {
    second: i64,
    depth: u64,
    moved_since: i64,
}

/// The detectors of one User, one per incident kind, in [`IncidentKind::ALL`] order.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Detectors {
    pub backlog: BacklogDetector,
    pub requests: RateStormDetector,
    pub rejects: RejectStormDetector,
    pub alerts: RateStormDetector,
}

/// Everything a [`UserState`] holds, as plain data.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct UserSnapshot {
    id: Eui64,
    window: Vec<(i64, super::window::SecondCounts)>,
    samples: Vec<(usize, DepthSample)>,
    depth: u64,
    cumulative_queued: i64,
    late_moved: i64,
    #[serde(default)]
    late_queued: i64,
    late_sample: Option<u64>,
    history: QueueHistory,
    short: [u64; FLOWS],
    last_event_second: i64,
    last_delivery_second: Option<i64>,
    request_srvs: Tally<Srv, 8>,
    alert_codes: Tally<AlertCode, 8>,
    failure_reasons: [u64; 6],
    detectors: Detectors,
    trackers: [Tracker; 4],
    view: UserSecond,
    readings: [Reading; 4],
    #[serde(default)]
    clock_offset_ms: i64,
    #[serde(default)]
    first_second: i64,
}

pub struct UserState {
    pub id: Eui64,
    pub window: Arc<UserWindow>,
    samples: Box<[DepthSample]>,
    depth: u64,
    cumulative_queued: i64,
    /// Queue movement from lines that arrived after their second closed, applied at the next close.
    late_moved: i64,
    /// Messages queued by such lines: they join the queue's history as queued at the next close, so a late
    /// flush of deliveries never makes the oldest waiting message look as old as the flush.
    late_queued: i64,
    late_sample: Option<u64>,
    history: QueueHistory,
    short: [u64; FLOWS],
    pub last_event_second: i64,
    pub last_delivery_second: Option<i64>,
    pub request_srvs: Tally<Srv, 8>,
    pub alert_codes: Tally<AlertCode, 8>,
    /// Failed deliveries by reason, cumulative.
    pub failure_reasons: [u64; 6],
    /// The first second this User was seen: the ring holds nothing older.
    first_second: i64,
    pub detectors: Detectors,
    pub trackers: [Tracker; 4],
    /// The latest view and readings, for incident bookkeeping and the per-User API.
    pub view: UserSecond,
    pub readings: [Reading; 4],
    /// The offset most lately recognised for one of this User's exporter clocks (negative: behind), for display;
    /// each clock's own offset is in the event clock.
    pub clock_offset_ms: i64,
}

/// Queue movement of one event: queued adds, delivered and expired remove.
fn queue_movement(event: &Event) -> i64 {
    let count = event.value as i64;
    match event.kind {
        EventKind::QueuedResponse | EventKind::QueuedAlert => count,
        EventKind::Delivered | EventKind::Expired => -count,
        _ => 0,
    }
}

impl UserState {
    pub fn new(id: Eui64, first_second: i64) -> Self {
        UserState {
            id,
            window: Arc::new(UserWindow::default()),
            samples: vec![
                DepthSample {
                    second: i64::MIN,
                    ..DepthSample::default()
                };
                RING_SECONDS
            ]
            .into_boxed_slice(),
            depth: 0,
            cumulative_queued: 0,
            late_moved: 0,
            late_queued: 0,
            late_sample: None,
            history: QueueHistory::default(),
            short: [0; FLOWS],
            last_event_second: first_second,
            last_delivery_second: None,
            request_srvs: Tally::default(),
            alert_codes: Tally::default(),
            failure_reasons: [0; 6],
            first_second,
            detectors: Detectors {
                backlog: BacklogDetector::default(),
                requests: RateStormDetector::requests(),
                rejects: RejectStormDetector::default(),
                alerts: RateStormDetector::alerts(),
            },
            trackers: [Tracker::default(); 4],
            view: UserSecond::default(),
            readings: [Reading::default(); 4],
            clock_offset_ms: 0,
        }
    }

    pub fn snapshot(&self) -> UserSnapshot {
        UserSnapshot {
            id: self.id,
            window: self.window.held(),
            samples: self
                .samples
                .iter()
                .copied()
                .enumerate()
                .filter(|(_, s)| s.second != i64::MIN)
                .collect(),
            depth: self.depth,
            cumulative_queued: self.cumulative_queued,
            late_moved: self.late_moved,
            late_queued: self.late_queued,
            late_sample: self.late_sample,
            history: self.history.clone(),
            short: self.short,
            last_event_second: self.last_event_second,
            last_delivery_second: self.last_delivery_second,
            request_srvs: self.request_srvs,
            alert_codes: self.alert_codes,
            failure_reasons: self.failure_reasons,
            detectors: self.detectors.clone(),
            trackers: self.trackers,
            view: self.view,
            readings: self.readings,
            clock_offset_ms: self.clock_offset_ms,
            first_second: self.first_second,
        }
    }

    pub fn restore(snapshot: UserSnapshot) -> UserState {
        let mut user = UserState::new(snapshot.id, snapshot.last_event_second);
        user.window = Arc::new(UserWindow::restored(
            &snapshot.window,
            snapshot.depth,
            Some(snapshot.view.second),
        ));
        for (index, sample) in snapshot.samples {
            if let Some(slot) = user.samples.get_mut(index) {
                *slot = sample;
            }
        }
        user.depth = snapshot.depth;
        user.cumulative_queued = snapshot.cumulative_queued;
        user.late_moved = snapshot.late_moved;
        user.late_queued = snapshot.late_queued;
        user.late_sample = snapshot.late_sample;
        user.history = snapshot.history;
        user.short = snapshot.short;
        user.last_delivery_second = snapshot.last_delivery_second;
        user.request_srvs = snapshot.request_srvs;
        user.alert_codes = snapshot.alert_codes;
        user.failure_reasons = snapshot.failure_reasons;
        user.detectors = snapshot.detectors;
        user.trackers = snapshot.trackers;
        user.view = snapshot.view;
        user.readings = snapshot.readings;
        user.clock_offset_ms = snapshot.clock_offset_ms;
        user.first_second = snapshot.first_second;
        user
    }

    /// Applies an event whose second is still open. The hot path: no allocation, no locks.
    #[inline]
    pub fn apply(&mut self, second: i64, event: &Event) {
        if second > self.last_event_second {
            // This User's first line of a new second: its next second's slots are wanted soon.
            self.prefetch(second + 1);
            self.last_event_second = second;
        }
        let slot = &mut self.samples[second.rem_euclid(RING_SECONDS as i64) as usize];
        if event.kind == EventKind::Depth {
            *slot = DepthSample {
                second,
                depth: event.value,
                moved_since: 0,
            };
            return;
        }
        if slot.second == second {
            slot.moved_since += queue_movement(event);
        }
        self.count(second, event);
    }

    #[inline]
    fn prefetch(&self, second: i64) {
        super::window::prefetch(&self.samples[second.rem_euclid(RING_SECONDS as i64) as usize]);
        self.window.prefetch(second);
    }

    /// Applies an event that arrived after its second closed: it no longer counts in a rate, but still moves
    /// the queue.
    pub fn apply_late(&mut self, event: &Event) {
        match event.kind {
            EventKind::Depth => {
                self.late_sample = Some(event.value);
                self.late_moved = 0;
            }
            EventKind::QueuedResponse | EventKind::QueuedAlert => {
                self.late_moved += queue_movement(event);
                self.late_queued = self.late_queued.saturating_add(event.value as i64);
            }
            _ => self.late_moved += queue_movement(event),
        }
        self.note_evidence(event);
    }

    #[inline]
    fn count(&mut self, second: i64, event: &Event) {
        let flow = match event.kind {
            EventKind::Request => Flow::Requests,
            EventKind::RejectedRequest => {
                self.window.add(second, Flow::Rejected, event.value);
                Flow::Requests
            }
            EventKind::QueuedResponse => Flow::QueuedResponses,
            EventKind::QueuedAlert => Flow::QueuedAlerts,
            EventKind::Delivered => Flow::Delivered,
            EventKind::DeliveryFailed => Flow::Failed,
            EventKind::Expired => Flow::Expired,
            EventKind::Depth => return,
        };
        self.window.add(second, flow, event.value);
        self.note_evidence(event);
    }

    #[inline]
    fn note_evidence(&mut self, event: &Event) {
        match event.kind {
            EventKind::Request | EventKind::RejectedRequest if !event.srv.is_none() => {
                self.request_srvs.add(event.srv, event.value)
            }
            EventKind::QueuedAlert if !event.alert.is_none() => {
                self.alert_codes.add(event.alert, event.value)
            }
            EventKind::DeliveryFailed => {
                self.failure_reasons[event.reason as usize] += event.value;
            }
            _ => {}
        }
    }

    /// Closes `second`: settles the depth, updates short windows and runs every detector and tracker.
    /// Returns the tracker transitions, by kind in [`IncidentKind::ALL`] order.
    pub fn close(&mut self, second: i64, config: &EngineConfig) -> [Option<Transition>; 4] {
        let now = self.window.read(second);
        let old = self.window.read(second - SHORT_WINDOW_S as i64);
        for ((sum, add), sub) in self.short.iter_mut().zip(now.flows).zip(old.flows) {
            *sum = *sum + add - sub.min(*sum);
        }
        let moved = now.queued() as i64 - now.left_queue() as i64;
        let sample = self.samples[second.rem_euclid(RING_SECONDS as i64) as usize];
        let depth = if sample.second == second {
            sample.depth as i64 + sample.moved_since
        } else if let Some(late) = self.late_sample.take() {
            late as i64 + self.late_moved + moved
        } else {
            self.depth as i64 + self.late_moved + moved
        };
        self.late_moved = 0;
        // An engine that joined mid-stream has no history: never report a negative depth.
        self.depth = depth.max(0) as u64;
        self.cumulative_queued += now.queued() as i64 + self.late_queued;
        self.late_queued = 0;
        self.history.record(second, self.cumulative_queued);
        self.window.close(second, self.depth);
        if now.get(Flow::Delivered) > 0 {
            self.last_delivery_second = Some(second);
        }
        if second.rem_euclid(config.detectors.tally_half_life_s.max(1)) == 0 {
            self.request_srvs.decay();
            self.alert_codes.decay();
        }

        self.view = UserSecond {
            second,
            now,
            short: self.short,
            depth: self.depth,
            depth_before: self.window.read(second - SHORT_WINDOW_S as i64).depth_end,
            depth_recent: self.window.read(second - DRAIN_LOOKBACK_S).depth_end,
            backlog_age_s: self.history.oldest_age(self.depth),
        };
        let view = self.view;
        let d = &config.detectors;
        let b = &d.baselines;
        let pause = b.pause_after_silence_s;
        let silent = pause > 0 && second - self.last_event_second > i64::from(pause);
        let learning = |kind: IncidentKind| !silent && !self.trackers[kind as usize].is_active();
        let readings = [
            self.detectors
                .backlog
                .observe(&view, learning(IncidentKind::Backlog), &d.backlog, b),
            self.detectors.requests.observe(
                &view,
                learning(IncidentKind::RequestStorm),
                &d.rate_storm,
                b,
                d.evidence_nats,
            ),
            self.detectors.rejects.observe(
                &view,
                learning(IncidentKind::RejectStorm),
                &d.reject_storm,
                b,
                d.evidence_nats,
            ),
            self.detectors.alerts.observe(
                &view,
                learning(IncidentKind::AlertStorm),
                &d.rate_storm,
                b,
                d.evidence_nats,
            ),
        ];
        self.readings = readings;
        let mut transitions = [None; 4];
        for kind in IncidentKind::ALL {
            let reading = readings[kind as usize];
            let lifecycle = config.lifecycle(kind);
            transitions[kind as usize] = self.trackers[kind as usize].step(
                &lifecycle,
                second,
                reading.bad,
                reading.calm,
                reading.may_open,
            );
        }
        transitions
    }

    /// Best estimate of when the anomaly of `kind` that became pending at `pending_since` (this second) began.
    pub fn onset(&self, kind: IncidentKind, pending_since: i64) -> i64 {
        match kind {
            IncidentKind::Backlog => self.backlog_onset(),
            IncidentKind::RequestStorm => self.storm_onset(&self.detectors.requests, pending_since),
            IncidentKind::AlertStorm => self.storm_onset(&self.detectors.alerts, pending_since),
            IncidentKind::RejectStorm => self
                .detectors
                .rejects
                .change_point()
                .unwrap_or(pending_since),
        }
    }

    /// A backlog's onset: when its oldest waiting message was queued, or, when the depth's trend over the ring says
    /// it has been rising for much longer (a leak: a few messages never acknowledged, so the first-in-first-out
    /// age reads only depth / inflow), where that rise began.
    fn backlog_onset(&self) -> i64 {
        let by_age = BacklogDetector::onset(&self.view);
        // Outages and pauses (nothing delivered) start when deliveries stopped, which the age dates exactly; only a
        // queue that keeps delivering yet grows (a leak, or one refused SRV family) needs the trend.
        if self.view.short[Flow::Delivered as usize] == 0 {
            return by_age;
        }
        match self.rise_start(|counts| counts.depth_end) {
            // Only a rise much older than the age says: for an outage both agree, and the age is exact.
            Some(start) if start < by_age - super::detect::trend::LEAK_MARGIN_S => start,
            _ => by_age,
        }
    }

    /// Where the hinge fit puts the start of a rise of `value` over the ring's closed seconds (fewer for a User
    /// seen only lately). Cold path: once when an anomaly goes on watch.
    fn rise_start(&self, value: impl Fn(&super::window::SecondCounts) -> u64) -> Option<i64> {
        let now = self.view.second;
        let span = (now - self.first_second + 1).clamp(0, RING_SECONDS as i64 - 2);
        let from = now - span + 1;
        let mut series = [0u64; RING_SECONDS];
        let series = &mut series[..span as usize];
        for (slot, second) in series.iter_mut().zip(from..=now) {
            *slot = value(&self.window.read(second));
        }
        super::detect::trend::hinge(series).map(|k| from + k as i64)
    }

    /// A storm's onset: the first second of its step, or, when its rate has been climbing for much longer (a
    /// ramp), where that climb began.
    fn storm_onset(&self, detector: &RateStormDetector, pending_since: i64) -> i64 {
        let step = detector.change_point().unwrap_or(pending_since);
        match self.rise_start(|counts| detector.rate_of(counts) as u64) {
            Some(start) if start < step - super::detect::trend::LEAK_MARGIN_S => start,
            _ => step,
        }
    }

    /// Flow sums over the last `seconds` closed seconds (at most the ring).
    pub fn recent_sum(&self, flow: Flow, seconds: i64) -> u64 {
        let end = self.view.second;
        (end - seconds.min(RING_SECONDS as i64 - 1) + 1..=end)
            .map(|s| self.window.read(s).get(flow))
            .sum()
    }

    /// Failed deliveries by reason counted after `since` (a snapshot of the tallies).
    pub fn failures_since(&self, since: &[u64; 6]) -> [u64; 6] {
        std::array::from_fn(|r| self.failure_reasons[r].saturating_sub(since[r]))
    }

    /// Expected rates per second, at the last closed second, of requests, rejects, queued responses, queued
    /// alerts and deliveries (deliveries follow queued inflow), in the order the metrics publish them.
    pub fn flow_baselines(&self) -> [f64; 5] {
        let expected = |kind: IncidentKind| self.readings[kind as usize].baseline;
        let requests = expected(IncidentKind::RequestStorm);
        let inflow = expected(IncidentKind::Backlog);
        let alerts = expected(IncidentKind::AlertStorm);
        [
            requests,
            requests * self.detectors.rejects.baseline_share(),
            (inflow - alerts).max(0.0),
            alerts,
            inflow,
        ]
    }

    /// What the models of requests, queued alerts and queued messages can say at the last closed second (the
    /// cold start: see [`super::baseline::ModelState`]), with the seconds each has learned.
    pub fn model_states(
        &self,
        config: &super::baseline::BaselineConfig,
    ) -> [(&'static str, super::baseline::ModelState, u32); 3] {
        let second = self.view.second;
        let d = &self.detectors;
        [
            ("requests", d.requests.model()),
            ("queued_alerts", d.alerts.model()),
            ("queued", d.backlog.inflow_model()),
        ]
        .map(|(flow, model)| {
            (
                flow,
                model.state_at(second, config),
                model.seconds_learned(),
            )
        })
    }

    pub fn depth(&self) -> u64 {
        self.depth
    }

    /// Nothing waits and nothing is tracked: no queued message (a silent User with a queue is the worst backlog
    /// of all, never idle), no late queue movement still to apply, every tracker idle.
    pub fn quiescent(&self) -> bool {
        self.depth == 0
            && self.late_moved == 0
            && self.late_queued == 0
            && self.late_sample.is_none()
            && self
                .trackers
                .iter()
                .all(|t| t.phase == super::lifecycle::Phase::Idle)
    }

    /// Closes the empty seconds `from..to` without running the detectors, after a ring of empty seconds has
    /// settled them. Only the latest seconds are written (older ones would leave the ring anyway); the last few
    /// ring slots are left alone, as they may already hold lines for seconds at `to` and after.
    pub fn skip_idle(&mut self, from: i64, to: i64) {
        let keep = RING_SECONDS as i64 - 64;
        for second in from.max(to - keep)..to {
            self.window.close(second, self.depth);
            self.history.record(second, self.cumulative_queued);
        }
    }
}
