//! The Git credentials file: a YAML map from credential name to [`GitAuth`], e.g.
//!
//! ```yaml
//! fleet-readonly:
//!   type: token
//!   token: glpat-...
//! lab-ssh:
//!   type: ssh
//!   privateKey: |
//!     -----BEGIN OPENSSH PRIVATE KEY-----
//!     ...
//!   knownHostKey: ssh-ed25519 AAAA...
//! ```
//!
//! The inventory names credentials by `authRef`; the material reaches a device only on
//! mTLS answers. Errors name the file, line and credential, never a value.

use std::collections::{BTreeMap, BTreeSet};

use siteboot_wire::assignment::GitAuth;

use super::{Inventory, InventoryError};

/// Parses a credentials file. Error messages never echo values: serde_norway's message is
/// replaced by the location and the credential name.
pub fn parse_credentials(
    text: &str,
    file: &str,
) -> Result<BTreeMap<String, GitAuth>, InventoryError> {
    serde_norway::from_str::<BTreeMap<String, GitAuth>>(text).map_err(|e| {
        // serde messages may quote an offending scalar, which could be a secret: name
        // the credential (the last top-level key at or above the error) instead.
        let line = e.location().map(|l| l.line());
        let name = text
            .lines()
            .take(line.unwrap_or(usize::MAX))
            .filter(|l| !l.starts_with([' ', '\t', '#', '-']) && l.contains(':'))
            .last()
            .and_then(|l| l.split(':').next())
            .unwrap_or("")
            .trim()
            .to_string();
        InventoryError {
            file: file.to_string(),
            line,
            reason: format!(
                "credential {name:?} is not a valid git credential: use type token, basic, ssh or ca with its fields"
            ),
        }
    })
}

/// Checks that every `authRef` in the inventory names a known credential.
pub fn check_auth_refs(
    inventory: &Inventory,
    known: &BTreeSet<String>,
    file: &str,
) -> Result<(), InventoryError> {
    match inventory
        .auth_refs()
        .into_iter()
        .find(|r| !known.contains(*r))
    {
        None => Ok(()),
        Some(missing) => Err(InventoryError {
            file: file.to_string(),
            line: None,
            reason: format!("authRef {missing:?} names no credential in the git credentials file"),
        }),
    }
}
