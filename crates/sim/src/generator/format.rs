//! Hand-rolled formatting for the generator's hot path: integers, RFC 3339 times and the EUI-64 spellings, written
//! straight into a byte buffer (serde per line would be several times slower).

/// How an EUI-64 is spelled on a line; the contract allows all of them.
#[derive(Copy, Clone, Eq, PartialEq, Debug)]
pub(crate) enum Spelling {
    /// `90-B3-D5-1F-30-01-00-07`, the report form.
    Hyphen,
    /// `90b3d51f30010007`.
    Compact,
    /// `90:B3:D5:1F:30:01:00:07`.
    Colon,
    /// `90-b3-d5-1f-30-01-00-07`.
    HyphenLower,
}

pub(crate) fn push_u64(buf: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    buf.extend_from_slice(&digits[at..]);
}

pub(crate) fn push_i64(buf: &mut Vec<u8>, n: i64) {
    if n < 0 {
        buf.push(b'-');
    }
    push_u64(buf, n.unsigned_abs());
}

fn push_2(buf: &mut Vec<u8>, n: u32) {
    buf.push(b'0' + (n / 10 % 10) as u8);
    buf.push(b'0' + (n % 10) as u8);
}

/// Proleptic Gregorian date of a day count since 1970-01-01 (Howard Hinnant's `civil_from_days`).
pub(crate) fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// RFC 3339 for `ms`, written in the local time of `offset_min` minutes east of UTC (`Z` when 0), with
/// milliseconds when `millis`.
pub(crate) fn push_rfc3339(buf: &mut Vec<u8>, ms: i64, offset_min: i32, millis: bool) {
    let local = ms + i64::from(offset_min) * 60_000;
    let days = local.div_euclid(86_400_000);
    let in_day = local.rem_euclid(86_400_000);
    let (year, month, day) = civil_from_days(days);
    push_i64(buf, year);
    buf.push(b'-');
    push_2(buf, month);
    buf.push(b'-');
    push_2(buf, day);
    buf.push(b'T');
    let secs = (in_day / 1000) as u32;
    push_2(buf, secs / 3600);
    buf.push(b':');
    push_2(buf, secs / 60 % 60);
    buf.push(b':');
    push_2(buf, secs % 60);
    if millis {
        let frac = (in_day % 1000) as u32;
        buf.push(b'.');
        buf.push(b'0' + (frac / 100) as u8);
        push_2(buf, frac % 100);
    }
    if offset_min == 0 {
        buf.push(b'Z');
    } else {
        buf.push(if offset_min < 0 { b'-' } else { b'+' });
        let abs = offset_min.unsigned_abs();
        push_2(buf, abs / 60);
        buf.push(b':');
        push_2(buf, abs % 60);
    }
}

pub(crate) fn push_eui(buf: &mut Vec<u8>, value: u64, spelling: Spelling) {
    const UPPER: &[u8; 16] = b"0123456789ABCDEF";
    const LOWER: &[u8; 16] = b"0123456789abcdef";
    let (digits, separator) = match spelling {
        Spelling::Hyphen => (UPPER, Some(b'-')),
        Spelling::Compact => (LOWER, None),
        Spelling::Colon => (UPPER, Some(b':')),
        Spelling::HyphenLower => (LOWER, Some(b'-')),
    };
    for (index, byte) in value.to_be_bytes().into_iter().enumerate() {
        if index > 0
            && let Some(separator) = separator
        {
            buf.push(separator);
        }
        buf.push(digits[usize::from(byte >> 4)]);
        buf.push(digits[usize::from(byte & 0xf)]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stormwatch_core::telemetry::Eui64;

    fn text(build: impl FnOnce(&mut Vec<u8>)) -> String {
        let mut buf = Vec::new();
        build(&mut buf);
        String::from_utf8(buf).unwrap()
    }

    #[test]
    fn integers() {
        for n in [0u64, 7, 10, 1_773_133_200_000, u64::MAX] {
            assert_eq!(text(|b| push_u64(b, n)), n.to_string());
        }
        assert_eq!(text(|b| push_i64(b, -42)), "-42");
    }

    #[test]
    fn rfc3339_matches_the_time_crate() {
        use time::format_description::well_known::Rfc3339;
        for ms in [
            0i64,
            1_773_133_200_117,
            1_709_164_800_000,
            951_782_400_999,
            4_102_444_799_000,
        ] {
            let expected =
                time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
                    .unwrap()
                    .format(&Rfc3339)
                    .unwrap();
            let ours = text(|b| push_rfc3339(b, ms, 0, true));
            let parsed = time::OffsetDateTime::parse(&ours, &Rfc3339).unwrap();
            assert_eq!(
                parsed.unix_timestamp_nanos(),
                i128::from(ms) * 1_000_000,
                "{ours} vs {expected}"
            );
        }
        assert_eq!(
            text(|b| push_rfc3339(b, 1_773_133_200_512, 0, true)),
            "2026-03-10T09:00:00.512Z"
        );
        assert_eq!(
            text(|b| push_rfc3339(b, 1_773_133_200_700, 60, true)),
            "2026-03-10T10:00:00.700+01:00"
        );
        let back = time::OffsetDateTime::parse("2026-03-10T10:00:00.700+01:00", &Rfc3339).unwrap();
        assert_eq!(back.unix_timestamp_nanos() / 1_000_000, 1_773_133_200_700);
    }

    #[test]
    fn every_spelling_parses_back() {
        let id = 0x90B3_D51F_3001_0007u64;
        for spelling in [
            Spelling::Hyphen,
            Spelling::Compact,
            Spelling::Colon,
            Spelling::HyphenLower,
        ] {
            let written = text(|b| push_eui(b, id, spelling));
            assert_eq!(Eui64::parse(&written), Some(Eui64(id)), "{written}");
        }
        assert_eq!(
            text(|b| push_eui(b, id, Spelling::Hyphen)),
            "90-B3-D5-1F-30-01-00-07"
        );
    }
}
