//! The error body every siteboot API answers with: a stable `code` for programs and a
//! human `message` that says what to do next. Never contains a secret.

use serde::{Deserialize, Serialize};

/// Stable machine-readable error codes. Adding one is fine; renaming one breaks clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// 422: a field is missing or malformed (`field` says which).
    InvalidRequest,
    /// 413: the body is larger than the service accepts.
    PayloadTooLarge,
    /// 401: the registration credential (token, claim code, enrollment) is not valid.
    /// Unknown, expired and replayed credentials all answer this same code.
    InvalidCredential,
    /// 401: operator credential missing or wrong.
    Unauthenticated,
    /// 403: the caller is authenticated but not allowed (e.g. token bound elsewhere).
    Forbidden,
    /// 403: this device was revoked (replaced); register again with a claim code.
    DeviceRevoked,
    /// 409: the serial is already held by an active device (cloned image?).
    SerialConflict,
    /// 409: the request conflicts with current state.
    Conflict,
    /// 404: no such object.
    NotFound,
    /// 429: too many requests; honour `Retry-After`.
    RateLimited,
    /// 202-adjacent: registration pending operator approval (poll again later).
    Pending,
    /// 403: an operator rejected this pending device.
    Rejected,
    /// 503: the service cannot serve right now (store unavailable, disk full).
    Unavailable,
    /// 500: a bug; the message says what was being done.
    Internal,
}

impl ErrorCode {
    /// The HTTP status this code is answered with.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorCode::InvalidRequest => 422,
            ErrorCode::PayloadTooLarge => 413,
            ErrorCode::InvalidCredential | ErrorCode::Unauthenticated => 401,
            ErrorCode::Forbidden | ErrorCode::DeviceRevoked | ErrorCode::Rejected => 403,
            ErrorCode::SerialConflict | ErrorCode::Conflict => 409,
            ErrorCode::NotFound => 404,
            ErrorCode::RateLimited => 429,
            ErrorCode::Pending => 202,
            ErrorCode::Unavailable => 503,
            ErrorCode::Internal => 500,
        }
    }
}

/// The JSON error body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(rename_all = "camelCase")]
#[error("{message} ({code:?})")]
pub struct ApiError {
    /// Stable code.
    pub code: ErrorCode,
    /// Lower-case, actionable, secret-free text.
    pub message: String,
    /// JSON path of the offending field, for `invalid_request`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// Seconds to wait before retrying, for `rate_limited` and `unavailable`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_seconds: Option<u64>,
}

impl ApiError {
    /// An error with a code and message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            field: None,
            retry_after_seconds: None,
        }
    }

    /// An `invalid_request` naming the field.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: Some(field.into()),
            ..Self::new(ErrorCode::InvalidRequest, message)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serialises_stable_codes() {
        let e = ApiError::invalid("csr", "csr is not a PEM certificate request");
        let json = serde_json::to_value(&e).unwrap();
        assert_eq!(json["code"], "invalid_request");
        assert_eq!(json["field"], "csr");
        assert_eq!(ErrorCode::InvalidCredential.http_status(), 401);
        assert_eq!(
            serde_json::to_value(ErrorCode::SerialConflict).unwrap(),
            serde_json::json!("serial_conflict")
        );
    }
}
