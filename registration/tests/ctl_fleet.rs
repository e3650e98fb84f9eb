//! `sitebootctl` against an in-process server over real HTTPS: the fleet views (`sites
//! list` with states, `--state` and the counts line; `sites show` with devices and
//! history), every operator action a field workflow needs (token create/extend/revoke,
//! claim create with its QR code, pending approve/reject, device revoke), `-o json`
//! printing the API's JSON, and the documented exit codes.

use clap::{CommandFactory, Parser};
use serde_json::{json, Value};
use siteboot_registration::ctl::{self, Cli, EXIT_CODES_HELP};
use siteboot_registration::testkit::{Device, Harness};
use siteboot_registration::Limits;
use siteboot_wire::api::Credential;
use siteboot_wire::SecretString;

fn cli(h: &Harness, args: &[&str]) -> Cli {
    let dd = h.data_dir.to_str().unwrap().to_string();
    let mut full = vec!["sitebootctl", "--server", &h.url, "--data-dir", &dd];
    full.extend_from_slice(args);
    Cli::try_parse_from(full).unwrap()
}

async fn run(h: &Harness, args: &[&str]) -> String {
    ctl::execute(&cli(h, args))
        .await
        .unwrap_or_else(|e| panic!("sitebootctl {args:?}: {e}"))
}

async fn json_of(h: &Harness, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.extend(["-o", "json"]);
    serde_json::from_str(&run(h, &all).await).unwrap()
}

async fn exit_of(h: &Harness, args: &[&str]) -> u8 {
    ctl::execute(&cli(h, args)).await.unwrap_err().exit_code()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_views_and_field_actions() {
    let dir = tempfile::tempdir().unwrap();
    let h = Harness::start(dir.path(), 5, Limits::unlimited())
        .await
        .unwrap();
    // site-000: a device that checks in ready.
    let d0 = Device::new("SN-A0");
    let r0 = h.register_with_token("site-000", &d0).await;
    let resp = h
        .device_client(&r0, &d0)
        .post(format!("{}/v1/checkin", h.url))
        .json(&json!({"state": "ready", "appliedRevision": "c0ffee1", "attemptedRevision": "c0ffee1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    // site-001: a token minted with the CLI, then extended: pending.
    let minted = json_of(
        &h,
        &["token", "create", "--site", "site-001", "--ttl", "1h"],
    )
    .await;
    let token_id = minted["info"]["tokenId"].as_str().unwrap().to_string();
    let extended = json_of(&h, &["token", "extend", &token_id, "--ttl", "48h"]).await;
    assert_eq!(extended["state"], "unused", "{extended}");
    assert!(
        extended["expiresAt"].as_str() > minted["info"]["expiresAt"].as_str(),
        "{extended} vs {minted}"
    );

    let list = run(&h, &["sites", "list"]).await;
    let lines: Vec<&str> = list.lines().collect();
    assert!(
        lines[0].starts_with("SITE") && lines[0].contains("STATE"),
        "{list}"
    );
    assert!(
        lines[1].starts_with("site-000") && lines[1].contains(" ready "),
        "{list}"
    );
    assert!(
        lines[1].contains("c0ffee1") && lines[1].contains("ago"),
        "{list}"
    );
    assert!(
        lines[2].starts_with("site-001") && lines[2].contains(" pending "),
        "{list}"
    );
    assert_eq!(lines.len(), 7, "header, 5 sites, counts: {list}");
    assert_eq!(
        lines[6], "5 sites: pending 1, never-seen 3, ready 1",
        "{list}"
    );

    let only = run(
        &h,
        &["sites", "list", "--state", "never-seen", "--ring", "broad"],
    )
    .await;
    assert_eq!(
        only.lines()
            .skip(1)
            .map(|l| l.split(' ').next().unwrap())
            .collect::<Vec<_>>(),
        ["site-002", "site-003", "site-004", "3"],
        "{only}"
    );
    let v = json_of(&h, &["sites", "list", "--region", "eu-west"]).await;
    assert_eq!(v["counts"]["total"]["ready"], 1, "{v}");
    assert_eq!(v["sites"].as_array().unwrap().len(), 3, "{v}");

    // Field replacement with a claim code: the code and a QR code are printed.
    let claim = run(&h, &["claim", "create", "--site", "site-000"]).await;
    let code = claim
        .lines()
        .next()
        .unwrap()
        .strip_prefix("claim code: ")
        .unwrap()
        .to_string();
    assert!(
        claim.contains('▀') || claim.contains('▄'),
        "QR code: {claim}"
    );
    let d1 = Device::new("SN-A1");
    let (st, reg) = h
        .register(&d1.request(Credential::Claim {
            code: SecretString::new(&code),
        }))
        .await;
    assert_eq!(st, 201, "{reg}");
    let show = run(&h, &["sites", "show", "site-000"]).await;
    for want in [
        "state         pending",
        "applied       -",
        "offline after 3 missed check-ins",
        "SN-A0",
        "SN-A1",
        "History (newest first)",
        "replaced",
        "registered via claim",
        "state ready, applied c0ffee1",
    ] {
        assert!(show.contains(want), "{want:?} in\n{show}");
    }
    assert!(!show.contains(&code), "the claim code is never shown again");
    let page = json_of(&h, &["sites", "show", "site-000"]).await;
    assert_eq!(page["site"]["deviceId"], reg["deviceId"], "{page}");
    assert_eq!(page["devices"].as_array().unwrap().len(), 2, "{page}");
    assert_eq!(page["history"][0]["kind"], "registered", "{page}");

    // Factory box with an unknown serial: pending until approved with the CLI; another
    // one rejected.
    let secret = std::fs::read_to_string(h.data_dir.join("demo-batch-secret")).unwrap();
    let enroll = |serial: &str| {
        Device::new(serial).request(Credential::Enrollment {
            batch: "demo".into(),
            secret: SecretString::new(secret.trim()),
        })
    };
    let (st, p1) = h.register(&enroll("SN-NEW-1")).await;
    assert_eq!(st, 202, "{p1}");
    let (st, p2) = h.register(&enroll("SN-NEW-2")).await;
    assert_eq!(st, 202, "{p2}");
    let pending = run(&h, &["pending", "list"]).await;
    assert!(
        pending.contains("SN-NEW-1") && pending.contains("SN-NEW-2"),
        "{pending}"
    );
    let id1 = p1["pendingId"].as_str().unwrap();
    let id2 = p2["pendingId"].as_str().unwrap();
    let ok = json_of(&h, &["pending", "approve", id1, "--site", "site-004"]).await;
    assert_eq!(ok["status"], "approved", "{ok}");
    let no = json_of(&h, &["pending", "reject", id2, "--reason", "not ours"]).await;
    assert_eq!(no["status"], "rejected", "{no}");
    assert_eq!(json_of(&h, &["pending", "list"]).await, json!([]));
    let v = json_of(&h, &["sites", "list", "--state", "pending"]).await;
    let ids: Vec<&str> = v["sites"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["siteId"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["site-000", "site-001", "site-004"], "{v}");

    // Revoke the replaced box's successor; revoke the unused token.
    let dev = reg["deviceId"].as_str().unwrap();
    let out = run(&h, &["devices", "revoke", dev, "--reason", "stolen"]).await;
    assert!(out.contains("status: revoked"), "{out}");
    let out = json_of(&h, &["token", "revoke", &token_id]).await;
    assert_eq!(out["state"], "revoked", "{out}");
    // It had devices and none is on its way: offline (needs a visit), not never-seen.
    assert_eq!(
        json_of(&h, &["sites", "show", "site-000"]).await["site"]["state"],
        "offline"
    );
    h.handle.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_codes_scripts_can_use() {
    let dir = tempfile::tempdir().unwrap();
    let h = Harness::start(dir.path(), 2, Limits::unlimited())
        .await
        .unwrap();
    // 5: not found.
    for args in [
        &["sites", "show", "site-999"][..],
        &["devices", "show", "dev-none"],
        &["token", "show", "tok-none"],
        &["pending", "approve", "pnd-none", "--site", "site-000"],
    ] {
        assert_eq!(exit_of(&h, args).await, 5, "{args:?}");
    }
    // 2: refused (bad field, conflict).
    assert_eq!(
        exit_of(&h, &["token", "create", "--site", "site-999"]).await,
        2
    );
    let t = json_of(&h, &["token", "create", "--site", "site-000"]).await;
    let id = t["info"]["tokenId"].as_str().unwrap().to_string();
    run(&h, &["token", "revoke", &id]).await;
    assert_eq!(
        exit_of(&h, &["token", "extend", &id, "--ttl", "1h"]).await,
        2
    );
    // 4: a wrong operator credential.
    let wrong = dir.path().join("wrong-token");
    std::fs::write(&wrong, "sbo-not-the-credential\n").unwrap();
    let mut c = cli(&h, &["sites", "list"]);
    c.token_file = Some(wrong);
    let e = ctl::execute(&c).await.unwrap_err();
    assert_eq!(e.exit_code(), 4, "{e}");
    assert!(!e.to_string().contains("sbo-not-the-credential"), "{e}");
    // 1: usage: an unknown state never reaches the server; an unreadable CA file.
    let e = Cli::try_parse_from(["sitebootctl", "sites", "list", "--state", "up"]).unwrap_err();
    assert!(
        e.to_string().contains("never-seen, pending, offline"),
        "{e}"
    );
    let mut c = cli(&h, &["sites", "list"]);
    c.ca_file = Some(dir.path().join("missing-ca.pem"));
    assert_eq!(ctl::execute(&c).await.unwrap_err().exit_code(), 1);
    // 3: unreachable.
    let mut c = cli(&h, &["sites", "list"]);
    c.server = "https://127.0.0.1:1".into();
    assert_eq!(ctl::execute(&c).await.unwrap_err().exit_code(), 3);
    // --help lists them.
    let help = Cli::command().render_long_help().to_string();
    assert!(
        help.contains(EXIT_CODES_HELP.lines().next().unwrap()),
        "{help}"
    );
    for code in ["0  ok", "4  authentication refused", "5  not found"] {
        assert!(help.contains(code), "{code:?} in {help}");
    }
    h.handle.shutdown().await.unwrap();
}
