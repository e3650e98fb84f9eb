//! Inventory label keys. Every site record carries these; they are also the
//! `${name}` substitution variables the agent offers to manifests.

use std::collections::BTreeMap;

/// The site's id (`store-0142`).
pub const SITE_ID: &str = "site-id";
/// Region, selects the `regions/<region>/` overlay.
pub const REGION: &str = "region";
/// ISO country code.
pub const COUNTRY: &str = "country";
/// Rollout ring (`canary`, `early`, `broad`...), selects the branch or pinned revision.
pub const RING: &str = "ring";
/// Network tier (`fiber`, `dsl`, `lte`...), drives check-in cadence and offline thresholds.
pub const NETWORK_TIER: &str = "network-tier";
/// Hardware class of the box.
pub const HARDWARE_CLASS: &str = "hardware-class";
/// When new revisions may be applied, e.g. `Mon-Fri 01:00-05:00 Europe/Berlin`.
pub const MAINTENANCE_WINDOW: &str = "maintenance-window";
/// Which registry mirror the site pulls from.
pub const REGISTRY_ZONE: &str = "registry-zone";

/// The well-known keys, in display order.
pub const WELL_KNOWN: [&str; 8] = [
    SITE_ID,
    REGION,
    COUNTRY,
    RING,
    NETWORK_TIER,
    HARDWARE_CLASS,
    MAINTENANCE_WINDOW,
    REGISTRY_ZONE,
];

/// A label map, ordered so that rendered output is deterministic.
pub type Labels = BTreeMap<String, String>;

/// Why a label key or value is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LabelError {
    /// Keys are lower-case DNS-label-like names.
    #[error("label key {0:?} is invalid: use 1-63 characters of a-z, 0-9, '-', '_' or '.', starting with a letter")]
    Key(String),
    /// Values are single-line printable text.
    #[error("label {0:?} has an invalid value: use at most 253 printable characters on one line")]
    Value(String),
}

/// Checks one label: keys `[a-z][a-z0-9._-]{0,62}`, values printable, no newline, <= 253.
pub fn validate(key: &str, value: &str) -> Result<(), LabelError> {
    let key_ok = (1..=63).contains(&key.len())
        && key.starts_with(|c: char| c.is_ascii_lowercase())
        && key
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c));
    if !key_ok {
        return Err(LabelError::Key(key.to_string()));
    }
    if value.chars().count() > 253 || value.chars().any(|c| c.is_control()) {
        return Err(LabelError::Value(key.to_string()));
    }
    Ok(())
}

/// True when `id` is a valid site id: a DNS-1123 label (`[a-z0-9]([-a-z0-9]*[a-z0-9])?`, <= 63).
pub fn is_valid_site_id(id: &str) -> bool {
    (1..=63).contains(&id.len())
        && id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !id.starts_with('-')
        && !id.ends_with('-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_validation_table() {
        let cases: &[(&str, &str, bool)] = &[
            ("region", "eu-west", true),
            ("ring", "", true),
            ("Region", "x", false),
            ("1abc", "x", false),
            ("", "x", false),
            ("team.owner", "Zoë's team", true),
            ("region", "line\nbreak", false),
            ("region", &"x".repeat(254), false),
        ];
        for (k, v, ok) in cases {
            assert_eq!(validate(k, v).is_ok(), *ok, "{k:?}={v:?}");
        }
    }

    #[test]
    fn site_id_table() {
        for (id, ok) in [
            ("store-0142", true),
            ("a", true),
            ("-a", false),
            ("A1", false),
            ("a_b", false),
        ] {
            assert_eq!(is_valid_site_id(id), ok, "{id}");
        }
        assert!(!is_valid_site_id(&"a".repeat(64)));
    }
}
