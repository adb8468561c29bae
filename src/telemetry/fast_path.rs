//! A fast path for the one shape the DSP exporter writes: a compact flat object of plain keys, unescaped strings
//! and non-negative integers, making a valid event. Anything else (whitespace, escapes, control bytes, nesting, null,
//! fractions, duplicates, any invalid field) returns `None` and the line goes through
//! serde_json, which stays the reference for what is valid and words every error. A property test holds the fast
//! path to the reference on every line it accepts.
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
    // With no escape, control or non-ASCII byte anywhere, a string ends at the next quote and every field is
    // plain ASCII, read as bytes without a UTF-8 check. Every other byte is structural (checked exactly below) or
    // a digit of a number.
    if !is_plain(line) {
        return None;
    }
    let body = line.strip_prefix(b"{")?.strip_suffix(b"}")?;
    let mut fields = Fields::default();
    // The exporter writes `ts`, `user` and `event` first: read them straight off when it did; any other order
    // goes through the general loop.
    let mut rest = match header(body) {
        Some(header) => {
            fields.ts = Some(Value::Int(header.ts));
            (fields.user, fields.event) = (Some(header.user), Some(header.event));
            match header.rest.split_first() {
                None => return fields.event(),
                Some((b',', more)) => more,
                Some(_) => return None,
            }
        }
        None => body,
    };
    loop {
        let (key, after_key) = quoted(rest)?;
        let (value, after_value) = value(after_key.strip_prefix(b":")?)?;
        fields.assign(key, value)?;
        rest = match after_value.split_first() {
            None => break,
            // After a comma another field must follow: `{"a":1,}` fails in `quoted` on the next round.
            Some((b',', next)) => next,
            Some(_) => return None,
        };
    }
    fields.event()
}

/// The exporter's first three fields, and the rest of the line's body.
struct Header<'a> {
    ts: u64,
    user: &'a [u8],
    event: &'a [u8],
    rest: &'a [u8],
}

/// `"ts":N,"user":"ID","event":"NAME"` at the start of a line's body.
fn header(body: &[u8]) -> Option<Header<'_>> {
    let (ts, rest) = match value(body.strip_prefix(br#""ts":"#)?)? {
        (Value::Int(ts), rest) => (ts, rest),
        (Value::Str(_), _) => return None,
    };
    let (user, rest) = quoted(rest.strip_prefix(b",\"user\":")?)?;
    let (event, rest) = quoted(rest.strip_prefix(b",\"event\":")?)?;
    Some(Header {
        ts,
        user,
        event,
        rest,
    })
}

/// True when the line holds no escape, control byte (tabs included) or non-ASCII byte; sixteen bytes at a time.
fn is_plain(line: &[u8]) -> bool {
    let mut blocks = line.chunks_exact(16);
    let mut odd = 0u16;
    for block in blocks.by_ref() {
        odd |= block.try_into().map_or(1, odd_bytes);
    }
    // The tail, padded with spaces.
    let mut tail = [b' '; 16];
    tail[..blocks.remainder().len()].copy_from_slice(blocks.remainder());
    odd | odd_bytes(&tail) == 0
}

/// A string at the start of `bytes`: its contents and what follows the closing quote.
fn quoted(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let inner = bytes.strip_prefix(b"\"")?;
    let length = find_quote(inner)?;
    Some((&inner[..length], &inner[length + 1..]))
}

/// A string, or an integer (no sign, fraction, exponent or leading zero); and what follows it.
fn value(bytes: &[u8]) -> Option<(Value<'_>, &[u8])> {
    match bytes.first()? {
        b'"' => quoted(bytes).map(|(text, rest)| (Value::Str(text), rest)),
        b'0'..=b'9' => {
            let length = bytes
                .iter()
                .position(|b| !b.is_ascii_digit())
                .unwrap_or(bytes.len());
            let (digits, rest) = bytes.split_at(length);
            // Up to 18 digits cannot overflow a u64; longer numbers go to serde_json.
            if (length > 1 && digits[0] == b'0')
                || length > 18
                || matches!(rest.first(), Some(b'.' | b'e' | b'E'))
            {
                return None;
            }
            Some((Value::Int(decimal(digits)), rest))
        }
        _ => None,
    }
}

/// Position of the first `"`, eight bytes at a time (a word-wide zero-byte test), then byte by byte for the tail.
fn find_quote(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let mut words = bytes.chunks_exact(8);
    let mut offset = 0;
    for word in words.by_ref() {
        let x = u64::from_le_bytes(word.try_into().ok()?) ^ (ONES * u64::from(b'"'));
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

/// A bit per byte of `block` for each escape, control or non-ASCII byte: sixteen bytes in a few SSE2
/// instructions, where a byte loop takes several instructions a byte.
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
fn odd_bytes(block: &[u8; 16]) -> u16 {
    use std::arch::x86_64::{
        _mm_cmpeq_epi8, _mm_cmplt_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_or_si128,
        _mm_set1_epi8,
    };
    // SAFETY: the cfg makes SSE2 present (it is part of every x86_64 target), and `_mm_loadu_si128` reads the
    // 16 bytes of `block`, with no alignment requirement.
    unsafe {
        let bytes = _mm_loadu_si128(block.as_ptr().cast());
        // A signed compare: bytes >= 0x80 are negative, so "less than 0x20" also catches every non-ASCII byte.
        let odd = _mm_or_si128(
            _mm_cmpeq_epi8(bytes, _mm_set1_epi8(b'\\' as i8)),
            _mm_cmplt_epi8(bytes, _mm_set1_epi8(0x20)),
        );
        _mm_movemask_epi8(odd) as u16
    }
}

/// [`odd_bytes`] a byte at a time: the definition, for other targets and for testing the vector version.
#[cfg_attr(all(target_arch = "x86_64", target_feature = "sse2"), allow(dead_code))]
fn odd_bytes_bytewise(block: &[u8; 16]) -> u16 {
    block.iter().enumerate().fold(0, |odd, (i, &b)| {
        odd | (u16::from(b == b'\\' || !(0x20..0x80).contains(&b)) << i)
    })
}

#[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
fn odd_bytes(block: &[u8; 16]) -> u16 {
    odd_bytes_bytewise(block)
}

/// The value of at most 18 ASCII digits: eight at a time in a `u64` (a millisecond `ts` has 13), the rest singly.
fn decimal(digits: &[u8]) -> u64 {
    let mut eights = digits.chunks_exact(8);
    let mut value = 0u64;
    for eight in eights.by_ref() {
        let word = u64::from_le_bytes(eight.try_into().unwrap_or([b'0'; 8]));
        value = value * 100_000_000 + eight_digits(word);
    }
    eights
        .remainder()
        .iter()
        .fold(value, |n, &d| n * 10 + u64::from(d - b'0'))
}

/// Eight ASCII digits in a little-endian word (first digit lowest), combined pairwise: 2, then 4, then 8 digits.
fn eight_digits(word: u64) -> u64 {
    let v = word - 0x3030_3030_3030_3030;
    let v = (v * 10 + (v >> 8)) & 0x00ff_00ff_00ff_00ff;
    let v = (v * 100 + (v >> 16)) & 0x0000_ffff_0000_ffff;
    (v * 10_000 + (v >> 32)) & 0xffff_ffff
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
            srv: self.srv.and_then(Srv::parse_bytes).unwrap_or(Srv::NONE),
            alert: self.alert.map_or(AlertCode::NONE, AlertCode::from_bytes),
            reason: self
                .reason
                .map_or(FailureReason::Other, FailureReason::parse_bytes),
        })
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

    /// Lines in the exporter's order (`ts`, `user`, `event` first), with any values and any fields after.
    fn exporter_line() -> impl Strategy<Value = String> {
        // Mostly valid header values, so that most lines are accepted and checked against the reference.
        let ts = prop_oneof![3 => Just("1773133200104".to_owned()), 1 => value()];
        let user = prop_oneof![
            3 => Just("\"90-B3-D5-1F-30-01-00-07\"".to_owned()),
            1 => Just("\"90b3d51f30010007\"".to_owned()),
            1 => value()
        ];
        let event = prop_oneof![
            3 => Just("\"request\"".to_owned()),
            1 => Just("\"queued\"".to_owned()),
            1 => value()
        ];
        (
            ts,
            user,
            event,
            proptest::collection::vec((key(), value()), 0..5),
            prop_oneof![4 => Just(""), 1 => Just(","), 1 => Just(" ")],
        )
            .prop_map(|(ts, user, event, rest, tail)| {
                let rest: String = rest.iter().map(|(k, v)| format!(",\"{k}\":{v}")).collect();
                format!(r#"{{"ts":{ts},"user":{user},"event":{event}{rest}{tail}}}"#)
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
        fn odd_bytes_agrees_with_its_definition(block in proptest::array::uniform16(any::<u8>())) {
            prop_assert_eq!(odd_bytes(&block), odd_bytes_bytewise(&block));
        }

        #[test]
        fn find_quote_finds_the_first_quote(bytes in proptest::collection::vec(prop_oneof![Just(b'"'), any::<u8>()], 0..40)) {
            prop_assert_eq!(find_quote(&bytes), bytes.iter().position(|&b| b == b'"'));
        }

        #[test]
        fn decimal_reads_every_number_of_up_to_18_digits(n in 0u64..1_000_000_000_000_000_000) {
            prop_assert_eq!(decimal(n.to_string().as_bytes()), n);
        }
    }

    #[test]
    fn fast_path_agrees_with_serde_json_in_the_exporter_order() {
        use proptest::test_runner::{RngAlgorithm, TestRng, TestRunner};
        let config = ProptestConfig::with_cases(2_000);
        let mut runner =
            TestRunner::new_with_rng(config, TestRng::deterministic_rng(RngAlgorithm::ChaCha));
        let accepted = std::cell::Cell::new(0);
        let outcome = runner.run(&exporter_line(), |line| {
            if let Some(fast) = scan(line.as_bytes()) {
                accepted.set(accepted.get() + 1);
                let reference = parse_with_serde(line.as_bytes()).and_then(|raw| build_event(&raw));
                prop_assert_eq!(Ok(fast), reference, "{}", line);
            }
            Ok(())
        });
        if let Err(failure) = outcome {
            panic!("{failure}");
        }
        // The property only compares lines the fast path accepts: make sure it accepted a good share.
        assert!(
            accepted.get() >= 100,
            "only {} of 2000 lines were accepted",
            accepted.get()
        );
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
