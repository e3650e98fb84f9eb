//! The fleet view: every inventory site with the one state [`derive_state`] gives it,
//! filtered and counted, and one site's page (devices and history).
//!
//! Inputs per call: the current inventory (sites, labels, offline thresholds), ONE store
//! read of all devices, ONE store read of the sites with a registration underway, and the
//! in-memory heartbeat coalescer (the store's `last_seen` may lag by up to one heartbeat
//! interval, 5 min by default, so offline detection takes the later of the two). The
//! per-site decision ([`fleet_site`]) is pure.

use std::collections::{BTreeSet, HashMap, HashSet};

use chrono::{DateTime, TimeDelta, Utc};
use siteboot_wire::fleet::{
    derive_state, FleetCounts, FleetQuery, FleetResponse, FleetSite, HistoryEntry, SiteDetail,
    StateInputs,
};

use super::{active, Registry, RegistryError};
use crate::inventory::Site;
use crate::store::{DeviceRecord, Event};

/// History entries on a site page.
pub const HISTORY_LIMIT: usize = 100;

/// What [`fleet_site`] needs to know about the fleet besides the site itself.
#[derive(Debug, Clone, Copy)]
pub struct FleetClock {
    /// Evaluation time.
    pub now: DateTime<Utc>,
    /// Check-in interval told to devices.
    pub checkin_interval: TimeDelta,
}

/// The fleet view of one site (pure).
///
/// `device` is the site's active device, `memory_last_seen` the coalescer's unwritten
/// last-seen for it, `underway` whether a live token or claim exists for the site,
/// `had_device` whether any device (active or revoked) was ever bound to it.
pub fn fleet_site(
    site: &Site,
    device: Option<&DeviceRecord>,
    memory_last_seen: Option<DateTime<Utc>>,
    underway: bool,
    had_device: bool,
    clock: FleetClock,
) -> FleetSite {
    let last_seen = device.and_then(|d| d.last_seen.max(memory_last_seen));
    let inputs = StateInputs {
        has_active_device: device.is_some(),
        had_device: had_device || device.is_some(),
        last_seen,
        agent_state: device.and_then(|d| d.agent_state),
        registration_underway: underway,
        checkin_interval: clock.checkin_interval,
        offline_after_missed: site.offline_after_missed_checkins,
    };
    FleetSite {
        site_id: site.id.clone(),
        state: derive_state(&inputs, clock.now),
        ring: Some(site.ring.clone()),
        region: Some(site.region.clone()),
        device_id: device.map(|d| d.id.clone()),
        last_seen,
        applied_revision: device.and_then(|d| d.applied_revision.clone()),
        attempted_revision: device.and_then(|d| d.attempted_revision.clone()),
        last_error: device.and_then(|d| d.last_error.clone()),
        offline_after_missed: site.offline_after_missed_checkins,
    }
}

/// A stored event as a history line.
pub fn history_entry(e: Event) -> HistoryEntry {
    HistoryEntry {
        at: e.at,
        kind: e.kind.as_str().to_string(),
        device_id: e.device_id,
        detail: e.detail,
    }
}

impl Registry {
    fn clock(&self, now: DateTime<Utc>) -> FleetClock {
        let secs = i64::try_from(self.inner.cfg.checkin_interval_seconds).unwrap_or(i64::MAX);
        FleetClock {
            now,
            checkin_interval: TimeDelta::try_seconds(secs).unwrap_or(TimeDelta::MAX),
        }
    }

    async fn underway(&self, now: DateTime<Utc>) -> Result<BTreeSet<String>, RegistryError> {
        Ok(self
            .inner
            .store
            .registration_underway(now, self.inner.cfg.claim_max_failures)
            .await?)
    }

    /// Every inventory site matching `q`, by site id, with counts over the matched sites.
    /// Two store reads whatever the fleet size.
    pub async fn fleet(
        &self,
        q: &FleetQuery,
        now: DateTime<Utc>,
    ) -> Result<FleetResponse, RegistryError> {
        let inventory = self.inner.inventory.current();
        let devices = self.inner.store.devices(None).await?;
        let underway = self.underway(now).await?;
        let by_site: HashMap<&str, &DeviceRecord> = devices
            .iter()
            .filter(|d| active(d))
            .map(|d| (d.site_id.as_str(), d))
            .collect();
        let ever: HashSet<&str> = devices.iter().map(|d| d.site_id.as_str()).collect();
        let clock = self.clock(now);
        let sites: Vec<FleetSite> = inventory
            .sites
            .values()
            // Cheap label filters first; the state filter needs the derived state.
            .filter(|s| q.region.as_ref().is_none_or(|r| *r == s.region))
            .filter(|s| q.ring.as_ref().is_none_or(|r| *r == s.ring))
            .map(|s| {
                let device = by_site.get(s.id.as_str()).copied();
                let memory = device.and_then(|d| self.inner.heartbeats.last_seen(&d.id));
                fleet_site(
                    s,
                    device,
                    memory,
                    underway.contains(&s.id),
                    ever.contains(s.id.as_str()),
                    clock,
                )
            })
            .filter(|s| q.matches(s))
            .collect();
        Ok(FleetResponse {
            generated_at: now,
            counts: FleetCounts::of(&sites),
            sites,
        })
    }

    /// One site: its fleet line, labels, every device it has had (newest first) and its
    /// latest [`HISTORY_LIMIT`] events (newest first). Unknown site: `NotFound`.
    pub async fn site_detail(
        &self,
        site_id: &str,
        now: DateTime<Utc>,
    ) -> Result<SiteDetail, RegistryError> {
        let inventory = self.inner.inventory.current();
        let site = inventory
            .site(site_id)
            .ok_or_else(|| RegistryError::NotFound {
                what: "site",
                id: site_id.to_string(),
            })?;
        let mut devices = self.inner.store.devices(Some(site_id)).await?;
        devices.reverse();
        let underway = self.underway(now).await?.contains(site_id);
        let device = devices.iter().find(|d| active(d));
        let memory = device.and_then(|d| self.inner.heartbeats.last_seen(&d.id));
        let line = fleet_site(
            site,
            device,
            memory,
            underway,
            !devices.is_empty(),
            self.clock(now),
        );
        let events = self.inner.store.site_events(site_id, HISTORY_LIMIT).await?;
        Ok(SiteDetail {
            site: line,
            labels: site.labels.clone(),
            devices: devices.into_iter().map(|d| self.device_info(d)).collect(),
            history: events.into_iter().map(history_entry).collect(),
        })
    }
}

#[cfg(test)]
mod tests;
