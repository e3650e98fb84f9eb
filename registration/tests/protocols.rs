//! The server speaks HTTP/1.1 to agents and HTTP/2 to clients that negotiate it (browsers,
//! operator tools): each ALPN choice reaches the same routes, with the same client
//! identity, and shutdown drains both kinds of connection.

use std::time::Duration;

use serde_json::json;
use siteboot_registration::testkit::{Device, Harness};
use siteboot_registration::Limits;

/// A client offering only `alpn`, optionally presenting (cert, key) PEMs.
fn client_with(
    ca_pem: &str,
    identity: Option<(&str, &str)>,
    alpn: &[u8],
    h2_only: bool,
) -> reqwest::Client {
    let mut tls = siteboot_registration::tls::client_config(ca_pem, identity).unwrap();
    tls.alpn_protocols = vec![alpn.to_vec()];
    let b = reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .timeout(Duration::from_secs(60));
    let b = if h2_only {
        b.http2_prior_knowledge()
    } else {
        b
    };
    b.build().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http1_and_h2_reach_the_same_routes_with_the_same_identity() {
    let dir = tempfile::tempdir().unwrap();
    let h = Harness::start(dir.path(), 3, Limits::unlimited())
        .await
        .unwrap();
    let dev = Device::new("PROTO-1");
    let reg = h.register_with_token("site-000", &dev).await;
    let identity = Some((reg.certificate.as_str(), dev.key_pem.as_str()));
    let body = json!({"state": "ready", "appliedRevision": "abc", "attemptedRevision": "abc"});
    for (alpn, h2, version) in [
        (b"http/1.1".as_slice(), false, reqwest::Version::HTTP_11),
        (b"h2".as_slice(), true, reqwest::Version::HTTP_2),
    ] {
        let anonymous = client_with(&h.ca_pem, None, alpn, h2);
        let resp = anonymous
            .get(format!("{}/healthz", h.url))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.version(), version);
        assert_eq!(resp.status().as_u16(), 200);
        // No certificate on this connection: the mTLS route refuses, whatever the protocol.
        let resp = anonymous
            .post(format!("{}/v1/checkin", h.url))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 401, "{version:?}");

        let device = client_with(&h.ca_pem, identity, alpn, h2);
        for _ in 0..3 {
            // Several requests on one kept-alive connection (HTTP/1.1) or stream set (h2).
            let resp = device
                .post(format!("{}/v1/checkin", h.url))
                .json(&body)
                .send()
                .await
                .unwrap();
            assert_eq!(resp.version(), version);
            assert_eq!(resp.status().as_u16(), 200, "{version:?}");
            let v: serde_json::Value = resp.json().await.unwrap();
            assert_eq!(v["assignment"]["siteId"], "site-000", "{v}");
        }
    }
    h.handle.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_drains_open_http1_and_h2_connections() {
    let dir = tempfile::tempdir().unwrap();
    let h = Harness::start(dir.path(), 1, Limits::unlimited())
        .await
        .unwrap();
    let h1 = client_with(&h.ca_pem, None, b"http/1.1", false);
    let h2 = client_with(&h.ca_pem, None, b"h2", true);
    for c in [&h1, &h2] {
        let resp = c.get(format!("{}/healthz", h.url)).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 200);
    }
    // Both connections stay open (kept alive); shutdown must still finish well inside the
    // drain timeout because idle connections are closed gracefully.
    let started = std::time::Instant::now();
    tokio::time::timeout(Duration::from_secs(30), h.handle.shutdown())
        .await
        .expect("shutdown finished")
        .expect("clean shutdown");
    assert!(
        started.elapsed() < Duration::from_secs(9),
        "idle connections were not closed gracefully: shutdown took {:?}",
        started.elapsed()
    );
}
