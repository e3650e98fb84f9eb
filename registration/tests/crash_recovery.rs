//! kill -9 of the real service during a burst of registrations, then a restart on the same
//! data directory: every registration answered 201 is still there, and nothing is bound
//! twice (no token with two devices, no site with two active devices, no device without a
//! redeemed token).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use siteboot_registration::testkit::process::ServerProcess;
use siteboot_registration::testkit::{fresh_client, inventory_yaml, token, Device};

const SERVER: &str = env!("CARGO_BIN_EXE_siteboot-registration");
const SITES: usize = 30;
const TOKENS_PER_SITE: usize = 4;

fn start(data: &Path, inv: &Path) -> ServerProcess {
    ServerProcess::start(
        Path::new(SERVER),
        data,
        &[
            "--inventory",
            inv.to_str().unwrap(),
            "--register-rate",
            "100000",
            "--register-burst",
            "100000",
            "--credential-attempts-per-minute",
            "100000",
        ],
    )
    .expect("start server")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_mid_burst_loses_no_answered_registration_and_binds_nothing_twice() {
    let dir = tempfile::tempdir().unwrap();
    let inv = dir.path().join("inventory.yaml");
    std::fs::write(&inv, inventory_yaml(SITES)).unwrap();
    let data = dir.path().join("data");
    let server = start(&data, &inv);
    let url = server.url.clone();
    let ca = std::fs::read_to_string(data.join("ca.pem")).unwrap();
    let operator = std::fs::read_to_string(data.join("operator-token"))
        .unwrap()
        .trim()
        .to_string();
    let http = siteboot_registration::testkit::client(&ca, None);

    // Mint first: several tokens per site, so site-level binding races too.
    let mut tokens: Vec<(String, String, String)> = Vec::new(); // (site, id, text)
    for i in 0..SITES * TOKENS_PER_SITE {
        let site = format!("site-{:03}", i % SITES);
        let v: Value = http
            .post(format!("{url}/v1/operator/tokens"))
            .bearer_auth(&operator)
            .json(&json!({"siteId": site}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let text = v["token"].as_str().unwrap().to_string();
        tokens.push((
            site,
            v["info"]["tokenId"].as_str().unwrap().to_string(),
            text,
        ));
    }
    let devices: Arc<Vec<Device>> = Arc::new(
        (0..tokens.len() * 2)
            .map(|i| Device::new(&format!("CRASH-{i}")))
            .collect(),
    );

    // Burst: every token is redeemed twice concurrently, each on a fresh TLS connection.
    let answered: Arc<Mutex<Vec<(String, Value)>>> = Arc::default();
    let ok_count = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for (n, (_, id, text)) in tokens.iter().enumerate() {
        for k in 0..2 {
            let client = fresh_client(&ca);
            let body = devices[n * 2 + k].request(token(text));
            let (url, id, answered, ok_count) =
                (url.clone(), id.clone(), answered.clone(), ok_count.clone());
            tasks.push(tokio::spawn(async move {
                if let Ok(resp) = client
                    .post(format!("{url}/v1/register"))
                    .json(&body)
                    .send()
                    .await
                {
                    if resp.status().as_u16() == 201 {
                        // Only a fully received 201 counts as answered.
                        if let Ok(v) = resp.json::<Value>().await {
                            answered.lock().unwrap().push((id, v));
                            ok_count.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                }
            }));
        }
    }
    // Kill once part of the burst has been answered (or after a deadline).
    let deadline = Instant::now() + Duration::from_secs(60);
    while ok_count.load(Ordering::SeqCst) < tokens.len() / 4 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let _ = server.kill9();
    for t in tasks {
        let _ = t.await;
    }
    let answered = answered.lock().unwrap().clone();
    eprintln!(
        "{} of {} tokens answered 201 before kill -9",
        answered.len(),
        tokens.len()
    );
    assert!(
        !answered.is_empty(),
        "no registration was answered before the kill"
    );
    assert!(
        answered.len() < tokens.len(),
        "the kill came after the burst finished; nothing tested"
    );

    // Restart on the same data directory.
    let server = start(&data, &inv);
    let url = server.url.clone();
    let get = |path: String| {
        let http = http.clone();
        let operator = operator.clone();
        let url = url.clone();
        async move {
            let resp = http
                .get(format!("{url}{path}"))
                .bearer_auth(&operator)
                .send()
                .await
                .unwrap();
            (resp.status().as_u16(), resp.json::<Value>().await.unwrap())
        }
    };
    let mut per_token: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (token_id, reg) in &answered {
        let device_id = reg["deviceId"].as_str().unwrap().to_string();
        let (st, dev) = get(format!("/v1/operator/devices/{device_id}")).await;
        assert_eq!(
            st, 200,
            "answered device {device_id} lost after restart: {dev}"
        );
        assert_eq!(dev["siteId"], reg["siteId"]);
        per_token
            .entry(token_id.clone())
            .or_default()
            .push(device_id.clone());
        let (st, info) = get(format!("/v1/operator/tokens/{token_id}")).await;
        assert_eq!(st, 200);
        assert_eq!(info["state"], "redeemed", "{info}");
        assert_eq!(
            info["deviceId"].as_str(),
            Some(device_id.as_str()),
            "{info}"
        );
    }
    for (t, devs) in &per_token {
        assert_eq!(devs.len(), 1, "token {t} answered 201 twice: {devs:?}");
    }
    // Store-wide: devices == redeemed tokens, each token bound to a distinct device, at
    // most one active device per site.
    let (_, all) = get("/v1/operator/devices".into()).await;
    let all = all.as_array().unwrap().clone();
    let mut redeemed = BTreeSet::new();
    for (_, id, _) in &tokens {
        let (_, info) = get(format!("/v1/operator/tokens/{id}")).await;
        if info["state"] == "redeemed" {
            assert!(
                redeemed.insert(info["deviceId"].as_str().unwrap().to_string()),
                "{info}"
            );
        }
    }
    let stored: BTreeSet<String> = all
        .iter()
        .map(|d| d["deviceId"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        stored, redeemed,
        "every stored device came from exactly one redeemed token"
    );
    let mut active_per_site: BTreeMap<String, usize> = BTreeMap::new();
    for d in &all {
        if d["status"] == "active" {
            *active_per_site
                .entry(d["siteId"].as_str().unwrap().to_string())
                .or_default() += 1;
        }
    }
    assert!(
        active_per_site.values().all(|n| *n == 1),
        "{active_per_site:?}"
    );
    let (ok, logs) = server.terminate();
    assert!(ok, "{logs}");
}
