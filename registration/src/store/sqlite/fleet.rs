//! Reads behind the fleet view: one site's history (newest first, via the
//! `events_site(site_id, seq)` index) and the sites with a registration underway (one
//! scan of the unused tokens and claims, so the fleet view costs one query whatever the
//! number of sites).

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use rusqlite::{params, Connection};

use super::rows::{ms, time};
use super::Fail;
use crate::store::{Event, EventKind};

pub(super) fn site_events(c: &Connection, site_id: &str, limit: usize) -> Result<Vec<Event>, Fail> {
    let mut stmt = c.prepare_cached(
        "SELECT seq, at, kind, site_id, device_id, serial, detail FROM events
         WHERE site_id = ?1 ORDER BY seq DESC LIMIT ?2",
    )?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = stmt.query_map(params![site_id, limit], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, Option<String>>(3)?,
            r.get::<_, Option<String>>(4)?,
            r.get::<_, Option<String>>(5)?,
            r.get::<_, String>(6)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (seq, at, kind, site_id, device_id, serial, detail) = row?;
        let kind = EventKind::parse(&kind)
            .ok_or_else(|| Fail::Data(format!("unknown event kind {kind:?}")))?;
        out.push(Event {
            seq,
            at: time(at),
            kind,
            site_id,
            device_id,
            serial,
            detail,
        });
    }
    Ok(out)
}

pub(super) fn registration_underway(
    c: &Connection,
    now: DateTime<Utc>,
    claim_max_failures: u32,
) -> Result<BTreeSet<String>, Fail> {
    let mut stmt = c.prepare_cached(
        "SELECT site_id FROM tokens
             WHERE redeemed_at IS NULL AND revoked_at IS NULL AND expires_at > ?1
         UNION
         SELECT site_id FROM claims
             WHERE redeemed_at IS NULL AND revoked_at IS NULL AND expires_at > ?1
               AND failed_attempts < ?2",
    )?;
    let rows = stmt.query_map(params![ms(now), claim_max_failures], |r| {
        r.get::<_, String>(0)
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}
