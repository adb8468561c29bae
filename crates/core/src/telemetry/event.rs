//! The parsed telemetry event: small, `Copy`, and free of borrowed or heap data so batches move between threads cheaply.

use super::codes::{AlertCode, FailureReason, Srv};
use super::user_id::Eui64;

/// Which flow of a User's traffic an event belongs to.
#[derive(Copy, Clone, Eq, PartialEq, Hash, Debug)]
#[repr(u8)]
pub enum EventKind {
    /// A request acknowledged by the DSP (`I99`).
    Request,
    /// A request the DSP rejected (an `E` code).
    RejectedRequest,
    /// A service response put on the User's outbound queue.
    QueuedResponse,
    /// A device or DCC alert put on the User's outbound queue.
    QueuedAlert,
    Delivered,
    DeliveryFailed,
    Expired,
    /// The DSP's authoritative queue-depth sample; the value is in [`Event::value`].
    Depth,
}

impl EventKind {
    /// Every kind, in declaration order (`kind as u8` indexes it).
    pub const ALL: [EventKind; 8] = [
        EventKind::Request,
        EventKind::RejectedRequest,
        EventKind::QueuedResponse,
        EventKind::QueuedAlert,
        EventKind::Delivered,
        EventKind::DeliveryFailed,
        EventKind::Expired,
        EventKind::Depth,
    ];

    /// The contract's `event` name.
    pub fn event_name(self) -> &'static str {
        match self {
            EventKind::Request | EventKind::RejectedRequest => "request",
            EventKind::QueuedResponse | EventKind::QueuedAlert => "queued",
            EventKind::Delivered => "delivered",
            EventKind::DeliveryFailed => "delivery_failed",
            EventKind::Expired => "expired",
            EventKind::Depth => "depth",
        }
    }
}

/// One valid telemetry line.
#[derive(Copy, Clone, PartialEq, Debug)]
pub struct Event {
    /// Event time, milliseconds since the Unix epoch.
    pub ts_ms: i64,
    pub user: Eui64,
    pub kind: EventKind,
    /// For [`EventKind::Depth`] the sampled depth; otherwise the `count` (>= 1) the line stands for.
    pub value: u64,
    pub srv: Srv,
    pub alert: AlertCode,
    pub reason: FailureReason,
}

impl Event {
    /// A plain event with no optional fields, mostly for tests and the generator.
    pub fn new(ts_ms: i64, user: Eui64, kind: EventKind, value: u64) -> Event {
        Event {
            ts_ms,
            user,
            kind,
            value,
            srv: Srv::NONE,
            alert: AlertCode::NONE,
            reason: FailureReason::Other,
        }
    }
}
