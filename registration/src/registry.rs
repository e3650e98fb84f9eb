//! The registration domain: redeeming tokens, factory enrollment, claim codes, the
//! pending queue, check-ins, assignments and the operator actions.
//!
//! [`Registry`] is what the HTTP layer calls. It decides with the pure functions in
//! [`decide`], acts through the [`Store`] (whose `bind_device` is the one atomic
//! registration step) and reads the [`InventoryHandle`]. It never signs certificates:
//! the HTTP layer validates the CSR before calling [`Registry::register`] and signs it
//! for `(site_id, device_id)` after `Registered`/`Approved` comes back.
//!
//! Every method takes `now`; only the random bytes for ids and secrets come from the OS
//! (`rand::rng()`, a CSPRNG seeded from the OS), drawn here at the edge.
//!
//! In memory it keeps only what may be lost or rebuilt: coalesced heartbeats
//! ([`Coalescer`], at most one interval of last-seen times) and a device cache for the
//! check-in path (exact for this process's own writes, `device_cache_ttl` for others).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::TimeDelta;
use rand::RngCore;
use siteboot_wire::assignment::{Assignment, GitAuth};
use siteboot_wire::operator::{DeviceInfo, DeviceStatus};

use crate::inventory::{check_auth_refs, InventoryHandle, Site};
use crate::store::{DeviceRecord, Event, Store};

mod cache;
mod config;
pub mod decide;
mod error;
pub mod fleet;
mod heartbeat;
mod operator;
mod register;

pub use config::{parse_enrollment_batches, RegistryConfig};
pub use decide::RejectReason;
pub use error::{RegistryError, INVALID_CREDENTIAL_MESSAGE};
pub use heartbeat::Coalescer;

/// Result of [`Registry::register`].
#[derive(Debug, Clone, PartialEq, Eq)]
// Built once per request and matched by value; boxing would only burden callers.
#[allow(clippy::large_enum_variant)]
pub enum RegisterOutcome {
    /// Bound: sign the CSR for `(site_id, device_id)` and answer 201. The assignment
    /// carries the credential reference only; material comes over mTLS.
    Registered {
        /// New device id.
        device_id: String,
        /// Its site.
        site_id: String,
        /// What to hydrate.
        assignment: Assignment,
    },
    /// Parked for an operator: answer 202.
    Pending(siteboot_wire::api::PendingRegistration),
}

/// Result of [`Registry::poll_pending`].
#[derive(Debug, Clone, PartialEq, Eq)]
// Built once per request and matched by value; boxing would only burden callers.
#[allow(clippy::large_enum_variant)]
pub enum PollOutcome {
    /// Still waiting.
    Pending {
        /// Seconds until the next poll.
        poll_after_seconds: u64,
    },
    /// Approved: sign `csr_pem` (stored at request time) for `(site_id, device_id)`.
    Approved {
        /// Device id.
        device_id: String,
        /// Site.
        site_id: String,
        /// What to hydrate (reference only, as for `Registered`).
        assignment: Assignment,
        /// The CSR the device sent with its last request.
        csr_pem: String,
    },
    /// Rejected by an operator (or settled another way).
    Rejected {
        /// Why.
        reason: String,
    },
}

/// The registration domain service. Cheap to clone.
#[derive(Clone)]
pub struct Registry {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn Store>,
    inventory: InventoryHandle,
    cfg: RegistryConfig,
    heartbeats: Coalescer,
    devices: cache::DeviceCache,
    answers: cache::AnswerCache,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("cfg", &self.inner.cfg)
            .finish_non_exhaustive()
    }
}

impl Registry {
    /// A registry over a store, an inventory and its configuration.
    pub fn new(store: Arc<dyn Store>, inventory: InventoryHandle, cfg: RegistryConfig) -> Self {
        let known: BTreeSet<String> = cfg.git_credentials.keys().cloned().collect();
        let file = inventory
            .path()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        if let Err(e) = check_auth_refs(&inventory.current(), &known, &file) {
            tracing::warn!(error = %e, "inventory names a git credential that is not configured; assignments for those sites will fail");
        }
        let heartbeats = Coalescer::new(delta(cfg.heartbeat_interval));
        let devices = cache::DeviceCache::new(delta(cfg.device_cache_ttl));
        Self {
            inner: Arc::new(Inner {
                store,
                inventory,
                cfg,
                heartbeats,
                devices,
                answers: cache::AnswerCache::default(),
            }),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &RegistryConfig {
        &self.inner.cfg
    }

    /// The inventory handle.
    pub fn inventory(&self) -> &InventoryHandle {
        &self.inner.inventory
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.inner.store
    }

    /// A device by id, with the coalesced last-seen time. The mTLS gate: only a device
    /// with status `Active` may check in, renew or fetch its assignment.
    pub async fn device(&self, device_id: &str) -> Result<Option<DeviceInfo>, RegistryError> {
        let d = self.inner.store.device(device_id).await?;
        Ok(d.map(|d| self.device_info(d)))
    }

    /// The current assignment of a site, with the Git credential material resolved
    /// (for mTLS answers only).
    pub async fn assignment(&self, site_id: &str) -> Result<Assignment, RegistryError> {
        let inventory = self.inner.inventory.current();
        let site = inventory
            .site(site_id)
            .ok_or_else(|| RegistryError::NotFound {
                what: "site",
                id: site_id.to_string(),
            })?;
        self.assignment_with_auth(site)
    }

    /// The assignment for an mTLS caller (`GET /v1/assignment`): the device must be
    /// active and serve `site_id`.
    pub async fn assignment_for_device(
        &self,
        site_id: &str,
        device_id: &str,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<Assignment, RegistryError> {
        self.authorized(site_id, device_id, now).await?;
        self.assignment(site_id).await
    }

    /// History events after `after` (for the fleet dashboard).
    pub async fn events(&self, after: i64, limit: usize) -> Result<Vec<Event>, RegistryError> {
        Ok(self.inner.store.events(after, limit).await?)
    }

    fn assignment_with_auth(&self, site: &Site) -> Result<Assignment, RegistryError> {
        let auth = match &site.auth_ref {
            None => None,
            Some(name) => Some(self.git_auth(name)?),
        };
        Ok(site.assignment(auth))
    }

    fn git_auth(&self, name: &str) -> Result<GitAuth, RegistryError> {
        self.inner.cfg.git_credentials.get(name).cloned().ok_or_else(|| {
            RegistryError::Internal(format!(
                "git credential {name:?} named by the inventory is not in the credentials file: add it and restart"
            ))
        })
    }

    /// Forgets in-memory state of a device that was just replaced or revoked.
    fn forget(&self, device_id: &str) {
        self.inner.heartbeats.forget(device_id);
        self.inner.devices.remove(device_id);
    }

    fn device_info(&self, d: DeviceRecord) -> DeviceInfo {
        let last_seen = self.inner.heartbeats.last_seen(&d.id).max(d.last_seen);
        DeviceInfo {
            device_id: d.id,
            site_id: d.site_id,
            status: d.status,
            facts: d.facts,
            registered_via: d.registered_via,
            registered_at: d.registered_at,
            last_seen,
        }
    }
}

/// `true` for an active device.
fn active(d: &DeviceRecord) -> bool {
    d.status == DeviceStatus::Active
}

/// `n` random bytes from the OS-seeded CSPRNG.
fn random<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    rand::rng().fill_bytes(&mut b);
    b
}

/// A fresh public id: `prefix-` and 20 hex digits (80 bits).
fn new_id(prefix: &str) -> String {
    format!("{prefix}-{}", hex::encode(random::<10>()))
}

fn delta(d: Duration) -> TimeDelta {
    TimeDelta::from_std(d).unwrap_or(TimeDelta::MAX)
}
