//! Milliseconds since the Unix epoch to and from RFC 3339 text: the one conversion every crate uses, on the `time`
//! crate's RFC 3339 support.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// An RFC 3339 time with any offset, to milliseconds since the epoch (finer digits are dropped). The error is the
/// `time` crate's, which says what is wrong with the text.
pub fn parse(text: &str) -> Result<i64, time::error::Parse> {
    let time = OffsetDateTime::parse(text, &Rfc3339)?;
    // Years 0000-9999 in nanoseconds divided down to milliseconds always fit an i64.
    Ok(time.unix_timestamp_nanos().div_euclid(1_000_000) as i64)
}

/// [`parse`], when the reason does not matter.
pub fn parse_ms(text: &str) -> Option<i64> {
    parse(text).ok()
}

/// Milliseconds as RFC 3339 in UTC (`Z`), with a fraction only when there is one; `None` outside the years RFC 3339
/// can write.
pub fn format_ms(ms: i64) -> Option<String> {
    let time = OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok()?;
    time.format(&Rfc3339).ok()
}

/// [`format_ms`] truncated to the second: wall-clock and schedule times carry milliseconds nobody reads.
pub fn format_seconds(ms: i64) -> Option<String> {
    format_ms(ms - ms.rem_euclid(1000))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_edges() {
        assert_eq!(
            parse_ms("2026-03-10T10:00:00+01:00"),
            Some(1_773_133_200_000)
        );
        assert_eq!(
            format_ms(1_773_133_200_000).as_deref(),
            Some("2026-03-10T09:00:00Z")
        );
        assert_eq!(
            format_ms(1_773_133_200_250).as_deref(),
            Some("2026-03-10T09:00:00.25Z")
        );
        assert_eq!(
            format_seconds(1_773_133_200_250).as_deref(),
            Some("2026-03-10T09:00:00Z")
        );
        assert_eq!(parse_ms("2026-03-10T09:00:00.25Z"), Some(1_773_133_200_250));
        assert_eq!(parse_ms("1969-12-31T23:59:59.9995Z"), Some(-1));
        assert_eq!(parse_ms("2026-13-01"), None);
        assert!(parse("yesterday").is_err());
        assert_eq!(format_ms(i64::MAX), None);
    }
}
