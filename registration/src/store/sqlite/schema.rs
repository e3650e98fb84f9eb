//! Versioned schema migrations (`PRAGMA user_version`). Append a migration, never edit
//! one that shipped.
//!
//! Invariants the database itself enforces, so no code path can break them:
//! at most one active device per site, and at most one active device per serial.

use rusqlite::{Connection, TransactionBehavior};

use super::Fail;
use crate::store::StoreError;

/// Migration `i` brings the schema from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE tokens (
    id            TEXT PRIMARY KEY,
    secret_hash   TEXT NOT NULL,
    site_id       TEXT NOT NULL,
    machine_json  TEXT,
    machine_key   TEXT,
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL,
    redeemed_at   INTEGER,
    revoked_at    INTEGER,
    device_id     TEXT
);
CREATE INDEX tokens_machine ON tokens(machine_key) WHERE machine_key IS NOT NULL;

CREATE TABLE claims (
    id              TEXT PRIMARY KEY,
    secret_hash     TEXT NOT NULL,
    site_id         TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    expires_at      INTEGER NOT NULL,
    redeemed_at     INTEGER,
    revoked_at      INTEGER,
    device_id       TEXT,
    failed_attempts INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE devices (
    id                 TEXT PRIMARY KEY,
    site_id            TEXT NOT NULL,
    serial             TEXT NOT NULL,
    status             TEXT NOT NULL CHECK (status IN ('active', 'revoked')),
    facts_json         TEXT NOT NULL,
    registered_via     TEXT NOT NULL,
    registered_at      INTEGER NOT NULL,
    revoked_at         INTEGER,
    revoke_reason      TEXT,
    machine_json       TEXT,
    last_seen          INTEGER,
    applied_revision   TEXT,
    attempted_revision TEXT,
    agent_state        TEXT,
    last_error         TEXT,
    health_json        TEXT
);
CREATE UNIQUE INDEX devices_one_active_per_site ON devices(site_id) WHERE status = 'active';
CREATE UNIQUE INDEX devices_one_active_per_serial ON devices(serial) WHERE status = 'active';
CREATE INDEX devices_site ON devices(site_id, registered_at);

CREATE TABLE pending (
    id               TEXT PRIMARY KEY,
    poll_secret_hash TEXT NOT NULL,
    batch            TEXT NOT NULL,
    serial           TEXT NOT NULL,
    facts_json       TEXT NOT NULL,
    csr_pem          TEXT NOT NULL,
    requested_at     INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    status           TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'rejected', 'superseded')),
    reason           TEXT,
    device_id        TEXT,
    site_id          TEXT
);
CREATE UNIQUE INDEX pending_one_open_per_serial ON pending(serial) WHERE status = 'pending';

CREATE TABLE events (
    seq       INTEGER PRIMARY KEY AUTOINCREMENT,
    at        INTEGER NOT NULL,
    kind      TEXT NOT NULL,
    site_id   TEXT,
    device_id TEXT,
    serial    TEXT,
    detail    TEXT NOT NULL
);
CREATE INDEX events_site ON events(site_id, seq);
"#,
    // 2: the registered public key's fingerprint, for idempotent registration retries.
    r#"
ALTER TABLE devices ADD COLUMN key_sha256 TEXT;
"#,
];

/// The schema version this binary writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Applies every migration newer than the database, each in its own IMMEDIATE
/// transaction (so two processes starting together migrate once).
pub(super) fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let action = "migrate the database schema";
    loop {
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| Fail::from(e).into_store(action))?;
        let version: i64 = tx
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(|e| Fail::from(e).into_store(action))?;
        if version > SCHEMA_VERSION {
            return Err(StoreError::Data {
                action,
                detail: format!(
                    "database schema version {version} is newer than this binary ({SCHEMA_VERSION}): run a newer siteboot-registration"
                ),
            });
        }
        if version == SCHEMA_VERSION {
            return Ok(());
        }
        let apply = || -> Result<(), rusqlite::Error> {
            tx.execute_batch(MIGRATIONS[version as usize])?;
            tx.pragma_update(None, "user_version", version + 1)?;
            tx.commit()
        };
        apply().map_err(|e| Fail::from(e).into_store(action))?;
    }
}
