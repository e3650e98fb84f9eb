//! Tokens and claim codes: insert, read, extend, revoke, failed-attempt counting.
//! Consuming them happens in [`super::devices::bind`], inside the binding transaction.
//! Write functions run inside the writer's transaction (see [`super::writer`]).

use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension};

use super::cached::Cached;
use super::rows::{self, claim_row, ms, token_row, CLAIM_COLS, TOKEN_COLS};
use super::Fail;
use crate::store::{ClaimRecord, TokenRecord};

pub(super) fn insert_token(c: &Connection, t: &TokenRecord) -> Result<(), Fail> {
    let machine_key = t.machine.as_ref().map(rows::machine_key);
    if let Some(key) = &machine_key {
        // One live token per Machine: a re-mint supersedes the unused ones.
        c.exec(
            "UPDATE tokens SET revoked_at = ?1 WHERE machine_key = ?2 AND redeemed_at IS NULL AND revoked_at IS NULL",
            params![ms(t.created_at), key],
        )?;
    }
    let machine_json = t.machine.as_ref().map(rows::to_json).transpose()?;
    c.exec(
        "INSERT INTO tokens (id, secret_hash, site_id, machine_json, machine_key, created_at, expires_at, redeemed_at, revoked_at, device_id)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        params![
            t.id,
            t.secret_hash,
            t.site_id,
            machine_json,
            machine_key,
            ms(t.created_at),
            ms(t.expires_at),
            t.redeemed_at.map(ms),
            t.revoked_at.map(ms),
            t.device_id
        ],
    )?;
    Ok(())
}

pub(super) fn token(c: &Connection, id: &str) -> Result<Option<TokenRecord>, Fail> {
    Ok(c.row(
        &format!("SELECT {TOKEN_COLS} FROM tokens WHERE id = ?1"),
        [id],
        token_row,
    )
    .optional()?)
}

pub(super) fn extend_token(
    c: &Connection,
    id: &str,
    expires_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<Option<TokenRecord>, Fail> {
    let n = c.exec(
        "UPDATE tokens SET expires_at = ?1
         WHERE id = ?2 AND redeemed_at IS NULL AND revoked_at IS NULL AND expires_at > ?3",
        params![ms(expires_at), id, ms(now)],
    )?;
    let out = if n == 1 {
        c.row(
            &format!("SELECT {TOKEN_COLS} FROM tokens WHERE id = ?1"),
            [id],
            token_row,
        )
        .optional()?
    } else {
        None
    };
    Ok(out)
}

pub(super) fn revoke_token(
    c: &Connection,
    id: &str,
    now: DateTime<Utc>,
) -> Result<Option<TokenRecord>, Fail> {
    c.exec(
        "UPDATE tokens SET revoked_at = ?1 WHERE id = ?2 AND redeemed_at IS NULL AND revoked_at IS NULL",
        params![ms(now), id],
    )?;
    let out = c
        .query_row(
            &format!("SELECT {TOKEN_COLS} FROM tokens WHERE id = ?1"),
            [id],
            token_row,
        )
        .optional()?;
    Ok(out)
}

pub(super) fn insert_claim(c: &Connection, cl: &ClaimRecord) -> Result<(), Fail> {
    c.exec(
        "INSERT INTO claims (id, secret_hash, site_id, created_at, expires_at, redeemed_at, revoked_at, device_id, failed_attempts)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        params![
            cl.id,
            cl.secret_hash,
            cl.site_id,
            ms(cl.created_at),
            ms(cl.expires_at),
            cl.redeemed_at.map(ms),
            cl.revoked_at.map(ms),
            cl.device_id,
            cl.failed_attempts
        ],
    )?;
    Ok(())
}

pub(super) fn claim(c: &Connection, id: &str) -> Result<Option<ClaimRecord>, Fail> {
    Ok(c.row(
        &format!("SELECT {CLAIM_COLS} FROM claims WHERE id = ?1"),
        [id],
        claim_row,
    )
    .optional()?)
}

pub(super) fn record_claim_failure(
    c: &Connection,
    id: &str,
    _now: DateTime<Utc>,
) -> Result<u32, Fail> {
    c.exec(
        "UPDATE claims SET failed_attempts = failed_attempts + 1 WHERE id = ?1 AND redeemed_at IS NULL",
        [id],
    )?;
    let n: Option<u32> = c
        .query_row(
            "SELECT failed_attempts FROM claims WHERE id = ?1",
            [id],
            |r| r.get(0),
        )
        .optional()?;
    Ok(n.unwrap_or(0))
}
