//! Query-string values every list route reads the same way: times as RFC 3339 or milliseconds, with the field
//! named in the error.

use crate::api_error::ApiError;

/// Accepts RFC 3339 or integer milliseconds.
pub fn time_param(field: &str, value: Option<&str>) -> Result<Option<i64>, ApiError> {
    value
        .map(|text| {
            text.parse::<i64>()
                .ok()
                .or_else(|| stormwatch_core::rfc3339::parse_ms(text))
                .ok_or_else(|| {
                    ApiError::field(
                        field,
                        format!("`{text}` is neither RFC 3339 nor milliseconds"),
                    )
                })
        })
        .transpose()
}

/// The `from` and `to` of a list route.
pub fn time_window(
    from: Option<&str>,
    to: Option<&str>,
) -> Result<(Option<i64>, Option<i64>), ApiError> {
    Ok((time_param("from", from)?, time_param("to", to)?))
}
