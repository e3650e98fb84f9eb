//! Inventory YAML -> validated [`Inventory`], with file and line in every error.
//!
//! Syntax and type errors carry serde_norway's location. Semantic errors (duplicate
//! ids, bad labels, a serial listed at two sites, a ring without a revision policy) are
//! located by finding the site's `id:` line in the text, then the first line after it
//! that mentions the offending key or value.

use std::collections::{BTreeMap, HashMap};

use siteboot_wire::assignment::RevisionPolicy;
use siteboot_wire::labels::{self, Labels};

use super::classes::{check_threshold, SiteClasses};
use super::file::{InventoryFile, SiteFile};
use super::{GitDefaults, Inventory, InventoryError, Site};

pub(super) fn parse(text: &str, file: &str) -> Result<Inventory, InventoryError> {
    let raw: InventoryFile = serde_norway::from_str(text).map_err(|e| InventoryError {
        file: file.to_string(),
        line: e.location().map(|l| l.line()),
        reason: e.to_string(),
    })?;
    let lines = Lines::new(text);
    let err = |line: Option<usize>, reason: String| InventoryError {
        file: file.to_string(),
        line,
        reason,
    };
    check_url(&raw.git.url).map_err(|r| err(lines.find(0, "url:"), format!("git.url: {r}")))?;
    let mut rings = BTreeMap::new();
    for (ring, rev) in &raw.git.rings {
        let policy = revision(rev.branch.as_deref(), rev.commit.as_deref())
            .map_err(|r| {
                err(
                    lines.find(0, &format!("{ring}:")),
                    format!("git.rings.{ring}: {r}"),
                )
            })?
            .ok_or_else(|| {
                err(
                    lines.find(0, &format!("{ring}:")),
                    format!("git.rings.{ring}: set branch or commit"),
                )
            })?;
        rings.insert(ring.clone(), policy);
    }
    let classes = SiteClasses::parse(raw.offline_after_missed_checkins, &raw.site_classes)
        .map_err(|(needle, r)| err(lines.find(0, &needle), r))?;
    let git = GitDefaults {
        url: raw.git.url.clone(),
        auth_ref: raw.git.auth_ref.clone(),
        rings,
    };

    let mut sites = BTreeMap::new();
    let mut serial_owner: HashMap<&str, &str> = HashMap::new();
    let mut site_lines: HashMap<&str, usize> = HashMap::new();
    let mut cursor = 0;
    for (index, s) in raw.sites.iter().enumerate() {
        let at = lines.find_site(cursor, &s.id);
        if let Some(l) = at {
            cursor = l;
        }
        let here = |needle: &str| at.and_then(|l| lines.find(l - 1, needle)).or(at);
        let what = format!("sites[{index}] ({})", s.id);
        if !labels::is_valid_site_id(&s.id) {
            return Err(err(
                at,
                format!("{what}: site id must be a DNS-1123 label (a-z, 0-9, '-', at most 63)"),
            ));
        }
        if let Some(first) = site_lines.insert(&s.id, at.unwrap_or(0)) {
            return Err(err(
                at,
                format!("{what}: duplicate site id, first defined at line {first}"),
            ));
        }
        let site_labels = site_labels(s).map_err(|(key, r)| {
            // Free-form keys live under `labels:`; look there first.
            let free_form = s.labels.contains_key(key.trim_end_matches(':'));
            let line = match (free_form, at.and_then(|l| lines.find(l - 1, "labels:"))) {
                (true, Some(l)) => lines.find(l - 1, &key).or(Some(l)),
                _ => here(&key),
            };
            err(line, format!("{what}: {r}"))
        })?;
        for serial in &s.expected_serials {
            if serial.trim().is_empty() || serial.len() > 128 {
                return Err(err(
                    here(serial),
                    format!("{what}: expected serials must be 1-128 characters"),
                ));
            }
            if let Some(other) = serial_owner.insert(serial, &s.id) {
                return Err(err(
                    here(serial),
                    format!("{what}: serial {serial:?} is also expected at site {other}"),
                ));
            }
        }
        let g = s.git.clone().unwrap_or_default();
        let site_rev = revision(g.branch.as_deref(), g.commit.as_deref())
            .map_err(|r| err(here("git:"), format!("{what}.git: {r}")))?;
        let policy = match site_rev.or_else(|| git.rings.get(&s.ring).cloned()) {
            Some(p) => p,
            None => {
                return Err(err(
                    here("ring:"),
                    format!(
                    "{what}: ring {:?} has no branch or commit in git.rings and the site pins none",
                    s.ring
                ),
                ))
            }
        };
        let site_threshold = s
            .offline_after_missed_checkins
            .map(|n| check_threshold(n, &what))
            .transpose()
            .map_err(|r| err(here("offlineAfterMissedCheckins:"), r))?;
        let (class, threshold) = classes.resolve(&site_labels, site_threshold);
        let site_class = class.map(str::to_string);
        let url = g.url.unwrap_or_else(|| git.url.clone());
        check_url(&url).map_err(|r| err(here("url:"), format!("{what}.git.url: {r}")))?;
        sites.insert(
            s.id.clone(),
            Site {
                id: s.id.clone(),
                region: s.region.clone(),
                ring: s.ring.clone(),
                labels: site_labels,
                expected_serials: s.expected_serials.clone(),
                git_url: url,
                auth_ref: g.auth_ref.or_else(|| git.auth_ref.clone()),
                revision: policy,
                site_class,
                offline_after_missed_checkins: threshold,
            },
        );
    }
    Ok(Inventory::from_parts(sites, git))
}

/// The label map of a site; on error, the offending key (to locate it) and the reason.
fn site_labels(s: &SiteFile) -> Result<Labels, (String, String)> {
    let mut out = Labels::new();
    let well_known = [
        (labels::SITE_ID, Some(&s.id)),
        (labels::REGION, Some(&s.region)),
        (labels::RING, Some(&s.ring)),
        (labels::COUNTRY, s.country.as_ref()),
        (labels::NETWORK_TIER, s.network_tier.as_ref()),
        (labels::HARDWARE_CLASS, s.hardware_class.as_ref()),
        (labels::MAINTENANCE_WINDOW, s.maintenance_window.as_ref()),
        (labels::REGISTRY_ZONE, s.registry_zone.as_ref()),
    ];
    for (key, value) in well_known {
        if let Some(v) = value {
            out.insert(key.to_string(), v.clone());
        }
    }
    for key in [labels::REGION, labels::RING] {
        if out[key].trim().is_empty() {
            return Err((format!("{key}:"), format!("{key} must not be empty")));
        }
    }
    if !labels::is_valid_site_id(&s.region) {
        return Err((
            "region:".into(),
            "region must be a DNS-1123 label (it names a directory)".into(),
        ));
    }
    for (key, value) in &s.labels {
        if labels::WELL_KNOWN.contains(&key.as_str()) {
            return Err((
                format!("{key}:"),
                format!("label {key:?} is well-known: set it as a site field, not under labels"),
            ));
        }
        out.insert(key.clone(), value.clone());
    }
    for (key, value) in &out {
        labels::validate(key, value).map_err(|e| (format!("{key}:"), e.to_string()))?;
    }
    Ok(out)
}

/// The revision policy written as `branch`/`commit`; `None` when neither is set.
fn revision(branch: Option<&str>, commit: Option<&str>) -> Result<Option<RevisionPolicy>, String> {
    match (branch, commit) {
        (Some(_), Some(_)) => Err("set either branch or commit, not both".into()),
        (Some(b), None) => {
            let bad = b.is_empty()
                || b.starts_with('-')
                || b.starts_with("refs/")
                || b.contains("..")
                || b.chars()
                    .any(|c| c.is_whitespace() || c.is_control() || "~^:?*[\\".contains(c));
            if bad {
                Err(format!(
                    "branch {b:?} is not a valid branch name (no refs/ prefix)"
                ))
            } else {
                Ok(Some(RevisionPolicy::Branch {
                    name: b.to_string(),
                }))
            }
        }
        (None, Some(c)) => {
            if c.len() == 40 && c.chars().all(|ch| ch.is_ascii_hexdigit()) {
                Ok(Some(RevisionPolicy::Commit {
                    sha: c.to_ascii_lowercase(),
                }))
            } else {
                Err(format!("commit {c:?} must be a full 40-hex commit id"))
            }
        }
        (None, None) => Ok(None),
    }
}

fn check_url(url: &str) -> Result<(), String> {
    let ok = ["https://", "http://", "ssh://", "git://", "file://"]
        .iter()
        .any(|p| url.starts_with(p) && url.len() > p.len())
        || (url.contains('@') && url.contains(':') && !url.contains("://"));
    if ok && !url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        Ok(())
    } else {
        Err(format!(
            "{url:?} is not a Git URL (https://, ssh://, git@host:path, git://, file://)"
        ))
    }
}

/// Line lookup over the source text (1-based line numbers).
struct Lines<'a> {
    lines: Vec<&'a str>,
}

impl<'a> Lines<'a> {
    fn new(text: &'a str) -> Self {
        Self {
            lines: text.lines().collect(),
        }
    }

    /// First line at or after `from` (0-based index) containing `needle`.
    fn find(&self, from: usize, needle: &str) -> Option<usize> {
        self.lines
            .iter()
            .enumerate()
            .skip(from)
            .find(|(_, l)| !l.trim_start().starts_with('#') && l.contains(needle))
            .map(|(i, _)| i + 1)
    }

    /// The line of `id: <site>` at or after line `from` (1-based, 0 for start).
    fn find_site(&self, from: usize, id: &str) -> Option<usize> {
        self.lines
            .iter()
            .enumerate()
            .skip(from)
            .find(|(_, l)| {
                let t = l.trim_start().trim_start_matches("- ").trim_start();
                t.strip_prefix("id:")
                    .map(|v| v.trim().trim_matches(|c| c == '"' || c == '\'') == id)
                    .unwrap_or(false)
            })
            .map(|(i, _)| i + 1)
    }
}
