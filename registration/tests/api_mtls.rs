//! mTLS endpoints over real HTTPS: no certificate -> 401, a certificate from another CA is
//! refused, check-in returns the assignment, renewal returns a new working certificate, and
//! a device replaced through a claim code is refused (403) at once, even on a kept-alive
//! connection.

use chrono::Utc;
use serde_json::{json, Value};
use siteboot_registration::ca::{parse_csr, ServiceCa};
use siteboot_registration::testkit::{client, Device, Harness};
use siteboot_registration::Limits;
use siteboot_wire::api::{Credential, Registered};
use siteboot_wire::SecretString;

fn checkin_body() -> Value {
    json!({"state": "ready", "appliedRevision": "0123abcd", "attemptedRevision": "0123abcd",
           "health": {"total": 3, "healthy": 3, "progressing": 0, "failed": 0}})
}

async fn checkin(c: &reqwest::Client, url: &str) -> Result<(u16, Value), reqwest::Error> {
    let resp = c
        .post(format!("{url}/v1/checkin"))
        .json(&checkin_body())
        .send()
        .await?;
    let status = resp.status().as_u16();
    Ok((status, resp.json().await.unwrap_or(Value::Null)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mtls_routes_need_a_certificate_from_the_service_ca() {
    let dir = tempfile::tempdir().unwrap();
    let h = Harness::start(dir.path(), 5, Limits::unlimited())
        .await
        .unwrap();
    for (method, path) in [
        ("POST", "/v1/checkin"),
        ("POST", "/v1/certificate"),
        ("GET", "/v1/assignment"),
    ] {
        let req = match method {
            "GET" => h.http.get(format!("{}{path}", h.url)),
            _ => h
                .http
                .post(format!("{}{path}", h.url))
                .json(&checkin_body()),
        };
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 401, "{path}");
        let v: Value = resp.json().await.unwrap();
        assert_eq!(v["code"], "unauthenticated", "{path}");
    }
    // A certificate naming a real site and device but signed by another CA.
    let device = Device::new("SN-001");
    let reg = h.register_with_token("site-001", &device).await;
    let (rogue, _) = ServiceCa::generate(Utc::now()).unwrap();
    let forged = rogue
        .sign_device(
            &parse_csr(&device.csr_pem).unwrap(),
            &reg.site_id,
            &reg.device_id,
            Utc::now(),
            std::time::Duration::from_secs(3600),
            [5; 16],
        )
        .unwrap();
    let c = client(&h.ca_pem, Some((&forged.pem, &device.key_pem)));
    match checkin(&c, &h.url).await {
        Err(_) => {} // handshake refused
        Ok((status, body)) => assert_eq!(status, 401, "forged certificate accepted: {body}"),
    }
    // The genuine certificate works.
    let good = h.device_client(&reg, &device);
    assert_eq!(checkin(&good, &h.url).await.unwrap().0, 200);
    h.handle.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkin_returns_the_assignment_and_renewal_a_new_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let h = Harness::start(dir.path(), 5, Limits::unlimited())
        .await
        .unwrap();
    let device = Device::new("SN-002");
    let reg = h.register_with_token("site-002", &device).await;
    assert_eq!(reg.site_id, "site-002");
    assert_eq!(reg.ca_bundle, h.ca_pem);
    assert_eq!(
        reg.assignment.paths,
        vec!["baseline/", "regions/eu-west/", "clusters/site-002/"]
    );
    let c = h.device_client(&reg, &device);
    let (st, v) = checkin(&c, &h.url).await.unwrap();
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["assignment"]["siteId"], "site-002");
    assert!(v["nextCheckinSeconds"].as_u64().unwrap() > 0);
    let a: Value = c
        .get(format!("{}/v1/assignment", h.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(a["siteId"], "site-002");
    assert_eq!(a["labels"]["region"], "eu-west");

    // Renewal: a new key, same identity.
    let (new_key, new_csr) = Device::rekey();
    let resp = c
        .post(format!("{}/v1/certificate", h.url))
        .json(&json!({"csr": new_csr}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let renewed: Value = resp.json().await.unwrap();
    let cert = renewed["certificate"].as_str().unwrap();
    assert_ne!(cert, reg.certificate);
    assert!(renewed["notAfter"].as_str().is_some());
    let renewed_client = client(&h.ca_pem, Some((cert, &new_key)));
    let (st, v) = checkin(&renewed_client, &h.url).await.unwrap();
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["assignment"]["siteId"], "site-002");
    // A bad renewal CSR names the field.
    let resp = c
        .post(format!("{}/v1/certificate", h.url))
        .json(&json!({"csr": "garbage"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 422);
    assert_eq!(resp.json::<Value>().await.unwrap()["field"], "csr");

    let (st, site) = h.operator("GET", "/v1/operator/sites/site-002", None).await;
    assert_eq!(st, 200);
    assert_eq!(site["deviceId"], reg.device_id.as_str(), "{site}");
    let metrics = h.metrics().await;
    assert!(
        metrics.contains("siteboot_checkins_total{outcome=\"ok\"} 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            "siteboot_registrations_total{outcome=\"registered\",credential=\"token\"} 1"
        ),
        "{metrics}"
    );
    h.handle.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_replaced_by_claim_is_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let h = Harness::start(dir.path(), 5, Limits::unlimited())
        .await
        .unwrap();
    let old = Device::new("SN-003");
    let reg = h.register_with_token("site-003", &old).await;
    let old_client = h.device_client(&reg, &old);
    assert_eq!(checkin(&old_client, &h.url).await.unwrap().0, 200);

    // The field tech enters a claim code on the replacement box.
    let code = h.mint_claim("site-003").await;
    let new = Device::new("SPARE-77");
    let (st, v) = h
        .register(&new.request(Credential::Claim {
            code: SecretString::new(code.clone()),
        }))
        .await;
    assert_eq!(st, 201, "{v}");
    let new_reg: Registered = serde_json::from_value(v).unwrap();
    assert_eq!(new_reg.site_id, "site-003");

    // Same kept-alive connection of the old box: refused now.
    let (st, v) = checkin(&old_client, &h.url).await.unwrap();
    assert_eq!(st, 403, "{v}");
    assert_eq!(v["code"], "device_revoked");
    // A fresh connection with the old certificate: refused too, for every mTLS route.
    let fresh = h.device_client(&reg, &old);
    let a = fresh
        .get(format!("{}/v1/assignment", h.url))
        .send()
        .await
        .unwrap();
    assert_eq!(a.status().as_u16(), 403);
    let (_, csr) = Device::rekey();
    let r = fresh
        .post(format!("{}/v1/certificate", h.url))
        .json(&json!({"csr": csr}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403, "a revoked device must not renew");
    // The replacement works; the claim cannot be used twice.
    let new_client = h.device_client(&new_reg, &new);
    assert_eq!(checkin(&new_client, &h.url).await.unwrap().0, 200);
    let again = h
        .register(&Device::new("SPARE-78").request(Credential::Claim {
            code: SecretString::new(code),
        }))
        .await;
    assert_eq!(again.0, 401, "{}", again.1);

    // Operator revocation takes effect at once too.
    let (st, v) = h
        .operator(
            "POST",
            &format!("/v1/operator/devices/{}/revoke", new_reg.device_id),
            Some(json!({"reason": "stolen"})),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["status"], "revoked");
    assert_eq!(checkin(&new_client, &h.url).await.unwrap().0, 403);
    h.handle.shutdown().await.unwrap();
}
