//! Client of the registration service's operator API: mint, inspect, extend and revoke
//! registration tokens. HTTPS with rustls (ring) trusting only the configured CA bundle;
//! plain HTTP is accepted for loopback addresses only (tests, port-forwards).
//!
//! Clients are cached per (base URL, CA bundle) so a thousand configs sharing one service
//! share one connection pool.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use siteboot_wire::operator::{
    ExtendTokenRequest, MintTokenRequest, MintTokenResponse, TokenInfo, PATH_TOKENS,
};
use siteboot_wire::{ApiError, SecretString};

/// Why an operator API call failed. Messages never contain the credential or a token.
#[derive(Debug, thiserror::Error)]
pub enum OperatorError {
    /// Connection refused, timeout, TLS failure, 5xx or 429: retry with backoff.
    #[error("registration service at {url} is unavailable: {detail}")]
    Unavailable { url: String, detail: String },
    /// The service refused the request (4xx): fix the spec or the credential.
    #[error("registration service refused {action}: {status} {detail}")]
    Rejected {
        action: &'static str,
        status: u16,
        detail: String,
    },
    /// The token id is not known.
    #[error("registration service does not know token {token_id}")]
    NotFound { token_id: String },
    /// The URL or CA bundle cannot be used.
    #[error("registration client configuration: {0}")]
    Config(String),
}

impl OperatorError {
    /// Short stable label for metrics and event reasons.
    pub fn category(&self) -> &'static str {
        match self {
            Self::Unavailable { .. } => "registration_unavailable",
            Self::Rejected { .. } => "registration_rejected",
            Self::NotFound { .. } => "token_not_found",
            Self::Config(_) => "registration_config",
        }
    }
}

/// A handle on one registration service.
#[derive(Clone)]
pub struct OperatorClient {
    http: reqwest::Client,
    base: String,
    credential: SecretString,
}

/// Cache of HTTP clients keyed by base URL and CA bundle.
#[derive(Default, Clone)]
pub struct ClientCache {
    clients: Arc<Mutex<HashMap<(String, String), reqwest::Client>>>,
}

impl ClientCache {
    /// A client for `base_url` trusting `ca_pem`, authenticating with `credential`.
    pub fn client(
        &self,
        base_url: &str,
        ca_pem: &str,
        credential: SecretString,
    ) -> Result<OperatorClient, OperatorError> {
        let base = base_url.trim_end_matches('/').to_string();
        let key = (
            base.clone(),
            siteboot_wire::secret::sha256_hex(ca_pem.as_bytes()),
        );
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        let http = match clients.get(&key) {
            Some(c) => c.clone(),
            None => {
                let c = build_http(&base, ca_pem)?;
                clients.insert(key, c.clone());
                c
            }
        };
        Ok(OperatorClient {
            http,
            base,
            credential,
        })
    }
}

fn build_http(base: &str, ca_pem: &str) -> Result<reqwest::Client, OperatorError> {
    let url = reqwest::Url::parse(base)
        .map_err(|e| OperatorError::Config(format!("registration url {base:?}: {e}")))?;
    let builder = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(15))
        .pool_idle_timeout(Duration::from_secs(60));
    match url.scheme() {
        "https" => {
            let mut roots = rustls::RootCertStore::empty();
            use rustls_pki_types::pem::PemObject;
            for cert in rustls_pki_types::CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
                let cert = cert.map_err(|e| {
                    OperatorError::Config(format!("registration CA bundle is not PEM: {e}"))
                })?;
                roots
                    .add(cert)
                    .map_err(|e| OperatorError::Config(format!("registration CA bundle: {e}")))?;
            }
            if roots.is_empty() {
                return Err(OperatorError::Config(
                    "registration CA bundle holds no certificate".into(),
                ));
            }
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let tls = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(|e| OperatorError::Config(format!("tls versions: {e}")))?
                .with_root_certificates(roots)
                .with_no_client_auth();
            builder.use_preconfigured_tls(tls).build()
        }
        "http" if is_loopback(&url) => builder.build(),
        "http" => {
            return Err(OperatorError::Config(format!(
                "registration url {base:?} uses plain http; only loopback addresses may"
            )))
        }
        other => {
            return Err(OperatorError::Config(format!(
                "registration url scheme {other:?} is not https"
            )))
        }
    }
    .map_err(|e| OperatorError::Config(format!("build http client: {e}")))
}

fn is_loopback(url: &reqwest::Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d == "localhost",
        None => false,
    }
}

impl OperatorClient {
    /// `POST /v1/operator/tokens`.
    pub async fn mint(&self, req: &MintTokenRequest) -> Result<MintTokenResponse, OperatorError> {
        self.call(
            "mint token",
            reqwest::Method::POST,
            PATH_TOKENS.to_string(),
            Some(serde_json::to_value(req).unwrap_or_default()),
            None,
        )
        .await
    }

    /// `GET /v1/operator/tokens/{id}`.
    pub async fn info(&self, token_id: &str) -> Result<TokenInfo, OperatorError> {
        self.call(
            "read token",
            reqwest::Method::GET,
            format!("{PATH_TOKENS}/{token_id}"),
            None,
            Some(token_id),
        )
        .await
    }

    /// `POST /v1/operator/tokens/{id}/extend`.
    pub async fn extend(
        &self,
        token_id: &str,
        ttl_seconds: u64,
    ) -> Result<TokenInfo, OperatorError> {
        let body = serde_json::to_value(ExtendTokenRequest { ttl_seconds }).unwrap_or_default();
        self.call(
            "extend token",
            reqwest::Method::POST,
            format!("{PATH_TOKENS}/{token_id}/extend"),
            Some(body),
            Some(token_id),
        )
        .await
    }

    /// `POST /v1/operator/tokens/{id}/revoke`.
    pub async fn revoke(&self, token_id: &str) -> Result<TokenInfo, OperatorError> {
        self.call(
            "revoke token",
            reqwest::Method::POST,
            format!("{PATH_TOKENS}/{token_id}/revoke"),
            Some(serde_json::json!({})),
            Some(token_id),
        )
        .await
    }

    async fn call<T: serde::de::DeserializeOwned>(
        &self,
        action: &'static str,
        method: reqwest::Method,
        path: String,
        body: Option<serde_json::Value>,
        token_id: Option<&str>,
    ) -> Result<T, OperatorError> {
        let url = format!("{}{}", self.base, path);
        let mut req = self
            .http
            .request(method, &url)
            .bearer_auth(self.credential.expose());
        if let Some(body) = body {
            req = req.json(&body);
        }
        let unavailable = |detail: String| OperatorError::Unavailable {
            url: self.base.clone(),
            detail,
        };
        // reqwest errors carry the URL but never headers, so the credential cannot leak.
        let resp = req.send().await.map_err(|e| unavailable(describe(&e)))?;
        let status = resp.status();
        if status.is_success() {
            return resp.json::<T>().await.map_err(|e| {
                unavailable(format!("unreadable answer to {action}: {}", describe(&e)))
            });
        }
        let detail = resp
            .json::<ApiError>()
            .await
            .map(|e| format!("{:?}: {}", e.code, e.message))
            .unwrap_or_default();
        match status.as_u16() {
            404 if token_id.is_some() => Err(OperatorError::NotFound {
                token_id: token_id.unwrap_or_default().to_string(),
            }),
            429 | 500..=599 => Err(unavailable(format!("{action} answered {status} {detail}"))),
            code => Err(OperatorError::Rejected {
                action,
                status: code,
                detail,
            }),
        }
    }
}

fn describe(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
