//! Conformance checks for the fleet reads: a site's history and the sites with a
//! registration underway.

use chrono::Duration;
use siteboot_wire::api::{AgentState, HealthSummary};

use super::credentials::{check, claim};
use super::{register, t0, token, Check};
use crate::store::{CheckinWrite, Event, EventKind, Store};

use std::sync::Arc;

pub(super) fn checks() -> Vec<(&'static str, Check)> {
    vec![
        (
            "site_events_are_the_sites_own_newest_first",
            site_events as Check,
        ),
        (
            "registration_underway_counts_only_live_credentials",
            registration_underway,
        ),
    ]
}

fn ev(at_min: i64, kind: EventKind, site: &str, detail: &str) -> Event {
    Event {
        seq: 0,
        at: t0() + Duration::minutes(at_min),
        kind,
        site_id: Some(site.into()),
        device_id: None,
        serial: None,
        detail: detail.into(),
    }
}

check!(site_events, |s| {
    register(&*s, "d1", "site-a", "SN-1", t0()).await;
    s.record_event(&ev(1, EventKind::Offline, "site-b", "other site"))
        .await
        .unwrap();
    let changed = s
        .write_checkin(&CheckinWrite {
            device_id: "d1".into(),
            now: t0() + Duration::minutes(2),
            applied_revision: Some("rev-applied-1".into()),
            attempted_revision: Some("rev-attempt-2".into()),
            state: AgentState::Failed,
            error: Some("bad yaml in clusters/site-a".into()),
            health: HealthSummary::default(),
            offline_periods: vec![],
            state_changed: true,
        })
        .await
        .unwrap();
    assert!(changed);
    s.record_event(&ev(3, EventKind::Revoked, "site-a", "by operator"))
        .await
        .unwrap();
    let all = s.site_events("site-a", 100).await.unwrap();
    let kinds: Vec<_> = all.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        [
            EventKind::Revoked,
            EventKind::StateChanged,
            EventKind::Registered
        ],
        "newest first, only site-a: {all:?}"
    );
    assert!(all.windows(2).all(|w| w[0].seq > w[1].seq), "{all:?}");
    let detail = &all[1].detail;
    assert!(
        detail.contains("rev-applied-1") && detail.contains("rev-attempt-2"),
        "state changes name both revisions: {detail}"
    );
    let newest = s.site_events("site-a", 1).await.unwrap();
    assert_eq!(newest.len(), 1);
    assert_eq!(newest[0].kind, EventKind::Revoked);
    assert!(s.site_events("site-none", 10).await.unwrap().is_empty());
});

check!(registration_underway, |s| {
    let now = t0() + Duration::hours(1);
    // Live token: counts.
    s.insert_token(&token("T1", "site-live-token", "h1"))
        .await
        .unwrap();
    // Expired token: does not.
    let mut old = token("T2", "site-expired", "h2");
    old.expires_at = t0() + Duration::minutes(30);
    s.insert_token(&old).await.unwrap();
    // Revoked token: does not.
    s.insert_token(&token("T3", "site-revoked", "h3"))
        .await
        .unwrap();
    s.revoke_token("T3", t0()).await.unwrap();
    // Redeemed token (register() mints and redeems one): does not.
    register(&*s, "d1", "site-registered", "SN-1", t0()).await;
    // Live claim: counts; locked claim: does not.
    s.insert_claim(&claim("C1", "site-live-claim", "hc"))
        .await
        .unwrap();
    s.insert_claim(&claim("C2", "site-locked", "hc2"))
        .await
        .unwrap();
    for _ in 0..2 {
        s.record_claim_failure("C2", t0()).await.unwrap();
    }
    let got = s.registration_underway(now, 2).await.unwrap();
    let got: Vec<&str> = got.iter().map(String::as_str).collect();
    assert_eq!(got, ["site-live-claim", "site-live-token"]);
    let later = s
        .registration_underway(t0() + Duration::days(30), 2)
        .await
        .unwrap();
    assert!(later.is_empty(), "everything expired: {later:?}");
});
