//! A fast path for the one shape the DSP exporter writes: a compact flat object of plain keys, unescaped strings
//! and non-negative integers, making a valid event. Anything else (whitespace, escapes, control bytes, nesting, null,
//! fractions, duplicates, any invalid field) returns `None` and the line goes through serde_json, which stays the
//! reference for what is valid and words every error. A property test holds the fast path to the reference on
//! every line it accepts.
//!
//! Why it exists: serde_json's generic struct machinery costs ~300 ns a line, which alone would cap replay near
//! 3 M lines/s on two cores; this scanner takes a fraction of that for the common line.

use super::codes::{AlertCode, FailureReason, Srv};
use super::event::{Event, EventKind};
use super::parse::{MAX_TS_MS, MIN_TS_MS, rfc3339_ms};
use super::user_id::Eui64;

/// Scans `line` (without its line end) into an event. `None` means "not the common shape, or not valid: ask the
/// reference parser", which also words the error. So this only has to be right about lines it accepts.
pub(crate) fn scan(line: &[u8]) -> Option<Event> {
    // Escapes, control bytes (tabs included) and non-ASCII bytes anywhere send the line to serde_json. Checking
    // the whole line at once is one vectorised pass; it lets the string scan below look for nothing but the
    // closing quote, and makes every field plain ASCII, so fields are read as bytes without a UTF-8 check.
    if line.iter().fold(false, |found, &b| {
        found | (b == b'\\') | !(0x20..0x80).contains(&b)
    }) {
        return None;
    }
    let mut cursor = Cursor { bytes: line, at: 0 };
    let mut fields = Fields::default();
    cursor.expect(b'{')?;
    if cursor.peek() == Some(b'}') {
        cursor.at += 1;
    } else {
        loop {
            let key = cursor.string()?;
            cursor.expect(b':')?;
            let value = cursor.value()?;
            fields.assign(key, value)?;
            match cursor.next()? {
                b',' => {}
                b'}' => break,
                _ => return None,
            }
        }
    }
    if cursor.at != line.len() {
        return None;
    }
    fields.event()
}

#[derive(Clone, Copy)]
enum Value<'a> {
    Str(&'a [u8]),
    Int(u64),
}

/// The known fields as found; every one at most once (a repeated key is left to serde_json to refuse).
#[derive(Default)]
struct Fields<'a> {
    ts: Option<Value<'a>>,
    user: Option<&'a [u8]>,
    event: Option<&'a [u8]>,
    count: Option<u64>,
    srv: Option<&'a [u8]>,
    kind: Option<&'a [u8]>,
    code: Option<&'a [u8]>,
    reason: Option<&'a [u8]>,
    depth: Option<u64>,
    alert: Option<&'a [u8]>,
}

impl<'a> Fields<'a> {
    /// Stores a known field (unknown fields are ignored); `None` for a repeat or a value of an unusual type.
    fn assign(&mut self, key: &[u8], value: Value<'a>) -> Option<()> {
        fn put<T>(slot: &mut Option<T>, value: Option<T>) -> Option<()> {
            if slot.is_some() {
                return None;
            }
            *slot = Some(value?);
            Some(())
        }
        let text = match value {
            Value::Str(text) => Some(text),
            Value::Int(_) => None,
        };
        let number = match value {
            Value::Int(n) => Some(n),
            Value::Str(_) => None,
        };
        match key {
            b"ts" => put(&mut self.ts, Some(value)),
            b"user" => put(&mut self.user, text),
            b"event" => put(&mut self.event, text),
            b"count" => put(&mut self.count, number),
            b"srv" => put(&mut self.srv, text),
            b"kind" => put(&mut self.kind, text),
            b"code" => put(&mut self.code, text),
            b"reason" => put(&mut self.reason, text),
            b"depth" => put(&mut self.depth, number),
            b"alert" => put(&mut self.alert, text),
            _ => Some(()),
        }
    }

    /// The event these fields make, if they make a valid one (the same rules as `parse::build_event`).
    fn event(&self) -> Option<Event> {
        let ts_ms = match self.ts? {
            Value::Int(ms) => i64::try_from(ms).ok()?,
            Value::Str(text) => rfc3339_ms(std::str::from_utf8(text).ok()?)?,
        };
        if !(MIN_TS_MS..MAX_TS_MS).contains(&ts_ms) {
            return None;
        }
        let user = Eui64::parse_bytes(self.user?)?;
        let count = self.count.unwrap_or(1);
        if count == 0 {
            return None;
        }
        let kind = match self.event? {
            b"request" if self.code.is_some_and(|c| c.starts_with(b"E")) => {
                EventKind::RejectedRequest
            }
            b"request" => EventKind::Request,
            b"queued" if matches!(self.kind, Some(b"device_alert" | b"dcc_alert")) => {
                EventKind::QueuedAlert
            }
            b"queued" => EventKind::QueuedResponse,
            b"delivered" => EventKind::Delivered,
            b"delivery_failed" => EventKind::DeliveryFailed,
            b"expired" => EventKind::Expired,
            b"depth" => EventKind::Depth,
            _ => return None,
        };
        let value = if kind == EventKind::Depth {
            self.depth?
        } else {
            count
        };
        Some(Event {
            ts_ms,
            user,
            kind,
            value,
            srv: self
                .srv
                .and_then(|s| Srv::parse(std::str::from_utf8(s).ok()?))
                .unwrap_or(Srv::NONE),
            alert: self.alert.map_or(AlertCode::NONE, AlertCode::from_bytes),
            reason: self
                .reason
                .map_or(FailureReason::Other, FailureReason::parse_bytes),
        })
    }
}

/// Position of the first `"`, eight bytes at a time (a word-wide zero-byte test), then byte by byte for the tail.
fn find_quote(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let mut words = bytes.chunks_exact(8);
    let mut offset = 0;
    for word in words.by_ref() {
        let mut eight = [0u8; 8];
        eight.copy_from_slice(word);
        let x = u64::from_le_bytes(eight) ^ (ONES * u64::from(b'"'));
        let found = x.wrapping_sub(ONES) & !x & HIGHS;
        if found != 0 {
            return Some(offset + (found.trailing_zeros() / 8) as usize);
        }
        offset += 8;
    }
    words
        .remainder()
        .iter()
        .position(|&b| b == b'"')
        .map(|i| offset + i)
}

struct Cursor<'a> {
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

    /// A string: the line has no escapes or control bytes, so it ends at the next quote. (Strings here are a
    /// few bytes long: a plain loop beats memchr's dispatch.)
    fn string(&mut self) -> Option<&'a [u8]> {
        self.expect(b'"')?;
        let start = self.at;
        let length = find_quote(&self.bytes[start..])?;
        self.at = start + length + 1;
        Some(&self.bytes[start..start + length])
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
                // Up to 18 digits cannot overflow a u64; longer numbers go to serde_json.
                if digits.len() > 18 {
                    return None;
                }
                Some(Value::Int(
                    digits
                        .iter()
                        .fold(0u64, |n, &d| n * 10 + u64::from(d - b'0')),
                ))
            }
            _ => None,
        }
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
                let reference = parse_with_serde(line.as_bytes()).and_then(|raw| build_event(&raw));
                prop_assert_eq!(Ok(fast), reference, "{}", line);
            }
        }
    }

    proptest! {
        #[test]
        fn find_quote_finds_the_first_quote(bytes in proptest::collection::vec(prop_oneof![Just(b'"'), any::<u8>()], 0..40)) {
            prop_assert_eq!(find_quote(&bytes), bytes.iter().position(|&b| b == b'"'));
        }
    }

    #[test]
    fn takes_the_common_lines() {
        for line in [
            r#"{"ts":1773133200104,"user":"90-B3-D5-1F-30-01-00-07","event":"request","srv":"4.1.1","count":181}"#,
            r#"{"ts":"2026-03-10T09:00:00.512Z","user":"4ce1730000001101","event":"request","srv":"2.2","device":"00-1B-C5-0A-11-22-33-44","req_id":"4C-E1-73-00-00-00-11-01:00-1B-C5-0A-11-22-33-44:1773133200512"}"#,
            r#"{"ts":1773133200000,"user":"90b3d51f30010007","event":"depth","depth":0}"#,
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
