//! Table tests for inventory parsing and validation.

use siteboot_wire::assignment::RevisionPolicy;

use super::*;

const BASE: &str = "git:\n  url: https://git.example/fleet.git\n  authRef: ro\n  rings:\n    canary:\n      branch: canary\n    broad:\n      branch: main\nsites:\n";

fn site(id: &str, extra: &str) -> String {
    format!("  - id: {id}\n    region: eu-west\n    ring: broad\n{extra}")
}

#[test]
fn sample_inventory_parses() {
    let text = include_str!("../../../config/samples/inventory.yaml");
    let inv = Inventory::parse(text, "inventory.yaml").unwrap();
    assert!(inv.len() >= 30, "{}", inv.len());
    let regions: BTreeSet<_> = inv.sites.values().map(|s| s.region.as_str()).collect();
    assert_eq!(regions.len(), 4);
    let pinned = inv
        .sites
        .values()
        .filter(|s| matches!(s.revision, RevisionPolicy::Commit { .. }))
        .count();
    assert!(pinned >= 1);
    assert!(inv
        .sites
        .values()
        .any(|s| s.auth_ref.as_deref() == Some("pilot-deploy-key")));
    let thresholds: Vec<_> = ["store-0359", "store-0163", "store-0128", "store-0107"]
        .iter()
        .map(|id| {
            let s = &inv.sites[*id];
            (s.site_class.as_deref(), s.offline_after_missed_checkins)
        })
        .collect();
    assert_eq!(
        thresholds,
        [
            (Some("satellite"), 30),
            (Some("cellular"), 6),
            (Some("cellular"), 12),
            (None, 3)
        ]
    );
    let s = inv.site_expecting("SB0107A01X").unwrap();
    assert_eq!(s.id, "store-0107");
    assert_eq!(s.labels["site-id"], "store-0107");
    assert_eq!(
        s.labels["maintenance-window"],
        "Mon-Fri 01:00-05:00 Europe/Paris"
    );
}

#[test]
fn assignment_has_layers_labels_and_policy() {
    let text = format!(
        "{BASE}{}",
        site(
            "store-1",
            "    country: FR\n    labels:\n      city: lyon\n"
        )
    );
    let inv = Inventory::parse(&text, "f.yaml").unwrap();
    let a = inv.site("store-1").unwrap().assignment(None);
    assert_eq!(
        a.paths,
        vec!["baseline/", "regions/eu-west/", "clusters/store-1/"]
    );
    assert_eq!(
        a.source.revision,
        RevisionPolicy::Branch {
            name: "main".into()
        }
    );
    assert_eq!(a.source.auth_ref.as_deref(), Some("ro"));
    assert_eq!(a.labels["city"], "lyon");
    assert_eq!(a.labels["country"], "FR");
    assert_eq!(a.labels["site-id"], "store-1");
}

#[test]
fn site_pins_override_the_ring() {
    let sha = "ab".repeat(20);
    let text = format!(
        "{BASE}{}",
        site("store-1", &format!("    git:\n      commit: {sha}\n"))
    );
    let inv = Inventory::parse(&text, "f.yaml").unwrap();
    assert_eq!(
        inv.site("store-1").unwrap().revision,
        RevisionPolicy::Commit { sha }
    );
}

#[test]
fn bad_files_name_file_line_and_reason() {
    let two = |a: &str, b: &str| format!("{BASE}{a}{b}");
    let cases: Vec<(String, usize, &str)> = vec![
        (
            format!(
                "{BASE}  - id: store-1\n    region: eu-west\n    ring: broad\n    colour: red\n"
            ),
            13,
            "unknown field",
        ),
        (format!("{BASE}  - id: store-1\n    region: [\n"), 11, ""),
        (
            two(&site("store-1", ""), &site("store-1", "")),
            13,
            "duplicate site id",
        ),
        (format!("{BASE}{}", site("Store_1", "")), 10, "DNS-1123"),
        (
            format!("{BASE}{}", site("store-1", "    labels:\n      Bad: x\n")),
            14,
            "label key",
        ),
        (
            format!(
                "{BASE}{}",
                site("store-1", "    labels:\n      region: x\n")
            ),
            14,
            "well-known",
        ),
        (
            two(
                &site("store-1", "    expectedSerials: [SN1]\n"),
                &site("store-2", "    expectedSerials:\n      - SN1\n"),
            ),
            18,
            "also expected at site store-1",
        ),
        (
            format!("{BASE}  - id: store-1\n    region: eu-west\n    ring: early\n"),
            12,
            "ring \"early\"",
        ),
        (
            format!("{BASE}{}", site("store-1", "    git:\n      commit: abc\n")),
            13,
            "40-hex",
        ),
        (
            format!(
                "{BASE}{}",
                site("store-1", "    git:\n      branch: a\n      commit: abc\n")
            ),
            13,
            "not both",
        ),
    ];
    for (text, line, reason) in cases {
        let e = Inventory::parse(&text, "inv.yaml").unwrap_err();
        assert_eq!(e.file, "inv.yaml");
        assert_eq!(e.line, Some(line), "{e} in\n{text}");
        assert!(e.reason.contains(reason), "{e}");
        assert!(
            e.to_string().starts_with(&format!("inv.yaml:{line}: ")),
            "{e}"
        );
    }
}

#[test]
fn site_filter() {
    let text = format!(
        "{BASE}{}  - id: store-2\n    region: us-east\n    ring: canary\n",
        site("store-1", "")
    );
    let inv = Inventory::parse(&text, "f").unwrap();
    let f = SiteFilter {
        region: Some("us-east".into()),
        ring: None,
    };
    let ids: Vec<_> = inv
        .sites
        .values()
        .filter(|s| f.matches(s))
        .map(|s| s.id.as_str())
        .collect();
    assert_eq!(ids, vec!["store-2"]);
}

#[test]
fn credentials_parse_without_echoing_values() {
    let good = "ro:\n  type: token\n  token: glpat-SECRETVALUE\n";
    let creds = parse_credentials(good, "creds.yaml").unwrap();
    assert!(matches!(creds["ro"], siteboot_wire::GitAuth::Token { .. }));
    let bad = "ro:\n  type: token\n  tokn: glpat-SECRETVALUE\n";
    let e = parse_credentials(bad, "creds.yaml").unwrap_err();
    assert!(!e.to_string().contains("SECRETVALUE"), "{e}");
    assert!(e.to_string().contains("\"ro\""), "{e}");
    let inv = Inventory::parse(&format!("{BASE}{}", site("store-1", "")), "f").unwrap();
    let known: BTreeSet<String> = creds.keys().cloned().collect();
    check_auth_refs(&inv, &known, "f").unwrap();
    assert!(check_auth_refs(&inv, &BTreeSet::new(), "f").is_err());
}

#[test]
fn offline_thresholds_by_site_class_and_site() {
    let text = format!(
        "offlineAfterMissedCheckins: 4\nsiteClasses:\n  - name: satellite\n    match:\n      network-tier: satellite\n    offlineAfterMissedCheckins: 30\n{BASE}{}{}{}",
        site("store-1", "    networkTier: satellite\n"),
        site("store-2", "    networkTier: fiber\n"),
        site(
            "store-3",
            "    networkTier: satellite\n    offlineAfterMissedCheckins: 12\n"
        ),
    );
    let inv = Inventory::parse(&text, "f.yaml").unwrap();
    let got: Vec<_> = inv
        .sites
        .values()
        .map(|s| {
            (
                s.id.as_str(),
                s.site_class.as_deref(),
                s.offline_after_missed_checkins,
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            ("store-1", Some("satellite"), 30),
            ("store-2", None, 4),
            ("store-3", Some("satellite"), 12),
        ]
    );
    let plain = Inventory::parse(&format!("{BASE}{}", site("store-1", "")), "f").unwrap();
    assert_eq!(plain.sites["store-1"].offline_after_missed_checkins, 3);
}

#[test]
fn bad_offline_thresholds_name_file_and_line() {
    let cases: Vec<(String, usize, &str)> = vec![
        (
            format!("offlineAfterMissedCheckins: 0\n{BASE}"),
            1,
            "must be 1-",
        ),
        (
            format!("siteClasses:\n  - name: sat\n    match: {{}}\n    offlineAfterMissedCheckins: 5\n{BASE}"),
            2,
            "at least one label",
        ),
        (
            format!("siteClasses:\n  - name: sat\n    match:\n      network-tier: satellite\n    offlineAfterMissedCheckins: 5\n    colour: red\n{BASE}"),
            6,
            "unknown field",
        ),
        (
            format!(
                "{BASE}{}",
                site("store-1", "    offlineAfterMissedCheckins: 0\n")
            ),
            13,
            "sites[0] (store-1): offlineAfterMissedCheckins must be 1-",
        ),
    ];
    for (text, line, reason) in cases {
        let e = Inventory::parse(&text, "inv.yaml").unwrap_err();
        assert_eq!(e.line, Some(line), "{e} in\n{text}");
        assert!(e.reason.contains(reason), "{e}");
    }
}
