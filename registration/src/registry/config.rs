//! [`RegistryConfig`]: lifetimes, thresholds, enrollment batches and Git credentials.
//!
//! Enrollment batch file format (YAML, in the data directory, loaded by the service):
//!
//! ```yaml
//! # batch name: SHA-256 (hex) of the batch secret flashed into that factory batch
//! 2026-w14-lineA: 5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8
//! ```

use std::collections::BTreeMap;
use std::time::Duration;

use siteboot_wire::assignment::GitAuth;

use crate::inventory::InventoryError;

/// Registry settings. `Default` gives the documented defaults.
#[derive(Clone)]
pub struct RegistryConfig {
    /// Token lifetime when the mint request names none (24 h).
    pub token_ttl: Duration,
    /// Longest token lifetime an operator may ask for (30 days).
    pub max_token_ttl: Duration,
    /// Claim code lifetime when the mint request names none (72 h).
    pub claim_ttl: Duration,
    /// Longest claim lifetime (30 days).
    pub max_claim_ttl: Duration,
    /// Failed attempts after which a claim id is locked (5).
    pub claim_max_failures: u32,
    /// Unchanged check-ins are written at most this often per device (5 min).
    pub heartbeat_interval: Duration,
    /// How often the check-in path reads the store's change feed (events) to drop
    /// cached device records that another replica changed (5 s; zero disables the
    /// cache). Exact within one process; bounds how late another replica's revocation
    /// is seen. Cached records do not age out otherwise.
    pub device_cache_ttl: Duration,
    /// Check-in interval told to agents (60 s).
    pub checkin_interval_seconds: u64,
    /// Poll interval told to pending devices (30 s).
    pub poll_after_seconds: u64,
    /// Enrollment batches: name -> SHA-256 hex of the batch secret.
    pub enrollment_batches: BTreeMap<String, String>,
    /// Git credentials by name (the inventory's `authRef`s).
    pub git_credentials: BTreeMap<String, GitAuth>,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        Self {
            token_ttl: Duration::from_secs(24 * 3600),
            max_token_ttl: Duration::from_secs(30 * 24 * 3600),
            claim_ttl: Duration::from_secs(72 * 3600),
            max_claim_ttl: Duration::from_secs(30 * 24 * 3600),
            claim_max_failures: 5,
            heartbeat_interval: Duration::from_secs(300),
            device_cache_ttl: Duration::from_secs(5),
            checkin_interval_seconds: 60,
            poll_after_seconds: 30,
            enrollment_batches: BTreeMap::new(),
            git_credentials: BTreeMap::new(),
        }
    }
}

impl std::fmt::Debug for RegistryConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryConfig")
            .field("token_ttl", &self.token_ttl)
            .field("claim_ttl", &self.claim_ttl)
            .field("claim_max_failures", &self.claim_max_failures)
            .field("heartbeat_interval", &self.heartbeat_interval)
            .field("checkin_interval_seconds", &self.checkin_interval_seconds)
            .field(
                "enrollment_batches",
                &self.enrollment_batches.keys().collect::<Vec<_>>(),
            )
            .field(
                "git_credentials",
                &self.git_credentials.keys().collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// Parses an enrollment batch file (`name: <sha256 hex>`); errors name file, line and
/// batch, never a value.
pub fn parse_enrollment_batches(
    text: &str,
    file: &str,
) -> Result<BTreeMap<String, String>, InventoryError> {
    let map: BTreeMap<String, String> =
        serde_norway::from_str(text).map_err(|e| InventoryError {
            file: file.to_string(),
            line: e.location().map(|l| l.line()),
            reason: "expected a map of batch name to the SHA-256 (64 hex) of its secret".into(),
        })?;
    for (name, hash) in &map {
        let ok_name = !name.is_empty()
            && name.len() <= 64
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
        let ok_hash = hash.len() == 64 && hash.chars().all(|c| c.is_ascii_hexdigit());
        if !ok_name || !ok_hash {
            let line = text
                .lines()
                .position(|l| l.trim_start().starts_with(name.as_str()))
                .map(|i| i + 1);
            return Err(InventoryError {
                file: file.to_string(),
                line,
                reason: format!(
                    "batch {name:?}: names use a-z, 0-9, '-', '_', '.'; values are the SHA-256 (64 hex) of the secret, never the secret"
                ),
            });
        }
    }
    Ok(map
        .into_iter()
        .map(|(k, v)| (k, v.to_ascii_lowercase()))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_file_table() {
        let h = "ab".repeat(32);
        let ok = parse_enrollment_batches(&format!("2026-w14-lineA: {h}\n"), "b.yaml").unwrap();
        assert_eq!(ok["2026-w14-lineA"], h);
        for bad in [
            "lineA: hunter2-plain-secret\n",
            "- a\n",
            "\"bad name\": x\n",
        ] {
            let e = parse_enrollment_batches(bad, "b.yaml").unwrap_err();
            assert!(!e.to_string().contains("hunter2"), "{e}");
            assert!(e.to_string().starts_with("b.yaml"), "{e}");
        }
    }
}
