//! Check-ins: the heartbeat coalescer and [`Registry::checkin`] / [`Registry::flush_heartbeats`].
//!
//! A check-in whose state, revisions and error equal what the store holds is a
//! heartbeat: it is kept in memory and written at most once per device per interval
//! (5 min by default), by the next check-in after the interval or by
//! `flush_heartbeats` (a timer and shutdown). Anything else is written through at once.
//! A crash therefore loses at most one interval of last-seen times and health counts,
//! never a state change.
//!
//! The answer to a check-in (assignment and next delay) depends on the site, not on the
//! report, so [`Registry::checkin_json`] serialises it once per site and inventory
//! version and hands out the same bytes afterwards.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, TimeDelta, Utc};
use siteboot_wire::api::{CheckinRequest, CheckinResponse};

use super::decide::should_write;
use super::{active, Registry, RegistryError};
use crate::store::{CheckinWrite, DeviceRecord, HeartbeatWrite};

/// Events read per page of the change feed.
const SYNC_PAGE: usize = 500;

/// In-memory coalescing state per device.
#[derive(Debug)]
pub struct Coalescer {
    interval: TimeDelta,
    entries: Mutex<HashMap<String, Entry>>,
}

#[derive(Debug, Default, Clone)]
struct Entry {
    /// Last time anything was written for this device (write-through or flush).
    last_written: Option<DateTime<Utc>>,
    /// The latest heartbeat not yet written.
    unwritten: Option<HeartbeatWrite>,
}

impl Coalescer {
    /// A coalescer writing unchanged heartbeats at most once per `interval`.
    pub fn new(interval: TimeDelta) -> Self {
        Self {
            interval,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        // Entries are plain values updated in one step; a poisoned lock holds no
        // half-written entry.
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether this check-in must be written now (pure decision over remembered state).
    pub fn must_write(
        &self,
        device_id: &str,
        stored_last_seen: Option<DateTime<Utc>>,
        changed: bool,
        now: DateTime<Utc>,
    ) -> bool {
        let last = self
            .lock()
            .get(device_id)
            .and_then(|e| e.last_written)
            .or(stored_last_seen);
        should_write(now, last, changed, self.interval)
    }

    /// Records a write-through: nothing is pending for the device any more.
    pub fn written(&self, device_id: &str, now: DateTime<Utc>) {
        let mut m = self.lock();
        let e = m.entry(device_id.to_string()).or_default();
        e.last_written = Some(now);
        e.unwritten = None;
    }

    /// Keeps a heartbeat in memory (the latest one wins).
    pub fn hold(&self, beat: HeartbeatWrite) {
        let mut m = self.lock();
        let e = m.entry(beat.device_id.clone()).or_default();
        if e.unwritten
            .as_ref()
            .is_none_or(|u| u.last_seen <= beat.last_seen)
        {
            e.unwritten = Some(beat);
        }
    }

    /// Latest last-seen held in memory for a device.
    pub fn last_seen(&self, device_id: &str) -> Option<DateTime<Utc>> {
        self.lock()
            .get(device_id)
            .and_then(|e| e.unwritten.as_ref().map(|u| u.last_seen))
    }

    /// Number of devices with an unwritten heartbeat.
    pub fn unwritten(&self) -> usize {
        self.lock()
            .values()
            .filter(|e| e.unwritten.is_some())
            .count()
    }

    /// Takes every unwritten heartbeat, marking the devices written at `now`.
    fn take(&self, now: DateTime<Utc>) -> Vec<HeartbeatWrite> {
        let mut m = self.lock();
        m.values_mut()
            .filter_map(|e| {
                let b = e.unwritten.take()?;
                e.last_written = Some(now);
                Some(b)
            })
            .collect()
    }

    /// Puts heartbeats back after a failed flush (unless newer ones arrived meanwhile).
    fn restore(&self, beats: Vec<HeartbeatWrite>) {
        for b in beats {
            self.hold(b);
        }
    }

    /// Forgets a device (revoked).
    pub fn forget(&self, device_id: &str) {
        self.lock().remove(device_id);
    }
}

/// True when the report differs from what the store holds (or reports offline periods).
fn changed(stored: &DeviceRecord, req: &CheckinRequest) -> bool {
    stored.agent_state != Some(req.state)
        || stored.applied_revision != req.applied_revision
        || stored.attempted_revision != req.attempted_revision
        || stored.last_error != req.error
}

impl Registry {
    /// A check-in from an mTLS-authenticated device. Refuses revoked devices and
    /// certificates naming another site; answers the current assignment (with Git
    /// credential material) and the next check-in delay.
    pub async fn checkin(
        &self,
        site_id: &str,
        device_id: &str,
        req: &CheckinRequest,
        now: DateTime<Utc>,
    ) -> Result<CheckinResponse, RegistryError> {
        self.record_checkin(site_id, device_id, req, now).await?;
        Ok(CheckinResponse {
            assignment: self.assignment(site_id).await?,
            next_checkin_seconds: self.inner.cfg.checkin_interval_seconds,
        })
    }

    /// [`Registry::checkin`], answering with the `CheckinResponse` already serialised as
    /// JSON (the same bytes for every check-in of a site until the inventory is reloaded).
    pub async fn checkin_json(
        &self,
        site_id: &str,
        device_id: &str,
        req: &CheckinRequest,
        now: DateTime<Utc>,
    ) -> Result<Arc<[u8]>, RegistryError> {
        self.record_checkin(site_id, device_id, req, now).await?;
        let inventory = self.inner.inventory.current();
        if let Some(body) = self.inner.answers.get(&inventory, site_id) {
            return Ok(body);
        }
        let site = inventory
            .site(site_id)
            .ok_or_else(|| RegistryError::NotFound {
                what: "site",
                id: site_id.to_string(),
            })?;
        let answer = CheckinResponse {
            assignment: self.assignment_with_auth(site)?,
            next_checkin_seconds: self.inner.cfg.checkin_interval_seconds,
        };
        let body: Arc<[u8]> = serde_json::to_vec(&answer)
            .map_err(|e| RegistryError::Internal(format!("serialise a check-in answer: {e}")))?
            .into();
        self.inner
            .answers
            .put(&inventory, site_id, Arc::clone(&body));
        Ok(body)
    }

    /// Authorizes a check-in and records it: written through, or held as a heartbeat.
    async fn record_checkin(
        &self,
        site_id: &str,
        device_id: &str,
        req: &CheckinRequest,
        now: DateTime<Utc>,
    ) -> Result<(), RegistryError> {
        let device = self.authorized(site_id, device_id, now).await?;
        let state_changed = changed(&device, req);
        let write = state_changed || !req.offline_periods.is_empty();
        if self
            .inner
            .heartbeats
            .must_write(device_id, device.last_seen, write, now)
        {
            let w = CheckinWrite {
                device_id: device_id.to_string(),
                now,
                applied_revision: req.applied_revision.clone(),
                attempted_revision: req.attempted_revision.clone(),
                state: req.state,
                error: req.error.clone(),
                health: req.health,
                offline_periods: req.offline_periods.clone(),
                state_changed,
            };
            if !self.inner.store.write_checkin(&w).await? {
                // Revoked between the read and the write.
                return Err(RegistryError::DeviceRevoked {
                    device_id: device_id.to_string(),
                });
            }
            self.inner.heartbeats.written(device_id, now);
            self.inner.devices.update(device_id, |d| {
                d.last_seen = d.last_seen.max(Some(now));
                d.applied_revision = w.applied_revision;
                d.attempted_revision = w.attempted_revision;
                d.agent_state = Some(w.state);
                d.last_error = w.error;
                d.health = w.health;
            });
            if state_changed {
                tracing::info!(site_id, device_id, state = ?req.state, applied = ?req.applied_revision, attempted = ?req.attempted_revision, "device state changed");
            }
        } else {
            self.inner.heartbeats.hold(HeartbeatWrite {
                device_id: device_id.to_string(),
                last_seen: now,
                health: req.health,
            });
        }
        Ok(())
    }

    /// Writes every heartbeat held in memory (call on a timer and at shutdown). On a
    /// store failure the heartbeats stay held for the next flush.
    pub async fn flush_heartbeats(&self, now: DateTime<Utc>) -> Result<usize, RegistryError> {
        let beats = self.inner.heartbeats.take(now);
        if beats.is_empty() {
            return Ok(0);
        }
        match self.inner.store.write_heartbeats(&beats).await {
            Ok(()) => Ok(beats.len()),
            Err(e) => {
                self.inner.heartbeats.restore(beats);
                Err(e.into())
            }
        }
    }

    /// The active device `device_id` of `site_id`, or why it may not act.
    pub(super) async fn authorized(
        &self,
        site_id: &str,
        device_id: &str,
        now: DateTime<Utc>,
    ) -> Result<Arc<DeviceRecord>, RegistryError> {
        self.sync_device_cache(now).await?;
        let cached = self.inner.devices.get(device_id);
        let device = match cached {
            Some(d) => d,
            None => {
                let generation = self.inner.devices.generation();
                match self.inner.store.device(device_id).await? {
                    Some(d) => {
                        let d = Arc::new(d);
                        self.inner.devices.put(Arc::clone(&d), generation);
                        d
                    }
                    None => {
                        return Err(RegistryError::Forbidden(format!(
                            "device {device_id} is not registered here"
                        )))
                    }
                }
            }
        };
        if !active(&device) {
            return Err(RegistryError::DeviceRevoked {
                device_id: device_id.to_string(),
            });
        }
        if device.site_id != site_id {
            return Err(RegistryError::Forbidden(format!(
                "device {device_id} serves site {}, not {site_id}",
                device.site_id
            )));
        }
        Ok(device)
    }

    /// Reads the store's change feed when the device cache's last read is older than its
    /// period, dropping the records other replicas changed (see `cache`). One read at a
    /// time; concurrent check-ins wait for it instead of reading again.
    async fn sync_device_cache(&self, now: DateTime<Utc>) -> Result<(), RegistryError> {
        let cache = &self.inner.devices;
        if !cache.stale(now) {
            return Ok(());
        }
        let _one = cache.sync_lock().await;
        if !cache.stale(now) {
            return Ok(());
        }
        let mut changed = Vec::new();
        let cursor = match cache.cursor() {
            // Nothing is cached before the first read: start from the newest event.
            None => self.inner.store.latest_event_seq().await?,
            Some(mut after) => loop {
                let page = self.inner.store.events(after, SYNC_PAGE).await?;
                for e in &page {
                    after = after.max(e.seq);
                    changed.extend(e.device_id.clone());
                }
                if page.len() < SYNC_PAGE {
                    break after;
                }
            },
        };
        cache.apply(changed, cursor, now);
        Ok(())
    }
}
