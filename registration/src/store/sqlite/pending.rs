//! The pending enrollment queue.

use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension};

use super::rows::{self, event, ms, pending_row, PENDING_COLS};
use super::Fail;
use crate::store::{EventKind, NewPending, PendingRecord};

/// Creates a pending record or refreshes the open one for the same serial: same id,
/// the new poll secret hash, latest facts and CSR. Idempotent per serial, and a device
/// that lost its poll secret (rebooted before saving it) can recover by asking again.
pub(super) fn upsert(c: &Connection, p: &NewPending) -> Result<PendingRecord, Fail> {
    let now = ms(p.now);
    let facts = rows::to_json(&p.facts)?;
    let existing: Option<String> = c
        .query_row(
            "SELECT id FROM pending WHERE serial = ?1 AND status = 'pending'",
            [&p.facts.serial],
            |r| r.get(0),
        )
        .optional()?;
    let id = match existing {
        Some(id) => {
            c.execute(
                "UPDATE pending SET poll_secret_hash = ?1, batch = ?2, facts_json = ?3, csr_pem = ?4, updated_at = ?5 WHERE id = ?6",
                params![p.poll_secret_hash, p.batch, facts, p.csr_pem, now, id],
            )?;
            id
        }
        None => {
            c.execute(
                "INSERT INTO pending (id, poll_secret_hash, batch, serial, facts_json, csr_pem, requested_at, updated_at, status)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7, 'pending')",
                params![p.id, p.poll_secret_hash, p.batch, p.facts.serial, facts, p.csr_pem, now],
            )?;
            rows::insert_event(
                c,
                &event(
                    p.now,
                    EventKind::PendingCreated,
                    None,
                    None,
                    Some(&p.facts.serial),
                    format!(
                        "enrollment from batch {} waits for approval as {}",
                        p.batch, p.id
                    ),
                ),
            )?;
            p.id.clone()
        }
    };
    let record = c.query_row(
        &format!("SELECT {PENDING_COLS} FROM pending WHERE id = ?1"),
        [&id],
        pending_row,
    )?;
    Ok(record)
}

pub(super) fn get(c: &Connection, id: &str) -> Result<Option<PendingRecord>, Fail> {
    Ok(c.query_row(
        &format!("SELECT {PENDING_COLS} FROM pending WHERE id = ?1"),
        [id],
        pending_row,
    )
    .optional()?)
}

pub(super) fn open(c: &Connection) -> Result<Vec<PendingRecord>, Fail> {
    let mut stmt = c.prepare(&format!(
        "SELECT {PENDING_COLS} FROM pending WHERE status = 'pending' ORDER BY requested_at, id"
    ))?;
    let rows = stmt.query_map([], pending_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub(super) fn reject(
    c: &Connection,
    id: &str,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<bool, Fail> {
    let n = c.execute(
        "UPDATE pending SET status = 'rejected', reason = ?1, updated_at = ?2 WHERE id = ?3 AND status = 'pending'",
        params![reason, ms(now), id],
    )?;
    if n == 1 {
        let serial: String =
            c.query_row("SELECT serial FROM pending WHERE id = ?1", [id], |r| {
                r.get(0)
            })?;
        rows::insert_event(
            c,
            &event(
                now,
                EventKind::PendingRejected,
                None,
                None,
                Some(&serial),
                format!("pending {id} rejected: {reason}"),
            ),
        )?;
    }
    Ok(n == 1)
}
