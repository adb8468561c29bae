//! A fast path for the one shape the DSP exporter writes: a flat object of plain keys, unescaped ASCII strings
//! and non-negative integers. Anything else (escapes, non-ASCII, nesting, null, fractions, duplicates) returns
//! `None` and the line goes through serde_json, which stays the reference for what is valid. A property test
//! holds both paths to the same result on every line.
//!
//! Why it exists: serde_json's generic struct machinery costs ~300 ns a line, which alone would cap replay near
//! 3 M lines/s on two cores; this scanner takes a fraction of that for the common line.

use super::parse::{JsonStr, RawLine, RawTs};
use std::borrow::Cow;

/// Scans `line` (without its line end). `None` means "not the common shape: ask serde_json".
pub(crate) fn scan(line: &[u8]) -> Option<RawLine<'_>> {
    // One UTF-8 check for the whole line; every slice below starts and ends at an ASCII delimiter, so it is a
    // char boundary.
    let text = std::str::from_utf8(line).ok()?;
    let mut cursor = Cursor {
        text,
        bytes: line,
        at: 0,
    };
    let mut raw = RawLine::default();
    let mut seen = 0u16;
    cursor.skip_ws();
    cursor.expect(b'{')?;
    cursor.skip_ws();
    if cursor.peek() == Some(b'}') {
        cursor.at += 1;
    } else {
        loop {
            let key = cursor.string()?;
            cursor.skip_ws();
            cursor.expect(b':')?;
            cursor.skip_ws();
            let value = cursor.value()?;
            if let Some(bit) = raw.assign(key, value)? {
                if seen & bit != 0 {
                    return None;
                }
                seen |= bit;
            }
            cursor.skip_ws();
            match cursor.next()? {
                b',' => cursor.skip_ws(),
                b'}' => break,
                _ => return None,
            }
        }
    }
    cursor.skip_ws();
    (cursor.at == line.len()).then_some(raw)
}

#[derive(Clone, Copy)]
enum Value<'a> {
    Str(&'a str),
    Int(u64),
}

struct Cursor<'a> {
    text: &'a str,
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let byte = self.peek()?;
        self.at += 1;
        Some(byte)
    }

    fn expect(&mut self, byte: u8) -> Option<()> {
        (self.next()? == byte).then_some(())
    }

    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.at += 1;
        }
    }

    /// A string without escapes or control characters. (Strings are short: a plain loop beats memchr's setup.)
    fn string(&mut self) -> Option<&'a str> {
        self.expect(b'"')?;
        let start = self.at;
        loop {
            match self.next()? {
                b'"' => return self.text.get(start..self.at - 1),
                b'\\' | 0..0x20 => return None,
                _ => {}
            }
        }
    }

    /// A string, or an integer without sign, fraction, exponent or leading zero.
    fn value(&mut self) -> Option<Value<'a>> {
        match self.peek()? {
            b'"' => self.string().map(Value::Str),
            b'0'..=b'9' => {
                let start = self.at;
                while let Some(b'0'..=b'9') = self.peek() {
                    self.at += 1;
                }
                let digits = &self.bytes[start..self.at];
                if (digits.len() > 1 && digits[0] == b'0')
                    || matches!(self.peek(), Some(b'.' | b'e' | b'E'))
                {
                    return None;
                }
                let mut value = 0u64;
                for &digit in digits {
                    value = value
                        .checked_mul(10)?
                        .checked_add(u64::from(digit - b'0'))?;
                }
                Some(Value::Int(value))
            }
            _ => None,
        }
    }
}

impl<'a> RawLine<'a> {
    /// Stores a known field; returns its bit for duplicate detection, `Some(None)` for an ignored unknown field,
    /// and `None` where the value's type is not the common one (serde_json then decides).
    fn assign(&mut self, key: &str, value: Value<'a>) -> Option<Option<u16>> {
        let text = |value| match value {
            Value::Str(text) => Some(Some(JsonStr(Cow::Borrowed(text)))),
            Value::Int(_) => None,
        };
        let number = |value| match value {
            Value::Int(n) => Some(Some(serde_json::Number::from(n))),
            Value::Str(_) => None,
        };
        let bit = match key {
            "ts" => {
                self.ts = Some(match value {
                    Value::Int(ms) => i64::try_from(ms)
                        .map_or(RawTs::Invalid("integer out of range"), RawTs::Millis),
                    Value::Str(text) => RawTs::Text(Cow::Borrowed(text)),
                });
                0
            }
            "user" => (self.user = text(value)?, 1).1,
            "event" => (self.event = text(value)?, 2).1,
            "count" => (self.count = number(value)?, 3).1,
            "srv" => (self.srv = text(value)?, 4).1,
            "kind" => (self.kind = text(value)?, 5).1,
            "code" => (self.code = text(value)?, 6).1,
            "reason" => (self.reason = text(value)?, 7).1,
            "depth" => (self.depth = number(value)?, 8).1,
            "alert" => (self.alert = text(value)?, 9).1,
            _ => return Some(None),
        };
        Some(Some(1 << bit))
    }
}

#[cfg(test)]
mod tests {
    use super::super::parse::{build_event, parse_with_serde};
    use super::*;
    use proptest::prelude::*;

    fn key() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("ts"),
            Just("user"),
            Just("event"),
            Just("count"),
            Just("srv"),
            Just("kind"),
            Just("code"),
            Just("reason"),
            Just("depth"),
            Just("alert"),
            Just("device"),
            Just("x"),
            Just("t\\u0073"),
            Just("évent"),
        ]
        .prop_map(str::to_owned)
    }

    fn value() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("1773133200104"),
            Just("0"),
            Just("01"),
            Just("-3"),
            Just("2.5"),
            Just("1e3"),
            Just("181"),
            Just("99999999999999999999"),
            Just("null"),
            Just("true"),
            Just("[1,2]"),
            Just("{\"a\":1}"),
            Just("\"90-B3-D5-1F-30-01-00-07\""),
            Just("\"90b3d51f30010007\""),
            Just("\"request\""),
            Just("\"queued\""),
            Just("\"depth\""),
            Just("\"delivered\""),
            Just("\"E19\""),
            Just("\"device_alert\""),
            Just("\"4.1.1\""),
            Just("\"2026-03-10T09:00:00.512Z\""),
            Just("\"deliv\\u0065red\""),
            Just("\"é\""),
            Just("\"\""),
            Just("\"tls\""),
            Just("\"3\""),
        ]
        .prop_map(str::to_owned)
    }

    fn line() -> impl Strategy<Value = String> {
        let ws = prop_oneof![Just(""), Just(" "), Just("\t"), Just("  \r ")];
        (
            proptest::collection::vec((key(), value(), ws.clone()), 0..8),
            ws,
            prop_oneof![Just(""), Just("}"), Just(" x"), Just(",")],
        )
            .prop_map(|(fields, space, tail)| {
                let body: Vec<String> = fields
                    .iter()
                    .map(|(k, v, w)| format!("{w}\"{k}\"{w}:{w}{v}{w}"))
                    .collect();
                format!("{space}{{{}}}{space}{tail}", body.join(","))
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2_000))]
        #[test]
        fn fast_path_agrees_with_serde_json(line in line()) {
            if let Some(fast) = scan(line.as_bytes()) {
                let reference = parse_with_serde(line.as_bytes()).and_then(build_event);
                prop_assert_eq!(build_event(fast), reference, "{}", line);
            }
        }
    }

    #[test]
    fn takes_the_common_lines() {
        for line in [
            r#"{"ts":1773133200104,"user":"90-B3-D5-1F-30-01-00-07","event":"request","srv":"4.1.1","count":181}"#,
            r#"{"ts":"2026-03-10T09:00:00.512Z","user":"4ce1730000001101","event":"request","srv":"2.2","device":"00-1B-C5-0A-11-22-33-44","req_id":"4C-E1-73-00-00-00-11-01:00-1B-C5-0A-11-22-33-44:1773133200512"}"#,
            r#" { "ts" : 1 , "user":"x", "event":"depth","depth":0 } "#,
        ] {
            assert!(scan(line.as_bytes()).is_some(), "{line}");
        }
        for line in [
            r#"{"ts":1,"ts":2}"#,
            r#"{"ts":1} x"#,
            r#"{"a":null}"#,
            r#"{"a":"\n"}"#,
            r#"{"count":-1}"#,
        ] {
            assert!(scan(line.as_bytes()).is_none(), "{line}");
        }
    }
}
