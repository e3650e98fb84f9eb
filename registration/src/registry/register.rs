//! `POST /v1/register` and `GET /v1/register/{pending_id}`: tokens, enrollment, claims.

use chrono::{DateTime, Utc};
use siteboot_wire::api::{Credential, PendingRegistration, RegisterRequest};
use siteboot_wire::claim::ClaimCode;
use siteboot_wire::secret::{ct_eq, SecretString};
use siteboot_wire::token::RegistrationToken;

use super::decide::{
    claim_rejection, decide_enrollment, same_box_retry, token_rejection, EnrollmentDecision,
    RejectReason,
};
use super::{active, new_id, random, PollOutcome, RegisterOutcome, Registry, RegistryError};
use crate::store::{
    BindCredential, BindOutcome, Binding, Event, EventKind, NewDevice, NewPending, PendingStatus,
};

fn refused(kind: &'static str, id: &str, reason: RejectReason) -> RegistryError {
    // The id is public (the first part of the credential); the secret never reaches here.
    tracing::warn!(
        kind,
        id,
        reason = reason.as_str(),
        "registration credential refused"
    );
    RegistryError::InvalidCredential { kind, reason }
}

impl Registry {
    /// Registers a device with one credential. The CSR must already be validated by the
    /// caller; it is only stored (for pending devices), never parsed here.
    pub async fn register(
        &self,
        req: &RegisterRequest,
        now: DateTime<Utc>,
    ) -> Result<RegisterOutcome, RegistryError> {
        req.facts
            .validate()
            .map_err(|e| RegistryError::invalid(&e.field, e.reason))?;
        match &req.credential {
            Credential::Token { token } => self.register_token(token, req, now).await,
            Credential::Claim { code } => self.register_claim(code, req, now).await,
            Credential::Enrollment { batch, secret } => {
                self.register_enrollment(batch, secret, req, now).await
            }
        }
    }

    async fn register_token(
        &self,
        text: &SecretString,
        req: &RegisterRequest,
        now: DateTime<Utc>,
    ) -> Result<RegisterOutcome, RegistryError> {
        let token = RegistrationToken::parse(text.expose()).map_err(|_| {
            RegistryError::invalid(
                "credential.token",
                "registration token is malformed: expected sbt1.<10 symbols>.<26 symbols>",
            )
        })?;
        let hash = token.secret_hash();
        let record = self.inner.store.token(token.id()).await?;
        if let Some(reason) = token_rejection(record.as_ref(), &hash, now) {
            if let (RejectReason::Replayed, Some(r)) = (reason, record.as_ref()) {
                let again = self
                    .same_box_again(r.device_id.as_deref(), &r.site_id, req, "token", token.id())
                    .await?;
                if let Some(outcome) = again {
                    return Ok(outcome);
                }
            }
            return Err(refused("token", token.id(), reason));
        }
        let record = record.expect("checked by token_rejection");
        let credential = BindCredential::Token {
            id: token.id().to_string(),
            secret_hash: hash,
        };
        self.bind(
            credential,
            &record.site_id,
            record.machine.clone(),
            req,
            now,
            token.id(),
        )
        .await
    }

    async fn register_claim(
        &self,
        text: &SecretString,
        req: &RegisterRequest,
        now: DateTime<Utc>,
    ) -> Result<RegisterOutcome, RegistryError> {
        // The check character catches typos before any lookup, so a typo never counts
        // as a failed attempt against a real claim.
        let code = ClaimCode::parse(text.expose()).map_err(|_| {
            RegistryError::invalid(
                "credential.code",
                "claim code has a typo: check it and type it again (format XXXX-XXXX-C)",
            )
        })?;
        let hash = code.secret_hash();
        let max = self.inner.cfg.claim_max_failures;
        let record = self.inner.store.claim(code.id()).await?;
        if let Some(reason) = claim_rejection(record.as_ref(), &hash, now, max) {
            if let (RejectReason::Replayed, Some(r)) = (reason, record.as_ref()) {
                let again = self
                    .same_box_again(r.device_id.as_deref(), &r.site_id, req, "claim", code.id())
                    .await?;
                if let Some(outcome) = again {
                    return Ok(outcome);
                }
            }
            if reason == RejectReason::WrongSecret {
                let failures = self
                    .inner
                    .store
                    .record_claim_failure(code.id(), now)
                    .await?;
                if failures == max {
                    let site = record.as_ref().map(|c| c.site_id.clone());
                    self.inner
                        .store
                        .record_event(&Event {
                            seq: 0,
                            at: now,
                            kind: EventKind::ClaimLocked,
                            site_id: site,
                            device_id: None,
                            serial: Some(req.facts.serial.clone()),
                            detail: format!(
                                "claim {} locked after {max} failed attempts: mint a new one",
                                code.id()
                            ),
                        })
                        .await?;
                }
            }
            return Err(refused("claim", code.id(), reason));
        }
        let record = record.expect("checked by claim_rejection");
        let credential = BindCredential::Claim {
            id: code.id().to_string(),
            secret_hash: hash,
            max_failures: max,
        };
        self.bind(credential, &record.site_id, None, req, now, code.id())
            .await
    }

    async fn register_enrollment(
        &self,
        batch: &str,
        secret: &SecretString,
        req: &RegisterRequest,
        now: DateTime<Utc>,
    ) -> Result<RegisterOutcome, RegistryError> {
        let presented = secret.sha256_hex();
        let known = self.inner.cfg.enrollment_batches.get(batch);
        // Compare against a dummy for unknown batches so both paths cost the same.
        let expected = known
            .map(String::as_str)
            .unwrap_or("0000000000000000000000000000000000000000000000000000000000000000");
        let matches = ct_eq(expected.as_bytes(), presented.as_bytes());
        let batch_id: String = batch.chars().take(64).collect();
        match (known, matches) {
            (None, _) => return Err(refused("enrollment", &batch_id, RejectReason::Unknown)),
            (Some(_), false) => {
                return Err(refused("enrollment", &batch_id, RejectReason::WrongSecret))
            }
            (Some(_), true) => {}
        }
        let serial = req.facts.serial.as_str();
        let inventory = self.inner.inventory.current();
        let holder = self.inner.store.active_device_by_serial(serial).await?;
        match decide_enrollment(
            inventory.site_expecting(serial).map(|s| s.id.as_str()),
            holder.as_ref().map(|d| d.id.as_str()),
        ) {
            EnrollmentDecision::Bind { site_id } => {
                let credential = BindCredential::Enrollment {
                    batch: batch.to_string(),
                };
                self.bind(credential, &site_id, None, req, now, &batch_id)
                    .await
            }
            EnrollmentDecision::Conflict { device_id } => {
                if let Some(expected) = inventory.site_expecting(serial) {
                    let again = self
                        .same_box_again(
                            Some(&device_id),
                            &expected.id,
                            req,
                            "enrollment",
                            &batch_id,
                        )
                        .await?;
                    if let Some(outcome) = again {
                        return Ok(outcome);
                    }
                }
                let holder_site = holder.map(|d| d.site_id).unwrap_or_default();
                self.inner
                    .store
                    .record_event(&Event {
                        seq: 0,
                        at: now,
                        kind: EventKind::SerialConflict,
                        site_id: Some(holder_site.clone()),
                        device_id: Some(device_id.clone()),
                        serial: Some(serial.to_string()),
                        detail: format!(
                            "a device presenting serial {serial:?} via enrollment (batch {batch_id}) was refused: device {device_id} at site {holder_site} holds it (cloned image?)"
                        ),
                    })
                    .await?;
                tracing::warn!(serial, holder = %device_id, batch = %batch_id, "serial conflict on enrollment");
                Err(RegistryError::SerialConflict {
                    serial: serial.to_string(),
                })
            }
            EnrollmentDecision::Pending => {
                let poll_secret = SecretString::new(hex::encode(random::<32>()));
                let record = self
                    .inner
                    .store
                    .upsert_pending(&NewPending {
                        id: new_id("pnd"),
                        poll_secret_hash: poll_secret.sha256_hex(),
                        batch: batch.to_string(),
                        facts: req.facts.clone(),
                        csr_pem: req.csr.clone(),
                        now,
                    })
                    .await?;
                tracing::info!(pending_id = %record.id, serial, batch = %batch_id, "enrollment waits for approval");
                Ok(RegisterOutcome::Pending(PendingRegistration {
                    pending_id: record.id,
                    poll_secret,
                    poll_after_seconds: self.inner.cfg.poll_after_seconds,
                }))
            }
        }
    }

    /// Runs the atomic binding and maps its outcome.
    async fn bind(
        &self,
        credential: BindCredential,
        site_id: &str,
        machine: Option<siteboot_wire::operator::MachineRef>,
        req: &RegisterRequest,
        now: DateTime<Utc>,
        credential_id: &str,
    ) -> Result<RegisterOutcome, RegistryError> {
        let inventory = self.inner.inventory.current();
        let Some(site) = inventory.site(site_id) else {
            return Err(RegistryError::Conflict(format!(
                "site {site_id} is no longer in the inventory: ask the operator to restore it or issue a credential for another site"
            )));
        };
        let kind = credential.via();
        let binding = Binding {
            credential,
            device: NewDevice {
                id: new_id("dev"),
                site_id: site_id.to_string(),
                facts: req.facts.clone(),
                machine,
                key_sha256: crate::ca::csr_key_sha256(&req.csr),
            },
            now,
        };
        match self.inner.store.bind_device(&binding).await? {
            BindOutcome::Bound { device, replaced } => {
                if let Some(prev) = &replaced {
                    self.forget(prev);
                }
                tracing::info!(device_id = %device.id, site_id, via = kind, credential_id, replaced = ?replaced, "device registered");
                Ok(RegisterOutcome::Registered {
                    device_id: device.id,
                    site_id: site_id.to_string(),
                    assignment: site.assignment(None),
                })
            }
            // Lost a race with a concurrent redemption (or an expiry/lock in between).
            BindOutcome::CredentialRejected => {
                Err(refused(kind, credential_id, RejectReason::Replayed))
            }
            BindOutcome::SerialConflict {
                device_id,
                site_id: holder_site,
            } => {
                tracing::warn!(serial = %req.facts.serial, holder = %device_id, holder_site = %holder_site, via = kind, "serial conflict");
                Err(RegistryError::SerialConflict {
                    serial: req.facts.serial.clone(),
                })
            }
        }
    }

    /// The answer for a box retrying a registration whose 201 it never received (see
    /// [`same_box_retry`]): the same device again, for the caller to sign the new CSR
    /// (same key) for. `None` when it is not that case; the caller refuses as before.
    async fn same_box_again(
        &self,
        device_id: Option<&str>,
        site_id: &str,
        req: &RegisterRequest,
        via: &'static str,
        credential_id: &str,
    ) -> Result<Option<RegisterOutcome>, RegistryError> {
        let Some(id) = device_id else {
            return Ok(None);
        };
        let Some(device) = self.inner.store.device(id).await? else {
            return Ok(None);
        };
        let key = crate::ca::csr_key_sha256(&req.csr);
        if !same_box_retry(&device, site_id, key.as_deref()) {
            return Ok(None);
        }
        let inventory = self.inner.inventory.current();
        let Some(site) = inventory.site(site_id) else {
            return Ok(None);
        };
        tracing::info!(device_id = id, site_id, via, credential_id, "registration retried by the box that redeemed it (same key, never checked in): answering again");
        Ok(Some(RegisterOutcome::Registered {
            device_id: device.id,
            site_id: site_id.to_string(),
            assignment: site.assignment(None),
        }))
    }

    /// Polls a pending registration, authenticated by its poll secret. Unknown ids and
    /// wrong secrets get the same `invalid_credential` error.
    pub async fn poll_pending(
        &self,
        pending_id: &str,
        poll_secret: &SecretString,
        _now: DateTime<Utc>,
    ) -> Result<PollOutcome, RegistryError> {
        let record = self.inner.store.pending(pending_id).await?;
        let presented = poll_secret.sha256_hex();
        let Some(record) =
            record.filter(|r| ct_eq(r.poll_secret_hash.as_bytes(), presented.as_bytes()))
        else {
            let id: String = pending_id.chars().take(64).collect();
            return Err(refused("poll", &id, RejectReason::WrongSecret));
        };
        match record.status {
            PendingStatus::Pending => Ok(PollOutcome::Pending {
                poll_after_seconds: self.inner.cfg.poll_after_seconds,
            }),
            PendingStatus::Rejected { reason } => Ok(PollOutcome::Rejected { reason }),
            PendingStatus::Superseded => Ok(PollOutcome::Rejected {
                reason: "this serial was registered by another route; restart registration".into(),
            }),
            PendingStatus::Approved { device_id, site_id } => {
                let device = self.inner.store.device(&device_id).await?;
                if !device.as_ref().is_some_and(active) {
                    return Err(RegistryError::DeviceRevoked { device_id });
                }
                let inventory = self.inner.inventory.current();
                let site = inventory.site(&site_id).ok_or_else(|| {
                    RegistryError::Conflict(format!("site {site_id} is no longer in the inventory"))
                })?;
                Ok(PollOutcome::Approved {
                    device_id,
                    assignment: site.assignment(None),
                    site_id,
                    csr_pem: record.csr_pem,
                })
            }
        }
    }
}
