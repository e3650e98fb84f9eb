//! The fleet status API over real HTTPS: operator authentication, filters and counts,
//! typed 422/404 bodies, the site page, offline after N missed check-ins per site class
//! (with a 1 s check-in interval), and `/metrics` after a known scenario.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use siteboot_registration::testkit::{token, Device, Harness};
use siteboot_registration::{Limits, ServeConfig};
use siteboot_wire::api::Registered;
use siteboot_wire::fleet::{FleetResponse, SiteDetail, SiteState};

async fn checkin(h: &Harness, reg: &Registered, device: &Device, body: Value) {
    let resp = h
        .device_client(reg, device)
        .post(format!("{}/v1/checkin", h.url))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status().as_u16(),
        200,
        "{}",
        resp.text().await.unwrap()
    );
}

fn report(state: &str, applied: &str, attempted: &str, error: Option<&str>) -> Value {
    let mut v = json!({"state": state, "appliedRevision": applied, "attemptedRevision": attempted});
    if let Some(e) = error {
        v["error"] = json!(e);
    }
    v
}

async fn fleet(h: &Harness, query: &str) -> FleetResponse {
    let (st, v) = h
        .operator("GET", &format!("/v1/operator/fleet{query}"), None)
        .await;
    assert_eq!(st, 200, "{v}");
    serde_json::from_value(v).unwrap()
}

fn ids(v: &FleetResponse) -> Vec<&str> {
    v.sites.iter().map(|s| s.site_id.as_str()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_api_filters_counts_errors_and_site_page() {
    let dir = tempfile::tempdir().unwrap();
    let h = Harness::start(dir.path(), 6, Limits::unlimited())
        .await
        .unwrap();
    // Operator-only.
    for path in ["/v1/operator/fleet", "/v1/operator/fleet/sites/site-000"] {
        let resp = h.http.get(format!("{}{path}", h.url)).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 401, "{path}");
        assert_eq!(
            resp.json::<Value>().await.unwrap()["code"],
            "unauthenticated"
        );
    }
    let d0 = Device::new("SN-000");
    let r0 = h.register_with_token("site-000", &d0).await;
    checkin(&h, &r0, &d0, report("ready", "rev1", "rev1", None)).await;
    let d1 = Device::new("SN-001");
    let r1 = h.register_with_token("site-001", &d1).await;
    checkin(
        &h,
        &r1,
        &d1,
        report("failed", "rev1", "rev2", Some("regions/us-east: bad yaml")),
    )
    .await;
    let minted = h.mint_token("site-002").await;
    let claim = h.mint_claim("site-003").await;

    let all = fleet(&h, "").await;
    let states: Vec<(&str, SiteState)> = all
        .sites
        .iter()
        .map(|s| (s.site_id.as_str(), s.state))
        .collect();
    assert_eq!(
        states,
        [
            ("site-000", SiteState::Ready),
            ("site-001", SiteState::Failed),
            ("site-002", SiteState::Pending),
            ("site-003", SiteState::Pending),
            ("site-004", SiteState::NeverSeen),
            ("site-005", SiteState::NeverSeen),
        ]
    );
    assert_eq!(all.counts.total[&SiteState::Pending], 2);
    // inventory_yaml: even sites eu-west, odd us-east; every fifth canary.
    assert_eq!(all.counts.by_region["us-east"][&SiteState::Failed], 1);
    assert_eq!(all.counts.by_ring["canary"][&SiteState::Ready], 1);
    let failed = &all.sites[1];
    assert_eq!(
        failed.last_error.as_deref(),
        Some("regions/us-east: bad yaml")
    );
    assert_eq!(
        (
            failed.applied_revision.as_deref(),
            failed.attempted_revision.as_deref()
        ),
        (Some("rev1"), Some("rev2"))
    );
    let rows: Vec<(&str, Vec<&str>)> = vec![
        ("?region=eu-west", vec!["site-000", "site-002", "site-004"]),
        ("?ring=canary", vec!["site-000", "site-005"]),
        ("?state=pending", vec!["site-002", "site-003"]),
        ("?region=us-east&state=never-seen", vec!["site-005"]),
        (
            "?region=&ring=&state=",
            vec![
                "site-000", "site-001", "site-002", "site-003", "site-004", "site-005",
            ],
        ),
        ("?state=offline", vec![]),
    ];
    for (q, want) in rows {
        let v = fleet(&h, q).await;
        assert_eq!(ids(&v), want, "{q}");
        assert_eq!(
            v.counts.total.values().sum::<u64>(),
            want.len() as u64,
            "{q}"
        );
    }
    for (q, field) in [
        ("?state=Ready", "state"),
        ("?state=up", "state"),
        ("?colour=red", "colour"),
    ] {
        let (st, v) = h
            .operator("GET", &format!("/v1/operator/fleet{q}"), None)
            .await;
        assert_eq!(
            (st, v["code"].as_str(), v["field"].as_str()),
            (422, Some("invalid_request"), Some(field)),
            "{q}: {v}"
        );
    }
    let (st, v) = h
        .operator("GET", "/v1/operator/fleet/sites/site-999", None)
        .await;
    assert_eq!((st, v["code"].as_str()), (404, Some("not_found")), "{v}");
    assert!(v["message"].as_str().unwrap().contains("site-999"), "{v}");

    let (st, v) = h
        .operator("GET", "/v1/operator/fleet/sites/site-001", None)
        .await;
    assert_eq!(st, 200, "{v}");
    let text = v.to_string();
    let page: SiteDetail = serde_json::from_value(v).unwrap();
    assert_eq!(page.site.state, SiteState::Failed);
    assert_eq!(page.devices.len(), 1);
    assert_eq!(page.labels["region"], "us-east");
    let kinds: Vec<&str> = page.history.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, ["state-changed", "registered"]);
    assert!(
        page.history[0].detail.contains("attempted rev2"),
        "{:?}",
        page.history
    );
    // No secret anywhere in fleet answers.
    let whole = serde_json::to_string(&fleet(&h, "").await).unwrap() + &text;
    for secret in [minted.as_str(), claim.as_str(), h.operator.expose()] {
        assert!(!whole.contains(secret), "secret shown in fleet answers");
    }
    h.handle.shutdown().await.unwrap();
}

const CLASS_INVENTORY: &str = "\
siteClasses:
  - name: satellite
    match:
      network-tier: satellite
    offlineAfterMissedCheckins: 10000
  - name: wired
    match:
      network-tier: fiber
    offlineAfterMissedCheckins: 1
git:
  url: https://git.example.com/fleet.git
  rings:
    broad: {branch: main}
sites:
  - id: store-fiber
    region: eu-west
    ring: broad
    networkTier: fiber
  - id: store-sat
    region: eu-west
    ring: broad
    networkTier: satellite
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_site_goes_offline_after_its_class_allows_and_a_satellite_site_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let inv = dir.path().join("inventory.yaml");
    std::fs::write(&inv, CLASS_INVENTORY).unwrap();
    let mut cfg = ServeConfig::embedded(dir.path().join("data"));
    cfg.listen = "127.0.0.1:0".parse().unwrap();
    cfg.inventory = Some(inv);
    cfg.limits = Limits::unlimited();
    // Devices are told to check in every second: one missed check-in is > 1 s of silence.
    cfg.checkin_interval_seconds = 1;
    let h = Harness::start_with(cfg).await.unwrap();
    let df = Device::new("SN-F");
    let rf = h.register_with_token("store-fiber", &df).await;
    let ds = Device::new("SN-S");
    let rs = h.register_with_token("store-sat", &ds).await;
    checkin(&h, &rf, &df, report("ready", "rev1", "rev1", None)).await;
    checkin(&h, &rs, &ds, report("ready", "rev1", "rev1", None)).await;
    // Both fall silent now. Wait (bounded) until the fiber site shows offline.
    let deadline = Instant::now() + Duration::from_secs(120);
    let view = loop {
        let v = fleet(&h, "").await;
        if v.sites[0].state == SiteState::Offline {
            break v;
        }
        assert!(
            Instant::now() < deadline,
            "store-fiber never went offline: {v:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(view.sites[0].offline_after_missed, 1);
    // Silent just as long, but its class allows 10000 missed check-ins.
    assert_eq!(
        (
            view.sites[1].site_id.as_str(),
            view.sites[1].state,
            view.sites[1].offline_after_missed
        ),
        ("store-sat", SiteState::Ready, 10000)
    );
    assert_eq!(view.counts.total[&SiteState::Offline], 1);
    // A check-in moves its last-seen past the silence (state then follows the rule).
    checkin(&h, &rf, &df, report("ready", "rev1", "rev1", None)).await;
    let after = fleet(&h, "").await;
    assert!(
        after.sites[0].last_seen > view.sites[0].last_seen,
        "{after:?} vs {view:?}"
    );
    h.handle.shutdown().await.unwrap();
}

fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_show_sites_by_state_registrations_checkins_and_rate_limits() {
    let dir = tempfile::tempdir().unwrap();
    let limits = Limits {
        credential_per_minute: 2,
        ..Limits::unlimited()
    };
    let h = Harness::start(dir.path(), 6, limits).await.unwrap();
    let d0 = Device::new("SN-000");
    let t0 = h.mint_token("site-000").await;
    let (st, v) = h.register(&d0.request(token(&t0))).await;
    assert_eq!(st, 201, "{v}");
    let r0: Registered = serde_json::from_value(v).unwrap();
    checkin(&h, &r0, &d0, report("ready", "rev1", "rev1", None)).await;
    let d1 = Device::new("SN-001");
    let r1 = h.register_with_token("site-001", &d1).await;
    checkin(&h, &r1, &d1, report("failed", "rev1", "rev2", Some("bad"))).await;
    h.mint_token("site-002").await;
    // The used token again: refused (attempt 2 of 2 per minute), then rate limited.
    let replay = Device::new("SN-REPLAY");
    assert_eq!(h.register(&replay.request(token(&t0))).await.0, 401);
    assert_eq!(h.register(&replay.request(token(&t0))).await.0, 429);

    let metrics = h.metrics().await;
    let rows = [
        ("siteboot_sites{state=\"ready\"}", 1.0),
        ("siteboot_sites{state=\"failed\"}", 1.0),
        ("siteboot_sites{state=\"pending\"}", 1.0),
        ("siteboot_sites{state=\"never-seen\"}", 3.0),
        ("siteboot_sites{state=\"offline\"}", 0.0),
        ("siteboot_sites{state=\"applying\"}", 0.0),
        (
            "siteboot_registrations_total{outcome=\"registered\",credential=\"token\"}",
            2.0,
        ),
        (
            "siteboot_registrations_total{outcome=\"invalid_credential\",credential=\"token\"}",
            1.0,
        ),
        (
            "siteboot_registrations_total{outcome=\"rate_limited\",credential=\"token\"}",
            1.0,
        ),
        ("siteboot_checkins_total{outcome=\"ok\"}", 2.0),
        ("siteboot_rate_limited_total{limiter=\"credential\"}", 1.0),
    ];
    for (series, want) in rows {
        assert_eq!(
            sample(&metrics, series),
            Some(want),
            "{series} in\n{metrics}"
        );
    }
    assert!(!metrics.contains(&t0), "no token in metrics");
    h.handle.shutdown().await.unwrap();
}
