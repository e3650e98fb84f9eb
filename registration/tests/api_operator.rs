//! Operator API authentication, probes, the OpenAPI drift check, inventory reload, and
//! `sitebootctl` commands against an in-process server.

use std::time::Duration;

use serde_json::{json, Value};
use siteboot_registration::ctl::{self, Cli};
use siteboot_registration::testkit::{inventory_yaml, Device, Harness};
use siteboot_registration::Limits;

use clap::Parser;

#[test]
fn committed_openapi_document_matches_the_generated_one() {
    let committed = include_str!("../openapi.json");
    let generated = siteboot_registration::openapi::document_text();
    assert!(
        committed == generated,
        "registration/openapi.json is stale: run `cargo run -p siteboot-registration -- --print-openapi > registration/openapi.json`"
    );
    let doc: Value = serde_json::from_str(committed).unwrap();
    for path in [
        "/v1/register",
        "/v1/checkin",
        "/v1/operator/tokens",
        "/v1/operator/inventory/reload",
    ] {
        assert!(doc["paths"].get(path).is_some(), "{path} missing");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_api_is_never_anonymous() {
    let dir = tempfile::tempdir().unwrap();
    let h = Harness::start(dir.path(), 4, Limits::unlimited())
        .await
        .unwrap();
    let url = format!("{}/v1/operator/sites", h.url);
    let wrong = format!("{}x", h.operator.expose());
    let attempts = [
        h.http.get(&url),
        h.http.get(&url).bearer_auth("nope"),
        h.http.get(&url).bearer_auth(&wrong),
        h.http
            .get(&url)
            .header("authorization", h.operator.expose()),
        h.http
            .post(format!("{}/v1/operator/tokens", h.url))
            .json(&json!({"siteId": "site-001"})),
    ];
    let mut bodies = Vec::new();
    for a in attempts {
        let resp = a.send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 401);
        bodies.push(resp.text().await.unwrap());
    }
    assert!(bodies.iter().all(|b| b == &bodies[0]), "{bodies:?}");
    let v: Value = serde_json::from_str(&bodies[0]).unwrap();
    assert_eq!(v["code"], "unauthenticated");
    assert!(!bodies[0].contains(h.operator.expose()));

    let (st, sites) = h.operator("GET", "/v1/operator/sites", None).await;
    assert_eq!(st, 200);
    assert_eq!(sites.as_array().unwrap().len(), 4);
    let (_, eu) = h
        .operator("GET", "/v1/operator/sites?region=eu-west", None)
        .await;
    assert_eq!(eu.as_array().unwrap().len(), 2, "{eu}");
    let (st, v) = h.operator("GET", "/v1/operator/sites/nope", None).await;
    assert_eq!((st, v["code"].as_str()), (404, Some("not_found")));
    let (st, v) = h
        .operator("POST", "/v1/operator/tokens", Some(json!({"site": "x"})))
        .await;
    assert_eq!((st, v["field"].as_str()), (422, Some("siteId")), "{v}");
    h.handle.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_metrics_openapi_and_json_404() {
    let dir = tempfile::tempdir().unwrap();
    let h = Harness::start(dir.path(), 3, Limits::unlimited())
        .await
        .unwrap();
    let get = |p: &str| h.http.get(format!("{}{p}", h.url)).send();
    assert_eq!(get("/healthz").await.unwrap().status().as_u16(), 200);
    let ready: Value = get("/readyz").await.unwrap().json().await.unwrap();
    assert_eq!(ready, json!({"status": "ready", "sites": 3}));
    let served = get("/openapi.json").await.unwrap().text().await.unwrap();
    assert_eq!(served, include_str!("../openapi.json"));
    let _ = get("/healthz").await.unwrap();
    let metrics = get("/metrics").await.unwrap().text().await.unwrap();
    assert!(metrics.contains("siteboot_http_request_duration_seconds_count{method=\"GET\",route=\"/healthz\",status=\"2xx\"}"), "{metrics}");
    let nf = get("/nope").await.unwrap();
    assert_eq!(nf.status().as_u16(), 404);
    assert_eq!(nf.json::<Value>().await.unwrap()["code"], "not_found");
    h.handle.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_inventory_reload_keeps_the_previous_inventory_serving() {
    let dir = tempfile::tempdir().unwrap();
    let h = Harness::start(dir.path(), 3, Limits::unlimited())
        .await
        .unwrap();
    let inv = dir.path().join("inventory.yaml");
    std::fs::write(
        &inv,
        "git:\n  url: https://x\nsites:\n  - id: Bad Site\n    region: eu\n",
    )
    .unwrap();
    let (st, v) = h
        .operator("POST", "/v1/operator/inventory/reload", None)
        .await;
    assert_eq!(st, 422, "{v}");
    assert!(
        v["message"].as_str().unwrap().contains("inventory.yaml"),
        "{v}"
    );
    let (_, sites) = h.operator("GET", "/v1/operator/sites", None).await;
    assert_eq!(sites.as_array().unwrap().len(), 3);
    std::fs::write(&inv, inventory_yaml(6)).unwrap();
    let (st, v) = h
        .operator("POST", "/v1/operator/inventory/reload", None)
        .await;
    assert_eq!((st, v), (200, json!({"sites": 6})));
    h.handle.shutdown().await.unwrap();
}

fn cli(h: &Harness, args: &[&str]) -> Cli {
    let dd = h.data_dir.to_str().unwrap().to_string();
    let mut full = vec!["sitebootctl", "--server", &h.url, "--data-dir", &dd];
    full.extend_from_slice(args);
    Cli::try_parse_from(full).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sitebootctl_commands_and_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let h = Harness::start(dir.path(), 4, Limits::unlimited())
        .await
        .unwrap();
    let out = ctl::execute(&cli(&h, &["sites", "list"])).await.unwrap();
    assert!(out.starts_with("SITE"), "{out}");
    assert_eq!(out.lines().count(), 6, "header, 4 sites, counts: {out}");
    let out = ctl::execute(&cli(
        &h,
        &["sites", "list", "--ring", "canary", "-o", "json"],
    ))
    .await
    .unwrap();
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["sites"].as_array().unwrap().len(), 1, "{v}");
    let out = ctl::execute(&cli(
        &h,
        &[
            "token",
            "create",
            "--site",
            "site-001",
            "--ttl",
            "2h",
            "--machine",
            "default/m1",
        ],
    ))
    .await
    .unwrap();
    let token = out
        .lines()
        .next()
        .unwrap()
        .strip_prefix("token: ")
        .unwrap()
        .to_string();
    assert!(token.starts_with("sbt1."));
    let device = Device::new("SN-CTL");
    let (st, reg) = h
        .register(&device.request(siteboot_registration::testkit::token(&token)))
        .await;
    assert_eq!(st, 201, "{reg}");
    let out = ctl::execute(&cli(&h, &["devices", "list"])).await.unwrap();
    assert!(out.contains(reg["deviceId"].as_str().unwrap()), "{out}");
    let out = ctl::execute(&cli(&h, &["claim", "create", "--site", "site-002"]))
        .await
        .unwrap();
    assert!(out.starts_with("claim code: "), "{out}");
    let out = ctl::execute(&cli(&h, &["pending", "list", "-o", "json"]))
        .await
        .unwrap();
    assert_eq!(out.trim(), "[]");
    let dev = reg["deviceId"].as_str().unwrap();
    let out = ctl::execute(&cli(&h, &["devices", "revoke", dev, "--reason", "test"]))
        .await
        .unwrap();
    assert!(out.contains("status: revoked"), "{out}");
    let out = ctl::execute(&cli(&h, &["inventory", "reload", "-o", "json"]))
        .await
        .unwrap();
    assert!(out.contains("\"sites\": 4"), "{out}");

    // Exit codes: not found -> 5; unreachable -> 3; local config -> 1.
    let e = ctl::execute(&cli(&h, &["sites", "show", "nope"]))
        .await
        .unwrap_err();
    assert_eq!(e.exit_code(), 5, "{e}");
    let mut c = cli(&h, &["sites", "list"]);
    c.server = "https://127.0.0.1:1".into();
    let e = tokio::time::timeout(Duration::from_secs(60), ctl::execute(&c))
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(e.exit_code(), 3, "{e}");
    let mut c = cli(&h, &["sites", "list"]);
    c.token_file = Some(dir.path().join("missing"));
    assert_eq!(ctl::execute(&c).await.unwrap_err().exit_code(), 1);
    h.handle.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sample_inventory_serves_end_to_end_with_placeholder_git_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let sample =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/samples/inventory.yaml");
    let mut cfg = siteboot_registration::ServeConfig::embedded(dir.path().join("data"));
    cfg.listen = "127.0.0.1:0".parse().unwrap();
    cfg.inventory = Some(sample);
    let h = Harness::start_with(cfg).await.unwrap();
    let creds = std::fs::read_to_string(h.data_dir.join("git-credentials.yaml")).unwrap();
    assert!(creds.contains("PLACEHOLDERS"), "{creds}");
    let (_, sites) = h.operator("GET", "/v1/operator/sites", None).await;
    let site = sites[0]["siteId"].as_str().unwrap().to_string();
    let device = Device::new("SN-SAMPLE-1");
    let reg = h.register_with_token(&site, &device).await;
    assert!(
        reg.assignment.source.auth.is_none(),
        "registration answers carry the reference only"
    );
    let c = h.device_client(&reg, &device);
    let a: Value = c
        .get(format!("{}/v1/assignment", h.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(a["siteId"], site.as_str(), "{a}");
    assert!(
        a["source"]["auth"].is_object(),
        "mTLS assignment resolves the credential: {a}"
    );
    h.handle.shutdown().await.unwrap();
}
