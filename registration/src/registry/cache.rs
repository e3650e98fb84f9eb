//! A small cache of device records for the check-in path, so a check-in that is only
//! a heartbeat touches no database at all.
//!
//! Exact within this process: every write this registry makes (bind, replacement,
//! revocation, check-in) updates or drops the entry in the same call, so a revoked
//! device is refused from its next request on. Another replica's writes (only possible
//! with a shared store) become visible when an entry is older than the TTL, measured
//! with the `now` callers pass in. A TTL of zero disables the cache.

use std::collections::HashMap;
use std::sync::RwLock;

use chrono::{DateTime, TimeDelta, Utc};

use crate::store::DeviceRecord;

/// Entries kept before the cache is cleared wholesale (bounds memory; 10k sites fit).
const MAX_ENTRIES: usize = 100_000;

#[derive(Debug)]
pub(super) struct DeviceCache {
    ttl: TimeDelta,
    entries: RwLock<HashMap<String, (DeviceRecord, DateTime<Utc>)>>,
}

impl DeviceCache {
    pub(super) fn new(ttl: TimeDelta) -> Self {
        Self {
            ttl,
            entries: RwLock::new(HashMap::new()),
        }
    }

    /// A record fetched less than the TTL before `now`.
    pub(super) fn get(&self, id: &str, now: DateTime<Utc>) -> Option<DeviceRecord> {
        if self.ttl <= TimeDelta::zero() {
            return None;
        }
        let m = self.entries.read().unwrap_or_else(|p| p.into_inner());
        let (d, fetched) = m.get(id)?;
        // A `now` before the fetch (clock step back) counts as stale too.
        (now >= *fetched && now - *fetched < self.ttl).then(|| d.clone())
    }

    /// Stores a record read from (or just written to) the store at `now`.
    pub(super) fn put(&self, d: DeviceRecord, now: DateTime<Utc>) {
        if self.ttl <= TimeDelta::zero() {
            return;
        }
        let mut m = self.entries.write().unwrap_or_else(|p| p.into_inner());
        if m.len() >= MAX_ENTRIES {
            m.clear();
        }
        m.insert(d.id.clone(), (d, now));
    }

    /// Applies a change this process just wrote, keeping the fetch time.
    pub(super) fn update(&self, id: &str, f: impl FnOnce(&mut DeviceRecord)) {
        let mut m = self.entries.write().unwrap_or_else(|p| p.into_inner());
        if let Some((d, _)) = m.get_mut(id) {
            f(d);
        }
    }

    /// Drops an entry (revoked or replaced devices).
    pub(super) fn remove(&self, id: &str) {
        self.entries
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use siteboot_wire::operator::DeviceStatus;

    use super::*;

    fn rec(id: &str) -> DeviceRecord {
        DeviceRecord {
            id: id.into(),
            site_id: "s".into(),
            serial: "SN".into(),
            status: DeviceStatus::Active,
            facts: Default::default(),
            registered_via: "token".into(),
            registered_at: t(0),
            revoked_at: None,
            revoke_reason: None,
            machine: None,
            last_seen: None,
            applied_revision: None,
            attempted_revision: None,
            agent_state: None,
            last_error: None,
            health: Default::default(),
        }
    }

    fn t(s: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 4, 1, 0, 0, 0).unwrap() + TimeDelta::seconds(s)
    }

    #[test]
    fn freshness_table() {
        let c = DeviceCache::new(TimeDelta::seconds(5));
        c.put(rec("d"), t(10));
        for (now, hit) in [
            (10, true),
            (14, true),
            (15, false),
            (9, false),
            (100, false),
        ] {
            assert_eq!(c.get("d", t(now)).is_some(), hit, "now={now}");
        }
        c.update("d", |d| d.status = DeviceStatus::Revoked);
        assert_eq!(c.get("d", t(11)).unwrap().status, DeviceStatus::Revoked);
        c.remove("d");
        assert!(c.get("d", t(11)).is_none());
        let off = DeviceCache::new(TimeDelta::zero());
        off.put(rec("d"), t(10));
        assert!(off.get("d", t(10)).is_none());
    }
}
