//! One NDJSON line to one [`Event`], or a [`LineError`] saying exactly why the line is malformed.

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::codes::{AlertCode, FailureReason, Srv};
use super::event::{Event, EventKind};
use super::user_id::Eui64;

/// Lines longer than this are malformed (contract: 64 KiB).
pub const MAX_LINE_BYTES: usize = 64 * 1024;

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
    #[error("`count` must be an integer >= 1")]
    BadCount,
    #[error("`depth` event without a valid `depth` (an integer >= 0)")]
    BadDepth,
}

/// Event time as the line carries it: integer milliseconds or an RFC 3339 string.
pub(crate) enum RawTs<'a> {
    Millis(i64),
    Text(Cow<'a, str>),
    Invalid(&'static str),
}

impl<'de: 'a, 'a> Deserialize<'de> for RawTs<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TsVisitor;
        impl<'de> Visitor<'de> for TsVisitor {
            type Value = RawTs<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("integer milliseconds or an RFC 3339 string")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(RawTs::Millis(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(i64::try_from(v).map_or(RawTs::Invalid("integer out of range"), RawTs::Millis))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
                Ok(RawTs::Invalid("a fraction is not integer milliseconds"))
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(RawTs::Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(RawTs::Text(Cow::Owned(v.to_owned())))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
                Ok(RawTs::Invalid("a boolean is not a time"))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(RawTs::Invalid("null is not a time"))
            }
        }
        deserializer.deserialize_any(TsVisitor)
    }
}

/// A JSON string borrowed from the line, or owned when it had escapes. (serde's own `Cow` only borrows when the
/// field is exactly `Cow<str>`, not inside an `Option`, and would allocate on every line.)
pub(crate) struct JsonStr<'a>(pub(crate) Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for JsonStr<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct StrVisitor;
        impl<'de> Visitor<'de> for StrVisitor {
            type Value = JsonStr<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(JsonStr(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(JsonStr(Cow::Owned(v.to_owned())))
            }
        }
        deserializer.deserialize_str(StrVisitor)
    }
}

impl std::ops::Deref for JsonStr<'_> {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

/// The contract's fields, borrowed from the line where possible. Unknown fields are ignored by serde. `expecting`
/// keeps the type's name out of the messages people read in the quarantine file.
#[derive(Deserialize)]
#[serde(expecting = "a JSON object with `ts`, `user` and `event`")]
pub(crate) struct RawLine<'a> {
    #[serde(borrow)]
    pub(crate) ts: Option<RawTs<'a>>,
    #[serde(borrow)]
    pub(crate) user: Option<JsonStr<'a>>,
    #[serde(borrow)]
    pub(crate) event: Option<JsonStr<'a>>,
    pub(crate) count: Option<serde_json::Number>,
    #[serde(borrow)]
    pub(crate) srv: Option<JsonStr<'a>>,
    #[serde(borrow)]
    pub(crate) kind: Option<JsonStr<'a>>,
    #[serde(borrow)]
    pub(crate) code: Option<JsonStr<'a>>,
    #[serde(borrow)]
    pub(crate) reason: Option<JsonStr<'a>>,
    pub(crate) depth: Option<serde_json::Number>,
    #[serde(borrow)]
    pub(crate) alert: Option<JsonStr<'a>>,
}

/// Parses one line (without its `\n`; a trailing `\r` is tolerated). Blank lines are the caller's business.
pub fn parse_line(line: &[u8]) -> Result<Event, LineError> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.len() > MAX_LINE_BYTES {
        return Err(LineError::TooLong(line.len()));
    }
    if let Some(event) = super::fast_path::scan(line) {
        return Ok(event);
    }
    build_event(&parse_with_serde(line)?)
}

/// RFC 3339 text to epoch milliseconds.
pub(crate) fn rfc3339_ms(text: &str) -> Option<i64> {
    OffsetDateTime::parse(text, &Rfc3339)
        .ok()
        .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
}

/// The reference parser for any JSON the fast path does not take.
pub(crate) fn parse_with_serde(line: &[u8]) -> Result<RawLine<'_>, LineError> {
    // serde would read a JSON array as the struct's fields in order, and name its own expectations; a line that
    // is not an object (CSV, a JSON array, binary) gets one plain message instead.
    if let Some(&first) = line.iter().find(|b| !b.is_ascii_whitespace())
        && first != b'{'
        && std::str::from_utf8(line).is_ok()
    {
        return Err(LineError::Json(
            "a telemetry line is one JSON object with `ts`, `user` and `event`; this one is not an object".into(),
        ));
    }
    // serde_json checks UTF-8 itself; only a failed line pays for finding out whether bad UTF-8 was the cause.
    serde_json::from_slice(line).map_err(|e| match std::str::from_utf8(line) {
        Err(bad) => LineError::NotUtf8(bad.valid_up_to()),
        Ok(_) => LineError::Json(e.to_string()),
    })
}

/// Checks the fields and builds the event (shared by both parsing paths).
pub(crate) fn build_event(raw: &RawLine<'_>) -> Result<Event, LineError> {
    let ts_ms = match raw.ts.as_ref().ok_or(LineError::Missing("ts"))? {
        RawTs::Millis(ms) => *ms,
        RawTs::Text(text) => OffsetDateTime::parse(text, &Rfc3339)
            .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
            .map_err(|e| LineError::BadTs(format!("`{text}`: {e}")))?,
        RawTs::Invalid(why) => return Err(LineError::BadTs(why.to_string())),
    };
    if !(MIN_TS_MS..MAX_TS_MS).contains(&ts_ms) {
        return Err(LineError::BadTs(format!(
            "{ts_ms} is outside the years 2000-2099"
        )));
    }
    let user_text = raw.user.as_deref().ok_or(LineError::Missing("user"))?;
    let user = Eui64::parse(user_text).ok_or_else(|| LineError::BadUser(user_text.to_owned()))?;
    let event_name = raw.event.as_deref().ok_or(LineError::Missing("event"))?;

    let count = match &raw.count {
        None => 1,
        Some(n) => n.as_u64().filter(|&c| c >= 1).ok_or(LineError::BadCount)?,
    };
    let kind = match event_name {
        "request" => match raw.code.as_deref() {
            Some(code) if code.starts_with('E') => EventKind::RejectedRequest,
            _ => EventKind::Request,
        },
        "queued" => match raw.kind.as_deref() {
            Some("device_alert" | "dcc_alert") => EventKind::QueuedAlert,
            _ => EventKind::QueuedResponse,
        },
        "delivered" => EventKind::Delivered,
        "delivery_failed" => EventKind::DeliveryFailed,
        "expired" => EventKind::Expired,
        "depth" => EventKind::Depth,
        other => return Err(LineError::UnknownEvent(other.to_owned())),
    };
    let value = if kind == EventKind::Depth {
        raw.depth
            .as_ref()
            .and_then(|d| d.as_u64())
            .ok_or(LineError::BadDepth)?
    } else {
        count
    };
    Ok(Event {
        ts_ms,
        user,
        kind,
        value,
        srv: raw.srv.as_deref().and_then(Srv::parse).unwrap_or(Srv::NONE),
        alert: raw.alert.as_deref().map_or(AlertCode::NONE, AlertCode::new),
        reason: raw
            .reason
            .as_deref()
            .map_or(FailureReason::Other, FailureReason::parse),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(line: &str) -> Event {
        parse_line(line.as_bytes()).unwrap_or_else(|e| panic!("{line}: {e}"))
    }

    #[test]
    fn both_ts_forms_and_offsets() {
        let a = ok(r#"{"ts":1773133200512,"user":"4ce1730000001101","event":"request"}"#);
        let b =
            ok(r#"{"ts":"2026-03-10T09:00:00.512Z","user":"4ce1730000001101","event":"request"}"#);
        let c = ok(
            r#"{"ts":"2026-03-10T10:00:00.512+01:00","user":"4C:E1:73:00:00:00:11:01","event":"request"}"#,
        );
        assert_eq!(a.ts_ms, 1_773_133_200_512);
        assert_eq!(a, b);
        assert_eq!(a, c);
    }

    #[test]
    fn fields_map_to_kinds() {
        let user = r#""user":"90-B3-D5-1F-30-01-00-07""#;
        let cases = [
            (
                r#""event":"request","code":"E19","count":2"#,
                EventKind::RejectedRequest,
                2,
            ),
            (r#""event":"request","code":"I99""#, EventKind::Request, 1),
            (
                r#""event":"queued","kind":"device_alert","alert":"0x8F36","count":61"#,
                EventKind::QueuedAlert,
                61,
            ),
            (
                r#""event":"queued","kind":"dcc_alert""#,
                EventKind::QueuedAlert,
                1,
            ),
            (r#""event":"queued""#, EventKind::QueuedResponse, 1),
            (
                r#""event":"delivered","count":236"#,
                EventKind::Delivered,
                236,
            ),
            (
                r#""event":"delivery_failed","reason":"tls""#,
                EventKind::DeliveryFailed,
                1,
            ),
            (r#""event":"expired""#, EventKind::Expired, 1),
            (r#""event":"depth","depth":0"#, EventKind::Depth, 0),
        ];
        for (fields, kind, value) in cases {
            let event = ok(&format!(
                r#"{{"ts":1773133200000,{user},{fields},"extra":[1,{{"x":2}}]}}"#
            ));
            assert_eq!((event.kind, event.value), (kind, value), "{fields}");
        }
        let failed = ok(&format!(
            r#"{{"ts":1773133200000,{user},"event":"delivery_failed","reason":"tls"}}"#
        ));
        assert_eq!(failed.reason, FailureReason::Tls);
        let srv = ok(&format!(
            r#"{{"ts":1773133200000,{user},"event":"request","srv":"4.1.1"}}"#
        ));
        assert_eq!(srv.srv.to_string(), "4.1.1");
    }

    #[test]
    fn trailing_carriage_return_is_tolerated() {
        ok("{\"ts\":1773133200000,\"user\":\"90b3d51f30010007\",\"event\":\"expired\"}\r");
    }

    #[test]
    fn each_malformed_kind_is_named() {
        let u = r#""user":"90b3d51f30010007""#;
        type Check = fn(&LineError) -> bool;
        let cases: Vec<(String, Check)> = vec![
            ("{not json".into(), |e| matches!(e, LineError::Json(_))),
            (format!(r#"{{{u},"event":"request"}}"#), |e| {
                *e == LineError::Missing("ts")
            }),
            (r#"{"ts":1773133200000,"event":"request"}"#.into(), |e| {
                *e == LineError::Missing("user")
            }),
            (format!(r#"{{"ts":1773133200000,{u}}}"#), |e| {
                *e == LineError::Missing("event")
            }),
            (
                format!(r#"{{"ts":1773133200000,{u},"event":"teleported"}}"#),
                |e| matches!(e, LineError::UnknownEvent(_)),
            ),
            (
                format!(r#"{{"ts":1773133200000,{u},"event":"request","count":0}}"#),
                |e| *e == LineError::BadCount,
            ),
            (
                format!(r#"{{"ts":1773133200000,{u},"event":"request","count":2.5}}"#),
                |e| *e == LineError::BadCount,
            ),
            (
                format!(r#"{{"ts":1773133200000,{u},"event":"request","count":-1}}"#),
                |e| *e == LineError::BadCount,
            ),
            (
                format!(r#"{{"ts":1773133200000,{u},"event":"request","count":"3"}}"#),
                |e| matches!(e, LineError::Json(_)),
            ),
            (
                format!(r#"{{"ts":1773133200000,{u},"event":"depth"}}"#),
                |e| *e == LineError::BadDepth,
            ),
            (
                format!(r#"{{"ts":1773133200000,{u},"event":"depth","depth":-4}}"#),
                |e| *e == LineError::BadDepth,
            ),
            (
                format!(r#"{{"ts":"yesterday",{u},"event":"request"}}"#),
                |e| matches!(e, LineError::BadTs(_)),
            ),
            (format!(r#"{{"ts":1.5,{u},"event":"request"}}"#), |e| {
                matches!(e, LineError::BadTs(_))
            }),
            (format!(r#"{{"ts":99,{u},"event":"request"}}"#), |e| {
                matches!(e, LineError::BadTs(_))
            }),
            (
                r#"{"ts":1773133200000,"user":"DCC","event":"request"}"#.into(),
                |e| matches!(e, LineError::BadUser(_)),
            ),
            ("[1,2,3]".into(), |e| matches!(e, LineError::Json(_))),
            ("1,2,3".into(), |e| matches!(e, LineError::Json(_))),
            (
                format!(r#"[{{"ts":1773133200000,{u},"event":"request"}}]"#),
                |e| matches!(e, LineError::Json(_)),
            ),
        ];
        for (line, check) in cases {
            let error = parse_line(line.as_bytes()).expect_err(&line);
            assert!(check(&error), "{line}: {error}");
            // Messages are for people: no Rust type names from serde's derive.
            assert!(!error.to_string().contains("RawLine"), "{line}: {error}");
        }
        assert_eq!(parse_line(b"{\"ts\":\xff}"), Err(LineError::NotUtf8(6)));
        let long = format!(
            r#"{{"ts":1773133200000,{u},"event":"request","pad":"{}"}}"#,
            "x".repeat(MAX_LINE_BYTES)
        );
        assert!(matches!(
            parse_line(long.as_bytes()),
            Err(LineError::TooLong(_))
        ));
    }

    #[test]
    fn escaped_strings_still_parse() {
        let event =
            ok(r#"{"ts":1773133200000,"user":"90b3d51f3001000\u0037","event":"deliv\u0065red"}"#);
        assert_eq!(event.kind, EventKind::Delivered);
    }
}
