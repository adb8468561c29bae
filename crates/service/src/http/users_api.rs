//! Per-User state as the API shows it: depth, backlog age, rates against baseline and delivery state.

use serde::Serialize;

use stormwatch_core::engine::baseline::{BaselineConfig, ModelState};
use stormwatch_core::engine::detect::backlog::DeliveryState;
use stormwatch_core::engine::evict::Evicted;
use stormwatch_core::engine::incidents::round2;
use stormwatch_core::engine::user::UserState;
use stormwatch_core::engine::window::Flow;
use stormwatch_core::engine::{Engine, UserKey, Watch};
use stormwatch_core::incident::IncidentKind;
use stormwatch_core::rfc3339::format_ms;
use stormwatch_core::telemetry::Eui64;

#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct FlowView {
    pub flow: &'static str,
    /// 10-second mean, per second.
    pub rate: f64,
    pub baseline: f64,
    pub ratio: Option<f64>,
}

/// What the model of one flow can say yet: the cold start, shown.
#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct ModelView {
    pub flow: &'static str,
    /// `cold` (under `baselines.warmup_s` of the User's own traffic: no anomaly of this flow is judged yet),
    /// `level` (judged against a local level; the day's shape is not known yet, so a rise as steep as the waking
    /// day is followed, not flagged), or `daily` (the expected rate follows the learned time of day and day of
    /// week).
    pub state: ModelState,
    pub learned_s: u32,
}

#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct UserView {
    pub user: String,
    /// Event time of the last closed second.
    pub as_of: i64,
    pub depth: u64,
    pub backlog_age_s: u64,
    /// `OK`, or the Burrow-style `STOP`/`STALL`/`WARN` over the last minute when messages are waiting.
    pub delivery_state: &'static str,
    pub last_delivery: Option<i64>,
    pub flows: Vec<FlowView>,
    /// Kinds with an anomaly pending or open.
    pub anomalies: Vec<&'static str>,
    /// Anomalies on watch: pending, not yet an incident (nobody is paged for these yet).
    pub watch: Vec<Watch>,
    /// How far the User's clock runs ahead of network event time (negative: behind), once recognised; its lines
    /// are placed at their time minus this.
    pub clock_offset_s: f64,
    /// The models of normal traffic: what each can say yet.
    pub model: Vec<ModelView>,
}

const FLOWS: [(Flow, &str); 5] = [
    (Flow::Requests, "requests"),
    (Flow::Rejected, "rejected"),
    (Flow::QueuedResponses, "queued_responses"),
    (Flow::QueuedAlerts, "queued_alerts"),
    (Flow::Delivered, "delivered"),
];

/// The view of User `key`, if it is still in the table.
pub fn view_of(engine: &Engine, key: UserKey) -> Option<UserView> {
    let user = engine.user(key)?;
    Some(view(
        user,
        engine.watches_of(key).into_iter().flatten().collect(),
        &engine.config().detectors.baselines,
    ))
}

pub fn view(user: &UserState, watch: Vec<Watch>, models: &BaselineConfig) -> UserView {
    let baselines = user.flow_baselines();
    let waiting = user.depth() > 0 && user.view.backlog_age_s > 0;
    let delivery_state = if waiting {
        DeliveryState::judge(
            user.recent_sum(Flow::Delivered, 60),
            user.recent_sum(Flow::Failed, 60),
        )
        .as_str()
    } else {
        "OK"
    };
    UserView {
        user: user.id.to_string(),
        as_of: user.view.second * 1000,
        depth: user.depth(),
        backlog_age_s: user.view.backlog_age_s,
        delivery_state,
        last_delivery: user.last_delivery_second.map(|s| s * 1000),
        flows: FLOWS
            .iter()
            .zip(baselines)
            .map(|(&(flow, name), baseline)| {
                let rate = user.view.short_rate(flow);
                // Rounded as in the report: 2.39 reads, 2.3912087912087911 is noise.
                FlowView {
                    flow: name,
                    rate: round2(rate),
                    baseline: round2(baseline),
                    ratio: (baseline > 0.0).then(|| round2(rate / baseline)),
                }
            })
            .collect(),
        anomalies: IncidentKind::ALL
            .iter()
            .filter(|kind| user.trackers[**kind as usize].is_active())
            .map(|kind| kind.as_str())
            .collect(),
        watch,
        clock_offset_s: user.clock_offset_ms as f64 / 1000.0,
        model: user
            .model_states(models)
            .into_iter()
            .map(|(flow, state, learned_s)| ModelView {
                flow,
                state,
                learned_s,
            })
            .collect(),
    }
}

/// Why an evicted User has no view: when it was last heard from and when it left memory.
pub fn evicted_message(user: Eui64, evicted: Evicted) -> String {
    let at = |ms: i64| format_ms(ms).unwrap_or_else(|| format!("{ms} ms"));
    format!(
        "User {user} is not tracked now: evicted from memory at {} (event time) after its last telemetry at {}; \
         it is tracked again, its baselines relearned, when its telemetry resumes",
        at(evicted.evicted_ms),
        at(evicted.last_event_ms)
    )
}

pub fn all(engine: &Engine) -> Vec<UserView> {
    engine
        .users()
        .filter_map(|(key, _)| view_of(engine, key))
        .collect()
}
