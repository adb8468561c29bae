//! One telemetry line before formatting, and the vocabularies (SRVs, response codes, alert codes) lines draw from.

use rand::Rng;
use rand::rngs::StdRng;

use stormwatch_core::telemetry::FailureReason;

/// What a queued message is.
#[derive(Copy, Clone, Eq, PartialEq, Debug)]
pub(crate) enum QueuedKind {
    Response,
    DeviceAlert,
    DccAlert,
}

#[derive(Copy, Clone, Eq, PartialEq, Debug)]
pub(crate) enum LineEvent {
    Request,
    Queued(QueuedKind),
    Delivered,
    DeliveryFailed,
    Expired,
    Depth,
}

/// One valid telemetry line before formatting.
#[derive(Copy, Clone, Debug)]
pub(crate) struct Line {
    pub ts: i64,
    pub user: u32,
    pub event: LineEvent,
    /// Messages the line stands for; for `Depth`, the depth.
    pub count: u64,
    /// Written without `count` when it is 1.
    pub per_message: bool,
    pub srv: Option<&'static str>,
    pub code: Option<&'static str>,
    pub alert: Option<&'static str>,
    pub reason: Option<FailureReason>,
    pub device: u64,
    /// The User's request counter for `req_id`; 0 for none.
    pub req: u64,
    pub latency_ms: u32,
}

impl Line {
    pub(crate) fn new(ts: i64, user: usize, event: LineEvent, count: u64) -> Line {
        Line {
            ts,
            user: user as u32,
            event,
            count,
            per_message: false,
            srv: None,
            code: None,
            alert: None,
            reason: None,
            device: 0,
            req: 0,
            latency_ms: 0,
        }
    }

    /// Requests come through the DSP's inbound gateway, everything else from its outbound side: two exporters.
    pub fn exporter(&self) -> usize {
        usize::from(self.event != LineEvent::Request)
    }
}

pub(crate) type Weighted = &'static [(&'static str, u32)];
pub(crate) const SUPPLIER_SRVS: Weighted = &[
    ("4.1.1", 30),
    ("2.2", 25),
    ("4.6.1", 15),
    ("8.1.1", 10),
    ("6.2.7", 10),
    ("1.1.1", 10),
];
pub(crate) const OPERATOR_SRVS: Weighted =
    &[("4.1.1", 40), ("4.17", 30), ("6.2.7", 20), ("11.2", 10)];
pub(crate) const REJECT_CODES: Weighted = &[
    ("E19", 30),
    ("E4", 20),
    ("E3", 15),
    ("E20", 15),
    ("E11", 10),
    ("E30", 10),
];
pub(crate) const STORM_REJECT_CODES: Weighted = &[("E4", 50), ("E20", 30), ("E19", 20)];
pub(crate) const SUPPLIER_ALERTS: Weighted = &[
    ("0x8F36", 40),
    ("0x8F35", 25),
    ("0x8F3E", 20),
    ("0x8F0A", 10),
    ("AD1", 5),
];
pub(crate) const OPERATOR_ALERTS: Weighted =
    &[("AD1", 25), ("0x8F36", 25), ("0x8F3E", 25), ("0x8F35", 25)];
pub(crate) const DCC_ALERTS: Weighted = &[("N24", 50), ("N16", 30), ("N42", 20)];
/// DCC-scheduled reads come back as daily read logs.
pub(crate) const SCHEDULED_SRV: &str = "4.6.1";

pub(crate) fn pick(rng: &mut StdRng, options: Weighted) -> &'static str {
    let total: u32 = options.iter().map(|o| o.1).sum();
    let mut roll = rng.random_range(0..total.max(1));
    for &(value, weight) in options {
        if roll < weight {
            return value;
        }
        roll -= weight;
    }
    options.first().map_or("", |o| o.0)
}
