//! Fleet status through `Registry` + SQLite, with time driven by the `now` arguments:
//! every state, offline after N missed check-ins per site class and per site, the
//! in-memory (coalesced) last-seen, filters, counts, and a site's history.

use std::sync::Arc;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use siteboot_registration::inventory::InventoryHandle;
use siteboot_registration::registry::{RegisterOutcome, Registry, RegistryConfig, RegistryError};
use siteboot_registration::store::sqlite::SqliteStore;
use siteboot_registration::store::Store;
use siteboot_wire::api::{AgentState, CheckinRequest, Credential, RegisterRequest};
use siteboot_wire::fleet::{FleetQuery, SiteState};
use siteboot_wire::operator::{MintClaimRequest, MintTokenRequest};
use siteboot_wire::{DeviceFacts, SecretString};

const INVENTORY: &str = "\
offlineAfterMissedCheckins: 3
siteClasses:
  - name: satellite
    match:
      network-tier: satellite
    offlineAfterMissedCheckins: 30
git:
  url: https://git.example.internal/fleet.git
  rings:
    canary:
      branch: canary
    broad:
      branch: main
sites:
  - id: store-a
    region: eu-west
    ring: canary
    networkTier: fiber
  - id: store-b
    region: eu-west
    ring: broad
    networkTier: satellite
  - id: store-c
    region: us-east
    ring: broad
    networkTier: fiber
    offlineAfterMissedCheckins: 5
  - id: store-d
    region: us-east
    ring: broad
  - id: store-e
    region: us-east
    ring: canary
";

fn t(minutes: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 22, 8, 0, 0).unwrap() + TimeDelta::minutes(minutes)
}

struct Env {
    _dir: tempfile::TempDir,
    registry: Registry,
}

fn env() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let inv = dir.path().join("inventory.yaml");
    std::fs::write(&inv, INVENTORY).unwrap();
    let store = Arc::new(SqliteStore::open(dir.path().join("registry.db")).unwrap());
    let registry = Registry::new(
        store as Arc<dyn Store>,
        InventoryHandle::load(&inv).unwrap(),
        RegistryConfig::default(),
    );
    Env {
        _dir: dir,
        registry,
    }
}

fn request(credential: Credential, serial: &str) -> RegisterRequest {
    RegisterRequest {
        credential,
        csr: "-----BEGIN CERTIFICATE REQUEST-----\nx\n-----END CERTIFICATE REQUEST-----\n".into(),
        facts: DeviceFacts {
            serial: serial.into(),
            macs: vec!["52:54:00:12:34:56".into()],
            tpm_ek_sha256: None,
            hostname: "box".into(),
            arch: "x86_64".into(),
            os: "Debian GNU/Linux 12".into(),
        },
    }
}

async fn register(r: &Registry, site: &str, serial: &str, now: DateTime<Utc>) -> String {
    let minted = r
        .mint_token(
            &MintTokenRequest {
                site_id: site.into(),
                machine: None,
                ttl_seconds: None,
            },
            now,
        )
        .await
        .unwrap();
    let out = r
        .register(
            &request(
                Credential::Token {
                    token: minted.token,
                },
                serial,
            ),
            now,
        )
        .await
        .unwrap();
    match out {
        RegisterOutcome::Registered { device_id, .. } => device_id,
        other => panic!("expected Registered, got {other:?}"),
    }
}

fn report(
    state: AgentState,
    applied: &str,
    attempted: &str,
    error: Option<&str>,
) -> CheckinRequest {
    CheckinRequest {
        applied_revision: Some(applied.into()),
        attempted_revision: Some(attempted.into()),
        state,
        error: error.map(str::to_string),
        health: Default::default(),
        offline_periods: vec![],
        facts: None,
        attempts: Vec::new(),
    }
}

async fn states(r: &Registry, now: DateTime<Utc>) -> Vec<(String, SiteState)> {
    r.fleet(&FleetQuery::default(), now)
        .await
        .unwrap()
        .sites
        .into_iter()
        .map(|s| (s.site_id, s.state))
        .collect()
}

fn want(rows: &[(&str, SiteState)]) -> Vec<(String, SiteState)> {
    rows.iter().map(|(s, st)| (s.to_string(), *st)).collect()
}

#[tokio::test]
async fn every_state_and_offline_after_missed_checkins_per_class_and_site() {
    use SiteState::*;
    let e = env();
    let r = &e.registry;
    assert_eq!(
        states(r, t(0)).await,
        want(&[
            ("store-a", NeverSeen),
            ("store-b", NeverSeen),
            ("store-c", NeverSeen),
            ("store-d", NeverSeen),
            ("store-e", NeverSeen)
        ])
    );
    let a = register(r, "store-a", "SN-A", t(0)).await;
    let b = register(r, "store-b", "SN-B", t(0)).await;
    let c = register(r, "store-c", "SN-C", t(0)).await;
    // A live token for store-d: a registration is underway.
    r.mint_token(
        &MintTokenRequest {
            site_id: "store-d".into(),
            machine: None,
            ttl_seconds: Some(3600),
        },
        t(0),
    )
    .await
    .unwrap();
    assert_eq!(
        states(r, t(0)).await,
        want(&[
            ("store-a", Pending),
            ("store-b", Pending),
            ("store-c", Pending),
            ("store-d", Pending),
            ("store-e", NeverSeen)
        ]),
        "registered but not checked in, or a token minted, is pending"
    );
    r.checkin(
        "store-a",
        &a,
        &report(AgentState::Ready, "rev1", "rev1", None),
        t(1),
    )
    .await
    .unwrap();
    r.checkin(
        "store-b",
        &b,
        &report(AgentState::Applying, "rev0", "rev1", None),
        t(1),
    )
    .await
    .unwrap();
    r.checkin(
        "store-c",
        &c,
        &report(
            AgentState::Failed,
            "rev0",
            "rev1",
            Some("clusters/store-c: bad yaml"),
        ),
        t(1),
    )
    .await
    .unwrap();
    // store-a again at t(3), unchanged: a heartbeat held in memory (not written yet).
    r.checkin(
        "store-a",
        &a,
        &report(AgentState::Ready, "rev1", "rev1", None),
        t(3),
    )
    .await
    .unwrap();
    let view = r.fleet(&FleetQuery::default(), t(5)).await.unwrap();
    let got: Vec<_> = view
        .sites
        .iter()
        .map(|s| (s.site_id.clone(), s.state))
        .collect();
    assert_eq!(
        got,
        want(&[
            ("store-a", Ready),
            ("store-b", Applying),
            ("store-c", Failed),
            ("store-d", Pending),
            ("store-e", NeverSeen)
        ]),
        "store-a: the stored last-seen (t1) is 4 missed, the coalesced one (t3) only 2"
    );
    let sa = &view.sites[0];
    assert_eq!(sa.last_seen, Some(t(3)), "the later of store and memory");
    assert_eq!(
        (sa.applied_revision.as_deref(), sa.offline_after_missed),
        (Some("rev1"), 3)
    );
    let sc = &view.sites[2];
    assert_eq!(sc.last_error.as_deref(), Some("clusters/store-c: bad yaml"));
    assert_eq!(sc.attempted_revision.as_deref(), Some("rev1"));
    assert_eq!(sc.offline_after_missed, 5, "site override");
    assert_eq!(view.sites[1].offline_after_missed, 30, "satellite class");
    assert_eq!(view.counts.total[&Ready], 1);
    assert_eq!(view.counts.total[&Offline], 0);
    assert_eq!(view.counts.by_region["us-east"][&Pending], 1);
    assert_eq!(view.counts.by_ring["canary"][&NeverSeen], 1);

    // Time passes with no check-ins. Thresholds: a 3 (from t3), c 5 (from t1), b 30.
    let rows: Vec<(i64, [SiteState; 3])> = vec![
        (6, [Ready, Applying, Failed]),
        (7, [Offline, Applying, Offline]),
        (31, [Offline, Applying, Offline]),
        (32, [Offline, Offline, Offline]),
    ];
    for (minute, [sa, sb, sc]) in rows {
        let got = states(r, t(minute)).await;
        assert_eq!(
            got[..3],
            want(&[("store-a", sa), ("store-b", sb), ("store-c", sc)])[..],
            "at t+{minute}min"
        );
    }
    // The heartbeat flush writes the coalesced last-seen; the view is unchanged.
    assert_eq!(r.flush_heartbeats(t(6)).await.unwrap(), 1);
    assert_eq!(states(r, t(6)).await[0].1, Ready);
    // The token for store-d expires after an hour: nothing is underway any more.
    assert_eq!(states(r, t(61)).await[3].1, NeverSeen);
}

#[tokio::test]
async fn filters_apply_before_counting() {
    use SiteState::*;
    let e = env();
    let r = &e.registry;
    let a = register(r, "store-a", "SN-A", t(0)).await;
    r.checkin(
        "store-a",
        &a,
        &report(AgentState::Ready, "rev1", "rev1", None),
        t(0),
    )
    .await
    .unwrap();
    let q = |region: Option<&str>, ring: Option<&str>, state: Option<SiteState>| FleetQuery {
        region: region.map(str::to_string),
        ring: ring.map(str::to_string),
        state,
    };
    let rows: Vec<(FleetQuery, &[&str])> = vec![
        (q(Some("eu-west"), None, None), &["store-a", "store-b"]),
        (q(None, Some("canary"), None), &["store-a", "store-e"]),
        (q(None, None, Some(Ready)), &["store-a"]),
        (
            q(None, None, Some(NeverSeen)),
            &["store-b", "store-c", "store-d", "store-e"],
        ),
        (
            q(Some("us-east"), Some("canary"), Some(NeverSeen)),
            &["store-e"],
        ),
        (q(Some("eu-west"), None, Some(Failed)), &[]),
        (q(Some("nowhere"), None, None), &[]),
    ];
    for (query, ids) in rows {
        let view = r.fleet(&query, t(1)).await.unwrap();
        let got: Vec<&str> = view.sites.iter().map(|s| s.site_id.as_str()).collect();
        assert_eq!(got, ids, "{query:?}");
        let counted: u64 = view.counts.total.values().sum();
        assert_eq!(
            counted,
            ids.len() as u64,
            "counts cover the matched sites only"
        );
        assert_eq!(
            view.counts.total.len(),
            SiteState::ALL.len(),
            "zeros included"
        );
    }
}

#[tokio::test]
async fn site_detail_has_devices_and_history_newest_first() {
    let e = env();
    let r = &e.registry;
    let old = register(r, "store-a", "SN-OLD", t(0)).await;
    r.checkin(
        "store-a",
        &old,
        &report(AgentState::Ready, "rev1", "rev1", None),
        t(1),
    )
    .await
    .unwrap();
    r.checkin(
        "store-a",
        &old,
        &report(AgentState::Applying, "rev1", "rev2", None),
        t(2),
    )
    .await
    .unwrap();
    r.checkin(
        "store-a",
        &old,
        &report(AgentState::Ready, "rev2", "rev2", None),
        t(3),
    )
    .await
    .unwrap();
    // Box replaced with a claim code.
    let claim = r
        .mint_claim(
            &MintClaimRequest {
                site_id: "store-a".into(),
                ttl_seconds: None,
            },
            t(10),
        )
        .await
        .unwrap();
    let new = match r
        .register(
            &request(
                Credential::Claim {
                    code: SecretString::new(claim.code.expose()),
                },
                "SN-NEW",
            ),
            t(11),
        )
        .await
        .unwrap()
    {
        RegisterOutcome::Registered { device_id, .. } => device_id,
        other => panic!("{other:?}"),
    };
    r.checkin(
        "store-a",
        &new,
        &report(AgentState::Ready, "rev2", "rev2", None),
        t(12),
    )
    .await
    .unwrap();
    let d = r.site_detail("store-a", t(12)).await.unwrap();
    assert_eq!(d.site.state, SiteState::Ready);
    assert_eq!(d.site.device_id.as_deref(), Some(new.as_str()));
    assert_eq!(d.labels["network-tier"], "fiber");
    let devices: Vec<&str> = d.devices.iter().map(|x| x.device_id.as_str()).collect();
    assert_eq!(devices, [new.as_str(), old.as_str()], "newest first");
    let kinds: Vec<&str> = d.history.iter().map(|h| h.kind.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "state-changed",
            "registered",
            "replaced",
            "state-changed",
            "state-changed",
            "state-changed",
            "registered"
        ],
        "{:#?}",
        d.history
    );
    assert!(d.history.windows(2).all(|w| w[0].at >= w[1].at));
    let revisions: Vec<&str> = d
        .history
        .iter()
        .filter(|h| h.kind == "state-changed")
        .map(|h| h.detail.as_str())
        .collect();
    assert!(revisions[2].contains("attempted rev2"), "{revisions:?}");
    assert!(revisions[3].contains("applied rev1"), "{revisions:?}");
    let text = serde_json::to_string(&d).unwrap();
    assert!(
        !text.contains(claim.code.expose()),
        "no claim code in the site page"
    );
    match r.site_detail("store-zzz", t(12)).await.unwrap_err() {
        RegistryError::NotFound { what, id } => {
            assert_eq!((what, id.as_str()), ("site", "store-zzz"))
        }
        other => panic!("{other:?}"),
    }
}
