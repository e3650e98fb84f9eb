//! The site inventory: which sites exist, their labels, the serials logistics shipped to
//! them and the Git source each follows.
//!
//! Loaded from a YAML file (embedded mode). Parsing and validation are pure
//! ([`Inventory::parse`]); [`InventoryHandle`] owns the file path and swaps in a new
//! inventory only when the whole file is valid, so a bad reload keeps the previous one
//! serving. The assignment a device receives is computed here from plain values.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use siteboot_wire::assignment::{layer_paths, Assignment, GitAuth, GitSource, RevisionPolicy};
use siteboot_wire::labels::Labels;

pub mod classes;
mod credentials;
pub mod file;
mod handle;
mod validate;

pub use credentials::{check_auth_refs, parse_credentials};
pub use handle::InventoryHandle;

/// Why an inventory (or credentials) file was refused: file, line when known, reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}{}: {reason}", line.map(|l| format!(":{l}")).unwrap_or_default())]
pub struct InventoryError {
    /// The file, as given.
    pub file: String,
    /// 1-based line of the offending entry, when it could be located.
    pub line: Option<usize>,
    /// What is wrong, lower-case and actionable.
    pub reason: String,
}

/// A validated inventory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inventory {
    /// Sites by id.
    pub sites: BTreeMap<String, Site>,
    /// Fleet-wide Git defaults.
    pub git: GitDefaults,
    serials: HashMap<String, String>,
}

/// Fleet-wide Git defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitDefaults {
    /// Repository URL.
    pub url: String,
    /// Credential name.
    pub auth_ref: Option<String>,
    /// Revision policy per ring.
    pub rings: BTreeMap<String, RevisionPolicy>,
}

/// One site.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Site {
    /// Site id.
    pub id: String,
    /// Region.
    pub region: String,
    /// Ring.
    pub ring: String,
    /// All labels including `site-id`, `region`, `ring` and the free-form ones.
    pub labels: Labels,
    /// Serials expected at this site.
    pub expected_serials: Vec<String>,
    /// Repository URL (site override or fleet default).
    pub git_url: String,
    /// Credential name (site override or fleet default).
    pub auth_ref: Option<String>,
    /// Resolved revision policy (site pin/branch, else the ring's).
    pub revision: RevisionPolicy,
    /// Site class whose labels matched (see [`classes`]), if any.
    pub site_class: Option<String>,
    /// Missed check-ins after which the site shows `offline` (site, class or fleet value).
    pub offline_after_missed_checkins: u32,
}

/// Which sites an operator listing wants.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SiteFilter {
    /// Only this region.
    pub region: Option<String>,
    /// Only this ring.
    pub ring: Option<String>,
}

impl SiteFilter {
    /// True when `site` passes the filter.
    pub fn matches(&self, site: &Site) -> bool {
        self.region.as_ref().is_none_or(|r| *r == site.region)
            && self.ring.as_ref().is_none_or(|r| *r == site.ring)
    }
}

impl Inventory {
    /// Parses and validates inventory YAML; `file` names the source in errors.
    pub fn parse(text: &str, file: &str) -> Result<Self, InventoryError> {
        validate::parse(text, file)
    }

    /// An inventory with no sites (for a service started without a file).
    pub fn empty(git_url: &str) -> Self {
        Self {
            sites: BTreeMap::new(),
            git: GitDefaults {
                url: git_url.to_string(),
                auth_ref: None,
                rings: BTreeMap::new(),
            },
            serials: HashMap::new(),
        }
    }

    pub(crate) fn from_parts(sites: BTreeMap<String, Site>, git: GitDefaults) -> Self {
        let serials = sites
            .values()
            .flat_map(|s| s.expected_serials.iter().map(|n| (n.clone(), s.id.clone())))
            .collect();
        Self {
            sites,
            git,
            serials,
        }
    }

    /// A site by id.
    pub fn site(&self, id: &str) -> Option<&Site> {
        self.sites.get(id)
    }

    /// The site that expects `serial`, if logistics registered it.
    pub fn site_expecting(&self, serial: &str) -> Option<&Site> {
        self.serials.get(serial).and_then(|id| self.sites.get(id))
    }

    /// Number of sites.
    pub fn len(&self) -> usize {
        self.sites.len()
    }

    /// True when there are no sites.
    pub fn is_empty(&self) -> bool {
        self.sites.is_empty()
    }

    /// Every credential name the inventory refers to.
    pub fn auth_refs(&self) -> BTreeSet<&str> {
        self.sites
            .values()
            .filter_map(|s| s.auth_ref.as_deref())
            .chain(self.git.auth_ref.as_deref())
            .collect()
    }
}

impl Site {
    /// The assignment for this site. `auth` is the resolved credential material, passed
    /// only on mTLS answers; registration answers carry the reference alone.
    pub fn assignment(&self, auth: Option<GitAuth>) -> Assignment {
        Assignment {
            site_id: self.id.clone(),
            source: GitSource {
                url: self.git_url.clone(),
                revision: self.revision.clone(),
                auth_ref: self.auth_ref.clone(),
                auth,
            },
            paths: layer_paths(&self.region, &self.id),
            labels: self.labels.clone(),
        }
    }
}

#[cfg(test)]
mod tests;
