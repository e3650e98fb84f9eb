//! Caches for the check-in path, so a check-in that is only a heartbeat touches no
//! database and serialises nothing: device records ([`DeviceCache`]) and the check-in
//! answer per site ([`AnswerCache`]).
//!
//! Device records are shared (`Arc`): a hit costs a lookup and a reference count, not a
//! deep copy of the record and its facts.
//!
//! Exact within this process: every write this registry makes (bind, replacement,
//! revocation, check-in) updates or drops the entry in the same call, so a revoked
//! device is refused from its next request on. Another replica's writes (only possible
//! with a shared store) become visible when an entry is older than the TTL, measured
//! with the `now` callers pass in. A TTL of zero disables the cache.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use chrono::{DateTime, TimeDelta, Utc};

use crate::inventory::Inventory;
use crate::store::DeviceRecord;

/// Entries kept before the cache is cleared wholesale (bounds memory; 10k sites fit).
const MAX_ENTRIES: usize = 100_000;

#[derive(Debug)]
pub(super) struct DeviceCache {
    ttl: TimeDelta,
    entries: RwLock<HashMap<String, (Arc<DeviceRecord>, DateTime<Utc>)>>,
}

impl DeviceCache {
    pub(super) fn new(ttl: TimeDelta) -> Self {
        Self {
            ttl,
            entries: RwLock::new(HashMap::new()),
        }
    }

    /// A record fetched less than the TTL before `now`.
    pub(super) fn get(&self, id: &str, now: DateTime<Utc>) -> Option<Arc<DeviceRecord>> {
        if self.ttl <= TimeDelta::zero() {
            return None;
        }
        let m = self.entries.read().unwrap_or_else(|p| p.into_inner());
        let (d, fetched) = m.get(id)?;
        // A `now` before the fetch (clock step back) counts as stale too.
        (now >= *fetched && now - *fetched < self.ttl).then(|| Arc::clone(d))
    }

    /// Stores a record read from (or just written to) the store at `now`.
    pub(super) fn put(&self, d: Arc<DeviceRecord>, now: DateTime<Utc>) {
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
            // Copies the record only if a caller still holds the previous version.
            f(Arc::make_mut(d));
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

/// Check-in answers (`CheckinResponse` as JSON) by site, for one inventory version.
///
/// The answer depends only on the site's inventory record, the configured Git
/// credentials and the check-in interval, none of which a check-in changes; the inventory
/// is replaced wholesale on reload, so a new `Arc<Inventory>` empties the cache.
#[derive(Debug, Default)]
pub(super) struct AnswerCache {
    state: RwLock<Answers>,
}

#[derive(Debug, Default)]
struct Answers {
    inventory: Option<Arc<Inventory>>,
    by_site: HashMap<String, Arc<[u8]>>,
}

impl AnswerCache {
    /// The answer for `site_id` serialised under `inventory`, if any.
    pub(super) fn get(&self, inventory: &Arc<Inventory>, site_id: &str) -> Option<Arc<[u8]>> {
        let s = self.state.read().unwrap_or_else(|p| p.into_inner());
        let current = s.inventory.as_ref()?;
        if !Arc::ptr_eq(current, inventory) {
            return None;
        }
        s.by_site.get(site_id).cloned()
    }

    /// Remembers an answer serialised under `inventory` (an older inventory's answers go).
    pub(super) fn put(&self, inventory: &Arc<Inventory>, site_id: &str, body: Arc<[u8]>) {
        let mut s = self.state.write().unwrap_or_else(|p| p.into_inner());
        if !s
            .inventory
            .as_ref()
            .is_some_and(|i| Arc::ptr_eq(i, inventory))
        {
            s.inventory = Some(Arc::clone(inventory));
            s.by_site.clear();
        }
        s.by_site.insert(site_id.to_string(), body);
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
        c.put(Arc::new(rec("d")), t(10));
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
        off.put(Arc::new(rec("d")), t(10));
        assert!(off.get("d", t(10)).is_none());
    }

    #[test]
    fn answers_follow_the_inventory_version() {
        let a = Arc::new(Inventory::empty("https://git.example/a.git"));
        let b = Arc::new(Inventory::empty("https://git.example/a.git"));
        let c = AnswerCache::default();
        assert!(c.get(&a, "s1").is_none());
        c.put(&a, "s1", Arc::from(&b"one"[..]));
        c.put(&a, "s2", Arc::from(&b"two"[..]));
        for (inv, site, want) in [
            (&a, "s1", Some(&b"one"[..])),
            (&a, "s2", Some(&b"two"[..])),
            (&a, "s3", None),
            (&b, "s1", None),
        ] {
            assert_eq!(c.get(inv, site).as_deref(), want, "{site}");
        }
        // A reload (new inventory) drops every answer of the old one.
        c.put(&b, "s2", Arc::from(&b"new"[..]));
        assert!(c.get(&a, "s1").is_none());
        assert!(c.get(&b, "s1").is_none());
        assert_eq!(c.get(&b, "s2").as_deref(), Some(&b"new"[..]));
    }
}
