//! Helpers shared by the integration tests, the benchmark and e2e: a realistic small
//! inventory, simulated devices (key pair, CSR, facts), HTTPS clients trusting the service
//! CA (optionally presenting a device certificate), and a harness that starts the server
//! in-process on 127.0.0.1:0 and calls the operator API.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rcgen::{CertificateParams, KeyPair, PKCS_ECDSA_P256_SHA256};
use serde_json::{json, Value};
use siteboot_wire::api::{Credential, RegisterRequest, Registered};
use siteboot_wire::{DeviceFacts, SecretString};

use crate::config::{Limits, ServeConfig};
use crate::server::{serve, ServeError, ServerHandle};

pub mod process;

/// Inventory YAML with `n` sites `site-000`.. across two regions and two rings. Site
/// `site-NNN` expects serial `SN-NNN`.
pub fn inventory_yaml(n: usize) -> String {
    let mut y = String::from(
        "apiVersion: siteboot.io/v1alpha1\nkind: Inventory\ngit:\n  url: https://git.example.com/fleet.git\n  rings:\n    canary: {branch: canary}\n    broad: {branch: main}\nsites:\n",
    );
    for i in 0..n {
        let region = if i % 2 == 0 { "eu-west" } else { "us-east" };
        let ring = if i % 5 == 0 { "canary" } else { "broad" };
        y.push_str(&format!(
            "  - id: site-{i:03}\n    region: {region}\n    ring: {ring}\n    country: DE\n    expectedSerials: [SN-{i:03}]\n"
        ));
    }
    y
}

/// A simulated device: its own key, a CSR for it, and its facts.
pub struct Device {
    /// Private key (PEM), as it would stay on the box.
    pub key_pem: String,
    /// CSR (PEM).
    pub csr_pem: String,
    /// Facts.
    pub facts: DeviceFacts,
}

impl Device {
    /// A device with a fresh P-256 key and the given serial.
    pub fn new(serial: &str) -> Self {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("generate device key");
        let csr_pem = Self::csr_for(&key);
        Self {
            key_pem: key.serialize_pem(),
            csr_pem,
            facts: DeviceFacts {
                serial: serial.to_string(),
                macs: vec!["52:54:00:12:34:56".into()],
                tpm_ek_sha256: None,
                hostname: format!("box-{serial}").to_lowercase(),
                arch: "x86_64".into(),
                os: "Debian GNU/Linux 12 (bookworm)".into(),
            },
        }
    }

    fn csr_for(key: &KeyPair) -> String {
        CertificateParams::default()
            .serialize_request(key)
            .and_then(|c| c.pem())
            .expect("serialize csr")
    }

    /// A new key and CSR (for renewal); returns (key pem, csr pem).
    pub fn rekey() -> (String, String) {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("generate key");
        let csr = Self::csr_for(&key);
        (key.serialize_pem(), csr)
    }

    /// The register body for a credential.
    pub fn request(&self, credential: Credential) -> RegisterRequest {
        RegisterRequest {
            credential,
            csr: self.csr_pem.clone(),
            facts: self.facts.clone(),
        }
    }
}

/// A token credential.
pub fn token(text: &str) -> Credential {
    Credential::Token {
        token: SecretString::new(text),
    }
}

/// An HTTP/1.1 client trusting `ca_pem`, optionally presenting (cert, key) PEMs.
pub fn client(ca_pem: &str, identity: Option<(&str, &str)>) -> reqwest::Client {
    let tls = crate::tls::client_config(ca_pem, identity).expect("client tls config");
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .timeout(Duration::from_secs(60))
        .build()
        .expect("build client")
}

/// A client that opens a new connection (full handshake) for every request.
pub fn fresh_client(ca_pem: &str) -> reqwest::Client {
    let tls = crate::tls::client_config(ca_pem, None).expect("client tls config");
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(60))
        .build()
        .expect("build client")
}

/// A running in-process server plus what a test needs to talk to it.
pub struct Harness {
    /// The server.
    pub handle: ServerHandle,
    /// Service CA PEM.
    pub ca_pem: String,
    /// Operator credential.
    pub operator: SecretString,
    /// Base URL.
    pub url: String,
    /// Plain (no client cert) client.
    pub http: reqwest::Client,
    /// Data directory.
    pub data_dir: PathBuf,
}

impl Harness {
    /// Writes an inventory of `sites` sites into `dir` and starts a server on port 0 with
    /// its data directory under `dir`.
    pub async fn start(dir: &Path, sites: usize, limits: Limits) -> Result<Self, ServeError> {
        let inv = dir.join("inventory.yaml");
        std::fs::write(&inv, inventory_yaml(sites)).expect("write inventory");
        let mut cfg = ServeConfig::embedded(dir.join("data"));
        cfg.listen = "127.0.0.1:0".parse().expect("addr");
        cfg.inventory = Some(inv);
        cfg.limits = limits;
        Self::start_with(cfg).await
    }

    /// Starts a server with an explicit config.
    pub async fn start_with(cfg: ServeConfig) -> Result<Self, ServeError> {
        let handle = serve(cfg).await?;
        let d = &handle.info().data_dir;
        let ca_pem = std::fs::read_to_string(&d.ca_cert).expect("read ca");
        let operator = SecretString::new(
            std::fs::read_to_string(&d.operator_token)
                .expect("read operator")
                .trim(),
        );
        let url = handle.url().to_string();
        let http = client(&ca_pem, None);
        let data_dir = d.root.clone();
        Ok(Self {
            handle,
            ca_pem,
            operator,
            url,
            http,
            data_dir,
        })
    }

    /// `GET /metrics`: the Prometheus exposition text.
    pub async fn metrics(&self) -> String {
        self.http
            .get(format!("{}/metrics", self.url))
            .send()
            .await
            .expect("GET /metrics")
            .text()
            .await
            .expect("metrics text")
    }

    /// Calls the operator API; returns (status, body).
    pub async fn operator(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let url = format!("{}{path}", self.url);
        let req = match method {
            "GET" => self.http.get(url),
            _ => self.http.post(url).json(&body.unwrap_or(json!({}))),
        };
        let resp = req
            .bearer_auth(self.operator.expose())
            .send()
            .await
            .expect("operator call");
        let status = resp.status().as_u16();
        let v = resp.json::<Value>().await.unwrap_or(Value::Null);
        (status, v)
    }

    /// Mints a token for `site`; returns its text.
    pub async fn mint_token(&self, site: &str) -> String {
        let (st, v) = self
            .operator("POST", "/v1/operator/tokens", Some(json!({"siteId": site})))
            .await;
        assert_eq!(st, 201, "mint token: {v}");
        v["token"].as_str().expect("token text").to_string()
    }

    /// Mints a claim code for `site`; returns its text.
    pub async fn mint_claim(&self, site: &str) -> String {
        let (st, v) = self
            .operator("POST", "/v1/operator/claims", Some(json!({"siteId": site})))
            .await;
        assert_eq!(st, 201, "mint claim: {v}");
        v["code"].as_str().expect("claim code").to_string()
    }

    /// POSTs a register body; returns (status, body).
    pub async fn register(&self, req: &RegisterRequest) -> (u16, Value) {
        let resp = self
            .http
            .post(format!("{}/v1/register", self.url))
            .json(req)
            .send()
            .await
            .expect("register call");
        let status = resp.status().as_u16();
        (status, resp.json::<Value>().await.unwrap_or(Value::Null))
    }

    /// Registers `device` with a fresh token for `site`; returns the 201 body.
    pub async fn register_with_token(&self, site: &str, device: &Device) -> Registered {
        let t = self.mint_token(site).await;
        let (st, v) = self.register(&device.request(token(&t))).await;
        assert_eq!(st, 201, "register: {v}");
        serde_json::from_value(v).expect("registered body")
    }

    /// A client presenting `device`'s registered certificate.
    pub fn device_client(&self, reg: &Registered, device: &Device) -> reqwest::Client {
        client(&self.ca_pem, Some((&reg.certificate, &device.key_pem)))
    }
}
