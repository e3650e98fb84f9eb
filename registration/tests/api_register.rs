//! `POST /v1/register` over real HTTPS against an in-process server with a real SQLite
//! store in a temp dir: one winner among 100 concurrent redemptions, identical 401s,
//! 422s naming the field, 413, 429 with Retry-After, and the enrollment approval path.

use futures::future::join_all;
use serde_json::{json, Value};
use siteboot_registration::testkit::{token, Device, Harness};
use siteboot_registration::Limits;
use siteboot_wire::api::Credential;
use siteboot_wire::SecretString;

async fn harness(dir: &std::path::Path, limits: Limits) -> Harness {
    Harness::start(dir, 10, limits).await.expect("start server")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hundred_concurrent_redemptions_of_one_token_yield_exactly_one_device() {
    let dir = tempfile::tempdir().unwrap();
    let h = harness(dir.path(), Limits::unlimited()).await;
    let t = h.mint_token("site-001").await;
    let devices: Vec<Device> = (0..100)
        .map(|i| Device::new(&format!("RACE-{i}")))
        .collect();
    // Each attempt uses its own client so all 100 race on separate TLS connections.
    let attempts = devices.iter().map(|d| {
        let client = siteboot_registration::testkit::fresh_client(&h.ca_pem);
        let body = d.request(token(&t));
        let url = format!("{}/v1/register", h.url);
        async move {
            let resp = client.post(url).json(&body).send().await.expect("send");
            let status = resp.status().as_u16();
            (status, resp.json::<Value>().await.unwrap_or(Value::Null))
        }
    });
    let results = join_all(attempts).await;
    let created: Vec<&Value> = results
        .iter()
        .filter(|(s, _)| *s == 201)
        .map(|(_, v)| v)
        .collect();
    let refused = results.iter().filter(|(s, _)| *s == 401).count();
    assert_eq!(created.len(), 1, "{results:?}");
    assert_eq!(refused, 99, "{results:?}");
    let (st, devices) = h
        .operator("GET", "/v1/operator/devices?site=site-001", None)
        .await;
    assert_eq!(st, 200);
    assert_eq!(devices.as_array().unwrap().len(), 1, "{devices}");
    assert_eq!(devices[0]["deviceId"], created[0]["deviceId"]);
    h.handle.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_replayed_and_unknown_tokens_get_the_same_401_body() {
    let dir = tempfile::tempdir().unwrap();
    let h = harness(dir.path(), Limits::unlimited()).await;
    // Replayed: redeem once, then again.
    let used = h.mint_token("site-002").await;
    let d1 = Device::new("SN-A");
    assert_eq!(h.register(&d1.request(token(&used))).await.0, 201);
    let replayed = h.register(&Device::new("SN-B").request(token(&used))).await;
    // Unknown: well-formed, never minted.
    let unknown = h
        .register(&Device::new("SN-C").request(token("sbt1.0123456789.0123456789ABCDEFGHJKMNPQRS")))
        .await;
    // Expired: minted with a 1 s lifetime, used after it lapsed.
    let (st, v) = h
        .operator(
            "POST",
            "/v1/operator/tokens",
            Some(json!({"siteId": "site-003", "ttlSeconds": 1})),
        )
        .await;
    assert_eq!(st, 201, "{v}");
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let expired = h
        .register(&Device::new("SN-D").request(token(v["token"].as_str().unwrap())))
        .await;
    // Revoked by the operator.
    let revoked_text = h.mint_token("site-004").await;
    let id = revoked_text.split('.').nth(1).unwrap();
    let (st, _) = h
        .operator("POST", &format!("/v1/operator/tokens/{id}/revoke"), None)
        .await;
    assert_eq!(st, 200);
    let revoked = h
        .register(&Device::new("SN-E").request(token(&revoked_text)))
        .await;
    for (name, (status, body)) in [
        ("expired", &expired),
        ("unknown", &unknown),
        ("revoked", &revoked),
    ] {
        assert_eq!(*status, 401, "{name}: {body}");
        assert_eq!(body, &replayed.1, "{name} differs from replayed");
    }
    assert_eq!(replayed.0, 401);
    assert_eq!(replayed.1["code"], "invalid_credential");
    for (_, body) in [&replayed, &unknown, &expired] {
        assert!(
            !body.to_string().contains(&used[16..]),
            "secret echoed: {body}"
        );
    }
    h.handle.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_bodies_answer_422_naming_the_field_and_oversized_bodies_413() {
    let dir = tempfile::tempdir().unwrap();
    let h = harness(dir.path(), Limits::unlimited()).await;
    let t = h.mint_token("site-001").await;
    let d = Device::new("SN-X");
    let good = serde_json::to_value(d.request(token(&t))).unwrap();
    let with = |path: &[&str], v: Value| {
        let mut b = good.clone();
        let mut cur = &mut b;
        for p in &path[..path.len() - 1] {
            cur = &mut cur[*p];
        }
        cur[path[path.len() - 1]] = v;
        b
    };
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("truncated json", b"{\"credential\":".to_vec(), "credential"),
        ("not json at all", b"hello".to_vec(), "body"),
        ("csr not pem", with(&["csr"], json!("hello")).to_string().into_bytes(), "csr"),
        (
            "csr is a certificate",
            with(&["csr"], json!(h.ca_pem.clone())).to_string().into_bytes(),
            "csr",
        ),
        (
            "csr pem with garbage inside",
            with(
                &["csr"],
                json!("-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n"),
            )
            .to_string()
            .into_bytes(),
            "csr",
        ),
        ("missing csr", {
            let mut b = good.clone();
            b.as_object_mut().unwrap().remove("csr");
            b.to_string().into_bytes()
        }, "csr"),
        ("bad mac", with(&["facts", "macs"], json!(["nope"])).to_string().into_bytes(), "facts.macs[0]"),
        ("empty serial", with(&["facts", "serial"], json!("")).to_string().into_bytes(), "facts.serial"),
        ("serial wrong type", with(&["facts", "serial"], json!(5)).to_string().into_bytes(), "facts.serial"),
        (
            "malformed token",
            with(&["credential"], json!({"type": "token", "token": "sbt1.nope"})).to_string().into_bytes(),
            "credential.token",
        ),
        (
            "claim typo",
            with(&["credential"], json!({"type": "claim", "code": "7KQ2-M9XD-0"})).to_string().into_bytes(),
            "credential.code",
        ),
    ];
    for (name, body, field) in cases {
        let resp = h
            .http
            .post(format!("{}/v1/register", h.url))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 422, "{name}");
        let v: Value = resp.json().await.unwrap();
        assert_eq!(v["code"], "invalid_request", "{name}: {v}");
        assert_eq!(v["field"], field, "{name}: {v}");
    }
    // Nothing above burned the token: it still registers.
    assert_eq!(h.register(&d.request(token(&t))).await.0, 201);

    let huge = with(&["facts", "os"], json!("x".repeat(200 * 1024)));
    let resp = h
        .http
        .post(format!("{}/v1/register", h.url))
        .json(&huge)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 413);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["code"], "payload_too_large");
    h.handle.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_answer_429_with_retry_after() {
    let dir = tempfile::tempdir().unwrap();
    let limits = Limits {
        register_per_second: 0.1,
        register_burst: 3,
        credential_per_minute: 1000,
    };
    let h = harness(dir.path(), limits).await;
    let d = Device::new("SN-R");
    let bogus = d.request(token("sbt1.0123456789.0123456789ABCDEFGHJKMNPQRS"));
    let mut statuses = Vec::new();
    let mut limited = None;
    for _ in 0..5 {
        let resp = h
            .http
            .post(format!("{}/v1/register", h.url))
            .json(&bogus)
            .send()
            .await
            .unwrap();
        statuses.push(resp.status().as_u16());
        if resp.status().as_u16() == 429 {
            let retry = resp
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_string());
            limited = Some((retry, resp.json::<Value>().await.unwrap()));
        }
    }
    assert_eq!(statuses[..3], [401, 401, 401], "{statuses:?}");
    assert_eq!(statuses[3], 429, "{statuses:?}");
    let (retry, body) = limited.unwrap();
    let retry: u64 = retry.expect("Retry-After header").parse().unwrap();
    assert!(retry >= 1);
    assert_eq!(body["code"], "rate_limited");
    assert_eq!(body["retryAfterSeconds"], retry);
    let metrics = h.metrics().await;
    assert!(
        metrics.contains("siteboot_rate_limited_total{limiter=\"register_ip\"}"),
        "{metrics}"
    );
    h.handle.shutdown().await.unwrap();

    // Per credential id: the sixth attempt with one token id within a minute is refused.
    let dir = tempfile::tempdir().unwrap();
    let limits = Limits {
        credential_per_minute: 5,
        ..Limits::unlimited()
    };
    let h = harness(dir.path(), limits).await;
    let wrong = d.request(token("sbt1.ABCDEFGHJK.0123456789ABCDEFGHJKMNPQRS"));
    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(h.register(&wrong).await.0);
    }
    assert_eq!(statuses, [401, 401, 401, 401, 401, 429]);
    // Another token id is unaffected.
    let t = h.mint_token("site-005").await;
    assert_eq!(h.register(&d.request(token(&t))).await.0, 201);
    h.handle.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enrollment_of_an_unexpected_serial_waits_for_approval_then_collects_its_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let h = harness(dir.path(), Limits::unlimited()).await;
    let secret = std::fs::read_to_string(h.data_dir.join("demo-batch-secret")).unwrap();
    let enroll = |serial: &str| {
        Device::new(serial).request(Credential::Enrollment {
            batch: "demo".into(),
            secret: SecretString::new(secret.trim()),
        })
    };
    // Expected serial: registers at once at its site.
    let (st, v) = h.register(&enroll("SN-004")).await;
    assert_eq!(st, 201, "{v}");
    assert_eq!(v["siteId"], "site-004");
    // Same serial again (cloned image): 409.
    let (st, v) = h.register(&enroll("SN-004")).await;
    assert_eq!(st, 409, "{v}");
    assert_eq!(v["code"], "serial_conflict");
    // Wrong batch secret: 401.
    let mut bad = enroll("SN-999");
    bad.credential = Credential::Enrollment {
        batch: "demo".into(),
        secret: SecretString::new("WRONG"),
    };
    assert_eq!(h.register(&bad).await.0, 401);
    // Unknown serial: 202, poll says pending, operator approves, poll returns the cert.
    let (st, pending) = h.register(&enroll("SN-UNKNOWN")).await;
    assert_eq!(st, 202, "{pending}");
    let id = pending["pendingId"].as_str().unwrap();
    let poll = |secret: &str| {
        h.http
            .get(format!("{}/v1/register/{id}", h.url))
            .header("x-siteboot-poll-secret", secret.to_string())
            .send()
    };
    let v: Value = poll(pending["pollSecret"].as_str().unwrap())
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["status"], "pending", "{v}");
    let wrong = poll("nope").await.unwrap();
    assert_eq!(wrong.status().as_u16(), 401);
    let (st, list) = h.operator("GET", "/v1/operator/pending", None).await;
    assert_eq!(st, 200);
    assert_eq!(list[0]["pendingId"], id);
    let (st, v) = h
        .operator(
            "POST",
            &format!("/v1/operator/pending/{id}/approve"),
            Some(json!({"siteId": "site-007"})),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let v: Value = poll(pending["pollSecret"].as_str().unwrap())
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["status"], "approved", "{v}");
    assert_eq!(v["siteId"], "site-007");
    assert!(v["certificate"]
        .as_str()
        .unwrap()
        .contains("BEGIN CERTIFICATE"));
    h.handle.shutdown().await.unwrap();
}

/// A box whose 201 was lost in transit (client timeout, dropped link) retries with the
/// same token and the same key: it gets its device again instead of a 401 that would
/// strand it. Another key with that token is still refused, and so is the same key once
/// the device has checked in (from then on it renews over mTLS).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_box_whose_201_was_lost_registers_again_with_the_same_key_until_it_checks_in() {
    let dir = tempfile::tempdir().unwrap();
    let h = harness(dir.path(), Limits::unlimited()).await;
    let t = h.mint_token("site-005").await;
    let d = Device::new("SN-LOST");
    let (st, first) = h.register(&d.request(token(&t))).await;
    assert_eq!(st, 201, "{first}");
    // The answer never arrived; the box retries with the key it kept on disk.
    let (st, again) = h.register(&d.request(token(&t))).await;
    assert_eq!(st, 201, "{again}");
    assert_eq!(again["deviceId"], first["deviceId"]);
    assert_eq!(again["siteId"], "site-005");
    // A second box with the same token but its own key is refused as a replay.
    let thief = Device::new("SN-LOST");
    let (st, v) = h.register(&thief.request(token(&t))).await;
    assert_eq!(st, 401, "{v}");
    // The re-issued certificate works.
    let client = siteboot_registration::testkit::client(
        &h.ca_pem,
        Some((again["certificate"].as_str().unwrap(), &d.key_pem)),
    );
    let resp = client
        .post(format!("{}/v1/checkin", h.url))
        .json(&json!({"state": "ready", "appliedRevision": "0123abcd", "attemptedRevision": "0123abcd"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    // Checked in: the token is spent for good, even with the same key.
    let (st, v) = h.register(&d.request(token(&t))).await;
    assert_eq!(st, 401, "{v}");
    let (st, devices) = h
        .operator("GET", "/v1/operator/devices?site=site-005", None)
        .await;
    assert_eq!(st, 200);
    assert_eq!(devices.as_array().unwrap().len(), 1, "{devices}");
    h.handle.shutdown().await.unwrap();
}
