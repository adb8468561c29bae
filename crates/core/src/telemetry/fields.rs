//! The contract's rules for one line's fields, shared by both parsers: the fast path and serde_json each find the
//! fields, and [`build_event`] alone decides what they mean and why a line is malformed.

use super::codes::{AlertCode, FailureReason, Srv};
use super::event::{Event, EventKind};
use super::user_id::Eui64;

/// Lines longer than this are malformed (contract: 64 KiB).
pub const MAX_LINE_BYTES: usize = 64 * 1024;

/// Largest `count` or `depth` a line may carry (2^32). Far beyond any real per-second aggregate or queue, and
/// small enough that sums over a second and signed queue arithmetic can never wrap.
pub const MAX_COUNT: u64 = 1 << 32;

/// Event times outside 2000-01-01 .. 2100-01-01 are refused: one absurd stamp would otherwise drag the watermark
/// decades ahead and make every later line late.
pub(crate) const MIN_TS_MS: i64 = 946_684_800_000;
pub(crate) const MAX_TS_MS: i64 = 4_102_444_800_000;

/// Why a line is not a valid event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LineError {
    #[error("line is longer than 64 KiB ({0} bytes)")]
    TooLong(usize),
    #[error("not valid UTF-8 at byte {0}")]
    NotUtf8(usize),
    #[error("invalid JSON: {0}")]
    Json(String),
    #[error("missing required field `{0}`")]
    Missing(&'static str),
    #[error("invalid `ts`: {0}")]
    BadTs(String),
    #[error("invalid `user`: `{0}` is not an EUI-64")]
    BadUser(String),
    #[error("unknown event `{0}`")]
    UnknownEvent(String),
    #[error("`count` must be an integer from 1 to 4294967296")]
    BadCount,
    #[error("`depth` event without a valid `depth` (an integer from 0 to 4294967296)")]
    BadDepth,
}

/// Event time as the line carries it.
#[derive(Clone, Copy)]
pub(crate) enum Ts<'a> {
    Millis(i64),
    /// RFC 3339 text (UTF-8: both parsers only hand over valid text).
    Text(&'a [u8]),
    /// A JSON value that cannot be a time, and why.
    Invalid(&'static str),
}

/// A number field: absent, an unsigned integer, or present but something else.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Number {
    Absent,
    Unsigned(u64),
    Other,
}

/// The contract's fields of one line as found, borrowed from the line (or from its unescaped text).
#[derive(Clone, Copy)]
pub(crate) struct LineFields<'a> {
    pub(crate) ts: Option<Ts<'a>>,
    pub(crate) user: Option<&'a [u8]>,
    pub(crate) event: Option<&'a [u8]>,
    pub(crate) count: Number,
    pub(crate) depth: Number,
    pub(crate) srv: Option<&'a [u8]>,
    pub(crate) kind: Option<&'a [u8]>,
    pub(crate) code: Option<&'a [u8]>,
    pub(crate) reason: Option<&'a [u8]>,
    pub(crate) alert: Option<&'a [u8]>,
}

impl Default for LineFields<'_> {
    fn default() -> Self {
        LineFields {
            ts: None,
            user: None,
            event: None,
            count: Number::Absent,
            depth: Number::Absent,
            srv: None,
            kind: None,
            code: None,
            reason: None,
            alert: None,
        }
    }
}

/// Checks the fields and builds the event. Errors are built only on the error path, so a valid line allocates
/// nothing. Inlined into each parser, so the fast path's fields are checked in registers rather than copied.
#[inline]
pub(crate) fn build_event(fields: &LineFields<'_>) -> Result<Event, LineError> {
    let ts_ms = match fields.ts.ok_or(LineError::Missing("ts"))? {
        Ts::Millis(ms) => ms,
        Ts::Text(text) => {
            let text =
                std::str::from_utf8(text).map_err(|e| LineError::NotUtf8(e.valid_up_to()))?;
            crate::rfc3339::parse(text).map_err(|e| LineError::BadTs(format!("`{text}`: {e}")))?
        }
        Ts::Invalid(why) => return Err(LineError::BadTs(why.to_string())),
    };
    if !(MIN_TS_MS..MAX_TS_MS).contains(&ts_ms) {
        return Err(LineError::BadTs(format!(
            "{ts_ms} is outside the years 2000-2099"
        )));
    }
    let user_text = fields.user.ok_or(LineError::Missing("user"))?;
    let user = Eui64::parse_bytes(user_text)
        .ok_or_else(|| LineError::BadUser(String::from_utf8_lossy(user_text).into_owned()))?;
    let event_name = fields.event.ok_or(LineError::Missing("event"))?;
    let count = match fields.count {
        Number::Absent => 1,
        Number::Unsigned(count) if (1..=MAX_COUNT).contains(&count) => count,
        Number::Unsigned(_) | Number::Other => return Err(LineError::BadCount),
    };
    let kind = match event_name {
        b"request" if fields.code.is_some_and(|code| code.starts_with(b"E")) => {
            EventKind::RejectedRequest
        }
        b"request" => EventKind::Request,
        b"queued" if matches!(fields.kind, Some(b"device_alert" | b"dcc_alert")) => {
            EventKind::QueuedAlert
        }
        b"queued" => EventKind::QueuedResponse,
        b"delivered" => EventKind::Delivered,
        b"delivery_failed" => EventKind::DeliveryFailed,
        b"expired" => EventKind::Expired,
        b"depth" => EventKind::Depth,
        other => {
            return Err(LineError::UnknownEvent(
                String::from_utf8_lossy(other).into_owned(),
            ));
        }
    };
    let value = if kind == EventKind::Depth {
        match fields.depth {
            Number::Unsigned(depth) if depth <= MAX_COUNT => depth,
            Number::Unsigned(_) | Number::Absent | Number::Other => {
                return Err(LineError::BadDepth);
            }
        }
    } else {
        count
    };
    Ok(Event {
        ts_ms,
        user,
        kind,
        value,
        srv: fields.srv.and_then(Srv::parse_bytes).unwrap_or(Srv::NONE),
        alert: fields.alert.map_or(AlertCode::NONE, AlertCode::from_bytes),
        reason: fields
            .reason
            .map_or(FailureReason::Other, FailureReason::parse_bytes),
    })
}
