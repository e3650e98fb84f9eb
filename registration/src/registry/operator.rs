//! Operator actions: tokens, claim codes, sites, devices, the pending queue, inventory.

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use siteboot_wire::claim::{self, ClaimCode};
use siteboot_wire::operator::{
    DeviceInfo, ExtendTokenRequest, MintClaimRequest, MintClaimResponse, MintTokenRequest,
    MintTokenResponse, PendingInfo, SiteInfo, TokenInfo,
};
use siteboot_wire::token::{self, RegistrationToken};

use super::decide::{lifetime, token_state};
use super::{active, delta, new_id, random, Registry, RegistryError};
use crate::inventory::{check_auth_refs, Site, SiteFilter};
use crate::store::{
    BindCredential, BindOutcome, Binding, DeviceRecord, NewDevice, PendingStatus, StoreError,
    TokenRecord,
};

/// Attempts at drawing a fresh id before giving up (claim ids are 20 bits).
const MINT_ATTEMPTS: usize = 16;

fn token_info(t: &TokenRecord, now: DateTime<Utc>) -> TokenInfo {
    TokenInfo {
        token_id: t.id.clone(),
        site_id: t.site_id.clone(),
        machine: t.machine.clone(),
        state: token_state(t, now),
        expires_at: t.expires_at,
        device_id: t.device_id.clone(),
    }
}

impl Registry {
    fn known_site(&self, site_id: &str, field: &str) -> Result<(), RegistryError> {
        if self.inner.inventory.current().site(site_id).is_none() {
            return Err(RegistryError::invalid(
                field,
                format!("site {site_id:?} is not in the inventory"),
            ));
        }
        Ok(())
    }

    /// Mints a registration token for a site (and optionally a Machine: minting again for
    /// the same Machine revokes its earlier unused tokens).
    pub async fn mint_token(
        &self,
        req: &MintTokenRequest,
        now: DateTime<Utc>,
    ) -> Result<MintTokenResponse, RegistryError> {
        self.known_site(&req.site_id, "siteId")?;
        if let Some(m) = &req.machine {
            if m.namespace.is_empty() || m.name.is_empty() {
                return Err(RegistryError::invalid(
                    "machine",
                    "namespace and name are required",
                ));
            }
        }
        let cfg = &self.inner.cfg;
        let ttl = lifetime(
            req.ttl_seconds,
            delta(cfg.token_ttl),
            delta(cfg.max_token_ttl),
        )
        .map_err(|m| RegistryError::invalid("ttlSeconds", m))?;
        for _ in 0..MINT_ATTEMPTS {
            let token = RegistrationToken::from_random(&random::<{ token::RANDOM_BYTES }>());
            let record = TokenRecord {
                id: token.id().to_string(),
                secret_hash: token.secret_hash(),
                site_id: req.site_id.clone(),
                machine: req.machine.clone(),
                created_at: now,
                expires_at: now + ttl,
                redeemed_at: None,
                revoked_at: None,
                device_id: None,
            };
            match self.inner.store.insert_token(&record).await {
                Ok(()) => {
                    tracing::info!(token_id = token.id(), site_id = %req.site_id, machine = ?req.machine.as_ref().map(|m| format!("{}/{}", m.namespace, m.name)), "token minted");
                    return Ok(MintTokenResponse {
                        token: token.to_secret_string(),
                        info: token_info(&record, now),
                    });
                }
                Err(StoreError::Conflict { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(RegistryError::Internal(
            "could not draw an unused token id: retry".into(),
        ))
    }

    async fn token_record(&self, token_id: &str) -> Result<TokenRecord, RegistryError> {
        self.inner
            .store
            .token(token_id)
            .await?
            .ok_or_else(|| RegistryError::NotFound {
                what: "token",
                id: token_id.to_string(),
            })
    }

    /// Token metadata (never the secret).
    pub async fn token_info(
        &self,
        token_id: &str,
        now: DateTime<Utc>,
    ) -> Result<TokenInfo, RegistryError> {
        Ok(token_info(&self.token_record(token_id).await?, now))
    }

    /// Extends an unused token to `now + ttl`.
    pub async fn extend_token(
        &self,
        token_id: &str,
        req: &ExtendTokenRequest,
        now: DateTime<Utc>,
    ) -> Result<TokenInfo, RegistryError> {
        let cfg = &self.inner.cfg;
        let ttl = lifetime(
            Some(req.ttl_seconds),
            delta(cfg.token_ttl),
            delta(cfg.max_token_ttl),
        )
        .map_err(|m| RegistryError::invalid("ttlSeconds", m))?;
        match self
            .inner
            .store
            .extend_token(token_id, now + ttl, now)
            .await?
        {
            Some(t) => Ok(token_info(&t, now)),
            None => {
                let t = self.token_record(token_id).await?;
                Err(RegistryError::Conflict(format!(
                    "token {token_id} is {:?}: only unused tokens can be extended; mint a new one",
                    token_state(&t, now)
                )))
            }
        }
    }

    /// Revokes a token (a redeemed token stays redeemed; its device is revoked separately).
    pub async fn revoke_token(
        &self,
        token_id: &str,
        now: DateTime<Utc>,
    ) -> Result<TokenInfo, RegistryError> {
        let t = self
            .inner
            .store
            .revoke_token(token_id, now)
            .await?
            .ok_or_else(|| RegistryError::NotFound {
                what: "token",
                id: token_id.to_string(),
            })?;
        tracing::info!(token_id, "token revoked");
        Ok(token_info(&t, now))
    }

    /// Mints a claim code for a site.
    pub async fn mint_claim(
        &self,
        req: &MintClaimRequest,
        now: DateTime<Utc>,
    ) -> Result<MintClaimResponse, RegistryError> {
        self.known_site(&req.site_id, "siteId")?;
        let cfg = &self.inner.cfg;
        let ttl = lifetime(
            req.ttl_seconds,
            delta(cfg.claim_ttl),
            delta(cfg.max_claim_ttl),
        )
        .map_err(|m| RegistryError::invalid("ttlSeconds", m))?;
        for _ in 0..MINT_ATTEMPTS {
            let code = ClaimCode::from_random(&random::<{ claim::RANDOM_BYTES }>());
            let record = crate::store::ClaimRecord {
                id: code.id().to_string(),
                secret_hash: code.secret_hash(),
                site_id: req.site_id.clone(),
                created_at: now,
                expires_at: now + ttl,
                redeemed_at: None,
                revoked_at: None,
                device_id: None,
                failed_attempts: 0,
            };
            match self.inner.store.insert_claim(&record).await {
                Ok(()) => {
                    tracing::info!(claim_id = code.id(), site_id = %req.site_id, "claim code minted");
                    return Ok(MintClaimResponse {
                        code: code.to_secret_string(),
                        claim_id: record.id,
                        site_id: record.site_id,
                        expires_at: record.expires_at,
                    });
                }
                Err(StoreError::Conflict { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(RegistryError::Internal(
            "could not draw an unused claim id: retry".into(),
        ))
    }

    fn site_info(&self, site: &Site, device: Option<&DeviceRecord>) -> SiteInfo {
        SiteInfo {
            site_id: site.id.clone(),
            labels: site.labels.clone(),
            device_id: device.map(|d| d.id.clone()),
            last_seen: device.and_then(|d| self.inner.heartbeats.last_seen(&d.id).max(d.last_seen)),
            applied_revision: device.and_then(|d| d.applied_revision.clone()),
            attempted_revision: device.and_then(|d| d.attempted_revision.clone()),
            agent_state: device.and_then(|d| d.agent_state).map(|s| {
                serde_json::to_value(s)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default()
            }),
            last_error: device.and_then(|d| d.last_error.clone()),
        }
    }

    /// Sites from the inventory with their active device's status.
    pub async fn sites(&self, filter: &SiteFilter) -> Result<Vec<SiteInfo>, RegistryError> {
        let inventory = self.inner.inventory.current();
        let devices = self.inner.store.devices(None).await?;
        let by_site: HashMap<&str, &DeviceRecord> = devices
            .iter()
            .filter(|d| active(d))
            .map(|d| (d.site_id.as_str(), d))
            .collect();
        Ok(inventory
            .sites
            .values()
            .filter(|s| filter.matches(s))
            .map(|s| self.site_info(s, by_site.get(s.id.as_str()).copied()))
            .collect())
    }

    /// One site.
    pub async fn site(&self, site_id: &str) -> Result<SiteInfo, RegistryError> {
        let inventory = self.inner.inventory.current();
        let site = inventory
            .site(site_id)
            .ok_or_else(|| RegistryError::NotFound {
                what: "site",
                id: site_id.to_string(),
            })?;
        let devices = self.inner.store.devices(Some(site_id)).await?;
        Ok(self.site_info(site, devices.iter().find(|d| active(d))))
    }

    /// Devices, optionally of one site.
    pub async fn devices(&self, site_id: Option<&str>) -> Result<Vec<DeviceInfo>, RegistryError> {
        let devices = self.inner.store.devices(site_id).await?;
        Ok(devices.into_iter().map(|d| self.device_info(d)).collect())
    }

    /// Devices waiting for approval.
    pub async fn pending(&self) -> Result<Vec<PendingInfo>, RegistryError> {
        let open = self.inner.store.open_pending().await?;
        Ok(open
            .into_iter()
            .map(|p| PendingInfo {
                pending_id: p.id,
                batch: p.batch,
                facts: p.facts,
                requested_at: p.requested_at,
            })
            .collect())
    }

    /// Approves a pending device for a site: binds it (revoking the site's previous
    /// device); the device gets its certificate at its next poll.
    pub async fn approve(
        &self,
        pending_id: &str,
        site_id: &str,
        now: DateTime<Utc>,
    ) -> Result<DeviceInfo, RegistryError> {
        self.known_site(site_id, "siteId")?;
        let record =
            self.inner
                .store
                .pending(pending_id)
                .await?
                .ok_or_else(|| RegistryError::NotFound {
                    what: "pending registration",
                    id: pending_id.to_string(),
                })?;
        let binding = Binding {
            credential: BindCredential::Approval {
                pending_id: pending_id.to_string(),
            },
            device: NewDevice {
                id: new_id("dev"),
                site_id: site_id.to_string(),
                facts: record.facts.clone(),
                machine: None,
                key_sha256: crate::ca::csr_key_sha256(&record.csr_pem),
            },
            now,
        };
        if record.status != PendingStatus::Pending {
            return Err(RegistryError::Conflict(format!(
                "pending registration {pending_id} was already decided"
            )));
        }
        match self.inner.store.bind_device(&binding).await? {
            BindOutcome::Bound { device, replaced } => {
                if let Some(prev) = &replaced {
                    self.forget(prev);
                }
                tracing::info!(pending_id, device_id = %device.id, site_id, replaced = ?replaced, "pending device approved");
                Ok(self.device_info(device))
            }
            BindOutcome::CredentialRejected => Err(RegistryError::Conflict(format!(
                "pending registration {pending_id} was already decided"
            ))),
            BindOutcome::SerialConflict { .. } => Err(RegistryError::SerialConflict {
                serial: record.facts.serial,
            }),
        }
    }

    /// Rejects a pending device.
    pub async fn reject(
        &self,
        pending_id: &str,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<(), RegistryError> {
        if self
            .inner
            .store
            .reject_pending(pending_id, reason, now)
            .await?
        {
            tracing::info!(pending_id, reason, "pending device rejected");
            return Ok(());
        }
        match self.inner.store.pending(pending_id).await? {
            None => Err(RegistryError::NotFound {
                what: "pending registration",
                id: pending_id.to_string(),
            }),
            Some(_) => Err(RegistryError::Conflict(format!(
                "pending registration {pending_id} was already decided"
            ))),
        }
    }

    /// Revokes a device: its certificate is refused from now on.
    pub async fn revoke_device(
        &self,
        device_id: &str,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<DeviceInfo, RegistryError> {
        let d = self
            .inner
            .store
            .revoke_device(device_id, reason, now)
            .await?
            .ok_or_else(|| RegistryError::NotFound {
                what: "device",
                id: device_id.to_string(),
            })?;
        self.forget(device_id);
        tracing::info!(device_id, reason, "device revoked");
        Ok(self.device_info(d))
    }

    /// Reloads the inventory file; on any error the previous inventory keeps serving and
    /// the error names file, line and reason.
    pub async fn reload_inventory(&self) -> Result<usize, RegistryError> {
        let handle = self.inner.inventory.clone();
        let known: BTreeSet<String> = self.inner.cfg.git_credentials.keys().cloned().collect();
        let result = tokio::task::spawn_blocking(move || {
            let file = handle
                .path()
                .map(|p| p.display().to_string())
                .unwrap_or_default();
            handle.reload_with(|inv| check_auth_refs(inv, &known, &file))
        })
        .await
        .map_err(|e| RegistryError::Internal(format!("inventory reload task failed: {e}")))?;
        match result {
            Ok(n) => {
                tracing::info!(sites = n, "inventory reloaded");
                Ok(n)
            }
            Err(e) => {
                tracing::warn!(error = %e, "inventory reload refused; previous inventory keeps serving");
                Err(e.into())
            }
        }
    }
}
