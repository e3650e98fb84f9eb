//! Check-in over mTLS (state, revisions, health, offline periods, apply-attempt timings;
//! the answer may carry a new assignment) and certificate renewal after 2/3 of its
//! lifetime. Offline periods and timings are removed only after a 2xx answer.

use std::time::Duration;

use chrono::Utc;
use siteboot_wire::api::{CheckinRequest, RenewRequest};
use tokio::time::Instant;

use super::Agent;
use crate::backoff::{checkin_retry_delay, jittered, unit};
use crate::client::{CallError, ServiceClient};
use crate::identity::{csr_pem, generate_key, identity_pem, renewal_due, validity};
use crate::offline::SERVICE;
use crate::render::ObjectRef;
use crate::store::{StoreError, ASSIGNMENT, CA, IDENTITY, REVOKED};

impl Agent {
    pub(crate) async fn checkin(&mut self) -> Result<(), StoreError> {
        if self.status.revoked {
            self.next_checkin = Instant::now() + Duration::from_secs(3600);
            return Ok(());
        }
        if let Some(lg) = &self.last_good {
            let refs: Vec<ObjectRef> = lg
                .objects
                .iter()
                .filter_map(|o| ObjectRef::of(o).ok())
                .collect();
            if let Ok(h) = self.applier.health(&refs).await {
                self.status.health = h;
                self.refresh_state();
            }
        }
        if let Err(e) = self.renew_if_due().await {
            self.on_service_error(&e, "renew the client certificate")?;
        }
        if self.status.revoked {
            return Ok(());
        }
        let now = Utc::now();
        let periods = self.status.offline.report(now);
        let attempts = self.status.attempts.report();
        let req = CheckinRequest {
            applied_revision: self.status.applied_revision.clone(),
            attempted_revision: self.status.attempted_revision.clone(),
            state: self.status.state,
            error: self.status.error.clone(),
            health: self.status.health,
            offline_periods: periods.clone(),
            facts: Some(self.facts.clone()),
            attempts,
        };
        match self.service.checkin(&req).await {
            Ok(resp) => {
                if !periods.is_empty() {
                    tracing::info!(periods = periods.len(), "reported offline periods");
                }
                self.status.offline.reported(&periods);
                if !req.attempts.is_empty() {
                    tracing::debug!(attempts = req.attempts.len(), "reported attempt timings");
                }
                self.status.attempts.reported(&req.attempts);
                self.status.last_checkin = Some(now);
                self.checkin_failures = 0;
                self.checkin_every =
                    Duration::from_secs(resp.next_checkin_seconds.clamp(1, 86_400));
                if resp.assignment.site_id != self.record.site_id {
                    tracing::warn!(got = %resp.assignment.site_id, "ignoring an assignment for another site");
                } else if resp.assignment != self.assignment {
                    tracing::info!("assignment changed");
                    self.dir.write_json(ASSIGNMENT, &resp.assignment)?;
                    self.assignment = resp.assignment;
                    self.next_poll = Instant::now();
                }
                self.next_checkin = Instant::now() + jittered(self.checkin_every, unit());
            }
            Err(e) => self.on_service_error(&e, "check in")?,
        }
        Ok(())
    }

    fn on_service_error(&mut self, e: &CallError, action: &str) -> Result<(), StoreError> {
        if e.is_revoked() {
            tracing::error!(
                "the registration service revoked this device ({action} refused): parking"
            );
            self.dir
                .write_json(REVOKED, &serde_json::json!({"revokedAt": Utc::now()}))?;
            self.status.revoked = true;
            self.status.registration = "revoked".into();
            return Ok(());
        }
        if e.is_offline() {
            if !self.status.offline.is_offline(SERVICE) {
                tracing::warn!(error = %e, "registration service unreachable: {action} later");
            }
            self.status.offline.failed(SERVICE, Utc::now());
            self.checkin_failures = self.checkin_failures.saturating_add(1);
            let wait = checkin_retry_delay(
                self.checkin_failures,
                self.checkin_every,
                e.retry_after(),
                unit(),
            );
            self.next_checkin = Instant::now() + wait;
        } else {
            tracing::warn!(error = %e, "{action} failed");
            self.next_checkin = Instant::now() + jittered(self.checkin_every, unit());
        }
        Ok(())
    }

    async fn renew_if_due(&mut self) -> Result<(), CallError> {
        let Ok(Some(pem)) = self.dir.read(IDENTITY) else {
            return Ok(());
        };
        let Ok((not_before, not_after)) = validity(&pem) else {
            return Ok(());
        };
        // Services backdate `notBefore` for clock skew; the lifetime that matters starts
        // when this box received the certificate (the identity file's mtime).
        let received = std::fs::metadata(self.dir.path(IDENTITY))
            .and_then(|m| m.modified())
            .map(chrono::DateTime::<Utc>::from)
            .unwrap_or(not_before);
        if !renewal_due(
            not_before.max(received.min(not_after)),
            not_after,
            Utc::now(),
        ) {
            return Ok(());
        }
        let protocol = |reason: String| CallError::Protocol { status: 0, reason };
        let key = generate_key().map_err(|e| protocol(e.to_string()))?;
        let csr = csr_pem(&key, &self.facts.serial).map_err(|e| protocol(e.to_string()))?;
        let resp = self.service.renew(&RenewRequest { csr }).await?;
        // One file holds certificate and key, so the swap is a single atomic rename.
        self.dir
            .write_atomic(
                IDENTITY,
                identity_pem(&resp.certificate, &key).as_bytes(),
                0o600,
            )
            .map_err(|e| protocol(e.to_string()))?;
        self.dir
            .write_atomic(CA, resp.ca_bundle.as_bytes(), 0o644)
            .map_err(|e| protocol(e.to_string()))?;
        let trust = self.trust.clone().with_extra(resp.ca_bundle.as_bytes());
        let tls = trust
            .mtls(identity_pem(&resp.certificate, &key).as_bytes())
            .map_err(|e| protocol(e.to_string()))?;
        self.service = ServiceClient::new(&self.settings.registration_url, tls)
            .map_err(|e| protocol(e.to_string()))?;
        tracing::info!(not_after = %resp.not_after, "client certificate renewed");
        Ok(())
    }
}
