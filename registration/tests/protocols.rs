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

/// One raw HTTP/1.1-over-TLS connection, so a test can tell whether the server kept it.
struct RawConn {
    tls: tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
}

impl RawConn {
    async fn open(h: &Harness) -> Self {
        let cfg = siteboot_registration::tls::client_config(&h.ca_pem, None).unwrap();
        let tcp = tokio::net::TcpStream::connect(h.handle.local_addr())
            .await
            .unwrap();
        let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
        let tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(cfg))
            .connect(name, tcp)
            .await
            .unwrap();
        Self { tls }
    }

    /// Sends `GET /healthz` and reads the whole answer; the status code.
    async fn healthz(&mut self) -> u16 {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        self.tls
            .write_all(b"GET /healthz HTTP/1.1\r\nhost: localhost\r\n\r\n")
            .await
            .unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let n = self.tls.read(&mut buf).await.unwrap();
            assert!(n > 0, "connection closed while waiting for an answer");
            got.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&got).to_string();
            if let Some(end) = text.find("\r\n\r\n") {
                let len: usize = text[..end]
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().parse().unwrap())
                    })
                    .unwrap_or(0);
                if got.len() >= end + 4 + len {
                    return text[9..12].parse().unwrap();
                }
            }
        }
    }

    /// Waits until the server closes the connection (EOF or reset).
    async fn closed_by_server(&mut self) {
        use tokio::io::AsyncReadExt;
        let mut buf = [0u8; 64];
        loop {
            match self.tls.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => panic!("unexpected {n} bytes on an idle connection"),
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_are_closed_and_busy_ones_kept() {
    let dir = tempfile::tempdir().unwrap();
    let inv = dir.path().join("inventory.yaml");
    std::fs::write(&inv, siteboot_registration::testkit::inventory_yaml(1)).unwrap();
    let mut cfg = siteboot_registration::ServeConfig::embedded(dir.path().join("data"));
    cfg.listen = "127.0.0.1:0".parse().unwrap();
    cfg.inventory = Some(inv);
    cfg.idle_timeout = Duration::from_secs(2);
    let h = Harness::start_with(cfg).await.unwrap();

    // Busy: a request every 200 ms for longer than the idle timeout, all on one connection.
    let mut busy = RawConn::open(&h).await;
    let until = std::time::Instant::now() + Duration::from_secs(3);
    let mut answered = 0;
    while std::time::Instant::now() < until {
        assert_eq!(busy.healthz().await, 200);
        answered += 1;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(answered >= 5, "only {answered} requests answered");

    // Idle after one request, and silent right after the handshake (a dead link or a
    // slow client): both are closed by the server.
    let mut idle = RawConn::open(&h).await;
    assert_eq!(idle.healthz().await, 200);
    let mut silent = RawConn::open(&h).await;
    for conn in [&mut idle, &mut silent] {
        tokio::time::timeout(Duration::from_secs(60), conn.closed_by_server())
            .await
            .expect("the server closes an idle connection");
    }
    h.handle.shutdown().await.unwrap();
}
