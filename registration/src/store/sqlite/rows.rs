//! Row <-> record mapping and small shared statements. Times are stored as Unix
//! milliseconds so comparisons in SQL (`expires_at > ?`) are integer comparisons.

use chrono::{DateTime, TimeZone, Utc};
use rusqlite::{params, Connection, OptionalExtension, Row};
use siteboot_wire::api::{AgentState, HealthSummary};
use siteboot_wire::operator::{DeviceStatus, MachineRef};

use super::cached::Cached;
use super::Fail;
use crate::store::{
    ClaimRecord, DeviceRecord, Event, EventKind, PendingRecord, PendingStatus, TokenRecord,
};

pub(super) fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

pub(super) fn time(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

fn opt_time(v: Option<i64>) -> Option<DateTime<Utc>> {
    v.map(time)
}

/// JSON column -> value; a row this binary cannot read is a data error, not a panic.
fn json<T: serde::de::DeserializeOwned>(text: &str, what: &str) -> rusqlite::Result<T> {
    serde_json::from_str(text).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(
            0,
            rusqlite::types::Type::Text,
            format!("{what}: {e}").into(),
        )
    })
}

pub(super) fn to_json<T: serde::Serialize>(v: &T) -> Result<String, Fail> {
    serde_json::to_string(v).map_err(|e| Fail::Data(format!("cannot encode: {e}")))
}

/// The key that identifies "the same Machine" for token supersession.
pub(super) fn machine_key(m: &MachineRef) -> String {
    format!(
        "{}/{}/{}",
        m.namespace,
        m.name,
        m.uid.as_deref().unwrap_or("")
    )
}

pub(super) const TOKEN_COLS: &str =
    "id, secret_hash, site_id, machine_json, created_at, expires_at, redeemed_at, revoked_at, device_id";

pub(super) fn token_row(r: &Row<'_>) -> rusqlite::Result<TokenRecord> {
    let machine: Option<String> = r.get(3)?;
    Ok(TokenRecord {
        id: r.get(0)?,
        secret_hash: r.get(1)?,
        site_id: r.get(2)?,
        machine: machine.map(|m| json(&m, "machine")).transpose()?,
        created_at: time(r.get(4)?),
        expires_at: time(r.get(5)?),
        redeemed_at: opt_time(r.get(6)?),
        revoked_at: opt_time(r.get(7)?),
        device_id: r.get(8)?,
    })
}

pub(super) const CLAIM_COLS: &str =
    "id, secret_hash, site_id, created_at, expires_at, redeemed_at, revoked_at, device_id, failed_attempts";

pub(super) fn claim_row(r: &Row<'_>) -> rusqlite::Result<ClaimRecord> {
    Ok(ClaimRecord {
        id: r.get(0)?,
        secret_hash: r.get(1)?,
        site_id: r.get(2)?,
        created_at: time(r.get(3)?),
        expires_at: time(r.get(4)?),
        redeemed_at: opt_time(r.get(5)?),
        revoked_at: opt_time(r.get(6)?),
        device_id: r.get(7)?,
        failed_attempts: r.get(8)?,
    })
}

pub(super) const DEVICE_COLS: &str = "id, site_id, serial, status, facts_json, registered_via, \
     registered_at, revoked_at, revoke_reason, machine_json, last_seen, applied_revision, \
     attempted_revision, agent_state, last_error, health_json, key_sha256";

pub(super) fn device_row(r: &Row<'_>) -> rusqlite::Result<DeviceRecord> {
    let status: String = r.get(3)?;
    let facts: String = r.get(4)?;
    let machine: Option<String> = r.get(9)?;
    let state: Option<String> = r.get(13)?;
    let health: Option<String> = r.get(15)?;
    Ok(DeviceRecord {
        id: r.get(0)?,
        site_id: r.get(1)?,
        serial: r.get(2)?,
        status: if status == "active" {
            DeviceStatus::Active
        } else {
            DeviceStatus::Revoked
        },
        facts: json(&facts, "facts")?,
        registered_via: r.get(5)?,
        registered_at: time(r.get(6)?),
        revoked_at: opt_time(r.get(7)?),
        revoke_reason: r.get(8)?,
        machine: machine.map(|m| json(&m, "machine")).transpose()?,
        last_seen: opt_time(r.get(10)?),
        applied_revision: r.get(11)?,
        attempted_revision: r.get(12)?,
        agent_state: state
            .map(|s| json::<AgentState>(&format!("\"{s}\""), "agent state"))
            .transpose()?,
        last_error: r.get(14)?,
        health: health
            .map(|h| json::<HealthSummary>(&h, "health"))
            .transpose()?
            .unwrap_or_default(),
        key_sha256: r.get(16)?,
    })
}

pub(super) fn device_by_id(c: &Connection, id: &str) -> Result<Option<DeviceRecord>, Fail> {
    Ok(c.row(
        &format!("SELECT {DEVICE_COLS} FROM devices WHERE id = ?1"),
        [id],
        device_row,
    )
    .optional()?)
}

pub(super) const PENDING_COLS: &str = "id, poll_secret_hash, batch, facts_json, csr_pem, \
     requested_at, updated_at, status, reason, device_id, site_id";

pub(super) fn pending_row(r: &Row<'_>) -> rusqlite::Result<PendingRecord> {
    let facts: String = r.get(3)?;
    let status: String = r.get(7)?;
    let status = match status.as_str() {
        "approved" => PendingStatus::Approved {
            device_id: r.get::<_, Option<String>>(9)?.unwrap_or_default(),
            site_id: r.get::<_, Option<String>>(10)?.unwrap_or_default(),
        },
        "rejected" => PendingStatus::Rejected {
            reason: r.get::<_, Option<String>>(8)?.unwrap_or_default(),
        },
        "superseded" => PendingStatus::Superseded,
        _ => PendingStatus::Pending,
    };
    Ok(PendingRecord {
        id: r.get(0)?,
        poll_secret_hash: r.get(1)?,
        batch: r.get(2)?,
        facts: json(&facts, "facts")?,
        csr_pem: r.get(4)?,
        requested_at: time(r.get(5)?),
        updated_at: time(r.get(6)?),
        status,
    })
}

pub(super) fn insert_event(c: &Connection, e: &Event) -> Result<(), Fail> {
    c.exec(
        "INSERT INTO events (at, kind, site_id, device_id, serial, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![ms(e.at), e.kind.as_str(), e.site_id, e.device_id, e.serial, e.detail],
    )?;
    Ok(())
}

pub(super) fn events(c: &Connection, after: i64, limit: usize) -> Result<Vec<Event>, Fail> {
    let mut stmt = c.prepare(
        "SELECT seq, at, kind, site_id, device_id, serial, detail FROM events WHERE seq > ?1 ORDER BY seq LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![after, limit as i64], |r| {
        let kind: String = r.get(2)?;
        Ok((
            r.get(0)?,
            r.get(1)?,
            kind,
            r.get(3)?,
            r.get(4)?,
            r.get(5)?,
            r.get(6)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (seq, at, kind, site_id, device_id, serial, detail): (
            i64,
            i64,
            String,
            Option<String>,
            Option<String>,
            Option<String>,
            String,
        ) = row?;
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

/// A convenience for events built in transactions.
pub(super) fn event(
    at: DateTime<Utc>,
    kind: EventKind,
    site_id: Option<&str>,
    device_id: Option<&str>,
    serial: Option<&str>,
    detail: String,
) -> Event {
    Event {
        seq: 0,
        at,
        kind,
        site_id: site_id.map(str::to_string),
        device_id: device_id.map(str::to_string),
        serial: serial.map(str::to_string),
        detail,
    }
}

pub(super) fn state_str(s: AgentState) -> &'static str {
    match s {
        AgentState::Applying => "applying",
        AgentState::Ready => "ready",
        AgentState::Failed => "failed",
        AgentState::Degraded => "degraded",
    }
}
