//! API errors as HTTP responses: a status and a JSON body naming what was wrong (and the field, for validation).

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("missing or unknown bearer token")]
    Unauthorized,
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{reason}")]
    Invalid {
        field: Option<String>,
        index: Option<usize>,
        reason: String,
    },
    #[error("{0}")]
    TooLarge(String),
    /// A body the JSON extractor refused before the handler ran, with the status it chose (415, 400, 422).
    #[error("{reason}")]
    Rejected { status: StatusCode, reason: String },
    #[error("Content-Encoding `{0}` is not supported: send gzip, zstd or identity")]
    UnsupportedEncoding(String),
    #[error("the engine is not running")]
    EngineGone,
    #[error("the engine did not answer within {0} s (see /readyz)")]
    EngineBusy(u64),
    #[error("storage failed: {0}")]
    Store(#[from] crate::store::StoreError),
}

impl ApiError {
    pub fn invalid(reason: impl Into<String>) -> ApiError {
        ApiError::Invalid {
            field: None,
            index: None,
            reason: reason.into(),
        }
    }

    /// A 400 naming the field that was wrong.
    pub fn field(field: &str, reason: impl Into<String>) -> ApiError {
        ApiError::Invalid {
            field: Some(field.to_owned()),
            index: None,
            reason: reason.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = match &self {
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Invalid { .. } => StatusCode::BAD_REQUEST,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Rejected { status, .. } => *status,
            ApiError::UnsupportedEncoding(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::EngineGone | ApiError::EngineBusy(_) | ApiError::Store(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
        };
        let mut body = serde_json::json!({ "error": self.to_string() });
        if let ApiError::Invalid { field, index, .. } = &self {
            if let Some(field) = field {
                body["field"] = field.clone().into();
            }
            if let Some(index) = index {
                body["index"] = (*index).into();
            }
        }
        if status.is_server_error() {
            tracing::error!(error = %self, "API request failed");
        }
        let mut response = (status, Json(body)).into_response();
        if status == StatusCode::UNAUTHORIZED
            && let Ok(value) = "Bearer".parse()
        {
            response
                .headers_mut()
                .insert(axum::http::header::WWW_AUTHENTICATE, value);
        }
        response
    }
}

/// Store errors a person can act on become 404, 403 and 400 (naming the field), not the generic 503 of a failed
/// store.
pub fn store_error(error: crate::store::StoreError) -> ApiError {
    use crate::store::StoreError;
    match error {
        StoreError::NotFound { what, id } => ApiError::NotFound(format!("no {what} `{id}`")),
        error @ StoreError::NotYours { .. } => ApiError::Forbidden(error.to_string()),
        StoreError::Constraint { field, reason } => ApiError::Invalid {
            field: Some(field),
            index: None,
            reason,
        },
        other => ApiError::Store(other),
    }
}
