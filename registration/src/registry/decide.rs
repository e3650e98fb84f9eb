//! Pure decisions: plain values in, plain values out, `now` passed in. Table-tested.

use chrono::{DateTime, TimeDelta, Utc};
use siteboot_wire::operator::TokenState;
use siteboot_wire::secret::ct_eq;

use crate::store::{ClaimRecord, DeviceRecord, TokenRecord};
use siteboot_wire::operator::DeviceStatus;

/// Why a presented credential was refused. Logged and counted, never shown: every reason
/// answers the same `invalid_credential` error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RejectReason {
    /// No record with that id.
    Unknown,
    /// The secret does not match.
    WrongSecret,
    /// Past its expiry.
    Expired,
    /// Already used (replay, or lost a concurrent race).
    Replayed,
    /// Revoked by an operator or superseded by a re-mint.
    Revoked,
    /// Too many failed attempts on this claim id.
    Locked,
}

impl RejectReason {
    /// Stable name for logs and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::Unknown => "unknown",
            RejectReason::WrongSecret => "wrong-secret",
            RejectReason::Expired => "expired",
            RejectReason::Replayed => "replayed",
            RejectReason::Revoked => "revoked",
            RejectReason::Locked => "locked",
        }
    }
}

/// A token's state at `now` (revoked and redeemed win over expiry).
pub fn token_state(t: &TokenRecord, now: DateTime<Utc>) -> TokenState {
    if t.redeemed_at.is_some() {
        TokenState::Redeemed
    } else if t.revoked_at.is_some() {
        TokenState::Revoked
    } else if now >= t.expires_at {
        TokenState::Expired
    } else {
        TokenState::Unused
    }
}

/// Why a token cannot be redeemed with `presented_hash` at `now`; `None` if it can.
/// Hashes are compared in constant time.
pub fn token_rejection(
    record: Option<&TokenRecord>,
    presented_hash: &str,
    now: DateTime<Utc>,
) -> Option<RejectReason> {
    let Some(t) = record else {
        return Some(RejectReason::Unknown);
    };
    if !ct_eq(t.secret_hash.as_bytes(), presented_hash.as_bytes()) {
        return Some(RejectReason::WrongSecret);
    }
    match token_state(t, now) {
        TokenState::Unused => None,
        TokenState::Redeemed => Some(RejectReason::Replayed),
        TokenState::Revoked => Some(RejectReason::Revoked),
        TokenState::Expired => Some(RejectReason::Expired),
    }
}

/// Why a claim cannot be redeemed; `None` if it can. A locked claim is refused even
/// with the right code, and the lock is checked before the secret so a locked claim
/// stops counting attempts.
pub fn claim_rejection(
    record: Option<&ClaimRecord>,
    presented_hash: &str,
    now: DateTime<Utc>,
    max_failures: u32,
) -> Option<RejectReason> {
    let Some(c) = record else {
        return Some(RejectReason::Unknown);
    };
    if c.redeemed_at.is_some() {
        return Some(RejectReason::Replayed);
    }
    if c.failed_attempts >= max_failures {
        return Some(RejectReason::Locked);
    }
    if !ct_eq(c.secret_hash.as_bytes(), presented_hash.as_bytes()) {
        return Some(RejectReason::WrongSecret);
    }
    if c.revoked_at.is_some() {
        return Some(RejectReason::Revoked);
    }
    if now >= c.expires_at {
        return Some(RejectReason::Expired);
    }
    None
}

/// What to do with a factory enrollment whose batch credential checked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnrollmentDecision {
    /// The inventory expects the serial at this site: bind it.
    Bind {
        /// Site.
        site_id: String,
    },
    /// Nobody expects it: park it for an operator.
    Pending,
    /// An active device already holds the serial (cloned image?): refuse and record.
    Conflict {
        /// The holder.
        device_id: String,
    },
}

/// The enrollment decision from the site expecting the serial (if any) and the active
/// device holding it (if any). The batch credential alone never registers.
pub fn decide_enrollment(
    expected_at: Option<&str>,
    active_holder: Option<&str>,
) -> EnrollmentDecision {
    match (active_holder, expected_at) {
        (Some(holder), _) => EnrollmentDecision::Conflict {
            device_id: holder.to_string(),
        },
        (None, Some(site)) => EnrollmentDecision::Bind {
            site_id: site.to_string(),
        },
        (None, None) => EnrollmentDecision::Pending,
    }
}

/// Whether a check-in must be written now: always when the reported state, revision or
/// error changed, otherwise at most once per `interval` per device.
pub fn should_write(
    now: DateTime<Utc>,
    last_written: Option<DateTime<Utc>>,
    changed: bool,
    interval: TimeDelta,
) -> bool {
    changed || last_written.is_none_or(|at| now - at >= interval)
}

/// A requested lifetime checked against the allowed maximum; `None` uses the default.
pub fn lifetime(
    requested_seconds: Option<u64>,
    default: TimeDelta,
    max: TimeDelta,
) -> Result<TimeDelta, String> {
    let Some(secs) = requested_seconds else {
        return Ok(default);
    };
    let ttl = i64::try_from(secs)
        .ok()
        .and_then(TimeDelta::try_seconds)
        .filter(|t| *t > TimeDelta::zero() && *t <= max)
        .ok_or_else(|| format!("must be between 1 and {} seconds", max.num_seconds()))?;
    Ok(ttl)
}

/// Whether a registration refused as already used (token or claim consumed, serial held)
/// is the same box retrying because the 201 never reached it (a client timeout, a
/// dropped link): the device bound by that credential is still active at `site_id`,
/// registered with the very key the new CSR carries (proof of possession: the CSR's
/// signature is verified before this), and has never checked in (a box that checked in
/// has its certificate; renewal is the way on from there). Then the service answers
/// 201 again for the same device instead of leaving the box stuck forever.
pub fn same_box_retry(device: &DeviceRecord, site_id: &str, csr_key_sha256: Option<&str>) -> bool {
    let same_key = match (device.key_sha256.as_deref(), csr_key_sha256) {
        (Some(stored), Some(presented)) => ct_eq(stored.as_bytes(), presented.as_bytes()),
        _ => false,
    };
    same_key
        && device.status == DeviceStatus::Active
        && device.site_id == site_id
        && device.last_seen.is_none()
}

#[cfg(test)]
mod tests;
