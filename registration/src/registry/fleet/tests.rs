//! Table tests for the pure per-site fleet line.

use chrono::TimeZone;
use siteboot_wire::api::AgentState;
use siteboot_wire::assignment::RevisionPolicy;
use siteboot_wire::fleet::SiteState;
use siteboot_wire::operator::DeviceStatus;

use super::*;

fn t(s: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 22, 12, 0, 0).unwrap() + TimeDelta::seconds(s)
}

fn site(threshold: u32) -> Site {
    Site {
        id: "store-1".into(),
        region: "eu-west".into(),
        ring: "broad".into(),
        labels: Default::default(),
        expected_serials: vec![],
        git_url: "https://git.example/fleet.git".into(),
        auth_ref: None,
        revision: RevisionPolicy::Branch {
            name: "main".into(),
        },
        site_class: None,
        offline_after_missed_checkins: threshold,
    }
}

fn device(last_seen: Option<i64>, state: Option<AgentState>) -> DeviceRecord {
    DeviceRecord {
        id: "dev-1".into(),
        site_id: "store-1".into(),
        serial: "SN1".into(),
        status: DeviceStatus::Active,
        facts: Default::default(),
        registered_via: "token".into(),
        registered_at: t(-3600),
        revoked_at: None,
        revoke_reason: None,
        machine: None,
        last_seen: last_seen.map(t),
        applied_revision: Some("aaa".into()),
        attempted_revision: Some("bbb".into()),
        agent_state: state,
        last_error: state
            .filter(|s| *s == AgentState::Failed)
            .map(|_| "bad yaml".into()),
        health: Default::default(),
        key_sha256: None,
    }
}

#[test]
fn fleet_line_table() {
    let clock = FleetClock {
        now: t(0),
        checkin_interval: TimeDelta::seconds(60),
    };
    let ready = Some(AgentState::Ready);
    // (name, threshold, device, memory last seen, underway, state, last seen)
    type Row<'a> = (
        &'a str,
        u32,
        Option<DeviceRecord>,
        Option<i64>,
        bool,
        SiteState,
        Option<i64>,
    );
    let rows: Vec<Row> = vec![
        (
            "never seen",
            3,
            None,
            None,
            false,
            SiteState::NeverSeen,
            None,
        ),
        (
            "token minted",
            3,
            None,
            None,
            true,
            SiteState::Pending,
            None,
        ),
        (
            "registered, no check-in",
            3,
            Some(device(None, None)),
            None,
            false,
            SiteState::Pending,
            None,
        ),
        (
            "ready",
            3,
            Some(device(Some(-30), ready)),
            None,
            false,
            SiteState::Ready,
            Some(-30),
        ),
        (
            "store stale, memory fresh",
            3,
            Some(device(Some(-600), ready)),
            Some(-20),
            false,
            SiteState::Ready,
            Some(-20),
        ),
        (
            "store stale, no memory",
            3,
            Some(device(Some(-600), ready)),
            None,
            false,
            SiteState::Offline,
            Some(-600),
        ),
        (
            "memory older than store is ignored",
            3,
            Some(device(Some(-30), ready)),
            Some(-900),
            false,
            SiteState::Ready,
            Some(-30),
        ),
        (
            "class allows 20 missed",
            20,
            Some(device(Some(-600), ready)),
            None,
            false,
            SiteState::Ready,
            Some(-600),
        ),
        (
            "failed",
            3,
            Some(device(Some(-10), Some(AgentState::Failed))),
            None,
            false,
            SiteState::Failed,
            Some(-10),
        ),
        (
            "applying",
            3,
            Some(device(Some(-10), Some(AgentState::Applying))),
            None,
            false,
            SiteState::Applying,
            Some(-10),
        ),
    ];
    for (name, threshold, dev, memory, underway, state, seen) in rows {
        let line = fleet_site(
            &site(threshold),
            dev.as_ref(),
            memory.map(t),
            underway,
            false,
            clock,
        );
        assert_eq!(line.state, state, "{name}");
        assert_eq!(line.last_seen, seen.map(t), "{name}");
        assert_eq!(line.offline_after_missed, threshold, "{name}");
        assert_eq!(line.device_id.is_some(), dev.is_some(), "{name}");
        assert_eq!(line.ring.as_deref(), Some("broad"));
    }
    let failed = fleet_site(
        &site(3),
        Some(&device(Some(-10), Some(AgentState::Failed))),
        None,
        false,
        true,
        clock,
    );
    assert_eq!(failed.last_error.as_deref(), Some("bad yaml"));
    assert_eq!(failed.applied_revision.as_deref(), Some("aaa"));
    assert_eq!(failed.attempted_revision.as_deref(), Some("bbb"));
}

#[test]
fn a_site_whose_device_was_revoked_is_offline_not_never_seen() {
    let clock = FleetClock {
        now: t(0),
        checkin_interval: TimeDelta::seconds(60),
    };
    assert_eq!(
        fleet_site(&site(3), None, None, false, true, clock).state,
        SiteState::Offline
    );
    assert_eq!(
        fleet_site(&site(3), None, None, true, true, clock).state,
        SiteState::Pending
    );
    assert_eq!(
        fleet_site(&site(3), None, None, false, false, clock).state,
        SiteState::NeverSeen
    );
}
