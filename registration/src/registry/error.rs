//! [`RegistryError`]: typed failures of the registration domain and their stable API
//! codes. Messages are lower-case, actionable and secret-free: they may name ids,
//! serials and sites, never a token, claim code, poll secret or batch secret.

use siteboot_wire::error::{ApiError, ErrorCode};

use super::decide::RejectReason;
use crate::inventory::InventoryError;
use crate::store::StoreError;

/// The one message every refused registration credential gets, whatever the reason.
pub const INVALID_CREDENTIAL_MESSAGE: &str =
    "registration credential is not valid (unknown, expired or already used): ask the operator for a new one";

/// Seconds a client should wait after a store outage.
const UNAVAILABLE_RETRY_SECONDS: u64 = 5;

/// Why a registry operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    /// A token, claim code, batch credential or poll secret was refused. The reason is
    /// for logs and metrics only: Display and the API body are the same for all.
    #[error("{INVALID_CREDENTIAL_MESSAGE}")]
    InvalidCredential {
        /// `token`, `claim`, `enrollment` or `poll`.
        kind: &'static str,
        /// Why, for logs.
        reason: RejectReason,
    },
    /// A request field is missing or malformed.
    #[error("{field}: {message}")]
    InvalidRequest {
        /// JSON path of the field.
        field: String,
        /// What to send instead.
        message: String,
    },
    /// No such object.
    #[error("{what} {id:?} not found")]
    NotFound {
        /// Kind of object.
        what: &'static str,
        /// Its id.
        id: String,
    },
    /// The serial is held by an active device; the attempt was recorded.
    #[error("serial {serial:?} is already held by an active device (cloned image?): the attempt was recorded; revoke the other device or use a claim code")]
    SerialConflict {
        /// The serial.
        serial: String,
    },
    /// The device was revoked (replaced or by an operator): its certificate is refused.
    #[error("device {device_id} is revoked: register the box again with a claim code")]
    DeviceRevoked {
        /// The device.
        device_id: String,
    },
    /// Authenticated, but not allowed (e.g. a certificate for another site).
    #[error("{0}")]
    Forbidden(String),
    /// The request conflicts with current state.
    #[error("{0}")]
    Conflict(String),
    /// An inventory reload was refused; the previous inventory keeps serving.
    #[error("inventory refused, the previous one keeps serving: {0}")]
    Inventory(#[from] InventoryError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A bug or misconfiguration; the message says what was being done.
    #[error("{0}")]
    Internal(String),
}

impl RegistryError {
    pub(crate) fn invalid(field: &str, message: impl Into<String>) -> Self {
        RegistryError::InvalidRequest {
            field: field.to_string(),
            message: message.into(),
        }
    }

    /// The stable code.
    pub fn code(&self) -> ErrorCode {
        match self {
            RegistryError::InvalidCredential { .. } => ErrorCode::InvalidCredential,
            RegistryError::InvalidRequest { .. } | RegistryError::Inventory(_) => {
                ErrorCode::InvalidRequest
            }
            RegistryError::NotFound { .. } => ErrorCode::NotFound,
            RegistryError::SerialConflict { .. } => ErrorCode::SerialConflict,
            RegistryError::DeviceRevoked { .. } => ErrorCode::DeviceRevoked,
            RegistryError::Forbidden(_) => ErrorCode::Forbidden,
            RegistryError::Conflict(_) => ErrorCode::Conflict,
            RegistryError::Store(StoreError::Unavailable { .. }) => ErrorCode::Unavailable,
            RegistryError::Store(_) | RegistryError::Internal(_) => ErrorCode::Internal,
        }
    }

    /// The JSON error body (status: `self.code().http_status()`).
    pub fn to_api_error(&self) -> ApiError {
        let mut e = ApiError::new(self.code(), self.to_string());
        match self {
            RegistryError::InvalidRequest { field, message } => {
                e.field = Some(field.clone());
                e.message = format!("{field}: {message}");
            }
            RegistryError::Inventory(_) => e.field = Some("inventory".into()),
            RegistryError::Store(StoreError::Unavailable { .. }) => {
                // Store details (paths, SQLite wording) stay in the log.
                e.message =
                    "the registration store is unavailable (disk full or I/O error): retry later"
                        .into();
                e.retry_after_seconds = Some(UNAVAILABLE_RETRY_SECONDS);
            }
            RegistryError::Store(_) => {
                e.message = "the registration store failed: see the service log".into();
            }
            _ => {}
        }
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_invalid_credential_reason_reads_the_same() {
        let reasons = [
            RejectReason::Unknown,
            RejectReason::WrongSecret,
            RejectReason::Expired,
            RejectReason::Replayed,
            RejectReason::Revoked,
            RejectReason::Locked,
        ];
        let bodies: Vec<_> = reasons
            .iter()
            .flat_map(|r| {
                ["token", "claim"].map(|kind| {
                    RegistryError::InvalidCredential { kind, reason: *r }.to_api_error()
                })
            })
            .collect();
        assert!(bodies.windows(2).all(|w| w[0] == w[1]));
        assert_eq!(bodies[0].code.http_status(), 401);
    }

    #[test]
    fn store_unavailable_is_503_with_retry() {
        let e = RegistryError::Store(StoreError::Unavailable {
            action: "bind a device",
            detail: "database or disk is full".into(),
        })
        .to_api_error();
        assert_eq!(
            (e.code.http_status(), e.retry_after_seconds),
            (503, Some(5))
        );
        let inv = RegistryError::Inventory(InventoryError {
            file: "inv.yaml".into(),
            line: Some(7),
            reason: "duplicate site id".into(),
        })
        .to_api_error();
        assert_eq!(
            (inv.code.http_status(), inv.field.as_deref()),
            (422, Some("inventory"))
        );
        assert!(
            inv.message.contains("inv.yaml:7: duplicate site id"),
            "{}",
            inv.message
        );
    }
}
