//! Registration as a resumable state machine persisted in the data directory:
//!
//! 1. `registered.json` exists: done (a leftover token file is deleted).
//! 2. `pending.json` exists: an operator must approve; poll with the poll secret. The
//!    credential is never presented again.
//! 3. Otherwise: load or create `key.pem`, read the one credential, send
//!    `POST /v1/register` with backoff (full jitter, `Retry-After` honoured). A 202 is
//!    persisted as `pending.json` before anything else happens.
//!
//! On success the CA bundle, the assignment, `identity.pem` (certificate + key) and last
//! the `registered.json` marker are written atomically; then `key.pem`, `pending.json`
//! and the one-time token file are removed.

use std::io::IsTerminal;
use std::time::Duration;

use backon::Retryable;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use siteboot_wire::api::{Credential, PollResponse, RegisterRequest, Registered};
use siteboot_wire::{ClaimCode, DeviceFacts, ErrorCode, RegistrationToken, SecretString};

use crate::backoff::{jittered, unit, with_retry_after, FullJitter};
use crate::client::{CallError, RegisterAnswer, ServiceClient};
use crate::config::{CredentialSource, Settings};
use crate::identity::{csr_pem, identity_pem, load_or_create_key, IdentityError};
use crate::store::{
    remove_durably, DataDir, StoreError, ASSIGNMENT, CA, IDENTITY, KEY, PENDING, REGISTERED,
};

/// Longest `Retry-After` honoured.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// The registered marker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RegistrationRecord {
    /// Device id.
    pub device_id: String,
    /// Site id.
    pub site_id: String,
    /// When registration completed.
    pub registered_at: DateTime<Utc>,
    /// Check-in interval the service asked for.
    pub checkin_interval_seconds: u64,
}

/// `pending.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PendingState {
    pending_id: String,
    poll_secret: SecretString,
    poll_after_seconds: u64,
}

/// Why registration stopped.
#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    /// No credential is configured and there is no console to ask on.
    #[error("no registration credential: set tokenFile, enrollment, claimCodeFile or claimCode (or run on a console to type a claim code)")]
    NoCredential,
    /// The credential file is unreadable or malformed.
    #[error("{field}: {reason}")]
    Credential {
        /// camelCase config field.
        field: &'static str,
        /// What is wrong (never the secret).
        reason: String,
    },
    /// The service refused the registration (a 4xx other than 429 and 408: retrying the
    /// same request cannot help). The message ends with what to do next.
    #[error("registration refused: {0}; {hint}", hint = refusal_hint(.0))]
    Refused(CallError),
    /// The pending registration is gone on the service (expired or purged): registering
    /// again with the enrollment credential starts a new one.
    #[error("the pending registration is gone on the service ({0}): siteboot-agent registers again when it restarts")]
    PendingGone(CallError),
    /// An operator rejected the pending device.
    #[error("registration rejected by an operator: {0}; {AFTER_OPERATOR}")]
    Rejected(String),
    /// The service assigned another site than `siteId` expects.
    #[error("siteId: the service assigned site {got:?} but the config expects {want:?}: fix siteId or ask the operator which site this box belongs to; {AFTER_OPERATOR}")]
    SiteMismatch {
        /// Expected.
        want: String,
        /// Assigned.
        got: String,
    },
    /// The claim on a seed medium cannot be used and nothing else is configured.
    #[error(transparent)]
    Seed(#[from] siteboot_wire::seed::SeedError),
    /// Key or CSR failure.
    #[error(transparent)]
    Identity(#[from] IdentityError),
    /// Data directory failure.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// How every "operator action needed" message ends.
const AFTER_OPERATOR: &str = "then restart siteboot-agent (systemctl restart siteboot-agent, or reboot): it does not retry a refused registration on its own";

/// What to do next after a refusal, by the service's error code.
fn refusal_hint(e: &CallError) -> String {
    let CallError::Api { error, .. } = e else {
        return format!("check the registration URL and any proxy in between; {AFTER_OPERATOR}");
    };
    let what = match error.code {
        ErrorCode::InvalidCredential => "put a fresh credential in place (a new token file, or a claim code from `sitebootctl claim create --site <site>`)",
        ErrorCode::SerialConflict => "an operator must revoke the device holding this serial (`sitebootctl devices revoke <device>`; see the site history) or mint a claim code for this box (`sitebootctl claim create --site <site>`)",
        ErrorCode::DeviceRevoked => "register the box again with a claim code (`sitebootctl claim create --site <site>`)",
        ErrorCode::Rejected => "ask the operator why the box was rejected",
        ErrorCode::InvalidRequest => "the agent sent something the service does not accept (see the field above): fix the config or update siteboot-agent",
        _ => "ask the operator to resolve what the service names above",
    };
    format!("operator action needed: {what}, {AFTER_OPERATOR}")
}

impl RegisterError {
    /// A refusal no retry can fix: only an operator (a new credential, revoking the
    /// holder of a cloned serial, an approval) can. `siteboot-agent run` exits with
    /// [`crate::cli::EXIT_REFUSED`] for these, so systemd does not restart it in a loop
    /// (`RestartPreventExitStatus=3`). Never true for 429, 5xx or an unreachable service:
    /// those are retried with backoff inside the process and never end up here.
    pub fn needs_operator(&self) -> bool {
        match self {
            RegisterError::Refused(CallError::Api { status, .. }) => {
                (400..500).contains(status) && *status != 429 && *status != 408
            }
            RegisterError::Rejected(_) | RegisterError::SiteMismatch { .. } => true,
            _ => false,
        }
    }
}

/// Registers (or resumes) until registered; returns the record.
pub async fn ensure_registered(
    dir: &DataDir,
    settings: &Settings,
    client: &ServiceClient,
    facts: &DeviceFacts,
) -> Result<RegistrationRecord, RegisterError> {
    if let Some(record) = dir.read_json::<RegistrationRecord>(REGISTERED)? {
        cleanup(dir, settings)?;
        return Ok(record);
    }
    let key = load_or_create_key(dir)?;
    // A claim seed found while waiting for approval (a tech plugged it in meanwhile)
    // replaces the wait: it is presented at once.
    let mut from_seed: Option<(Credential, String)> = None;
    let registered = loop {
        if from_seed.is_none() {
            if let Some(pending) = dir.read_json::<PendingState>(PENDING)? {
                tracing::info!(pending_id = %pending.pending_id, "waiting for operator approval of the pending registration");
                match poll_until_decided(dir, client, &pending, settings).await? {
                    Decided::Registered(r) => break r,
                    Decided::Seed(credential, claim_id) => {
                        dir.remove(PENDING)?;
                        from_seed = Some((credential, claim_id));
                    }
                }
            }
        }
        // A claim on a seed medium comes first (see `seed`); else the configured one.
        let (credential, seed_claim) = match from_seed.take() {
            Some((credential, claim_id)) => (credential, Some(claim_id)),
            None => match crate::seed::claim_credential(dir, settings)? {
                Some((credential, claim_id)) => (credential, Some(claim_id)),
                None => (read_credential(settings)?, None),
            },
        };
        tracing::info!(credential = credential.kind(), serial = %facts.serial, "registering");
        let req = RegisterRequest {
            credential,
            csr: csr_pem(&key, &facts.serial)?,
            facts: facts.clone(),
        };
        let answer = with_backoff("register", || client.register(&req)).await;
        if let (Err(RegisterError::Refused(_)), Some(claim_id)) = (&answer, &seed_claim) {
            // Never present this seed again: a used or revoked claim must not loop.
            crate::seed::remember_refused(dir, claim_id)?;
        }
        match answer? {
            RegisterAnswer::Registered(r) => break *r,
            RegisterAnswer::Pending(p) => {
                let pending = PendingState {
                    pending_id: p.pending_id,
                    poll_secret: p.poll_secret,
                    poll_after_seconds: p.poll_after_seconds,
                };
                dir.write_json(PENDING, &pending)?;
                tracing::info!(pending_id = %pending.pending_id, "registration pending operator approval");
            }
        }
    };
    if let Some(want) = &settings.site_id {
        if *want != registered.site_id {
            return Err(RegisterError::SiteMismatch {
                want: want.clone(),
                got: registered.site_id,
            });
        }
    }
    dir.write_atomic(CA, registered.ca_bundle.as_bytes(), 0o644)?;
    dir.write_json(ASSIGNMENT, &registered.assignment)?;
    dir.write_atomic(
        IDENTITY,
        identity_pem(&registered.certificate, &key).as_bytes(),
        0o600,
    )?;
    let record = RegistrationRecord {
        device_id: registered.device_id,
        site_id: registered.site_id,
        registered_at: Utc::now(),
        checkin_interval_seconds: registered.checkin_interval_seconds,
    };
    dir.write_json(REGISTERED, &record)?;
    cleanup(dir, settings)?;
    tracing::info!(site = %record.site_id, device = %record.device_id, "registered");
    Ok(record)
}

/// Removes what registration no longer needs: the key copy, the pending state and the
/// one-time token file (idempotent, also run on every start).
fn cleanup(dir: &DataDir, settings: &Settings) -> Result<(), StoreError> {
    dir.remove(KEY)?;
    dir.remove(PENDING)?;
    if let Some(CredentialSource::TokenFile(path)) = &settings.credential {
        if path.exists() {
            // Read it first: its forms are what the boot system's copies are scrubbed of.
            let spent = std::fs::read(path).unwrap_or_default();
            remove_durably(path)?;
            tracing::info!(path = %path.display(), "deleted the one-time registration token file");
            scrub_copies(&spent, &settings.bootstrap_copy_dirs);
        }
    }
    Ok(())
}

/// Redacts the spent token from cloud-init's cached copies of the bootstrap data (see
/// [`crate::scrub`]). Failures are logged, never fatal: the token is spent already.
fn scrub_copies(spent: &[u8], dirs: &[std::path::PathBuf]) {
    match crate::scrub::scrub(dirs, &crate::scrub::needles(spent)) {
        Ok(files) if !files.is_empty() => {
            tracing::info!(files = ?files, "redacted the spent registration token from stored copies of the bootstrap data")
        }
        Ok(_) => {}
        Err(e) => {
            tracing::warn!(error = %e, "could not redact the spent registration token from stored copies of the bootstrap data")
        }
    }
}

/// How a pending registration ended.
// Built once per registration: boxing the large variant buys nothing.
#[allow(clippy::large_enum_variant)]
enum Decided {
    /// An operator approved it.
    Registered(Registered),
    /// A usable claim seed appeared meanwhile: present it instead (claim id alongside).
    Seed(Credential, String),
}

/// How often a pending box looks for a claim seed between polls.
const SEED_RECHECK: Duration = Duration::from_secs(3);

async fn poll_until_decided(
    dir: &DataDir,
    client: &ServiceClient,
    pending: &PendingState,
    settings: &Settings,
) -> Result<Decided, RegisterError> {
    let mut wait = Duration::from_secs(pending.poll_after_seconds.clamp(1, 3600));
    let mut last_note = None;
    loop {
        // Sleep in slices, looking for a seed in between (a few stat calls each).
        let until = tokio::time::Instant::now() + jittered(wait, unit());
        while tokio::time::Instant::now() < until {
            if let Some((credential, claim_id)) =
                crate::seed::while_pending(dir, settings, &mut last_note)
            {
                return Ok(Decided::Seed(credential, claim_id));
            }
            tokio::time::sleep_until(until.min(tokio::time::Instant::now() + SEED_RECHECK)).await;
        }
        let answer = with_backoff("poll pending registration", || {
            client.poll(&pending.pending_id, &pending.poll_secret)
        })
        .await;
        match answer {
            Ok(PollResponse::Pending { poll_after_seconds }) => {
                wait = Duration::from_secs(poll_after_seconds.clamp(1, 3600));
            }
            Ok(PollResponse::Approved(r)) => return Ok(Decided::Registered(r)),
            Ok(PollResponse::Rejected { reason }) => {
                dir.remove(PENDING)?;
                return Err(RegisterError::Rejected(reason));
            }
            Err(RegisterError::Refused(e)) => {
                // The pending record is gone (expired, purged): start over next time
                // (a restart presents the enrollment credential again). Other refusals
                // (a revoked or vanished approval) need an operator.
                dir.remove(PENDING)?;
                let gone = matches!(&e, CallError::Api { error, .. } if matches!(error.code, ErrorCode::InvalidCredential | ErrorCode::NotFound));
                return Err(if gone {
                    RegisterError::PendingGone(e)
                } else {
                    RegisterError::Refused(e)
                });
            }
            Err(e) => return Err(e),
        }
    }
}

/// Retries `op` while its error is retryable: full-jitter backoff, `Retry-After` as a floor.
async fn with_backoff<T, F, Fut>(what: &'static str, op: F) -> Result<T, RegisterError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, CallError>>,
{
    op.retry(FullJitter::default())
        .sleep(tokio::time::sleep)
        .when(CallError::retryable)
        .adjust(|e: &CallError, d: Option<Duration>| d.map(|d| with_retry_after(d, e.retry_after(), MAX_RETRY_AFTER)))
        .notify(|e: &CallError, d: Duration| {
            tracing::warn!(error = %e, retry_in_ms = d.as_millis() as u64, "{what} failed; retrying");
        })
        .await
        .map_err(RegisterError::Refused)
}

/// Reads the configured credential, or prompts for a claim code on a console.
pub fn read_credential(settings: &Settings) -> Result<Credential, RegisterError> {
    let read = |field: &'static str, path: &std::path::Path| {
        std::fs::read_to_string(path)
            .map(|s| s.trim().to_string())
            .map_err(|e| RegisterError::Credential {
                field,
                reason: format!("cannot read {}: {e}", path.display()),
            })
    };
    match &settings.credential {
        Some(CredentialSource::TokenFile(path)) => {
            let text = read("tokenFile", path)?;
            RegistrationToken::parse(&text).map_err(|e| RegisterError::Credential {
                field: "tokenFile",
                reason: e.to_string(),
            })?;
            Ok(Credential::Token {
                token: SecretString::new(text),
            })
        }
        Some(CredentialSource::Enrollment { batch, secret_file }) => {
            let secret = read("enrollment.secretFile", secret_file)?;
            if secret.is_empty() {
                return Err(RegisterError::Credential {
                    field: "enrollment.secretFile",
                    reason: format!("{} is empty", secret_file.display()),
                });
            }
            Ok(Credential::Enrollment {
                batch: batch.clone(),
                secret: SecretString::new(secret),
            })
        }
        Some(CredentialSource::ClaimCodeFile(path)) => {
            claim(&read("claimCodeFile", path)?, "claimCodeFile")
        }
        Some(CredentialSource::ClaimCode(code)) => claim(code.expose(), "claimCode"),
        None => prompt_claim_code(),
    }
}

fn claim(text: &str, field: &'static str) -> Result<Credential, RegisterError> {
    ClaimCode::parse(text).map_err(|_| RegisterError::Credential {
        field,
        reason: "not a valid claim code XXXX-XXXX-C (check for a typo)".into(),
    })?;
    Ok(Credential::Claim {
        code: SecretString::new(text.trim()),
    })
}

/// Asks a field tech for the claim code when stdin is a terminal (three tries).
fn prompt_claim_code() -> Result<Credential, RegisterError> {
    use std::io::{BufRead, Write};
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return Err(RegisterError::NoCredential);
    }
    for _ in 0..3 {
        eprint!("siteboot: enter the claim code (XXXX-XXXX-C): ");
        let _ = std::io::stderr().flush();
        let mut line = String::new();
        if stdin.lock().read_line(&mut line).unwrap_or(0) == 0 {
            break;
        }
        match claim(&line, "claimCode") {
            Ok(c) => return Ok(c),
            Err(_) => eprintln!("siteboot: that is not a valid claim code (check for a typo)"),
        }
    }
    Err(RegisterError::NoCredential)
}

#[cfg(test)]
mod tests {
    use super::*;
    use siteboot_wire::ApiError;

    fn api(status: u16, code: ErrorCode) -> RegisterError {
        RegisterError::Refused(CallError::Api {
            status,
            error: ApiError::new(code, "x"),
            retry_after: None,
        })
    }

    #[test]
    fn only_permanent_refusals_need_an_operator() {
        let cases: Vec<(RegisterError, bool)> = vec![
            (api(401, ErrorCode::InvalidCredential), true),
            (api(403, ErrorCode::Forbidden), true),
            (api(403, ErrorCode::DeviceRevoked), true),
            (api(409, ErrorCode::SerialConflict), true),
            (api(409, ErrorCode::Conflict), true),
            (api(422, ErrorCode::InvalidRequest), true),
            (RegisterError::Rejected("wrong box".into()), true),
            (
                RegisterError::SiteMismatch {
                    want: "a".into(),
                    got: "b".into(),
                },
                true,
            ),
            (api(429, ErrorCode::RateLimited), false),
            (api(408, ErrorCode::Unavailable), false),
            (api(500, ErrorCode::Internal), false),
            (api(503, ErrorCode::Unavailable), false),
            (
                RegisterError::Refused(CallError::Unreachable("connection refused".into())),
                false,
            ),
            (
                RegisterError::Refused(CallError::Protocol {
                    status: 403,
                    reason: "a proxy's page".into(),
                }),
                false,
            ),
            (
                RegisterError::PendingGone(CallError::Unreachable("x".into())),
                false,
            ),
            (RegisterError::NoCredential, false),
        ];
        for (e, want) in cases {
            assert_eq!(e.needs_operator(), want, "{e}");
            if want {
                assert!(e.to_string().contains("restart siteboot-agent"), "{e}");
            }
        }
    }
}
