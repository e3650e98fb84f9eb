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

/// How an apply attempt of a revision ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AttemptOutcome {
    /// Rendered, applied and pruned.
    Applied,
    /// Render, apply or prune failed; the cluster stays on the last good revision.
    Failed,
}

impl AttemptOutcome {
    /// The wire name (`applied`, `failed`), also the metrics label value.
    pub fn as_str(self) -> &'static str {
        match self {
            AttemptOutcome::Applied => "applied",
            AttemptOutcome::Failed => "failed",
        }
    }
}

/// How long one apply attempt took on the site: rendering the Git layers, then applying
/// and pruning. Sites have no inbound connectivity, so these travel in the check-in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AttemptTiming {
    /// Revision attempted.
    pub revision: String,
    /// How it ended.
    pub outcome: AttemptOutcome,
    /// Seconds spent loading and rendering the layers (monotonic clock).
    pub render_seconds: f64,
    /// Seconds spent applying and pruning; 0 when rendering failed.
    pub apply_seconds: f64,
    /// When the attempt ended (wall clock of the site).
    pub finished_at: DateTime<Utc>,
}

/// At most this many attempt timings travel in one check-in.
pub const MAX_ATTEMPTS: usize = 32;
/// Longest accepted attempt revision, in bytes.
pub const MAX_ATTEMPT_REVISION: usize = 256;
/// Durations must be below one day (in seconds).
pub const MAX_ATTEMPT_SECONDS: f64 = 86_400.0;

/// Why attempt timings are unacceptable; `field` names the JSON field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct AttemptsError {
    /// JSON path of the offending field, e.g. `attempts[2].renderSeconds`.
    pub field: String,
    /// What is wrong and what to send instead.
    pub reason: String,
}

/// Checks the attempts of a check-in: at most [`MAX_ATTEMPTS`], durations finite, `>= 0`
/// and below [`MAX_ATTEMPT_SECONDS`], revisions at most [`MAX_ATTEMPT_REVISION`] bytes.
pub fn validate_attempts(attempts: &[AttemptTiming]) -> Result<(), AttemptsError> {
    let err = |field: String, reason: String| Err(AttemptsError { field, reason });
    if attempts.len() > MAX_ATTEMPTS {
        return err(
            "attempts".into(),
            format!("at most {MAX_ATTEMPTS} attempts per check-in"),
        );
    }
    for (i, a) in attempts.iter().enumerate() {
        if a.revision.len() > MAX_ATTEMPT_REVISION {
            return err(
                format!("attempts[{i}].revision"),
                format!("must be at most {MAX_ATTEMPT_REVISION} bytes"),
            );
        }
        for (name, v) in [
            ("renderSeconds", a.render_seconds),
            ("applySeconds", a.apply_seconds),
        ] {
            if !(v.is_finite() && (0.0..MAX_ATTEMPT_SECONDS).contains(&v)) {
                return err(
                    format!("attempts[{i}].{name}"),
                    "must be a finite number of seconds, at least 0 and below 86400".into(),
                );
            }
        }
    }
    Ok(())
}

/// `POST /v1/checkin` body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
    /// Apply attempts timed since the last successful check-in (oldest first; at most
    /// [`MAX_ATTEMPTS`]). Absent from older agents.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attempts: Vec<AttemptTiming>,
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

    fn timing(revision: &str, render: f64, apply: f64) -> AttemptTiming {
        AttemptTiming {
            revision: revision.into(),
            outcome: AttemptOutcome::Applied,
            render_seconds: render,
            apply_seconds: apply,
            finished_at: "2026-11-22T09:00:00Z".parse().unwrap(),
        }
    }

    #[test]
    fn checkin_attempts_round_trip_and_old_bodies_parse() {
        let old = serde_json::json!({"appliedRevision": "abc", "state": "ready"});
        let req: CheckinRequest = serde_json::from_value(old).unwrap();
        assert!(req.attempts.is_empty());
        // An agent with nothing to report sends no `attempts` key at all.
        let back = serde_json::to_value(&req).unwrap();
        assert!(back.get("attempts").is_none(), "{back}");

        let req = CheckinRequest {
            attempts: vec![AttemptTiming {
                outcome: AttemptOutcome::Failed,
                ..timing("abc", 0.25, 0.0)
            }],
            ..req
        };
        let json = serde_json::to_value(&req).unwrap();
        assert_eq!(
            json["attempts"],
            serde_json::json!([{
                "revision": "abc", "outcome": "failed", "renderSeconds": 0.25,
                "applySeconds": 0.0, "finishedAt": "2026-11-22T09:00:00Z"
            }])
        );
        assert_eq!(serde_json::from_value::<CheckinRequest>(json).unwrap(), req);
    }

    #[test]
    fn attempt_validation_table() {
        let many = vec![timing("r", 1.0, 1.0); MAX_ATTEMPTS + 1];
        let cases: Vec<(&str, Vec<AttemptTiming>, Option<&str>)> = vec![
            ("none", vec![], None),
            ("zeros", vec![timing("r", 0.0, 0.0)], None),
            ("just below a day", vec![timing("r", 86_399.9, 1.0)], None),
            ("full queue", many[..MAX_ATTEMPTS].to_vec(), None),
            ("too many", many, Some("attempts")),
            (
                "negative render",
                vec![timing("r", 1.0, 1.0), timing("r", -0.1, 1.0)],
                Some("attempts[1].renderSeconds"),
            ),
            (
                "NaN apply",
                vec![timing("r", 1.0, f64::NAN)],
                Some("attempts[0].applySeconds"),
            ),
            (
                "infinite apply",
                vec![timing("r", 1.0, f64::INFINITY)],
                Some("attempts[0].applySeconds"),
            ),
            (
                "a day",
                vec![timing("r", 86_400.0, 0.0)],
                Some("attempts[0].renderSeconds"),
            ),
            (
                "long revision",
                vec![timing(&"a".repeat(257), 1.0, 1.0)],
                Some("attempts[0].revision"),
            ),
            (
                "revision at the limit",
                vec![timing(&"a".repeat(256), 1.0, 1.0)],
                None,
            ),
        ];
        for (name, attempts, field) in cases {
            let got = validate_attempts(&attempts).err().map(|e| e.field);
            assert_eq!(got.as_deref(), field, "{name}");
        }
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
