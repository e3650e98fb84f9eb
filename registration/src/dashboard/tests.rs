//! Rendering tests fed by hand-built fleet views: page models as tables, whole pages as
//! golden files (`golden/*.html`; `UPDATE_GOLDEN=1` rewrites them: review the diff), and
//! hostile strings that must stay text.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use askama::Template;
use chrono::{DateTime, Utc};
use siteboot_wire::fleet::{
    FleetCounts, FleetQuery, FleetResponse, FleetSite, HistoryEntry, SiteDetail, SiteState,
};
use siteboot_wire::operator::{DeviceInfo, DeviceStatus};
use siteboot_wire::DeviceFacts;

use super::parse_filter;
use super::view::{ErrorPage, IndexOptions, IndexPage, LoginPage, SitePage};

const HOSTILE: &str = "<script>alert(1)</script>\"'><img src=x onerror=alert(2)>&amp;";

fn t(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
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

fn fleet() -> FleetResponse {
    let sha_a = "1111111111111111111111111111111111111111".to_string();
    let sha_b = "2222222222222222222222222222222222222222".to_string();
    let sites = vec![
        FleetSite {
            device_id: Some("dev-a".into()),
            last_seen: Some(t("2026-11-22T11:59:30Z")),
            applied_revision: Some(sha_a.clone()),
            attempted_revision: Some(sha_a.clone()),
            ..site("store-0001", "canary", "eu-west", SiteState::Ready)
        },
        FleetSite {
            device_id: Some("dev-b".into()),
            last_seen: Some(t("2026-11-22T11:58:00Z")),
            applied_revision: Some(sha_a.clone()),
            attempted_revision: Some(sha_b.clone()),
            last_error: Some(format!("apply failed: {HOSTILE}")),
            ..site("store-0002", "canary", "us-east", SiteState::Failed)
        },
        FleetSite {
            device_id: Some("dev-c".into()),
            last_seen: Some(t("2026-11-22T09:00:00Z")),
            applied_revision: Some(sha_a),
            attempted_revision: Some(sha_b),
            ..site("store-0003", "broad", "eu-west", SiteState::Offline)
        },
        site("store-0004", "broad", "eu-west", SiteState::Pending),
        site("store-0005", "broad", "us-east", SiteState::NeverSeen),
    ];
    FleetResponse {
        generated_at: t("2026-11-22T12:00:00Z"),
        counts: FleetCounts::of(&sites),
        sites,
    }
}

fn opts() -> IndexOptions {
    IndexOptions {
        refresh_seconds: 10,
        regions: ["eu-west", "us-east", "ap-south"].map(String::from).into(),
        rings: BTreeSet::from(["broad".to_string(), "canary".to_string()]),
        max_rows: 500,
    }
}

fn detail() -> SiteDetail {
    let f = fleet();
    let facts = |serial: &str| DeviceFacts {
        serial: serial.into(),
        macs: vec![],
        tpm_ek_sha256: None,
        hostname: format!("box-{serial}"),
        arch: "x86_64".into(),
        os: "Debian".into(),
    };
    SiteDetail {
        site: f.sites[1].clone(),
        labels: BTreeMap::from([
            ("city".to_string(), HOSTILE.to_string()),
            ("region".to_string(), "us-east".to_string()),
            ("ring".to_string(), "canary".to_string()),
        ]),
        devices: vec![
            DeviceInfo {
                device_id: "dev-b".into(),
                site_id: "store-0002".into(),
                status: DeviceStatus::Active,
                facts: facts("SN-B"),
                registered_via: "claim".into(),
                registered_at: t("2026-11-22T10:00:00Z"),
                last_seen: Some(t("2026-11-22T11:58:00Z")),
            },
            DeviceInfo {
                device_id: "dev-old".into(),
                site_id: "store-0002".into(),
                status: DeviceStatus::Revoked,
                facts: facts("SN-A"),
                registered_via: "token".into(),
                registered_at: t("2026-11-01T10:00:00Z"),
                last_seen: None,
            },
        ],
        history: vec![
            HistoryEntry {
                at: t("2026-11-22T11:58:00Z"),
                kind: "state-changed".into(),
                device_id: Some("dev-b".into()),
                detail: "failed at revision 2222222222222222222222222222222222222222".into(),
            },
            HistoryEntry {
                at: t("2026-11-22T10:00:00Z"),
                kind: "replaced".into(),
                device_id: Some("dev-b".into()),
                detail: "claim code replaced dev-old".into(),
            },
            HistoryEntry {
                at: t("2026-11-01T10:00:00Z"),
                kind: "registered".into(),
                device_id: Some("dev-old".into()),
                detail: HOSTILE.into(),
            },
        ],
    }
}

#[test]
fn index_model() {
    let f = fleet();
    let page = IndexPage::build(&f, &FleetQuery::default(), &opts());
    assert_eq!(page.fleet_total, 5);
    let totals: Vec<(&str, u64)> = page.totals.iter().map(|c| (c.state, c.count)).collect();
    assert_eq!(
        totals,
        [
            ("never-seen", 1),
            ("pending", 1),
            ("offline", 1),
            ("applying", 0),
            ("ready", 1),
            ("failed", 1)
        ]
    );
    let ring = &page.matrices[0];
    assert_eq!(ring.dimension, "ring");
    let rows: Vec<(&str, u64)> = ring
        .rows
        .iter()
        .map(|r| (r.key.as_str(), r.total))
        .collect();
    assert_eq!(rows, [("broad", 3), ("canary", 2)]);
    let canary_failed = &ring.rows[1].cells[5];
    assert_eq!((canary_failed.state, canary_failed.count), ("failed", 1));
    assert_eq!(canary_failed.href, "/?ring=canary&state=failed");
    assert_eq!(
        page.matrices[1].rows[0].cells[2].href,
        "/?region=eu-west&state=offline"
    );
    // Inventory regions without sites are still choosable.
    let regions: Vec<&str> = page.regions.iter().map(|c| c.value.as_str()).collect();
    assert_eq!(regions, ["", "ap-south", "eu-west", "us-east"]);
    assert!(page.regions[0].selected && !page.filtered);
    assert_eq!(page.rows.len(), 5);
    let failed = &page.rows[1];
    assert_eq!(failed.applied_short, "111111111111");
    assert_eq!(failed.attempted_short, "222222222222");
    assert!(failed.attempt_differs);
    assert_eq!(failed.last_seen, "2 min ago");
    assert_eq!(page.rows[4].last_seen, "never");
}

#[test]
fn index_filter_table() {
    let f = fleet();
    let q = |region: Option<&str>, ring: Option<&str>, state: Option<SiteState>| FleetQuery {
        region: region.map(String::from),
        ring: ring.map(String::from),
        state,
    };
    let rows: Vec<(FleetQuery, Vec<&str>)> = vec![
        (
            q(None, None, None),
            vec![
                "store-0001",
                "store-0002",
                "store-0003",
                "store-0004",
                "store-0005",
            ],
        ),
        (
            q(None, Some("canary"), None),
            vec!["store-0001", "store-0002"],
        ),
        (
            q(Some("eu-west"), Some("broad"), None),
            vec!["store-0003", "store-0004"],
        ),
        (q(None, None, Some(SiteState::Failed)), vec!["store-0002"]),
        (q(Some("ap-south"), None, None), vec![]),
    ];
    for (query, want) in rows {
        let page = IndexPage::build(&f, &query, &opts());
        let got: Vec<&str> = page.rows.iter().map(|r| r.site_id.as_str()).collect();
        assert_eq!(got, want, "{query:?}");
        assert_eq!(page.matched, want.len());
        assert_eq!(page.fleet_total, 5, "counts cover the whole fleet");
    }
    let page = IndexPage::build(
        &f,
        &q(None, Some("canary"), Some(SiteState::Ready)),
        &opts(),
    );
    let chosen = |c: &[super::view::Choice]| {
        c.iter()
            .filter(|o| o.selected)
            .map(|o| o.value.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(chosen(&page.rings), ["canary"]);
    assert_eq!(chosen(&page.states), ["ready"]);
    assert_eq!(chosen(&page.regions), [""]);
    let capped = IndexPage::build(
        &f,
        &FleetQuery::default(),
        &IndexOptions {
            max_rows: 2,
            ..opts()
        },
    );
    assert_eq!((capped.rows.len(), capped.matched), (2, 5));
    assert!(capped
        .render()
        .unwrap()
        .contains("Showing 2 of 5 matching sites"));
}

#[test]
fn parse_filter_table() {
    let m = |pairs: &[(&str, &str)]| -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let ok = parse_filter(&m(&[
        ("region", "eu-west"),
        ("ring", ""),
        ("state", "offline"),
    ]))
    .unwrap();
    assert_eq!(
        ok,
        FleetQuery {
            region: Some("eu-west".into()),
            ring: None,
            state: Some(SiteState::Offline)
        }
    );
    assert_eq!(parse_filter(&m(&[])).unwrap(), FleetQuery::default());
    let err = parse_filter(&m(&[("state", "<b>broken</b>")])).unwrap_err();
    assert!(
        err.contains("never-seen, pending, offline, applying, ready, failed"),
        "{err}"
    );
}

/// Compares with a committed golden file, or rewrites it with `UPDATE_GOLDEN=1`.
fn golden(name: &str, actual: &str) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("src/dashboard/golden")
        .join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; run with UPDATE_GOLDEN=1 to create it",
            path.display()
        )
    });
    assert!(
        want == actual,
        "{} differs from the rendered page; run with UPDATE_GOLDEN=1 and review the diff",
        path.display()
    );
}

/// No hostile string may reach the page as markup.
fn assert_inert(html: &str) {
    assert!(!html.contains("<script"), "script tag injected");
    assert!(!html.contains("<img"), "img tag injected");
    assert!(!html.contains("\"'>"), "attribute break-out");
    assert!(html.contains("&#60;script&#62;") || html.contains("&lt;script&gt;"));
}

#[test]
fn pages_match_golden_files_and_escape_hostile_text() {
    let f = fleet();
    let index = IndexPage::build(&f, &FleetQuery::default(), &opts())
        .render()
        .unwrap();
    assert_inert(&index);
    assert!(index.contains("<meta http-equiv=\"refresh\" content=\"10\">"));
    golden("index.html", &index);

    let site = SitePage::build(&detail(), 10, t("2026-11-22T12:00:00Z"))
        .render()
        .unwrap();
    assert_inert(&site);
    golden("site.html", &site);

    let login = LoginPage::new("/sites/x?<a>", "").render().unwrap();
    assert!(
        !login.contains("http-equiv=\"refresh\""),
        "login page must not reload"
    );
    assert!(!login.contains("?<a>"));
    golden("login.html", &login);

    let missing = ErrorPage::new(
        404,
        "No such site",
        &format!("There is no site {HOSTILE:?}"),
        true,
    )
    .render()
    .unwrap();
    assert!(!missing.contains("<script"));
    golden("not_found.html", &missing);
}
