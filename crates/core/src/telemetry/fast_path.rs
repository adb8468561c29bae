//! A fast path for the one shape the DSP exporter writes: a compact flat object of plain keys, unescaped strings
//! and non-negative integers, making a valid event. Anything else (whitespace, escapes, control bytes, nesting, null,
//! fractions, duplicates, any invalid field) returns `None` and the line goes through
//! serde_json, which stays the reference for what is valid and words every error. A property test holds the fast
//! path to the reference on every line it accepts.
//!
//! Why it exists: serde_json's generic struct machinery costs ~300 ns a line, which alone would cap replay near
//! 3 M lines/s on two cores; this scanner takes a fraction of that for the common line.

use super::event::Event;
use super::fields::{LineFields, MAX_LINE_BYTES, Number, Ts, build_event};

/// Reads the line that starts at `start` in `data` (a block of lines, or one line) into an event, and returns it
/// with where the line ends (the offset of its `\n`, or `data.len()`). `None` means "not the common shape, or not
/// valid: ask the reference parser", which also words the error. So this only has to be right about lines it
/// accepts.
///
/// One pass: each field is read where the previous one ended, and the byte after the closing brace must end the
/// line, so the line's end is found by reading it rather than by a search for `\n` beforehand. Every byte of an
/// accepted line is checked by exactly one step: the structural bytes one by one, strings sixteen bytes at a time
/// up to their closing quote (no escape, control or non-ASCII byte before it), numbers sixteen bytes at a time.
pub(crate) fn scan(data: &[u8], start: usize) -> Option<(Event, usize)> {
    if data.get(start) != Some(&b'{') {
        return None;
    }
    let mut fields = LineFields::default();
    let mut at = start + 1;
    // The exporter writes `ts`, `user` and `event` first: read them without matching their keys.
    if let Some(after) = header(data, at, &mut fields) {
        at = after;
        match data.get(at)? {
            b',' => at += 1,
            b'}' => return finish(data, start, at, &fields),
            _ => return None,
        }
    }
    loop {
        if data.get(at) != Some(&b'"') {
            return None;
        }
        let key_end = closing_quote(data, at + 1)?;
        if data.get(key_end + 1) != Some(&b':') {
            return None;
        }
        let key = &data[at + 1..key_end];
        at = key_end + 2;
        let value = match data.get(at)? {
            b'"' => {
                let end = closing_quote(data, at + 1)?;
                let text = &data[at + 1..end];
                at = end + 1;
                Value::Str(text)
            }
            b'0'..=b'9' => {
                let (number, length) = number(data, at)?;
                at += length;
                Value::Int(number)
            }
            _ => return None,
        };
        read(&mut fields, key, value)?;
        match data.get(at)? {
            b',' => at += 1,
            b'}' => break,
            _ => return None,
        }
    }
    finish(data, start, at, &fields)
}

/// The event of a line whose closing brace is at `brace`, if the line ends there.
#[inline]
fn finish(
    data: &[u8],
    start: usize,
    brace: usize,
    fields: &LineFields<'_>,
) -> Option<(Event, usize)> {
    let end = brace + 1;
    if (end < data.len() && data[end] != b'\n') || end - start > MAX_LINE_BYTES {
        return None;
    }
    Some((build_event(fields).ok()?, end))
}

/// `"ts":N,"user":"ID","event":"NAME"` at `at`: fills those three fields and returns where the header ends.
#[inline]
fn header<'a>(data: &'a [u8], at: usize, fields: &mut LineFields<'a>) -> Option<usize> {
    let at = at + prefix(data, at, br#""ts":"#)?;
    let (ts, length) = number(data, at)?;
    let at = at + length;
    let at = at + prefix(data, at, br#","user":""#)?;
    let user_end = closing_quote(data, at)?;
    let user = &data[at..user_end];
    let at = user_end + 1;
    let at = at + prefix(data, at, br#","event":""#)?;
    let event_end = closing_quote(data, at)?;
    fields.ts = Some(Ts::Millis(i64::try_from(ts).ok()?));
    (fields.user, fields.event) = (Some(user), Some(&data[at..event_end]));
    Some(event_end + 1)
}

/// The length of `expected` when `data` holds it at `at`.
#[inline]
fn prefix(data: &[u8], at: usize, expected: &[u8]) -> Option<usize> {
    (data.get(at..at + expected.len())? == expected).then_some(expected.len())
}

/// The offset of the quote closing a string that starts at `from`, if no escape, control or non-ASCII byte comes
/// before it (such strings go to serde_json).
fn closing_quote(data: &[u8], from: usize) -> Option<usize> {
    let mut at = from;
    while at < data.len() {
        let classes = classify(&block_at(data, at));
        if classes.quotes != 0 {
            let quote = classes.quotes.trailing_zeros();
            return (classes.odd & ((1 << quote) - 1) == 0).then_some(at + quote as usize);
        }
        if classes.odd != 0 {
            return None;
        }
        at += 16;
    }
    None
}

/// The integer at `at` (no sign, fraction, exponent or leading zero; at most 15 digits, longer ones go to
/// serde_json) and its length in bytes. The digits are found and read in one sixteen-byte block: no loop.
fn number(data: &[u8], at: usize) -> Option<(u64, usize)> {
    let block = block_at(data, at);
    let length = (!digit_mask(&block)).trailing_zeros() as usize;
    if length == 0 || length > 15 || (length > 1 && block[0] == b'0') {
        return None;
    }
    let word =
        |from: usize| u64::from_le_bytes(block[from..from + 8].try_into().unwrap_or_default());
    Some(match length {
        ..=8 => (leading(word(0), length), length),
        _ => (
            leading(word(0), length - 8) * 100_000_000 + eight_digits(word(length - 8)),
            length,
        ),
    })
}

/// The value of the first `count` (1 to 8) digits of a little-endian word: the digits are moved up to the end of
/// the word and the bytes before them filled with `0`s, so they read as eight digits.
fn leading(word: u64, count: usize) -> u64 {
    let spare = 8 - count;
    let zeros = 0x3030_3030_3030_3030u64
        .checked_shr(8 * count as u32)
        .unwrap_or(0);
    eight_digits(word.checked_shl(8 * spare as u32).unwrap_or(0) | zeros)
}

/// Sixteen bytes from `at`: straight from the block, or padded with spaces at its end.
#[inline]
fn block_at(data: &[u8], at: usize) -> [u8; 16] {
    match data
        .get(at..at + 16)
        .and_then(|block| block.try_into().ok())
    {
        Some(block) => block,
        None => {
            let mut block = [b' '; 16];
            let tail = data.get(at..).unwrap_or_default();
            let length = tail.len().min(16);
            block[..length].copy_from_slice(&tail[..length]);
            block
        }
    }
}

/// Eight ASCII digits in a little-endian word (first digit lowest), combined pairwise: 2, then 4, then 8 digits.
fn eight_digits(word: u64) -> u64 {
    let v = word - 0x3030_3030_3030_3030;
    let v = (v * 10 + (v >> 8)) & 0x00ff_00ff_00ff_00ff;
    let v = (v * 100 + (v >> 16)) & 0x0000_ffff_0000_ffff;
    (v * 10_000 + (v >> 32)) & 0xffff_ffff
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
#[inline]
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

/// A bit for each ASCII digit of sixteen bytes.
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
#[inline]
fn digit_mask(block: &[u8; 16]) -> u16 {
    use std::arch::x86_64::{
        _mm_and_si128, _mm_cmpgt_epi8, _mm_cmplt_epi8, _mm_loadu_si128, _mm_movemask_epi8,
        _mm_set1_epi8,
    };
    // SAFETY: as in `classify`. Signed compares: bytes >= 0x80 are negative, never above `/`.
    unsafe {
        let bytes = _mm_loadu_si128(block.as_ptr().cast());
        let digits = _mm_and_si128(
            _mm_cmpgt_epi8(bytes, _mm_set1_epi8(b'/' as i8)),
            _mm_cmplt_epi8(bytes, _mm_set1_epi8(b':' as i8)),
        );
        _mm_movemask_epi8(digits) as u16
    }
}

/// Marks the bytes of sixteen that pass `test`, a bit each.
fn mark(block: &[u8; 16], test: fn(u8) -> bool) -> u16 {
    block
        .iter()
        .enumerate()
        .fold(0u16, |bits, (i, &b)| bits | (u16::from(test(b)) << i))
}

/// [`classify`] a byte at a time: the definition, for other targets and for testing the vector version.
#[cfg_attr(all(target_arch = "x86_64", target_feature = "sse2"), allow(dead_code))]
fn classify_bytewise(block: &[u8; 16]) -> ByteClasses {
    ByteClasses {
        quotes: mark(block, |b| b == b'"'),
        odd: mark(block, |b| b == b'\\' || !(0x20..0x80).contains(&b)),
    }
}

/// [`digit_mask`] a byte at a time.
#[cfg_attr(all(target_arch = "x86_64", target_feature = "sse2"), allow(dead_code))]
fn digit_mask_bytewise(block: &[u8; 16]) -> u16 {
    mark(block, |b| b.is_ascii_digit())
}

#[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
fn classify(block: &[u8; 16]) -> ByteClasses {
    classify_bytewise(block)
}

#[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
fn digit_mask(block: &[u8; 16]) -> u16 {
    digit_mask_bytewise(block)
}

#[derive(Clone, Copy)]
enum Value<'a> {
    Str(&'a [u8]),
    Int(u64),
}

/// Puts the value of field `key` into its slot of `fields`. The key says what type to expect; unknown fields
/// are skipped. `None` for a repeated field or a value of an unusual type (serde_json then decides).
fn read<'a>(fields: &mut LineFields<'a>, key: &[u8], value: Value<'a>) -> Option<()> {
    fn text<'a>(slot: &mut Option<&'a [u8]>, value: Value<'a>) -> Option<()> {
        let Value::Str(text) = value else { return None };
        slot.replace(text).is_none().then_some(())
    }
    fn integer(slot: &mut Number, value: Value<'_>) -> Option<()> {
        let Value::Int(number) = value else {
            return None;
        };
        (std::mem::replace(slot, Number::Unsigned(number)) == Number::Absent).then_some(())
    }
    match key {
        b"ts" => {
            let ts = match value {
                Value::Int(ms) => Ts::Millis(i64::try_from(ms).ok()?),
                Value::Str(text) => Ts::Text(text),
            };
            fields.ts.replace(ts).is_none().then_some(())
        }
        b"user" => text(&mut fields.user, value),
        b"event" => text(&mut fields.event, value),
        b"count" => integer(&mut fields.count, value),
        b"srv" => text(&mut fields.srv, value),
        b"kind" => text(&mut fields.kind, value),
        b"alert" => text(&mut fields.alert, value),
        b"code" => text(&mut fields.code, value),
        b"reason" => text(&mut fields.reason, value),
        b"depth" => integer(&mut fields.depth, value),
        _ => Some(()),
    }
}

#[cfg(test)]
mod tests {
    use super::super::fields::build_event;
    use super::super::parse::parse_with_serde;
    use super::*;
    use proptest::prelude::*;

    /// The fast path on one line, as `parse_line` takes it: the whole line or nothing.
    fn scan_line(line: &[u8]) -> Option<Event> {
        scan(line, 0).and_then(|(event, end)| (end == line.len()).then_some(event))
    }

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
            if let Some(fast) = scan_line(line.as_bytes()) {
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
        fn digit_mask_agrees_with_its_definition(block in proptest::array::uniform16(prop_oneof![b'0'..=b'9', any::<u8>()])) {
            prop_assert_eq!(digit_mask(&block), digit_mask_bytewise(&block));
        }

        #[test]
        fn closing_quote_finds_the_first_quote_after_plain_bytes(bytes in proptest::collection::vec(prop_oneof![Just(b'"'), Just(b'\\'), Just(b'\n'), any::<u8>()], 0..40)) {
            let first = bytes.iter().position(|&b| b == b'"');
            let plain_before = |end: usize| bytes[..end].iter().all(|&b| b != b'\\' && (0x20..0x80).contains(&b));
            prop_assert_eq!(closing_quote(&bytes, 0), first.filter(|&q| plain_before(q)));
        }

        #[test]
        fn number_reads_every_number_of_up_to_15_digits(n in 0u64..1_000_000_000_000_000, tail in "[,}x.\n]?") {
            let text = format!("{n}{tail}");
            prop_assert_eq!(number(text.as_bytes(), 0), Some((n, n.to_string().len())));
        }

        #[test]
        fn number_refuses_what_is_not_a_plain_integer(text in "(0[0-9]{1,20}|[1-9][0-9]{15,25}|[-+\"a ][0-9]{0,3})[,}]?") {
            prop_assert_eq!(number(text.as_bytes(), 0), None, "{}", text);
        }

        #[test]
        fn a_block_of_lines_reads_as_its_lines_one_by_one(lines in proptest::collection::vec(exporter_line(), 1..6), crlf in any::<bool>()) {
            let end = if crlf { "\r\n" } else { "\n" };
            let block: String = lines.iter().map(|line| format!("{line}{end}")).collect();
            let mut start = 0;
            for line in &lines {
                let alone = scan_line(line.as_bytes());
                match scan(block.as_bytes(), start) {
                    Some((event, stop)) => {
                        prop_assert_eq!(Some(event), alone);
                        prop_assert_eq!(&block[start..stop], line.as_str());
                    }
                    None => prop_assert!(crlf || alone.is_none(), "{}", line),
                }
                start += line.len() + end.len();
            }
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
            if let Some(fast) = scan_line(line.as_bytes()) {
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
            assert!(scan_line(line.as_bytes()).is_some(), "{line}");
        }
        for line in [
            r#"{"ts":1,"ts":2}"#,
            r#"{"ts":1} x"#,
            r#"{"a":null}"#,
            r#"{"a":"\n"}"#,
            r#"{"count":-1}"#,
        ] {
            assert!(scan_line(line.as_bytes()).is_none(), "{line}");
        }
    }
}
