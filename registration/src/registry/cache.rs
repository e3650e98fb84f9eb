//! Caches for the check-in path, so a check-in that is only a heartbeat touches no
//! database and serialises nothing: device records ([`DeviceCache`]) and the check-in
//! answer per site ([`AnswerCache`]).
//!
//! Device records are shared (`Arc`): a hit costs a lookup and a reference count, not a
//! deep copy of the record and its facts. Entries do not age out; they are dropped when
//! the record changes:
//! - exactly, within this process: every write this registry makes (bind, replacement,
//!   revocation, check-in) updates or drops the entry in the same call, so a revoked
//!   device is refused from its next request on;
//! - for other replicas' writes (only possible with a shared store), through the store's
//!   change feed: every device status change is recorded as an event in the same
//!   transaction, and the check-in path reads the events after its cursor whenever the
//!   last read is older than the sync period (`device_cache_ttl`), dropping the devices
//!   they name. That period bounds how late another replica's revocation is seen, as the
//!   entry lifetime did before, but a heartbeat of an agent that checks in every minute
//!   no longer reads its record from the database each time.
//!
//! A record read from the store is kept only if no invalidation happened while it was
//! being read (a generation counter), so a read racing with a revocation can never
//! re-insert the record from before the revocation. A period of zero disables the cache.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use chrono::{DateTime, TimeDelta, Utc};

use crate::inventory::Inventory;
use crate::store::DeviceRecord;

/// Entries kept before the cache is cleared wholesale (bounds memory; 10k sites fit).
const MAX_ENTRIES: usize = 100_000;

#[derive(Debug)]
pub(super) struct DeviceCache {
    period: TimeDelta,
    state: RwLock<State>,
    /// One change-feed read at a time; concurrent callers wait for it and reuse it.
    sync: tokio::sync::Mutex<()>,
}

#[derive(Debug, Default)]
struct State {
    entries: HashMap<String, Arc<DeviceRecord>>,
    /// Bumped by every invalidation.
    generation: u64,
    /// Sequence number of the last store event applied (`None` before the first read).
    cursor: Option<i64>,
    /// The `now` of the last completed change-feed read.
    synced_at: Option<DateTime<Utc>>,
}

impl DeviceCache {
    pub(super) fn new(period: TimeDelta) -> Self {
        Self {
            period,
            state: RwLock::new(State::default()),
            sync: tokio::sync::Mutex::new(()),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        // Every update below is a single step on plain values; a poisoned lock holds no
        // half-applied change.
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|p| p.into_inner())
    }

    fn enabled(&self) -> bool {
        self.period > TimeDelta::zero()
    }

    /// Whether the change feed must be read before entries may be trusted at `now`.
    pub(super) fn stale(&self, now: DateTime<Utc>) -> bool {
        if !self.enabled() {
            return false;
        }
        // A `now` before the last read (clock step back) counts as stale too.
        self.read()
            .synced_at
            .is_none_or(|at| now < at || now - at >= self.period)
    }

    /// Held while reading the change feed.
    pub(super) async fn sync_lock(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.sync.lock().await
    }

    /// The last event applied (`None` before the first read).
    pub(super) fn cursor(&self) -> Option<i64> {
        self.read().cursor
    }

    /// Applies a change-feed read made at `now`: drops the devices named by events up to
    /// `cursor`.
    pub(super) fn apply(
        &self,
        changed: impl IntoIterator<Item = String>,
        cursor: i64,
        now: DateTime<Utc>,
    ) {
        let mut s = self.write();
        s.generation += 1;
        for id in changed {
            s.entries.remove(&id);
        }
        s.cursor = Some(s.cursor.map_or(cursor, |c| c.max(cursor)));
        s.synced_at = Some(s.synced_at.map_or(now, |at| at.max(now)));
    }

    /// A cached record.
    pub(super) fn get(&self, id: &str) -> Option<Arc<DeviceRecord>> {
        if !self.enabled() {
            return None;
        }
        self.read().entries.get(id).cloned()
    }

    /// The invalidation generation; take it before reading a record from the store.
    pub(super) fn generation(&self) -> u64 {
        self.read().generation
    }

    /// Keeps a record read from the store, unless something was invalidated since
    /// `generation` was taken (the read may predate that change).
    pub(super) fn put(&self, d: Arc<DeviceRecord>, generation: u64) {
        if !self.enabled() {
            return;
        }
        let mut s = self.write();
        if s.generation != generation {
            return;
        }
        if s.entries.len() >= MAX_ENTRIES {
            s.entries.clear();
        }
        s.entries.insert(d.id.clone(), d);
    }

    /// Applies a change this process just wrote.
    pub(super) fn update(&self, id: &str, f: impl FnOnce(&mut DeviceRecord)) {
        if let Some(d) = self.write().entries.get_mut(id) {
            // Copies the record only if a caller still holds the previous version.
            f(Arc::make_mut(d));
        }
    }

    /// Drops an entry (revoked or replaced devices).
    pub(super) fn remove(&self, id: &str) {
        let mut s = self.write();
        s.generation += 1;
        s.entries.remove(id);
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
            key_sha256: None,
        }
    }

    fn t(s: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 4, 1, 0, 0, 0).unwrap() + TimeDelta::seconds(s)
    }

    #[test]
    fn invalidation_table() {
        let c = DeviceCache::new(TimeDelta::seconds(5));
        assert!(c.stale(t(0)), "never read the change feed");
        c.apply([], 7, t(10));
        assert_eq!(c.cursor(), Some(7));
        for (now, stale) in [(10, false), (14, false), (15, true), (9, true), (100, true)] {
            assert_eq!(c.stale(t(now)), stale, "now={now}");
        }
        let g = c.generation();
        c.put(Arc::new(rec("d")), g);
        c.put(Arc::new(rec("e")), g);
        // Entries do not age out.
        assert!(c.get("d").is_some());
        c.update("d", |d| d.status = DeviceStatus::Revoked);
        assert_eq!(c.get("d").unwrap().status, DeviceStatus::Revoked);
        // The change feed names "d": dropped, "e" stays.
        c.apply(["d".to_string()], 9, t(20));
        assert!(c.get("d").is_none());
        assert!(c.get("e").is_some());
        assert_eq!(c.cursor(), Some(9));
        // A read that overlapped an invalidation is not kept.
        let before = c.generation();
        c.remove("e");
        c.put(Arc::new(rec("d")), before);
        assert!(c.get("d").is_none());
        c.put(Arc::new(rec("d")), c.generation());
        assert!(c.get("d").is_some());
        let off = DeviceCache::new(TimeDelta::zero());
        assert!(!off.stale(t(0)));
        off.put(Arc::new(rec("d")), off.generation());
        assert!(off.get("d").is_none());
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
