//! One NDJSON line to one [`Event`], or a [`LineError`] saying exactly why the line is malformed.

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

use super::event::Event;
pub use super::fields::{LineError, MAX_COUNT, MAX_LINE_BYTES};
use super::fields::{LineFields, Number, Ts, build_event};

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
    if let Some((event, end)) = super::fast_path::scan(line, 0)
        && end == line.len()
    {
        return Ok(event);
    }
    build_event(&parse_with_serde(line)?.fields())
}

/// The reference parser for any JSON the fast path does not take.
pub(crate) fn parse_with_serde(line: &[u8]) -> Result<RawLine<'_>, LineError> {
    // serde would read a JSON array as the struct's fields in order, and name its own expectations; a line that
    // is not an object (CSV, a JSON array) gets one plain message instead.
    // serde_json checks the UTF-8 of the strings it reads, but not of the fields it skips; the contract makes
    // the whole line malformed, so check it all. Only lines off the fast path pay for this.
    let text = std::str::from_utf8(line).map_err(|bad| LineError::NotUtf8(bad.valid_up_to()))?;
    if text
        .trim_start()
        .as_bytes()
        .first()
        .is_some_and(|&first| first != b'{')
    {
        return Err(LineError::Json(
            "a telemetry line is one JSON object with `ts`, `user` and `event`; this one is not an object".into(),
        ));
    }
    serde_json::from_str(text).map_err(|e| LineError::Json(e.to_string()))
}

impl<'a> RawLine<'a> {
    /// The fields as the shared rules read them.
    pub(crate) fn fields(&'a self) -> LineFields<'a> {
        let text = |field: &'a Option<JsonStr<'a>>| field.as_deref().map(str::as_bytes);
        let number = |field: &Option<serde_json::Number>| match field {
            None => Number::Absent,
            Some(number) => number.as_u64().map_or(Number::Other, Number::Unsigned),
        };
        LineFields {
            ts: self.ts.as_ref().map(|ts| match ts {
                RawTs::Millis(ms) => Ts::Millis(*ms),
                RawTs::Text(text) => Ts::Text(text.as_bytes()),
                RawTs::Invalid(why) => Ts::Invalid(why),
            }),
            user: text(&self.user),
            event: text(&self.event),
            count: number(&self.count),
            depth: number(&self.depth),
            srv: text(&self.srv),
            kind: text(&self.kind),
            code: text(&self.code),
            reason: text(&self.reason),
            alert: text(&self.alert),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by the service's security review: both paths skipped unknown fields without checking their bytes.
    #[test]
    fn invalid_utf8_anywhere_in_the_line_is_malformed() {
        for prefix in [
            &br#"{"ts":1773133200000,"user":"90-B3-D5-1F-30-01-00-07","event":"request","note":""#
                [..],
            br#"{"note":""#,
        ] {
            let mut line = prefix.to_vec();
            line.extend([0xff, 0xfe]);
            line.extend(
                br#"","ts":1773133200000,"user":"90-B3-D5-1F-30-01-00-07","event":"request"}"#,
            );
            let error = parse_line(&line).expect_err("bad UTF-8 in an unknown field");
            assert!(matches!(error, LineError::NotUtf8(_)), "{error}");
        }
    }

    /// A count or depth near 2^64 wrapped the queue depth: past `MAX_COUNT` a line is malformed.
    #[test]
    fn counts_and_depths_beyond_the_limit_are_malformed() {
        let user = r#""user":"90-B3-D5-1F-30-01-00-07""#;
        for (field, event, error) in [
            ("count", "request", LineError::BadCount),
            ("depth", "depth", LineError::BadDepth),
        ] {
            for value in [u64::MAX, MAX_COUNT + 1] {
                let line =
                    format!(r#"{{"ts":1773133200000,{user},"event":"{event}","{field}":{value}}}"#);
                assert_eq!(parse_line(line.as_bytes()), Err(error.clone()), "{line}");
            }
            let line =
                format!(r#"{{"ts":1773133200000,{user},"event":"{event}","{field}":{MAX_COUNT}}}"#);
            assert_eq!(ok(&line).value, MAX_COUNT);
        }
    }
    use crate::telemetry::{EventKind, FailureReason};

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
