//! Turning [`ApiError`] into HTTP responses: status from the stable code, JSON body, and
//! `Retry-After` for rate limits.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use siteboot_wire::{ApiError, ErrorCode};

/// A handler failure: always answered as a JSON [`ApiError`].
#[derive(Debug)]
pub struct Failure(pub ApiError);

impl From<ApiError> for Failure {
    fn from(e: ApiError) -> Self {
        Self(e)
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        error_response(self.0)
    }
}

/// The response for an error body.
pub fn error_response(e: ApiError) -> Response {
    let status =
        StatusCode::from_u16(e.code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let retry = e.retry_after_seconds;
    let mut resp = (status, axum::Json(e)).into_response();
    if let Some(secs) = retry {
        if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
            resp.headers_mut()
                .insert(axum::http::header::RETRY_AFTER, v);
        }
    }
    resp
}

/// A 429 body.
pub fn rate_limited(retry_after_seconds: u64, what: &str) -> ApiError {
    ApiError {
        retry_after_seconds: Some(retry_after_seconds),
        ..ApiError::new(
            ErrorCode::RateLimited,
            format!("too many {what}: retry after {retry_after_seconds} seconds"),
        )
    }
}

/// A 500 body naming what was being done (never a secret).
pub fn internal(action: &str) -> ApiError {
    ApiError::new(
        ErrorCode::Internal,
        format!("internal error while trying to {action}; see the service log"),
    )
}
