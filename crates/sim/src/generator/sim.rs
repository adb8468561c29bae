//! The per-second simulation: for every User, requests and their acknowledgements or rejections, responses after
//! a lag, scheduled reads, alerts, and the outbound queue with its deliveries, failures and depth samples.

use rand::Rng;
use rand::rngs::StdRng;

use super::line::{
    DCC_ALERTS, Line, LineEvent, OPERATOR_ALERTS, OPERATOR_SRVS, QueuedKind, REJECT_CODES,
    SCHEDULED_SRV, STORM_REJECT_CODES, SUPPLIER_ALERTS, SUPPLIER_SRVS, pick,
};
use super::plan::{Effect, Plan};
use super::population::{Profile, Role};
use super::sample::{binomial, dither, poisson};
use super::shape::DailyShape;
use stormwatch_core::telemetry::FailureReason;

/// A per-message User's acknowledged request, waiting for its response.
#[derive(Copy, Clone, Debug)]
struct Pending {
    due: i64,
    device: u64,
    req: u64,
    srv: &'static str,
}

#[derive(Clone, Debug)]
struct UserState {
    depth: u64,
    /// Aggregated Users: responses due, by second modulo 16.
    due: [u64; 16],
    pending: Vec<Pending>,
    counter: u64,
    /// Messages in `depth` that a leak holds back: never delivered until it ends.
    stuck: u64,
    next_sample: i64,
    /// Messages in `depth` whose first attempt failed, by the second (mod `RETRY_RING`) their retry is due.
    retry_due: Box<[u64]>,
    /// Their sum.
    retry_pending: u64,
    /// Messages in `depth` whose retry failed too: the DSP's failed queue, re-driven only once the endpoint has
    /// answered again for `REDRIVE_AFTER_S`.
    failed_queue: u64,
    /// The last second a delivery attempt failed or deliveries were paused.
    last_trouble: i64,
}

impl Default for UserState {
    fn default() -> Self {
        UserState {
            depth: 0,
            due: [0; 16],
            pending: Vec::new(),
            counter: 0,
            stuck: 0,
            next_sample: 0,
            retry_due: vec![0; RETRY_RING].into_boxed_slice(),
            retry_pending: 0,
            failed_queue: 0,
            last_trouble: i64::MIN / 2,
        }
    }
}

/// The DSP retries a failed delivery once, between `RETRY_MIN_S` and `RETRY_MAX_S` later (domain.md: "retries at
/// least once within 300 s, then moves the message to a failed queue"). So a short outage leaves messages waiting
/// for minutes after the endpoint is back, while new messages flow past them: the depth stays up, flat, then
/// drains, and that is normal life, not a backlog.
const RETRY_MIN_S: i64 = 30;
const RETRY_MAX_S: i64 = 300;
/// A power of two above `RETRY_MAX_S`.
const RETRY_RING: usize = 512;
/// The failed queue is re-driven once the endpoint has answered for this long, at most this share of its capacity
/// a second (the rest of the capacity keeps new traffic flowing).
const REDRIVE_AFTER_S: i64 = 120;
const REDRIVE_SHARE: f64 = 0.2;

/// How a User's deliveries go this second.
#[derive(Copy, Clone, Debug)]
enum Delivery {
    Up,
    Down(&'static [FailureReason]),
    Paused,
    /// Only this share of the second's arrivals is delivered: shared capacity is saturated.
    Slowed(f64),
}

/// This second's departures from normal life for one User.
struct Mods {
    requests: f64,
    reject_share: Option<f64>,
    srv: Option<&'static str>,
    alerts: f64,
    flood: Option<(f64, &'static str)>,
    delivery: Delivery,
    /// Share of this second's arrivals a leak holds back, and why they fail when they are refused.
    leak: Option<(f64, Option<&'static [FailureReason]>)>,
}

/// The interval whose largest depth a truth entry needs.
struct Watch {
    user: usize,
    from: i64,
    until: i64,
    peak: u64,
}

pub(crate) struct Sim {
    users: Vec<Profile>,
    shape: DailyShape,
    rng: StdRng,
    states: Vec<UserState>,
    effects: Vec<Vec<Effect>>,
    pauses: Vec<(i64, i64)>,
    squeezes: Vec<(i64, i64, f64)>,
    watches: Vec<Watch>,
}

impl Sim {
    pub fn new(users: Vec<Profile>, shape: DailyShape, plan: &Plan, mut rng: StdRng) -> Sim {
        let mut effects = vec![Vec::new(); users.len()];
        let mut pauses = Vec::new();
        let mut squeezes = Vec::new();
        for effect in &plan.effects {
            match *effect {
                Effect::Pause { from, until } => pauses.push((from, until)),
                Effect::Squeeze { from, until, share } => squeezes.push((from, until, share)),
                Effect::Outage { user, .. }
                | Effect::Flap { user, .. }
                | Effect::Surge { user, .. }
                | Effect::Flood { user, .. }
                | Effect::Leak { user, .. }
                | Effect::Ramp { user, .. }
                | Effect::Burst { user, .. } => {
                    if let Some(list) = effects.get_mut(user) {
                        list.push(effect.clone());
                    }
                }
            }
        }
        let states = users
            .iter()
            .map(|user| UserState {
                // Messages are in flight when the export starts: an engine starting here has no history.
                depth: dither(&mut rng, 0.2 * user.inbound_at(&shape, plan.start_s)),
                next_sample: plan.start_s + rng.random_range(0..30),
                ..UserState::default()
            })
            .collect();
        let watches = plan
            .incidents
            .iter()
            .map(|i| match i.peak_watch {
                Some((user, from, until)) => Watch {
                    user,
                    from,
                    until,
                    peak: 0,
                },
                None => Watch {
                    user: usize::MAX,
                    from: 0,
                    until: 0,
                    peak: 0,
                },
            })
            .collect();
        Sim {
            users,
            shape,
            rng,
            states,
            effects,
            pauses,
            squeezes,
            watches,
        }
    }

    /// The largest depth seen in each incident's watch interval, in plan order (0 where none is watched).
    pub fn peaks(&self) -> Vec<u64> {
        self.watches.iter().map(|w| w.peak).collect()
    }

    /// Appends second `t`'s lines (any order; the writer sorts them).
    pub fn second(&mut self, t: i64, out: &mut Vec<Line>) {
        let paused = self
            .pauses
            .iter()
            .any(|&(from, until)| from <= t && t < until);
        let squeezed = self
            .squeezes
            .iter()
            .find(|&&(from, until, _)| from <= t && t < until)
            .map(|&(_, _, share)| share);
        for user in 0..self.users.len() {
            let mut mods = self.mods(user, t, paused);
            // Like a pause, saturation hits the bulk delivery workers, not the per-message standby one.
            if let (Some(share), Delivery::Up, false) =
                (squeezed, mods.delivery, self.users[user].per_message)
            {
                mods.delivery = Delivery::Slowed(share);
            }
            if self.users[user].per_message {
                self.per_message(user, t, &mods, out);
            } else {
                self.aggregated(user, t, &mods, out);
            }
        }
        for watch in &mut self.watches {
            if watch.from <= t && t < watch.until {
                watch.peak = watch.peak.max(self.states[watch.user].depth);
            }
        }
    }

    fn mods(&mut self, user: usize, t: i64, paused: bool) -> Mods {
        // DSP maintenance stops the bulk delivery workers. Per-message Users' queues would only grow by a few
        // hundred messages in irregular steps, and whether an engine dates their onsets into the common-cause
        // window would test its onset estimator, not the scenario: they stay on a standby worker.
        let paused = paused && !self.users[user].per_message;
        let mut mods = Mods {
            requests: 1.0,
            reject_share: None,
            srv: None,
            alerts: 1.0,
            flood: None,
            delivery: if paused {
                Delivery::Paused
            } else {
                Delivery::Up
            },
            leak: None,
        };
        let depth = self.states[user].depth;
        for effect in &mut self.effects[user] {
            match effect {
                Effect::Outage {
                    from,
                    until,
                    stop_at_depth,
                    reasons,
                    ..
                } if *from <= t && t < *until => {
                    if stop_at_depth.is_some_and(|target| depth >= target) {
                        // The change is rolled back once the backlog is noticed at this size.
                        *until = t;
                    } else if !paused {
                        mods.delivery = Delivery::Down(reasons);
                    }
                }
                Effect::Flap {
                    from,
                    until,
                    down_s,
                    period_s,
                    reasons,
                    ..
                } if *from <= t
                    && t < *until
                    && (t - *from).rem_euclid(*period_s) < *down_s
                    && !paused =>
                {
                    mods.delivery = Delivery::Down(reasons);
                }
                Effect::Surge {
                    from,
                    until,
                    factor,
                    reject_share,
                    srv,
                    ..
                } if *from <= t && t < *until => {
                    mods.requests *= *factor;
                    mods.reject_share = *reject_share;
                    mods.srv = Some(*srv);
                }
                Effect::Flood {
                    from,
                    until,
                    factor,
                    alert,
                    ..
                } if *from <= t && t < *until => {
                    mods.flood = Some((*factor, *alert));
                }
                Effect::Leak {
                    from,
                    until,
                    share,
                    reasons,
                    ..
                } if *from <= t && t < *until => {
                    mods.leak = Some((*share, *reasons));
                }
                Effect::Ramp {
                    from,
                    until,
                    peak,
                    ramp_s,
                    srv,
                    ..
                } if *from <= t && t < *until => {
                    let progress = ((t - *from) as f64 / (*ramp_s).max(1) as f64).min(1.0);
                    mods.requests *= 1.0 + (*peak - 1.0) * progress;
                    mods.srv = Some(*srv);
                }
                Effect::Burst {
                    from,
                    until,
                    factor,
                    ..
                } if *from <= t && t < *until => {
                    let ramp = ((t - *from).min(*until - t) as f64 / 60.0).min(1.0);
                    mods.alerts *= 1.0 + (*factor - 1.0) * ramp;
                }
                _ => {}
            }
        }
        mods
    }

    fn device(&mut self, user: usize) -> u64 {
        0x001B_C50A_0000_0000 | ((user as u64 & 0xff) << 24) | self.rng.random_range(0..1u64 << 24)
    }

    fn aggregated(&mut self, user: usize, t: i64, mods: &Mods, out: &mut Vec<Line>) {
        let rng = &mut self.rng;
        let profile = &self.users[user];
        let state = &mut self.states[user];
        let at = self.shape.at(t);
        let base = t * 1000 + profile.phase_ms;
        if t >= state.next_sample {
            out.push(Line::new(t * 1000, user, LineEvent::Depth, state.depth));
            state.next_sample = t + rng.random_range(10..=30);
        }
        let operator = profile.role == Role::NetworkOperator;
        let requests = poisson(rng, profile.requests * at.requests * mods.requests);
        let rejected = binomial(
            rng,
            requests,
            mods.reject_share.unwrap_or(profile.reject_share),
        );
        let acknowledged = requests - rejected;
        if acknowledged > 0 {
            let mut line = Line::new(
                base + rng.random_range(0..15),
                user,
                LineEvent::Request,
                acknowledged,
            );
            line.srv = Some(mods.srv.unwrap_or_else(|| {
                pick(
                    rng,
                    if operator {
                        OPERATOR_SRVS
                    } else {
                        SUPPLIER_SRVS
                    },
                )
            }));
            line.code = (rng.random_range(0..8) == 0).then_some("I99");
            out.push(line);
        }
        if rejected > 0 {
            let codes = if mods.reject_share.is_some() {
                STORM_REJECT_CODES
            } else {
                REJECT_CODES
            };
            let mut line = Line::new(
                base + rng.random_range(0..15),
                user,
                LineEvent::Request,
                rejected,
            );
            line.code = Some(pick(rng, codes));
            line.srv = mods.srv;
            out.push(line);
        }
        // Responses follow their requests after 1-7 s.
        let first = acknowledged / 2 + u64::from(acknowledged % 2 == 1 && rng.random::<bool>());
        let lag = rng.random_range(1..4);
        state.due[((t + lag) & 15) as usize] += first;
        state.due[((t + lag + rng.random_range(1..4)) & 15) as usize] += acknowledged - first;
        let slot = (t & 15) as usize;
        let responses = std::mem::take(&mut state.due[slot]);
        let scheduled = poisson(rng, profile.scheduled * at.scheduled);
        let alerts = poisson(rng, profile.device_alerts * at.alerts * mods.alerts);
        let flood = mods.flood.map_or(0, |(factor, _)| {
            poisson(rng, profile.device_alerts * at.alerts * factor)
        });
        let dcc = poisson(rng, profile.dcc_alerts);
        let queued_at = base + 20;
        let alert = pick(
            rng,
            if operator {
                OPERATOR_ALERTS
            } else {
                SUPPLIER_ALERTS
            },
        );
        let dcc_alert = pick(rng, DCC_ALERTS);
        let queued = [
            (responses, QueuedKind::Response, None, None),
            (scheduled, QueuedKind::Response, Some(SCHEDULED_SRV), None),
            (alerts, QueuedKind::DeviceAlert, None, Some(alert)),
            (
                flood,
                QueuedKind::DeviceAlert,
                None,
                mods.flood.map(|f| f.1),
            ),
            (dcc, QueuedKind::DccAlert, None, Some(dcc_alert)),
        ];
        for (count, kind, srv, alert) in queued {
            if count > 0 {
                let mut line = Line::new(
                    queued_at + rng.random_range(0..20),
                    user,
                    LineEvent::Queued(kind),
                    count,
                );
                line.srv = srv;
                line.alert = alert;
                out.push(line);
            }
        }
        let arrivals = responses + scheduled + alerts + flood + dcc;
        self.deliver(user, t, arrivals, mods, base + 50, out);
    }

    fn per_message(&mut self, user: usize, t: i64, mods: &Mods, out: &mut Vec<Line>) {
        let at = self.shape.at(t);
        let second = t * 1000;
        if t >= self.states[user].next_sample {
            out.push(Line::new(
                second,
                user,
                LineEvent::Depth,
                self.states[user].depth,
            ));
            self.states[user].next_sample = t + self.rng.random_range(10..=30);
        }
        let profile = self.users[user].clone();
        let operator = profile.role == Role::NetworkOperator;
        let requests = poisson(
            &mut self.rng,
            profile.requests * at.requests * mods.requests,
        );
        for _ in 0..requests {
            let device = self.device(user);
            let rng = &mut self.rng;
            let state = &mut self.states[user];
            state.counter += 1;
            let srv = mods.srv.unwrap_or_else(|| {
                pick(
                    rng,
                    if operator {
                        OPERATOR_SRVS
                    } else {
                        SUPPLIER_SRVS
                    },
                )
            });
            let mut line = Line::new(
                second + rng.random_range(0..1000),
                user,
                LineEvent::Request,
                1,
            );
            line.per_message = true;
            line.srv = Some(srv);
            line.device = device;
            line.req = state.counter;
            if rng.random::<f64>() < mods.reject_share.unwrap_or(profile.reject_share) {
                line.code = Some(pick(rng, REJECT_CODES));
            } else {
                line.code = (rng.random_range(0..8) == 0).then_some("I99");
                line.latency_ms = rng.random_range(40..400);
                state.pending.push(Pending {
                    due: t + rng.random_range(1..8),
                    device,
                    req: state.counter,
                    srv,
                });
            }
            out.push(line);
        }
        let mut arrivals = 0;
        let rng = &mut self.rng;
        let state = &mut self.states[user];
        let mut index = 0;
        while index < state.pending.len() {
            if state.pending[index].due <= t {
                let pending = state.pending.swap_remove(index);
                let mut line = Line::new(
                    second + rng.random_range(0..800),
                    user,
                    LineEvent::Queued(QueuedKind::Response),
                    1,
                );
                line.per_message = true;
                line.srv = Some(pending.srv);
                line.device = pending.device;
                line.req = pending.req;
                out.push(line);
                arrivals += 1;
            } else {
                index += 1;
            }
        }
        let scheduled = poisson(rng, profile.scheduled * at.scheduled);
        let alerts = poisson(rng, profile.device_alerts * at.alerts * mods.alerts);
        let flood = mods.flood.map_or(0, |(factor, _)| {
            poisson(rng, profile.device_alerts * at.alerts * factor)
        });
        let dcc = poisson(rng, profile.dcc_alerts);
        let kinds = [
            (scheduled, QueuedKind::Response),
            (alerts, QueuedKind::DeviceAlert),
            (flood, QueuedKind::DeviceAlert),
            (dcc, QueuedKind::DccAlert),
        ];
        for (index, (count, kind)) in kinds.into_iter().enumerate() {
            for _ in 0..count {
                let device = self.device(user);
                let rng = &mut self.rng;
                let mut line = Line::new(
                    second + rng.random_range(0..800),
                    user,
                    LineEvent::Queued(kind),
                    1,
                );
                line.per_message = true;
                line.device = device;
                match index {
                    0 => line.srv = Some(SCHEDULED_SRV),
                    1 => {
                        line.alert = Some(pick(
                            rng,
                            if operator {
                                OPERATOR_ALERTS
                            } else {
                                SUPPLIER_ALERTS
                            },
                        ))
                    }
                    2 => line.alert = mods.flood.map(|f| f.1),
                    _ => line.alert = Some(pick(rng, DCC_ALERTS)),
                }
                out.push(line);
                arrivals += 1;
            }
        }
        let rng_ms = self.rng.random_range(0..350);
        self.deliver(user, t, arrivals, mods, second + 600 + rng_ms, out);
    }

    /// Moves the queue on by one second and writes its delivery lines.
    fn deliver(
        &mut self,
        user: usize,
        t: i64,
        arrivals: u64,
        mods: &Mods,
        ts: i64,
        out: &mut Vec<Line>,
    ) {
        let delivery = mods.delivery;
        let rng = &mut self.rng;
        let profile = &self.users[user];
        let state = &mut self.states[user];
        let capacity = dither(rng, profile.capacity);
        let leaked = match mods.leak {
            Some((share, _)) => binomial(rng, arrivals, share),
            None => {
                // The fix releases what the leak held.
                state.stuck = 0;
                0
            }
        };
        state.stuck += leaked;
        let due_slot = t.rem_euclid(RETRY_RING as i64) as usize;
        let due = std::mem::take(&mut state.retry_due[due_slot]);
        state.retry_pending -= due;
        // Messages to attempt now: new ones, those left over from earlier seconds and retries due now.
        let waiting = state.depth + arrivals;
        let outbound = waiting - state.retry_pending - state.failed_queue;
        let (delivered, failed) = match delivery {
            Delivery::Up => {
                // Messages queued in the last fifth of the second go out in the next one.
                let late = dither(rng, arrivals as f64 * 0.2).min(arrivals);
                let mut delivered = outbound.saturating_sub(late + state.stuck).min(capacity);
                if t - state.last_trouble >= REDRIVE_AFTER_S && state.failed_queue > 0 {
                    let redrive =
                        (capacity.saturating_sub(delivered) as f64 * REDRIVE_SHARE) as u64;
                    let redriven = redrive.max(1).min(state.failed_queue);
                    state.failed_queue -= redriven;
                    delivered += redriven;
                }
                (delivered, 0)
            }
            // Every message due an attempt fails: first attempts wait for their retry, retries go to the failed
            // queue.
            Delivery::Down(_) => {
                state.last_trouble = t;
                let attempts = outbound.saturating_sub(state.stuck).min(capacity.max(1));
                let retried = due.min(attempts);
                let first = attempts - retried;
                state.failed_queue += retried;
                Self::schedule_retries(state, rng, t, first);
                (0, attempts)
            }
            Delivery::Paused => {
                state.last_trouble = t;
                (0, 0)
            }
            Delivery::Slowed(share) => (
                dither(rng, arrivals as f64 * share).min(outbound.saturating_sub(state.stuck)),
                0,
            ),
        };
        let latency = (state.depth as f64 / profile.capacity.max(1.0) * 1000.0) as u32
            + rng.random_range(80..400);
        state.depth = waiting - delivered;
        if delivered > 0 {
            if profile.per_message && delivered <= 3 {
                for _ in 0..delivered {
                    let mut line =
                        Line::new(ts + rng.random_range(0..10), user, LineEvent::Delivered, 1);
                    line.per_message = true;
                    line.latency_ms = latency;
                    out.push(line);
                }
            } else {
                let mut line = Line::new(
                    ts + rng.random_range(0..10),
                    user,
                    LineEvent::Delivered,
                    delivered,
                );
                line.latency_ms = latency;
                out.push(line);
            }
        }
        // A refused family fails its first attempts and its retries (each within 300 s) while the rest flows.
        let (delivery, failed) = match (delivery, mods.leak) {
            (Delivery::Up, Some((_, Some(reasons)))) => (
                Delivery::Down(reasons),
                (leaked + state.stuck.div_ceil(240)).min(capacity.max(1)),
            ),
            _ => (delivery, failed),
        };
        if let (Delivery::Down(reasons), true) = (delivery, failed > 0) {
            let main = reasons.first().copied().unwrap_or(FailureReason::Timeout);
            let other = if reasons.len() > 1 {
                binomial(rng, failed, 0.15)
            } else {
                0
            };
            for (reason, count) in [
                (main, failed - other),
                (reasons.last().copied().unwrap_or(main), other),
            ] {
                if count > 0 {
                    let mut line = Line::new(
                        ts + rng.random_range(0..10),
                        user,
                        LineEvent::DeliveryFailed,
                        count,
                    );
                    line.reason = Some(reason);
                    out.push(line);
                }
            }
        }
        // Now and then a message outlives its retention and is dropped.
        let droppable = state
            .depth
            .saturating_sub(state.stuck + state.retry_pending + state.failed_queue);
        if droppable > 0 && rng.random::<f64>() < 1.0 / 10_800.0 {
            let expired = rng.random_range(1..=3).min(droppable);
            state.depth -= expired;
            out.push(Line::new(ts + 20, user, LineEvent::Expired, expired));
        }
    }

    /// Spreads `count` failed first attempts over the retry window, in up to eight lots.
    fn schedule_retries(state: &mut UserState, rng: &mut StdRng, t: i64, count: u64) {
        if count == 0 {
            return;
        }
        let lots = count.min(8);
        for lot in 0..lots {
            let share = count / lots + u64::from(lot < count % lots);
            let at = t + rng.random_range(RETRY_MIN_S..=RETRY_MAX_S);
            state.retry_due[at.rem_euclid(RETRY_RING as i64) as usize] += share;
        }
        state.retry_pending += count;
    }
}
