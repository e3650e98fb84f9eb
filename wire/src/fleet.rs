//! Fleet status: the one state each site is in, as the operator API, the dashboard,
//! `sitebootctl` and the `siteboot_sites` metric all show it.
//!
//! [`derive_state`] is the only place the state is decided. It takes plain values
//! (including `now`) so every rule is a row in a table test.

use std::collections::BTreeMap;

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use crate::api::AgentState;
use crate::labels::Labels;

/// `GET`: fleet sites with their state, filtered (`?region=&ring=&state=`), with counts.
pub const PATH_FLEET: &str = "/v1/operator/fleet";
/// `GET {PATH_FLEET_SITES}/{id}`: one site with its devices and history.
pub const PATH_FLEET_SITES: &str = "/v1/operator/fleet/sites";

/// Where a site stands, from the operator's point of view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SiteState {
    /// No device has ever registered for the site and none is on its way.
    NeverSeen,
    /// A device is on its way: a live token or claim code was minted for the site, or
    /// a device registered but has not checked in yet.
    Pending,
    /// The active device missed more check-ins than its site class allows. Not failed:
    /// the site keeps its last applied state.
    Offline,
    /// The device is applying a revision.
    Applying,
    /// The applied revision is healthy.
    Ready,
    /// The attempted revision failed, or applied objects are unhealthy.
    Failed,
}

impl SiteState {
    /// Every state, in display order.
    pub const ALL: [SiteState; 6] = [
        SiteState::NeverSeen,
        SiteState::Pending,
        SiteState::Offline,
        SiteState::Applying,
        SiteState::Ready,
        SiteState::Failed,
    ];

    /// The kebab-case name (`never-seen`, ...), as in JSON, query strings and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            SiteState::NeverSeen => "never-seen",
            SiteState::Pending => "pending",
            SiteState::Offline => "offline",
            SiteState::Applying => "applying",
            SiteState::Ready => "ready",
            SiteState::Failed => "failed",
        }
    }

    /// Parses the kebab-case name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

impl std::fmt::Display for SiteState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What [`derive_state`] looks at for one site.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateInputs {
    /// The site has an active device.
    pub has_active_device: bool,
    /// The site has had a device before (now revoked or replaced).
    pub had_device: bool,
    /// Last check-in of the active device (the latest of store and memory).
    pub last_seen: Option<DateTime<Utc>>,
    /// Last state the active device reported.
    pub agent_state: Option<AgentState>,
    /// A registration is underway: an unused, unexpired token or claim code for the site.
    pub registration_underway: bool,
    /// Check-in interval the devices are told.
    pub checkin_interval: TimeDelta,
    /// Missed check-ins after which the site is offline (per site class).
    pub offline_after_missed: u32,
}

/// The state of one site at `now`. Rules, in order:
/// 1. no active device: `pending` if a registration is underway, else `offline` if the
///    site had a device before (revoked, nothing on its way), else `never-seen`;
/// 2. an active device that never checked in: `pending`;
/// 3. last seen more than `offline_after_missed` intervals ago: `offline`;
/// 4. else the reported state: `applying`, `ready`, `failed` (`degraded` counts as failed).
pub fn derive_state(i: &StateInputs, now: DateTime<Utc>) -> SiteState {
    if !i.has_active_device {
        return if i.registration_underway {
            SiteState::Pending
        } else if i.had_device {
            SiteState::Offline
        } else {
            SiteState::NeverSeen
        };
    }
    let (Some(seen), Some(state)) = (i.last_seen, i.agent_state) else {
        return SiteState::Pending;
    };
    let allowed =
        i.checkin_interval * i32::try_from(i.offline_after_missed.max(1)).unwrap_or(i32::MAX);
    if now - seen > allowed {
        return SiteState::Offline;
    }
    match state {
        AgentState::Applying => SiteState::Applying,
        AgentState::Ready => SiteState::Ready,
        AgentState::Failed | AgentState::Degraded => SiteState::Failed,
    }
}

/// One site in the fleet view.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FleetSite {
    /// Site id.
    pub site_id: String,
    /// Derived state.
    pub state: SiteState,
    /// `ring` label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ring: Option<String>,
    /// `region` label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Active device.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
    /// Last check-in of the active device.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seen: Option<DateTime<Utc>>,
    /// Last applied revision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied_revision: Option<String>,
    /// Last attempted revision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempted_revision: Option<String>,
    /// Last error reported (secret-free, as the agent sent it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// Missed check-ins after which this site counts as offline.
    pub offline_after_missed: u32,
}

/// Sites per state; every state is present (zero included).
pub type StateCounts = BTreeMap<SiteState, u64>;

/// Counts over the sites that matched the filter.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FleetCounts {
    /// All matched sites.
    pub total: StateCounts,
    /// Per `ring` label value.
    pub by_ring: BTreeMap<String, StateCounts>,
    /// Per `region` label value.
    pub by_region: BTreeMap<String, StateCounts>,
}

impl FleetCounts {
    /// Counts over `sites` (sites without a ring or region are counted under `""`).
    pub fn of(sites: &[FleetSite]) -> Self {
        fn zero() -> StateCounts {
            SiteState::ALL.into_iter().map(|s| (s, 0)).collect()
        }
        let mut c = FleetCounts {
            total: zero(),
            ..Default::default()
        };
        for s in sites {
            *c.total.entry(s.state).or_default() += 1;
            let ring = s.ring.clone().unwrap_or_default();
            *c.by_ring
                .entry(ring)
                .or_insert_with(zero)
                .entry(s.state)
                .or_default() += 1;
            let region = s.region.clone().unwrap_or_default();
            *c.by_region
                .entry(region)
                .or_insert_with(zero)
                .entry(s.state)
                .or_default() += 1;
        }
        c
    }
}

/// Filter of `GET /v1/operator/fleet` (query string).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FleetQuery {
    /// Only this region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Only this ring.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ring: Option<String>,
    /// Only this state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<SiteState>,
}

impl FleetQuery {
    /// Whether `site` passes the filter.
    pub fn matches(&self, site: &FleetSite) -> bool {
        self.region
            .as_ref()
            .is_none_or(|r| site.region.as_ref() == Some(r))
            && self
                .ring
                .as_ref()
                .is_none_or(|r| site.ring.as_ref() == Some(r))
            && self.state.is_none_or(|s| site.state == s)
    }
}

/// Body of `GET /v1/operator/fleet`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FleetResponse {
    /// When the view was computed.
    pub generated_at: DateTime<Utc>,
    /// Counts over the matched sites.
    pub counts: FleetCounts,
    /// Matched sites, by site id.
    pub sites: Vec<FleetSite>,
}

/// One line of a site's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HistoryEntry {
    /// When.
    pub at: DateTime<Utc>,
    /// Event kind (`registered`, `replaced`, `revoked`, `state-changed`, `offline`, ...).
    pub kind: String,
    /// Device concerned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
    /// Human detail (secret-free).
    pub detail: String,
}

/// Body of `GET /v1/operator/fleet/sites/{id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SiteDetail {
    /// The site as in the fleet list.
    pub site: FleetSite,
    /// All inventory labels.
    pub labels: Labels,
    /// Every device the site has had, newest first.
    pub devices: Vec<crate::operator::DeviceInfo>,
    /// History, newest first.
    pub history: Vec<HistoryEntry>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn state_rules() {
        let now = t("2026-11-22T12:00:00Z");
        let base = StateInputs {
            has_active_device: true,
            had_device: true,
            last_seen: Some(t("2026-11-22T11:59:00Z")),
            agent_state: Some(AgentState::Ready),
            registration_underway: false,
            checkin_interval: TimeDelta::seconds(60),
            offline_after_missed: 3,
        };
        let rows: Vec<(&str, StateInputs, SiteState)> = vec![
            ("ready", base.clone(), SiteState::Ready),
            (
                "applying",
                StateInputs {
                    agent_state: Some(AgentState::Applying),
                    ..base.clone()
                },
                SiteState::Applying,
            ),
            (
                "failed",
                StateInputs {
                    agent_state: Some(AgentState::Failed),
                    ..base.clone()
                },
                SiteState::Failed,
            ),
            (
                "degraded is failed",
                StateInputs {
                    agent_state: Some(AgentState::Degraded),
                    ..base.clone()
                },
                SiteState::Failed,
            ),
            (
                "3 missed exactly is not yet offline",
                StateInputs {
                    last_seen: Some(t("2026-11-22T11:57:00Z")),
                    ..base.clone()
                },
                SiteState::Ready,
            ),
            (
                "more than 3 missed is offline",
                StateInputs {
                    last_seen: Some(t("2026-11-22T11:56:59Z")),
                    ..base.clone()
                },
                SiteState::Offline,
            ),
            (
                "offline wins over failed",
                StateInputs {
                    last_seen: Some(t("2026-11-22T10:00:00Z")),
                    agent_state: Some(AgentState::Failed),
                    ..base.clone()
                },
                SiteState::Offline,
            ),
            (
                "site class allows more",
                StateInputs {
                    last_seen: Some(t("2026-11-22T11:50:00Z")),
                    offline_after_missed: 20,
                    ..base.clone()
                },
                SiteState::Ready,
            ),
            (
                "registered, never checked in",
                StateInputs {
                    last_seen: None,
                    agent_state: None,
                    ..base.clone()
                },
                SiteState::Pending,
            ),
            (
                "no device ever, nothing underway",
                StateInputs {
                    has_active_device: false,
                    had_device: false,
                    last_seen: None,
                    agent_state: None,
                    ..base.clone()
                },
                SiteState::NeverSeen,
            ),
            (
                "no device, token minted",
                StateInputs {
                    has_active_device: false,
                    registration_underway: true,
                    ..base.clone()
                },
                SiteState::Pending,
            ),
            (
                "device revoked, nothing underway: offline, not never-seen",
                StateInputs {
                    has_active_device: false,
                    last_seen: None,
                    agent_state: None,
                    ..base.clone()
                },
                SiteState::Offline,
            ),
            (
                "device revoked, claim minted: pending",
                StateInputs {
                    has_active_device: false,
                    registration_underway: true,
                    ..base.clone()
                },
                SiteState::Pending,
            ),
        ];
        for (name, inputs, want) in rows {
            assert_eq!(derive_state(&inputs, now), want, "{name}");
        }
    }

    #[test]
    fn names_round_trip_and_match_json() {
        for s in SiteState::ALL {
            assert_eq!(SiteState::parse(s.as_str()), Some(s));
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        assert_eq!(SiteState::parse("Ready"), None);
    }

    fn site(id: &str, ring: &str, region: &str, state: SiteState) -> FleetSite {
        FleetSite {
            site_id: id.into(),
            state,
            ring: Some(ring.into()),
            region: Some(region.into()),
            device_id: None,
            last_seen: None,
            applied_revision: None,
            attempted_revision: None,
            last_error: None,
            offline_after_missed: 3,
        }
    }

    #[test]
    fn counts_and_filters() {
        let sites = vec![
            site("a", "canary", "eu-west", SiteState::Ready),
            site("b", "canary", "us-east", SiteState::Offline),
            site("c", "stable", "eu-west", SiteState::Ready),
        ];
        let c = FleetCounts::of(&sites);
        assert_eq!(c.total[&SiteState::Ready], 2);
        assert_eq!(c.total[&SiteState::Failed], 0);
        assert_eq!(c.by_ring["canary"][&SiteState::Offline], 1);
        assert_eq!(c.by_region["eu-west"][&SiteState::Ready], 2);
        let q = FleetQuery {
            region: Some("eu-west".into()),
            state: Some(SiteState::Ready),
            ..Default::default()
        };
        let ids: Vec<_> = sites
            .iter()
            .filter(|s| q.matches(s))
            .map(|s| s.site_id.as_str())
            .collect();
        assert_eq!(ids, ["a", "c"]);
        let json = serde_json::to_value(&c).unwrap();
        assert_eq!(json["total"]["never-seen"], 0);
        assert_eq!(json["byRing"]["canary"]["offline"], 1);
    }
}
