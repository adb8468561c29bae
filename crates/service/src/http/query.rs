//! What every route reads the same way: times as RFC 3339 or milliseconds, with the field named in the error, and a
//! query string or JSON body that does not parse answered with the API's JSON error body, never axum's plain text.

use axum::Json;
use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::http::api_error::ApiError;

/// `axum::extract::Query` whose rejection is the API's JSON error (400 with `error`), not axum's plain text.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(value)| ApiQuery(value))
            .map_err(|rejection| ApiError::invalid(rejection.body_text()))
    }
}

/// `axum::Json` whose rejections (415 without `Content-Type: application/json`, 400 for JSON that does not parse,
/// 422 for the wrong shape) keep their status and carry the API's JSON error body.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        Json::<T>::from_request(request, state)
            .await
            .map(|Json(value)| ApiJson(value))
            .map_err(|rejection| ApiError::Rejected {
                status: rejection.status(),
                reason: rejection.body_text(),
            })
    }
}

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
