//! The run's plan as data: the effects scenarios and normal life have on the simulation, their change notices and
//! truth. `layout.rs` fills it.

use super::truth::TruthIncident;
use stormwatch_core::changes::ChangeNotice;
use stormwatch_core::telemetry::FailureReason;

/// An anomaly must leave this much input after it for the engine to detect it.
pub(crate) const DETECT_MARGIN_S: i64 = 10 * 60;

/// Something that changes a User's traffic for a while. Times are Unix seconds, `from` inclusive, `until`
/// exclusive.
#[derive(Clone, Debug)]
pub(crate) enum Effect {
    /// The User's endpoint fails every delivery attempt. With `stop_at_depth`, it comes back once the backlog
    /// reaches that depth.
    Outage {
        user: usize,
        from: i64,
        until: i64,
        stop_at_depth: Option<u64>,
        reasons: &'static [FailureReason],
    },
    /// The User's endpoint flaps: down for `down_s` at the start of every `period_s`, from `from` to `until`.
    Flap {
        user: usize,
        from: i64,
        until: i64,
        down_s: i64,
        period_s: i64,
        reasons: &'static [FailureReason],
    },
    /// A `share` of the User's queued messages are held back until `until`, when they are released into the
    /// normal queue: silently (never acknowledged) without `reasons`, or refused for them on every attempt (one
    /// SRV family the endpoint no longer takes).
    Leak {
        user: usize,
        from: i64,
        until: i64,
        share: f64,
        reasons: Option<&'static [FailureReason]>,
    },
    /// Requests rise linearly from normal to `peak` times normal over `ramp_s`, then hold until `until`.
    Ramp {
        user: usize,
        from: i64,
        until: i64,
        peak: f64,
        ramp_s: i64,
        srv: &'static str,
    },
    /// DSP-side: no delivery attempts for any User.
    Pause { from: i64, until: i64 },
    /// DSP-side: shared delivery capacity saturated (another User's storm took it), so every bulk User gets only
    /// `share` of its arrivals delivered each second. Nothing fails; queues just grow.
    Squeeze { from: i64, until: i64, share: f64 },
    /// Requests multiplied by `factor`; `reject_share` replaces the User's normal share.
    Surge {
        user: usize,
        from: i64,
        until: i64,
        factor: f64,
        reject_share: Option<f64>,
        srv: &'static str,
    },
    /// Extra device alerts with code `alert`, at `factor` times the User's normal alert rate.
    Flood {
        user: usize,
        from: i64,
        until: i64,
        factor: f64,
        alert: &'static str,
    },
    /// A network operator's weather burst: alerts rise smoothly to `factor` times normal and back.
    Burst {
        user: usize,
        from: i64,
        until: i64,
        factor: f64,
    },
}

/// A truth entry, and for backlogs the User and interval whose true peak depth sets `min_peak_depth`.
#[derive(Clone, Debug)]
pub(crate) struct PlannedIncident {
    pub truth: TruthIncident,
    pub peak_watch: Option<(usize, i64, i64)>,
}

#[derive(Clone, Debug, Default)]
pub(crate) struct Plan {
    pub start_s: i64,
    pub end_s: i64,
    pub effects: Vec<Effect>,
    pub changes: Vec<ChangeNotice>,
    pub incidents: Vec<PlannedIncident>,
    /// Intervals kept free of background hiccups and bursts.
    pub quiet: Vec<(i64, i64)>,
    /// Users whose exporter clock is off, by how many ms (positive: fast), for the whole run.
    pub skews: Vec<(usize, i64)>,
    /// Share of valid lines the exporter writes twice (at-least-once export).
    pub duplicates: f64,
}

/// How long one scenario needs: the anomaly itself, then time to recover.
#[derive(Copy, Clone, Debug)]
pub(crate) struct Slot {
    pub anomaly_s: i64,
    pub recovery_s: i64,
}

/// Why brief outages fail.
pub(crate) const HICCUP_REASONS: [&[FailureReason]; 3] = [
    &[FailureReason::Timeout],
    &[FailureReason::Refused],
    &[FailureReason::Http5xx, FailureReason::Timeout],
];
