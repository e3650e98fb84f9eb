//! Device-facing API bodies: registration, pending polls, check-ins, renewals.
//!
//! Paths are constants here so the agent and the service cannot drift apart.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::assignment::Assignment;
use crate::facts::DeviceFacts;
use crate::secret::SecretString;

/// `POST`: register with one credential and a CSR.
pub const PATH_REGISTER: &str = "/v1/register";
/// `GET /v1/register/{pending_id}`: poll a pending registration.
pub const PATH_REGISTER_PENDING: &str = "/v1/register/";
/// `POST` (mTLS): report state, receive the assignment and the next delay.
pub const PATH_CHECKIN: &str = "/v1/checkin";
/// `POST` (mTLS): renew the client certificate with a new CSR.
pub const PATH_CERTIFICATE: &str = "/v1/certificate";
/// `GET` (mTLS): the current assignment.
pub const PATH_ASSIGNMENT: &str = "/v1/assignment";
/// Header carrying the poll secret of a pending registration.
pub const HEADER_POLL_SECRET: &str = "x-siteboot-poll-secret";

/// The one credential a device presents.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    rename_all = "camelCase",
    rename_all_fields = "camelCase",
    tag = "type"
)]
pub enum Credential {
    /// A one-time registration token (`sbt1.<id>.<secret>`).
    Token {
        /// The token text.
        token: SecretString,
    },
    /// A factory batch credential; never enough alone (the serial must be expected).
    Enrollment {
        /// Batch name, e.g. `2026-w14-lineA`.
        batch: String,
        /// The batch secret.
        secret: SecretString,
    },
    /// A claim code typed or read from a seed by a field tech.
    Claim {
        /// `XXXX-XXXX-C`.
        code: SecretString,
    },
}

impl Credential {
    /// The kind, for metrics labels and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Credential::Token { .. } => "token",
            Credential::Enrollment { .. } => "enrollment",
            Credential::Claim { .. } => "claim",
        }
    }
}

/// `POST /v1/register` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RegisterRequest {
    /// Exactly one credential.
    pub credential: Credential,
    /// PKCS#10 CSR (PEM) for a key generated on the device.
    pub csr: String,
    /// Device facts.
    pub facts: DeviceFacts,
}

/// 201 body: the device is registered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Registered {
    /// Stable device id.
    pub device_id: String,
    /// The site the device serves.
    pub site_id: String,
    /// Client certificate (PEM) with the site and device URI SANs.
    pub certificate: String,
    /// CA bundle (PEM) the device trusts for the service and presents chains to.
    pub ca_bundle: String,
    /// What to hydrate.
    pub assignment: Assignment,
    /// Seconds between check-ins (before jitter).
    pub checkin_interval_seconds: u64,
}

/// 202 body: an operator must approve this device first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PendingRegistration {
    /// Id to poll with.
    pub pending_id: String,
    /// Secret that authenticates polls (header `x-siteboot-poll-secret`).
    pub poll_secret: SecretString,
    /// Seconds to wait before the next poll.
    pub poll_after_seconds: u64,
}

/// `GET /v1/register/{pending_id}` body.
// A poll answer is built once per request and serialised at once: boxing the large
// variant would only complicate every match for no measurable gain.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    rename_all = "camelCase",
    rename_all_fields = "camelCase",
    tag = "status"
)]
pub enum PollResponse {
    /// Still waiting for an operator.
    Pending {
        /// Seconds to wait before the next poll.
        poll_after_seconds: u64,
    },
    /// Approved: the device is registered (the certificate is signed for the CSR sent at
    /// registration time).
    Approved(Registered),
    /// Rejected by an operator.
    Rejected {
        /// Operator's reason.
        reason: String,
    },
}

/// State an agent reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AgentState {
    /// A revision is being applied.
    Applying,
    /// The applied revision is healthy.
    Ready,
    /// The attempted revision failed; the cluster stays on the last good one.
    Failed,
    /// Applied, but some objects are not healthy.
    Degraded,
}

/// Object health counts after an apply.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HealthSummary {
    /// Objects applied.
    pub total: u32,
    /// Objects healthy (Deployments available, Jobs complete, others present).
    pub healthy: u32,
    /// Objects still progressing.
    pub progressing: u32,
    /// Objects failed.
    pub failed: u32,
}

/// A period during which the agent could not reach the service or Git.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OfflinePeriod {
    /// First failed contact.
    pub from: DateTime<Utc>,
    /// First successful contact after it.
    pub to: DateTime<Utc>,
    /// What was unreachable (`service`, `git`).
    pub what: String,
}

/// `POST /v1/checkin` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckinRequest {
    /// Last revision applied successfully.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied_revision: Option<String>,
    /// Last revision attempted (equal to applied unless it failed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempted_revision: Option<String>,
    /// Current state.
    pub state: AgentState,
    /// Error text of the attempted revision, secret-free, at most 4 KiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Health of the applied objects.
    #[serde(default)]
    pub health: HealthSummary,
    /// Offline periods since the last successful check-in.
    #[serde(default)]
    pub offline_periods: Vec<OfflinePeriod>,
    /// Current facts (hostname, OS may change).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub facts: Option<DeviceFacts>,
}

/// `POST /v1/checkin` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckinResponse {
    /// The current assignment (may have changed since registration).
    pub assignment: Assignment,
    /// Seconds until the next check-in (before jitter).
    pub next_checkin_seconds: u64,
}

/// `POST /v1/certificate` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RenewRequest {
    /// CSR (PEM) for a new key generated on the device.
    pub csr: String,
}

/// `POST /v1/certificate` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RenewResponse {
    /// The new client certificate (PEM).
    pub certificate: String,
    /// CA bundle (PEM).
    pub ca_bundle: String,
    /// Expiry of the new certificate.
    pub not_after: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credential_is_internally_tagged_and_redacted() {
        let c = Credential::Claim {
            code: SecretString::new("7KQ2-M9XD-4"),
        };
        let json = serde_json::to_value(&c).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"type": "claim", "code": "7KQ2-M9XD-4"})
        );
        assert!(!format!("{c:?}").contains("7KQ2"));
    }

    #[test]
    fn poll_response_shapes() {
        let p = PollResponse::Pending {
            poll_after_seconds: 30,
        };
        assert_eq!(
            serde_json::to_value(&p).unwrap(),
            serde_json::json!({"status": "pending", "pollAfterSeconds": 30})
        );
        assert_eq!(
            serde_json::to_value(AgentState::Degraded).unwrap(),
            "degraded"
        );
    }
}
