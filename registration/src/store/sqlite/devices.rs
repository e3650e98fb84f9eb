//! Devices: the atomic binding, revocation, check-ins and last-seen writes.

use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension};

use super::cached::Cached;
use super::rows::{self, device_by_id, device_row, event, ms, state_str, DEVICE_COLS};
use super::Fail;
use crate::store::{
    BindCredential, BindOutcome, Binding, CheckinWrite, DeviceRecord, EventKind, HeartbeatWrite,
};

/// Longest error text kept in the history table (the device row keeps the full text).
const EVENT_ERROR_CHARS: usize = 512;

/// The whole registration step, inside the writer's IMMEDIATE transaction: consume the
/// credential with one conditional UPDATE (rows affected must be 1), check the serial,
/// revoke the site's previous device, insert the new one, record events. An error
/// rolls the job's savepoint back, consumption included.
pub(super) fn bind(c: &Connection, b: &Binding) -> Result<BindOutcome, Fail> {
    // The writer runs this inside its transaction; the inner savepoint lets a serial
    // conflict undo the consumption while still recording the conflict event.
    c.exec("SAVEPOINT bind", [])?;
    let now = ms(b.now);
    let d = &b.device;
    let consumed = match &b.credential {
        BindCredential::Token { id, secret_hash } => c.exec(
            "UPDATE tokens SET redeemed_at = ?1, device_id = ?2
             WHERE id = ?3 AND secret_hash = ?4 AND site_id = ?5
               AND redeemed_at IS NULL AND revoked_at IS NULL AND expires_at > ?1",
            params![now, d.id, id, secret_hash, d.site_id],
        )?,
        BindCredential::Claim {
            id,
            secret_hash,
            max_failures,
        } => c.exec(
            "UPDATE claims SET redeemed_at = ?1, device_id = ?2
             WHERE id = ?3 AND secret_hash = ?4 AND site_id = ?5
               AND redeemed_at IS NULL AND revoked_at IS NULL AND expires_at > ?1
               AND failed_attempts < ?6",
            params![now, d.id, id, secret_hash, d.site_id, max_failures],
        )?,
        BindCredential::Enrollment { .. } => 1,
        BindCredential::Approval { pending_id } => c.exec(
            "UPDATE pending SET status = 'approved', device_id = ?2, site_id = ?3, updated_at = ?1
             WHERE id = ?4 AND status = 'pending'",
            params![now, d.id, d.site_id, pending_id],
        )?,
    };
    if consumed != 1 {
        c.exec("RELEASE bind", [])?; // nothing was written
        return Ok(BindOutcome::CredentialRejected);
    }
    let via = b.credential.via();
    let serial = d.facts.serial.as_str();
    if let Some(holder) = active_by_serial_in(c, serial)? {
        let replaces_itself = holder.site_id == d.site_id
            && !matches!(b.credential, BindCredential::Enrollment { .. });
        if !replaces_itself {
            // Undo the consumption: the credential stays usable.
            c.exec("ROLLBACK TO bind", [])?;
            c.exec("RELEASE bind", [])?;
            rows::insert_event(
                c,
                &event(
                    b.now,
                    EventKind::SerialConflict,
                    Some(&holder.site_id),
                    Some(&holder.id),
                    Some(serial),
                    format!(
                        "a device presenting serial {serial:?} via {via} for site {} was refused: device {} at site {} holds it (cloned image?)",
                        d.site_id, holder.id, holder.site_id
                    ),
                ),
            )?;
            return Ok(BindOutcome::SerialConflict {
                device_id: holder.id,
                site_id: holder.site_id,
            });
        }
    }
    let previous: Option<String> = c
        .query_row(
            "SELECT id FROM devices WHERE site_id = ?1 AND status = 'active'",
            [&d.site_id],
            |r| r.get(0),
        )
        .optional()?;
    if let Some(prev) = &previous {
        c.exec(
            "UPDATE devices SET status = 'revoked', revoked_at = ?1, revoke_reason = ?2 WHERE id = ?3",
            params![now, format!("replaced by {}", d.id), prev],
        )?;
        rows::insert_event(
            c,
            &event(
                b.now,
                EventKind::Replaced,
                Some(&d.site_id),
                Some(prev),
                None,
                format!(
                    "replaced by device {} (via {via}); its certificate is refused from now on",
                    d.id
                ),
            ),
        )?;
    }
    c.exec(
        "INSERT INTO devices (id, site_id, serial, status, facts_json, registered_via, registered_at, machine_json, key_sha256)
             VALUES (?1, ?2, ?3, 'active', ?4, ?5, ?6, ?7, ?8)",
        params![
            d.id,
            d.site_id,
            serial,
            rows::to_json(&d.facts)?,
            via,
            now,
            d.machine.as_ref().map(rows::to_json).transpose()?,
            d.key_sha256
        ],
    )?;
    // The serial registered: an open enrollment request for it is settled.
    c.exec(
        "UPDATE pending SET status = 'superseded', updated_at = ?1 WHERE serial = ?2 AND status = 'pending'",
        params![now, serial],
    )?;
    rows::insert_event(
        c,
        &event(
            b.now,
            EventKind::Registered,
            Some(&d.site_id),
            Some(&d.id),
            Some(serial),
            format!("registered via {via}"),
        ),
    )?;
    let device = device_by_id(c, &d.id)?
        .ok_or_else(|| Fail::Data("device vanished inside its own transaction".into()))?;
    c.exec("RELEASE bind", [])?;
    Ok(BindOutcome::Bound {
        device,
        replaced: previous,
    })
}

fn active_by_serial_in(c: &Connection, serial: &str) -> Result<Option<DeviceRecord>, Fail> {
    Ok(c.row(
        &format!("SELECT {DEVICE_COLS} FROM devices WHERE serial = ?1 AND status = 'active'"),
        [serial],
        device_row,
    )
    .optional()?)
}

pub(super) fn active_by_serial(c: &Connection, serial: &str) -> Result<Option<DeviceRecord>, Fail> {
    active_by_serial_in(c, serial)
}

pub(super) fn device(c: &Connection, id: &str) -> Result<Option<DeviceRecord>, Fail> {
    device_by_id(c, id)
}

pub(super) fn devices(c: &Connection, site: Option<&str>) -> Result<Vec<DeviceRecord>, Fail> {
    let mut stmt = c.prepare(&format!(
        "SELECT {DEVICE_COLS} FROM devices WHERE ?1 IS NULL OR site_id = ?1 ORDER BY registered_at, id"
    ))?;
    let rows = stmt.query_map([site], device_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub(super) fn revoke(
    c: &Connection,
    id: &str,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<Option<DeviceRecord>, Fail> {
    let n = c.exec(
        "UPDATE devices SET status = 'revoked', revoked_at = ?1, revoke_reason = ?2 WHERE id = ?3 AND status = 'active'",
        params![ms(now), reason, id],
    )?;
    let device = device_by_id(c, id)?;
    if let (1, Some(d)) = (n, &device) {
        rows::insert_event(
            c,
            &event(
                now,
                EventKind::Revoked,
                Some(&d.site_id),
                Some(id),
                Some(&d.serial),
                format!("revoked by an operator: {reason}"),
            ),
        )?;
    }
    Ok(device)
}

pub(super) fn write_checkin(c: &Connection, w: &CheckinWrite) -> Result<bool, Fail> {
    let n = c.exec(
        "UPDATE devices SET last_seen = MAX(COALESCE(last_seen, 0), ?1), applied_revision = ?2,
             attempted_revision = ?3, agent_state = ?4, last_error = ?5, health_json = ?6
         WHERE id = ?7 AND status = 'active'",
        params![
            ms(w.now),
            w.applied_revision,
            w.attempted_revision,
            state_str(w.state),
            w.error,
            rows::to_json(&w.health)?,
            w.device_id
        ],
    )?;
    if n != 1 {
        return Ok(false);
    }
    let site: String = c.row(
        "SELECT site_id FROM devices WHERE id = ?1",
        [&w.device_id],
        |r| r.get(0),
    )?;
    if w.state_changed {
        let mut detail = format!(
            "state {}, applied {}, attempted {}",
            state_str(w.state),
            w.applied_revision.as_deref().unwrap_or("-"),
            w.attempted_revision.as_deref().unwrap_or("-"),
        );
        if let Some(e) = &w.error {
            detail.push_str(": ");
            detail.extend(e.chars().take(EVENT_ERROR_CHARS));
        }
        rows::insert_event(
            c,
            &event(
                w.now,
                EventKind::StateChanged,
                Some(&site),
                Some(&w.device_id),
                None,
                detail,
            ),
        )?;
    }
    for p in &w.offline_periods {
        rows::insert_event(
            c,
            &event(
                w.now,
                EventKind::Offline,
                Some(&site),
                Some(&w.device_id),
                None,
                format!(
                    "{} unreachable from {} to {}",
                    p.what,
                    p.from.to_rfc3339(),
                    p.to.to_rfc3339()
                ),
            ),
        )?;
    }
    Ok(true)
}

pub(super) fn write_heartbeats(c: &Connection, beats: &[HeartbeatWrite]) -> Result<(), Fail> {
    {
        // SQLite evaluates every SET expression against the old row, so the CASE sees
        // the previous last_seen.
        let mut stmt = c.prepare(
            "UPDATE devices SET
                 health_json = CASE WHEN COALESCE(last_seen, 0) < ?1 THEN ?2 ELSE health_json END,
                 last_seen = MAX(COALESCE(last_seen, 0), ?1)
             WHERE id = ?3 AND status = 'active'",
        )?;
        for b in beats {
            stmt.execute(params![
                ms(b.last_seen),
                rows::to_json(&b.health)?,
                b.device_id
            ])?;
        }
    }
    Ok(())
}
