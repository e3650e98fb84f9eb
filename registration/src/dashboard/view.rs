//! Page models and their askama templates (`templates/dashboard/*.html`, HTML escaping
//! on). Pure: each page is built from the wire types ([`FleetResponse`], [`SiteDetail`])
//! and plain options, so the rendering is tested with hand-built values and golden files.
//!
//! Templates stay dumb: every label, link, class name and shortened text is computed
//! here, and every string reaches the HTML through askama's escaper (no `|safe`).

use std::collections::BTreeSet;

use askama::Template;
use chrono::{DateTime, Utc};
use siteboot_wire::fleet::{
    FleetQuery, FleetResponse, FleetSite, SiteDetail, SiteState, StateCounts,
};
use siteboot_wire::operator::DeviceStatus;

use super::format::{absolute, encode, query_href, relative, revision, shorten};

/// Longest last-error text shown in a table cell (the full text is in the tooltip and on
/// the site page).
const ERROR_CELL_CHARS: usize = 120;

/// What every page's frame needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// `<title>` and heading.
    pub title: String,
    /// Seconds between automatic reloads (`<meta http-equiv=refresh>`); 0 for none.
    pub refresh_seconds: u64,
    /// Show the logout button.
    pub signed_in: bool,
    /// When the data was computed (absolute).
    pub generated_at: String,
}

/// The human name of a state.
pub fn state_label(s: SiteState) -> &'static str {
    match s {
        SiteState::NeverSeen => "Never seen",
        SiteState::Pending => "Pending",
        SiteState::Offline => "Offline",
        SiteState::Applying => "Applying",
        SiteState::Ready => "Ready",
        SiteState::Failed => "Failed",
    }
}

/// One count, linking to the sites it counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CountCell {
    /// Kebab-case state (CSS class and `data-state`).
    pub state: &'static str,
    /// Human state name.
    pub label: &'static str,
    /// How many.
    pub count: u64,
    /// The filtered table.
    pub href: String,
}

/// One row of a counts matrix (a ring or a region).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MatrixRow {
    /// Label value (`data-key`); empty for sites without the label.
    pub key: String,
    /// What to show for the key.
    pub display: String,
    /// Per state, in [`SiteState::ALL`] order.
    pub cells: Vec<CountCell>,
    /// All states.
    pub total: u64,
    /// Every site of this ring/region.
    pub href: String,
}

/// Counts per state by one label (`ring` or `region`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matrix {
    /// `ring` or `region` (`data-dimension`).
    pub dimension: &'static str,
    /// Heading.
    pub title: &'static str,
    /// One row per label value.
    pub rows: Vec<MatrixRow>,
}

/// An `<option>` of a filter select.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    /// Submitted value (empty: any).
    pub value: String,
    /// Shown text.
    pub label: String,
    /// Currently chosen.
    pub selected: bool,
}

/// One row of the sites table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteRow {
    /// Site id.
    pub site_id: String,
    /// `/sites/<id>`.
    pub href: String,
    /// Kebab-case state.
    pub state: &'static str,
    /// Human state.
    pub state_label: &'static str,
    /// Ring label or empty.
    pub ring: String,
    /// Region label or empty.
    pub region: String,
    /// Active device or empty.
    pub device: String,
    /// `5 min ago` or `never`.
    pub last_seen: String,
    /// Absolute last seen or empty.
    pub last_seen_at: String,
    /// Applied revision, full and shortened.
    pub applied: String,
    /// Shortened applied revision.
    pub applied_short: String,
    /// Attempted revision, full.
    pub attempted: String,
    /// Shortened attempted revision.
    pub attempted_short: String,
    /// The attempt differs from what is applied.
    pub attempt_differs: bool,
    /// Last error, full.
    pub error: String,
    /// Last error, shortened for the cell.
    pub error_short: String,
}

impl SiteRow {
    /// The row for one site at `now`.
    pub fn of(s: &FleetSite, now: DateTime<Utc>) -> Self {
        let applied = s.applied_revision.clone().unwrap_or_default();
        let attempted = s.attempted_revision.clone().unwrap_or_default();
        let error = s.last_error.clone().unwrap_or_default();
        Self {
            site_id: s.site_id.clone(),
            href: format!("/sites/{}", encode(&s.site_id)),
            state: s.state.as_str(),
            state_label: state_label(s.state),
            ring: s.ring.clone().unwrap_or_default(),
            region: s.region.clone().unwrap_or_default(),
            device: s.device_id.clone().unwrap_or_default(),
            last_seen: s
                .last_seen
                .map(|t| relative(t, now))
                .unwrap_or_else(|| "never".into()),
            last_seen_at: s.last_seen.map(absolute).unwrap_or_default(),
            applied_short: revision(&applied),
            attempt_differs: !attempted.is_empty() && attempted != applied,
            attempted_short: revision(&attempted),
            applied,
            attempted,
            error_short: shorten(&error, ERROR_CELL_CHARS),
            error,
        }
    }
}

/// `GET /`: counts, filter form and sites table.
#[derive(Debug, Clone, Template)]
#[template(path = "dashboard/index.html")]
pub struct IndexPage {
    /// Frame.
    pub frame: Frame,
    /// Fleet-wide count per state.
    pub totals: Vec<CountCell>,
    /// All sites in the fleet.
    pub fleet_total: u64,
    /// By ring, then by region.
    pub matrices: Vec<Matrix>,
    /// Region select.
    pub regions: Vec<Choice>,
    /// Ring select.
    pub rings: Vec<Choice>,
    /// State select.
    pub states: Vec<Choice>,
    /// A filter is active.
    pub filtered: bool,
    /// Rows shown (at most the row limit).
    pub rows: Vec<SiteRow>,
    /// Sites that matched the filter.
    pub matched: usize,
}

/// Options of the index page that do not come from the fleet view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexOptions {
    /// Reload interval.
    pub refresh_seconds: u64,
    /// Regions in the inventory (for the select, so empty regions are choosable too).
    pub regions: BTreeSet<String>,
    /// Rings in the inventory.
    pub rings: BTreeSet<String>,
    /// Most rows to render.
    pub max_rows: usize,
}

fn cells(counts: &StateCounts, dim: Option<(&str, &str)>) -> Vec<CountCell> {
    SiteState::ALL
        .into_iter()
        .map(|s| {
            let (ring, region) = match dim {
                Some(("ring", v)) => (Some(v), None),
                Some((_, v)) => (None, Some(v)),
                None => (None, None),
            };
            CountCell {
                state: s.as_str(),
                label: state_label(s),
                count: counts.get(&s).copied().unwrap_or(0),
                href: query_href(&[
                    ("region", region),
                    ("ring", ring),
                    ("state", Some(s.as_str())),
                ]),
            }
        })
        .collect()
}

fn matrix(
    dimension: &'static str,
    title: &'static str,
    by: &std::collections::BTreeMap<String, StateCounts>,
) -> Matrix {
    let rows = by
        .iter()
        .map(|(key, counts)| {
            let href = match dimension {
                "ring" => query_href(&[("ring", Some(key))]),
                _ => query_href(&[("region", Some(key))]),
            };
            MatrixRow {
                key: key.clone(),
                display: if key.is_empty() {
                    format!("(no {dimension})")
                } else {
                    key.clone()
                },
                cells: cells(counts, Some((dimension, key))),
                total: counts.values().sum(),
                href,
            }
        })
        .collect();
    Matrix {
        dimension,
        title,
        rows,
    }
}

fn choices<'a>(
    values: impl Iterator<Item = &'a str>,
    any: &str,
    current: Option<&str>,
) -> Vec<Choice> {
    let mut out = vec![Choice {
        value: String::new(),
        label: any.into(),
        selected: current.is_none(),
    }];
    out.extend(values.map(|v| Choice {
        value: v.to_string(),
        label: v.to_string(),
        selected: current == Some(v),
    }));
    out
}

impl IndexPage {
    /// Builds the page from the unfiltered fleet view: counts cover the whole fleet, the
    /// table shows the sites `filter` matches.
    pub fn build(fleet: &FleetResponse, q: &FleetQuery, opts: &IndexOptions) -> Self {
        let now = fleet.generated_at;
        let matched: Vec<&FleetSite> = fleet.sites.iter().filter(|s| q.matches(s)).collect();
        let mut regions = opts.regions.clone();
        regions.extend(
            fleet
                .counts
                .by_region
                .keys()
                .filter(|k| !k.is_empty())
                .cloned(),
        );
        let mut rings = opts.rings.clone();
        rings.extend(
            fleet
                .counts
                .by_ring
                .keys()
                .filter(|k| !k.is_empty())
                .cloned(),
        );
        let state_choices = {
            let mut c = choices(std::iter::empty(), "any state", None);
            c[0].selected = q.state.is_none();
            c.extend(SiteState::ALL.into_iter().map(|s| Choice {
                value: s.as_str().into(),
                label: state_label(s).into(),
                selected: q.state == Some(s),
            }));
            c
        };
        Self {
            frame: Frame {
                title: "Fleet".into(),
                refresh_seconds: opts.refresh_seconds,
                signed_in: true,
                generated_at: absolute(now),
            },
            totals: cells(&fleet.counts.total, None),
            fleet_total: fleet.counts.total.values().sum(),
            matrices: vec![
                matrix("ring", "Sites by ring", &fleet.counts.by_ring),
                matrix("region", "Sites by region", &fleet.counts.by_region),
            ],
            regions: choices(
                regions.iter().map(String::as_str),
                "any region",
                q.region.as_deref(),
            ),
            rings: choices(
                rings.iter().map(String::as_str),
                "any ring",
                q.ring.as_deref(),
            ),
            states: state_choices,
            filtered: q != &FleetQuery::default(),
            matched: matched.len(),
            rows: matched
                .into_iter()
                .take(opts.max_rows)
                .map(|s| SiteRow::of(s, now))
                .collect(),
        }
    }
}

/// A labelled fact on the site page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fact {
    /// Name (`data-fact`).
    pub key: &'static str,
    /// Shown name.
    pub label: &'static str,
    /// Value (empty shows as a dash).
    pub value: String,
    /// Tooltip (full value), may be empty.
    pub title: String,
}

/// A device on the site page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRow {
    /// Device id.
    pub device_id: String,
    /// `active` or `revoked`.
    pub status: &'static str,
    /// Serial.
    pub serial: String,
    /// Hostname.
    pub hostname: String,
    /// `token`, `enrollment`, `claim`, `approval`.
    pub registered_via: String,
    /// Absolute.
    pub registered_at: String,
    /// Relative or `never`.
    pub last_seen: String,
    /// Absolute or empty.
    pub last_seen_at: String,
}

/// A history line on the site page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryRow {
    /// Absolute.
    pub at: String,
    /// Relative.
    pub ago: String,
    /// Event kind (`data-kind`).
    pub kind: String,
    /// Device or empty.
    pub device: String,
    /// Detail.
    pub detail: String,
}

/// `GET /sites/{id}`.
#[derive(Debug, Clone, Template)]
#[template(path = "dashboard/site.html")]
pub struct SitePage {
    /// Frame.
    pub frame: Frame,
    /// The site's row (state, revisions...).
    pub site: SiteRow,
    /// Facts grid.
    pub facts: Vec<Fact>,
    /// Inventory labels.
    pub labels: Vec<(String, String)>,
    /// Devices, newest first.
    pub devices: Vec<DeviceRow>,
    /// History, newest first.
    pub history: Vec<HistoryRow>,
}

impl SitePage {
    /// Builds the page for one site at `now`.
    pub fn build(d: &SiteDetail, refresh_seconds: u64, now: DateTime<Utc>) -> Self {
        let site = SiteRow::of(&d.site, now);
        let fact = |key, label, value: &str, title: &str| Fact {
            key,
            label,
            value: value.to_string(),
            title: title.to_string(),
        };
        let facts = vec![
            fact("ring", "Ring", &site.ring, ""),
            fact("region", "Region", &site.region, ""),
            fact("device", "Active device", &site.device, ""),
            fact(
                "last-seen",
                "Last seen",
                &if site.last_seen_at.is_empty() {
                    site.last_seen.clone()
                } else {
                    format!("{} ({})", site.last_seen, site.last_seen_at)
                },
                "",
            ),
            fact("applied", "Applied revision", &site.applied, ""),
            fact("attempted", "Attempted revision", &site.attempted, ""),
            fact(
                "offline-after",
                "Offline after",
                &format!("{} missed check-ins", d.site.offline_after_missed),
                "",
            ),
            fact("last-error", "Last error", &site.error, ""),
        ];
        Self {
            frame: Frame {
                title: format!("Site {}", d.site.site_id),
                refresh_seconds,
                signed_in: true,
                generated_at: absolute(now),
            },
            facts,
            labels: d
                .labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            devices: d
                .devices
                .iter()
                .map(|dev| DeviceRow {
                    device_id: dev.device_id.clone(),
                    status: match dev.status {
                        DeviceStatus::Active => "active",
                        DeviceStatus::Revoked => "revoked",
                    },
                    serial: dev.facts.serial.clone(),
                    hostname: dev.facts.hostname.clone(),
                    registered_via: dev.registered_via.clone(),
                    registered_at: absolute(dev.registered_at),
                    last_seen: dev
                        .last_seen
                        .map(|t| relative(t, now))
                        .unwrap_or_else(|| "never".into()),
                    last_seen_at: dev.last_seen.map(absolute).unwrap_or_default(),
                })
                .collect(),
            history: d
                .history
                .iter()
                .map(|h| HistoryRow {
                    at: absolute(h.at),
                    ago: relative(h.at, now),
                    kind: h.kind.clone(),
                    device: h.device_id.clone().unwrap_or_default(),
                    detail: h.detail.clone(),
                })
                .collect(),
            site,
        }
    }
}

/// `GET /login`.
#[derive(Debug, Clone, Template)]
#[template(path = "dashboard/login.html")]
pub struct LoginPage {
    /// Frame.
    pub frame: Frame,
    /// Where to go after login (a local path).
    pub next: String,
    /// Why the last attempt failed, if it did.
    pub error: String,
}

impl LoginPage {
    /// The login form, optionally with an error.
    pub fn new(next: &str, error: &str) -> Self {
        Self {
            frame: Frame {
                title: "Sign in".into(),
                refresh_seconds: 0,
                signed_in: false,
                generated_at: String::new(),
            },
            next: next.to_string(),
            error: error.to_string(),
        }
    }
}

/// Error pages (404 unknown site, 400 bad filter, 429, 500).
#[derive(Debug, Clone, Template)]
#[template(path = "dashboard/error.html")]
pub struct ErrorPage {
    /// Frame.
    pub frame: Frame,
    /// HTTP status code shown.
    pub status: u16,
    /// Heading.
    pub heading: String,
    /// What happened and what to do next.
    pub message: String,
}

impl ErrorPage {
    /// An error page.
    pub fn new(status: u16, heading: &str, message: &str, signed_in: bool) -> Self {
        Self {
            frame: Frame {
                title: heading.to_string(),
                refresh_seconds: 0,
                signed_in,
                generated_at: String::new(),
            },
            status,
            heading: heading.to_string(),
            message: message.to_string(),
        }
    }
}
