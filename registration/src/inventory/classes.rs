//! Offline thresholds: how many missed check-ins make a site `offline`, fleet-wide, per
//! site class and per site.
//!
//! ```yaml
//! offlineAfterMissedCheckins: 3        # fleet default (3 when absent)
//! siteClasses:                          # first class whose labels all match wins
//!   - name: satellite
//!     match: {network-tier: satellite}
//!     offlineAfterMissedCheckins: 30
//! sites:
//!   - id: store-0142
//!     offlineAfterMissedCheckins: 10    # this site only (beats its class)
//! ```
//!
//! Pure: [`SiteClasses::parse`] validates the file's entries and [`SiteClasses::resolve`]
//! picks the threshold for one site's labels.

use siteboot_wire::labels::{self, Labels};

use super::file::SiteClassFile;

/// Missed check-ins after which a site shows `offline` when the inventory says nothing.
pub const DEFAULT_OFFLINE_AFTER_MISSED_CHECKINS: u32 = 3;

/// Largest threshold accepted (at a 60 s interval, about a week).
pub const MAX_OFFLINE_AFTER_MISSED_CHECKINS: u32 = 10_080;

/// Validated site classes and the fleet default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteClasses {
    /// Fleet default threshold.
    pub default_threshold: u32,
    /// Classes in file order.
    pub classes: Vec<SiteClass>,
}

/// One validated class.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteClass {
    /// Name.
    pub name: String,
    /// Labels a site must carry (all of them).
    pub matches: Labels,
    /// Threshold for its sites.
    pub threshold: u32,
}

/// A rejected entry: the text to locate its line by, and the reason.
pub(super) type ClassError = (String, String);

/// Checks a threshold as written; `what` names the field in the message.
pub(super) fn check_threshold(n: u32, what: &str) -> Result<u32, String> {
    if (1..=MAX_OFFLINE_AFTER_MISSED_CHECKINS).contains(&n) {
        Ok(n)
    } else {
        Err(format!(
            "{what}: offlineAfterMissedCheckins must be 1-{MAX_OFFLINE_AFTER_MISSED_CHECKINS}, got {n}"
        ))
    }
}

impl SiteClasses {
    /// Validates the top-level default and the `siteClasses` entries.
    pub(super) fn parse(
        default_threshold: Option<u32>,
        raw: &[SiteClassFile],
    ) -> Result<Self, ClassError> {
        let default_threshold = match default_threshold {
            None => DEFAULT_OFFLINE_AFTER_MISSED_CHECKINS,
            Some(n) => check_threshold(n, "offlineAfterMissedCheckins")
                .map_err(|r| ("offlineAfterMissedCheckins:".to_string(), r))?,
        };
        let mut classes: Vec<SiteClass> = Vec::with_capacity(raw.len());
        for (i, c) in raw.iter().enumerate() {
            let what = format!("siteClasses[{i}] ({})", c.name);
            let at = format!("name: {}", c.name);
            if !labels::is_valid_site_id(&c.name) {
                return Err((at, format!("{what}: name must be a DNS-1123 label")));
            }
            if classes.iter().any(|o| o.name == c.name) {
                return Err((at, format!("{what}: duplicate class name")));
            }
            if c.matches.is_empty() {
                return Err((
                    at,
                    format!("{what}: match needs at least one label, e.g. network-tier: satellite"),
                ));
            }
            for (k, v) in &c.matches {
                labels::validate(k, v).map_err(|e| (format!("{k}:"), format!("{what}: {e}")))?;
            }
            let threshold =
                check_threshold(c.offline_after_missed_checkins, &what).map_err(|r| (at, r))?;
            classes.push(SiteClass {
                name: c.name.clone(),
                matches: c.matches.clone().into_iter().collect(),
                threshold,
            });
        }
        Ok(Self {
            default_threshold,
            classes,
        })
    }

    /// The class and threshold for a site: its own override, else the first class whose
    /// labels all match, else the fleet default.
    pub fn resolve(&self, labels: &Labels, site_override: Option<u32>) -> (Option<&str>, u32) {
        let class = self
            .classes
            .iter()
            .find(|c| c.matches.iter().all(|(k, v)| labels.get(k) == Some(v)));
        let threshold = site_override
            .or(class.map(|c| c.threshold))
            .unwrap_or(self.default_threshold);
        (class.map(|c| c.name.as_str()), threshold)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn class(name: &str, key: &str, value: &str, n: u32) -> SiteClassFile {
        SiteClassFile {
            name: name.into(),
            matches: BTreeMap::from([(key.to_string(), value.to_string())]),
            offline_after_missed_checkins: n,
        }
    }

    #[test]
    fn resolution_table() {
        let classes = SiteClasses::parse(
            Some(4),
            &[
                class("satellite", "network-tier", "satellite", 30),
                class("cellular", "network-tier", "lte", 6),
                class("any-pi", "hardware-class", "rpi5-8g", 5),
            ],
        )
        .unwrap();
        let l = |pairs: &[(&str, &str)]| -> Labels {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        type Row<'a> = (&'a str, Labels, Option<u32>, (Option<&'a str>, u32));
        let rows: Vec<Row> = vec![
            ("no class", l(&[("network-tier", "fiber")]), None, (None, 4)),
            (
                "satellite",
                l(&[("network-tier", "satellite")]),
                None,
                (Some("satellite"), 30),
            ),
            (
                "first match wins",
                l(&[("network-tier", "lte"), ("hardware-class", "rpi5-8g")]),
                None,
                (Some("cellular"), 6),
            ),
            (
                "site override beats class",
                l(&[("network-tier", "satellite")]),
                Some(2),
                (Some("satellite"), 2),
            ),
            ("site override alone", l(&[]), Some(9), (None, 9)),
        ];
        for (name, labels, over, want) in rows {
            assert_eq!(classes.resolve(&labels, over), want, "{name}");
        }
        let none = SiteClasses::parse(None, &[]).unwrap();
        assert_eq!(none.resolve(&l(&[]), None), (None, 3));
    }

    #[test]
    fn invalid_classes_table() {
        let rows: Vec<(&str, Option<u32>, Vec<SiteClassFile>, &str)> = vec![
            ("zero default", Some(0), vec![], "must be 1-"),
            (
                "zero class",
                None,
                vec![class("sat", "network-tier", "satellite", 0)],
                "siteClasses[0] (sat): offlineAfterMissedCheckins must be 1-",
            ),
            (
                "bad name",
                None,
                vec![class("Sat_1", "network-tier", "satellite", 5)],
                "DNS-1123",
            ),
            (
                "duplicate",
                None,
                vec![
                    class("sat", "network-tier", "satellite", 5),
                    class("sat", "network-tier", "lte", 5),
                ],
                "duplicate class name",
            ),
            (
                "empty match",
                None,
                vec![SiteClassFile {
                    name: "x".into(),
                    matches: BTreeMap::new(),
                    offline_after_missed_checkins: 5,
                }],
                "at least one label",
            ),
            (
                "bad label key",
                None,
                vec![class("x", "Bad Key", "v", 5)],
                "siteClasses[0] (x)",
            ),
        ];
        for (name, default, raw, want) in rows {
            let (_, reason) = SiteClasses::parse(default, &raw).unwrap_err();
            assert!(reason.contains(want), "{name}: {reason}");
        }
    }
}
