//! A fast path for the one shape the DSP exporter writes: a compact flat object of plain keys, unescaped strings
//! and non-negative integers, making a valid event. Anything else (whitespace, escapes, control bytes, nesting, null,
//! fractions, duplicates, any invalid field) returns `None` and the line goes through
//! serde_json, which stays the reference for what is valid and words every error. A property test holds the fast
//! path to the reference on every line it accepts.
//!
//! Why it exists: serde_json's generic struct machinery costs ~300 ns a line, which alone would cap replay near
//! 3 M lines/s on two cores; this scanner takes a fraction of that for the common line.

use super::event::Event;
use super::fields::{LineFields, Number, Ts, build_event};

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
    let mut fields = LineFields::default();
    // The exporter writes `ts`, `user` and `event` first: read them straight off when it did; any other order
    // goes through the general loop.
    let mut rest = match header(body) {
        Some(header) => {
            fields.ts = Some(Ts::Millis(header.ts));
            (fields.user, fields.event) = (Some(header.user), Some(header.event));
            match header.rest.split_first() {
                None => return build_event(&fields).ok(),
                Some((b',', more)) => more,
                Some(_) => return None,
            }
        }
        None => body,
    };
    loop {
        let (key, after_key) = quoted(rest)?;
        let after_value = read(&mut fields, key, after_key.strip_prefix(b":")?)?;
        rest = match after_value.split_first() {
            None => break,
            // After a comma another field must follow: `{"a":1,}` fails in `quoted` on the next round.
            Some((b',', next)) => next,
            Some(_) => return None,
        };
    }
    build_event(&fields).ok()
}

/// The exporter's first three fields, and the rest of the line's body.
struct Header<'a> {
    ts: i64,
    user: &'a [u8],
    event: &'a [u8],
    rest: &'a [u8],
}

/// `"ts":N,"user":"ID","event":"NAME"` at the start of a line's body.
fn header(body: &[u8]) -> Option<Header<'_>> {
    let (ts, rest) = match value(body.strip_prefix(br#""ts":"#)?)? {
        // At most 18 digits: always an i64.
        (Value::Int(ts), rest) => (i64::try_from(ts).ok()?, rest),
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
        odd |= block.try_into().map_or(1, |block| classify(block).odd);
    }
    odd | classify(&padded(blocks.remainder())).odd == 0
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
        b'0'..=b'9' => number(bytes).map(|(n, rest)| (Value::Int(n), rest)),
        _ => None,
    }
}

/// An integer at the start of `bytes` (no sign, fraction, exponent or leading zero) and what follows it. Up to 18
/// digits, which cannot overflow a u64; longer numbers go to serde_json.
fn number(bytes: &[u8]) -> Option<(u64, &[u8])> {
    let mut value = 0u64;
    let mut length = 0;
    // Eight digits at a time while they last (a millisecond `ts` has 13), then one at a time.
    while length < 16
        && let Some(word) = bytes.get(length..length + 8)
        && let Ok(word) = <[u8; 8]>::try_from(word)
        && all_digits(u64::from_le_bytes(word))
    {
        value = value * 100_000_000 + eight_digits(u64::from_le_bytes(word));
        length += 8;
    }
    while let Some(&digit @ b'0'..=b'9') = bytes.get(length) {
        value = value * 10 + u64::from(digit - b'0');
        length += 1;
        if length > 18 {
            return None;
        }
    }
    let rest = &bytes[length..];
    if length == 0
        || (length > 1 && bytes[0] == b'0')
        || matches!(rest.first(), Some(b'.' | b'e' | b'E'))
    {
        return None;
    }
    Some((value, rest))
}

/// Whether all eight bytes of a word are ASCII digits: each has the high nibble 3, and adding 6 keeps it 3.
/// (A byte can only carry into its neighbour when it is not a digit itself, which already fails the test.)
fn all_digits(word: u64) -> bool {
    const HIGH_NIBBLES: u64 = 0xf0f0_f0f0_f0f0_f0f0;
    const THREES: u64 = 0x3030_3030_3030_3030;
    word & HIGH_NIBBLES == THREES
        && word.wrapping_add(0x0606_0606_0606_0606) & HIGH_NIBBLES == THREES
}

/// Position of the first `"`, sixteen bytes at a time.
fn find_quote(bytes: &[u8]) -> Option<usize> {
    let mut blocks = bytes.chunks_exact(16);
    let mut offset = 0;
    for block in blocks.by_ref() {
        let quotes = block.try_into().map_or(0, |block| classify(block).quotes);
        if quotes != 0 {
            return Some(offset + quotes.trailing_zeros() as usize);
        }
        offset += 16;
    }
    let quotes = classify(&padded(blocks.remainder())).quotes;
    (quotes != 0).then(|| offset + quotes.trailing_zeros() as usize)
}

/// What a 16-byte block holds, a bit per byte.
#[derive(Debug, PartialEq)]
struct ByteClasses {
    quotes: u16,
    /// Escapes, control bytes and non-ASCII bytes: what the fast path does not read.
    odd: u16,
}

/// The classes of sixteen bytes in a few SSE2 instructions, where a byte loop takes several instructions a byte.
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
fn classify(block: &[u8; 16]) -> ByteClasses {
    use std::arch::x86_64::{
        _mm_cmpeq_epi8, _mm_cmplt_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_or_si128,
        _mm_set1_epi8,
    };
    // SAFETY: the cfg makes SSE2 present (it is part of every x86_64 target), and `_mm_loadu_si128` reads the
    // 16 bytes of `block`, with no alignment requirement.
    unsafe {
        let bytes = _mm_loadu_si128(block.as_ptr().cast());
        let quotes = _mm_cmpeq_epi8(bytes, _mm_set1_epi8(b'"' as i8));
        // A signed compare: bytes >= 0x80 are negative, so "less than 0x20" also catches every non-ASCII byte.
        let odd = _mm_or_si128(
            _mm_cmpeq_epi8(bytes, _mm_set1_epi8(b'\\' as i8)),
            _mm_cmplt_epi8(bytes, _mm_set1_epi8(0x20)),
        );
        ByteClasses {
            quotes: _mm_movemask_epi8(quotes) as u16,
            odd: _mm_movemask_epi8(odd) as u16,
        }
    }
}

/// [`classify`] a byte at a time: the definition, for other targets and for testing the vector version.
#[cfg_attr(all(target_arch = "x86_64", target_feature = "sse2"), allow(dead_code))]
fn classify_bytewise(block: &[u8; 16]) -> ByteClasses {
    let mark = |test: fn(u8) -> bool| {
        block
            .iter()
            .enumerate()
            .fold(0u16, |bits, (i, &b)| bits | (u16::from(test(b)) << i))
    };
    ByteClasses {
        quotes: mark(|b| b == b'"'),
        odd: mark(|b| b == b'\\' || !(0x20..0x80).contains(&b)),
    }
}

#[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
fn classify(block: &[u8; 16]) -> ByteClasses {
    classify_bytewise(block)
}

/// Up to sixteen bytes, padded with spaces (neither quotes nor odd bytes).
fn padded(bytes: &[u8]) -> [u8; 16] {
    let mut block = [b' '; 16];
    let length = bytes.len().min(16);
    block[..length].copy_from_slice(&bytes[..length]);
    block
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

/// Reads the value of field `key` at the start of `bytes` into its slot of `fields`, and returns what follows
/// it. The key says what type to expect, so a known field is read once, straight into place; unknown fields are
/// skipped. `None` for a repeated field or a value of an unusual type (serde_json then decides).
fn read<'a>(fields: &mut LineFields<'a>, key: &[u8], bytes: &'a [u8]) -> Option<&'a [u8]> {
    fn text<'a>(slot: &mut Option<&'a [u8]>, bytes: &'a [u8]) -> Option<&'a [u8]> {
        let (text, rest) = quoted(bytes)?;
        slot.replace(text).is_none().then_some(rest)
    }
    fn integer<'a>(slot: &mut Number, bytes: &'a [u8]) -> Option<&'a [u8]> {
        let (number, rest) = number(bytes)?;
        (std::mem::replace(slot, Number::Unsigned(number)) == Number::Absent).then_some(rest)
    }
    match key {
        b"count" => integer(&mut fields.count, bytes),
        b"srv" => text(&mut fields.srv, bytes),
        b"kind" => text(&mut fields.kind, bytes),
        b"alert" => text(&mut fields.alert, bytes),
        b"code" => text(&mut fields.code, bytes),
        b"reason" => text(&mut fields.reason, bytes),
        b"depth" => integer(&mut fields.depth, bytes),
        b"user" => text(&mut fields.user, bytes),
        b"event" => text(&mut fields.event, bytes),
        b"ts" => {
            let (ts, rest) = value(bytes)?;
            let ts = match ts {
                Value::Int(ms) => Ts::Millis(i64::try_from(ms).ok()?),
                Value::Str(text) => Ts::Text(text),
            };
            fields.ts.replace(ts).is_none().then_some(rest)
        }
        _ => value(bytes).map(|(_, rest)| rest),
    }
}

#[cfg(test)]
mod tests {
    use super::super::fields::build_event;
    use super::super::parse::parse_with_serde;
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
                let reference = parse_with_serde(line.as_bytes()).and_then(|raw| build_event(&raw.fields()));
                prop_assert_eq!(Ok(fast), reference, "{}", line);
            }
        }
    }

    proptest! {
        #[test]
        fn classify_agrees_with_its_definition(block in proptest::array::uniform16(prop_oneof![Just(b'"'), any::<u8>()])) {
            prop_assert_eq!(classify(&block), classify_bytewise(&block));
        }

        #[test]
        fn find_quote_finds_the_first_quote(bytes in proptest::collection::vec(prop_oneof![Just(b'"'), any::<u8>()], 0..40)) {
            prop_assert_eq!(find_quote(&bytes), bytes.iter().position(|&b| b == b'"'));
        }

        #[test]
        fn number_reads_every_number_of_up_to_18_digits(n in 0u64..1_000_000_000_000_000_000, tail in "[,}x.]?") {
            let text = format!("{n}{tail}");
            let expected = (tail != ".").then_some((n, tail.as_bytes()));
            prop_assert_eq!(number(text.as_bytes()), expected);
        }

        #[test]
        fn number_refuses_what_is_not_a_plain_integer(text in "(0[0-9]{1,20}|[1-9][0-9]{18,25}|[-+\"a ][0-9]{0,3})[,}]?") {
            prop_assert_eq!(number(text.as_bytes()), None, "{}", text);
        }

        #[test]
        fn all_digits_is_exact(word in proptest::array::uniform8(prop_oneof![b'0'..=b'9', any::<u8>()])) {
            prop_assert_eq!(all_digits(u64::from_le_bytes(word)), word.iter().all(u8::is_ascii_digit));
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
                let reference =
                    parse_with_serde(line.as_bytes()).and_then(|raw| build_event(&raw.fields()));
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
