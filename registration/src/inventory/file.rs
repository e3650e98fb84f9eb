//! The inventory file as written by people: camelCase YAML, unknown fields rejected so a
//! misspelt key fails loudly instead of being ignored.

use std::collections::BTreeMap;

use serde::Deserialize;

/// Top level of an inventory file.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InventoryFile {
    /// Optional `siteboot.io/v1alpha1`, for readers.
    #[serde(default)]
    pub api_version: Option<String>,
    /// Optional `Inventory`, for readers.
    #[serde(default)]
    pub kind: Option<String>,
    /// The fleet Git source every site follows unless it overrides it.
    pub git: GitDefaultsFile,
    /// Missed check-ins after which a site shows `offline` unless its class or the site
    /// says otherwise (default 3).
    #[serde(default)]
    pub offline_after_missed_checkins: Option<u32>,
    /// Site classes: thresholds for sites whose labels match (first match wins).
    #[serde(default)]
    pub site_classes: Vec<SiteClassFile>,
    /// The sites.
    #[serde(default)]
    pub sites: Vec<SiteFile>,
}

/// A site class: sites whose labels include every `match` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SiteClassFile {
    /// Class name (DNS-1123 label), shown with the site.
    pub name: String,
    /// Labels a site must carry, e.g. `network-tier: satellite`.
    #[serde(rename = "match")]
    pub matches: BTreeMap<String, String>,
    /// Missed check-ins after which sites of this class show `offline`.
    pub offline_after_missed_checkins: u32,
}

/// Fleet-wide Git defaults.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GitDefaultsFile {
    /// Repository URL.
    pub url: String,
    /// Name of a credential in the credentials file.
    #[serde(default)]
    pub auth_ref: Option<String>,
    /// Revision policy per ring: `{branch: main}` or `{commit: <40 hex>}`.
    #[serde(default)]
    pub rings: BTreeMap<String, RevisionFile>,
}

/// A revision policy as written: exactly one of `branch` or `commit`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RevisionFile {
    /// Follow a branch head.
    #[serde(default)]
    pub branch: Option<String>,
    /// Pin one commit.
    #[serde(default)]
    pub commit: Option<String>,
}

/// Per-site Git overrides.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SiteGitFile {
    /// Another repository for this site.
    #[serde(default)]
    pub url: Option<String>,
    /// Another credential for this site.
    #[serde(default)]
    pub auth_ref: Option<String>,
    /// Follow a branch head instead of the ring's policy.
    #[serde(default)]
    pub branch: Option<String>,
    /// Pin one commit instead of the ring's policy.
    #[serde(default)]
    pub commit: Option<String>,
}

/// One site record.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SiteFile {
    /// DNS-1123 label, e.g. `store-0142`.
    pub id: String,
    /// Region (selects `regions/<region>/`).
    pub region: String,
    /// Rollout ring (selects the revision policy).
    pub ring: String,
    /// ISO country code.
    #[serde(default)]
    pub country: Option<String>,
    /// `fiber`, `dsl`, `lte`...
    #[serde(default)]
    pub network_tier: Option<String>,
    /// Hardware class of the box.
    #[serde(default)]
    pub hardware_class: Option<String>,
    /// e.g. `Mon-Fri 01:00-05:00 Europe/Berlin`.
    #[serde(default)]
    pub maintenance_window: Option<String>,
    /// Registry mirror zone.
    #[serde(default)]
    pub registry_zone: Option<String>,
    /// Free-form labels; may not redefine the well-known keys.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Serials logistics shipped to this site; a factory box with one of them registers
    /// without approval.
    #[serde(default)]
    pub expected_serials: Vec<String>,
    /// Git overrides.
    #[serde(default)]
    pub git: Option<SiteGitFile>,
    /// Missed check-ins after which this site shows `offline` (overrides its class).
    #[serde(default)]
    pub offline_after_missed_checkins: Option<u32>,
}
