//! HTTP client for the registration service (reqwest over rustls/ring): registration and
//! pending polls without a client certificate, check-ins and renewals over mTLS.
//!
//! Every failure is classified once, here: unreachable (offline, retry quietly), an API
//! error with its stable code (and `Retry-After` / `retryAfterSeconds`), or a protocol
//! error (the service answered something we cannot read).
//!
//! [`ClientOptions`] can bind the client to a local source address and attach a
//! [`CallObserver`] that sees every exchange (route, timing, status, `Retry-After`), never
//! a body: load tests count 5xx answers and check that 429s were honoured through it.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde::de::DeserializeOwned;
use serde::Serialize;
use siteboot_wire::api::{
    CheckinRequest, CheckinResponse, PendingRegistration, PollResponse, RegisterRequest,
    Registered, RenewRequest, RenewResponse, HEADER_POLL_SECRET, PATH_CERTIFICATE, PATH_CHECKIN,
    PATH_REGISTER, PATH_REGISTER_PENDING,
};
use siteboot_wire::{ApiError, ErrorCode, SecretString};

use crate::tls::TlsError;

/// A failed call.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// Connection refused, DNS, TLS handshake, timeout: the service is unreachable.
    #[error("registration service unreachable: {0}")]
    Unreachable(String),
    /// The service answered with an error body.
    #[error("registration service answered {status}: {error}")]
    Api {
        /// HTTP status.
        status: u16,
        /// The body.
        error: ApiError,
        /// From `Retry-After` or `retryAfterSeconds`.
        retry_after: Option<Duration>,
    },
    /// The answer could not be read.
    #[error("registration service answered {status} with an unreadable body: {reason}")]
    Protocol {
        /// HTTP status.
        status: u16,
        /// Parser message.
        reason: String,
    },
}

impl CallError {
    /// Worth retrying later with the same request.
    pub fn retryable(&self) -> bool {
        match self {
            CallError::Unreachable(_) => true,
            CallError::Api { status, error, .. } => {
                *status == 429
                    || *status >= 500
                    || matches!(error.code, ErrorCode::RateLimited | ErrorCode::Unavailable)
            }
            CallError::Protocol { status, .. } => *status >= 500,
        }
    }

    /// The server's requested delay.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            CallError::Api { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// The service says this device is revoked.
    pub fn is_revoked(&self) -> bool {
        matches!(self, CallError::Api { error, .. } if error.code == ErrorCode::DeviceRevoked)
    }

    /// The failure means "offline", not "failed".
    pub fn is_offline(&self) -> bool {
        matches!(self, CallError::Unreachable(_))
            || matches!(self, CallError::Api { status, .. } if *status == 502 || *status == 503 || *status == 504)
    }
}

/// Answer to a registration.
#[derive(Debug, Clone)]
pub enum RegisterAnswer {
    /// 201.
    Registered(Box<Registered>),
    /// 202.
    Pending(PendingRegistration),
}

/// One exchange with the service as the client saw it. Carries no body and no header
/// value other than `Retry-After`, so it can never hold a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallRecord {
    /// Route template (`/v1/register`, `/v1/register/`, `/v1/checkin`, `/v1/certificate`).
    pub route: &'static str,
    /// When the request was handed to the HTTP client.
    pub started: Instant,
    /// When the answer's status line arrived (or the call failed).
    pub finished: Instant,
    /// HTTP status; `None` when no answer came (refused, reset, timeout).
    pub status: Option<u16>,
    /// The wait the service asked for (`Retry-After` or `retryAfterSeconds`).
    pub retry_after: Option<Duration>,
}

/// Sees every exchange of a [`ServiceClient`] (counting hooks in load tests).
pub trait CallObserver: Send + Sync + std::fmt::Debug {
    /// Called once per exchange, after its status is known.
    fn observe(&self, call: &CallRecord);
}

/// Optional knobs of [`ServiceClient::with_options`]; the default is what the agent uses.
#[derive(Debug, Clone, Default)]
pub struct ClientOptions {
    /// Source address of outgoing connections (`None`: chosen by the routing table).
    pub local_address: Option<IpAddr>,
    /// Receives a [`CallRecord`] per exchange.
    pub observer: Option<Arc<dyn CallObserver>>,
}

/// A client bound to one base URL and one TLS configuration.
#[derive(Debug, Clone)]
pub struct ServiceClient {
    base: String,
    http: reqwest::Client,
    observer: Option<Arc<dyn CallObserver>>,
}

impl ServiceClient {
    /// Builds a client from a rustls configuration.
    pub fn new(base: &str, tls: rustls::ClientConfig) -> Result<ServiceClient, TlsError> {
        Self::with_options(base, tls, ClientOptions::default())
    }

    /// Same, with a source address and/or an observer.
    pub fn with_options(
        base: &str,
        tls: rustls::ClientConfig,
        options: ClientOptions,
    ) -> Result<ServiceClient, TlsError> {
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(30))
            .user_agent(concat!("siteboot-agent/", env!("CARGO_PKG_VERSION")))
            .local_address(options.local_address)
            .build()
            .map_err(|e| TlsError::Identity(format!("build HTTP client: {e}")))?;
        Ok(ServiceClient {
            base: base.trim_end_matches('/').to_string(),
            http,
            observer: options.observer,
        })
    }

    /// `POST /v1/register`.
    pub async fn register(&self, req: &RegisterRequest) -> Result<RegisterAnswer, CallError> {
        let resp = self
            .send(
                PATH_REGISTER,
                self.http.post(self.url(PATH_REGISTER)).json(req),
            )
            .await?;
        match resp.status() {
            StatusCode::ACCEPTED => Ok(RegisterAnswer::Pending(read(resp).await?)),
            _ => Ok(RegisterAnswer::Registered(Box::new(read(resp).await?))),
        }
    }

    /// `GET /v1/register/{id}` with the poll secret.
    pub async fn poll(
        &self,
        pending_id: &str,
        secret: &SecretString,
    ) -> Result<PollResponse, CallError> {
        let url = format!("{}{}{}", self.base, PATH_REGISTER_PENDING, pending_id);
        let resp = self
            .send(
                PATH_REGISTER_PENDING,
                self.http
                    .get(url)
                    .header(HEADER_POLL_SECRET, secret.expose()),
            )
            .await?;
        read(resp).await
    }

    /// `POST /v1/checkin` (mTLS).
    pub async fn checkin(&self, req: &CheckinRequest) -> Result<CheckinResponse, CallError> {
        self.post_json(PATH_CHECKIN, req).await
    }

    /// `POST /v1/certificate` (mTLS).
    pub async fn renew(&self, req: &RenewRequest) -> Result<RenewResponse, CallError> {
        self.post_json(PATH_CERTIFICATE, req).await
    }

    async fn post_json<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &'static str,
        body: &B,
    ) -> Result<T, CallError> {
        let resp = self
            .send(path, self.http.post(self.url(path)).json(body))
            .await?;
        read(resp).await
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Sends, tells the observer, and turns non-2xx answers into [`CallError::Api`].
    async fn send(
        &self,
        route: &'static str,
        req: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, CallError> {
        let started = Instant::now();
        let sent = req.send().await;
        let finished = Instant::now();
        let result = match sent {
            Ok(resp) => classify(resp).await,
            Err(e) => Err(CallError::Unreachable(error_chain(&e))),
        };
        if let Some(observer) = &self.observer {
            let (status, retry_after) = match &result {
                Ok(resp) => (Some(resp.status().as_u16()), None),
                Err(CallError::Api {
                    status,
                    retry_after,
                    ..
                }) => (Some(*status), *retry_after),
                Err(CallError::Protocol { status, .. }) => (Some(*status), None),
                Err(CallError::Unreachable(_)) => (None, None),
            };
            // A 502-504 page without an API body is "unreachable" to the agent, but the
            // observer still sees its status.
            let status = status.or_else(|| match &result {
                Err(CallError::Unreachable(m)) => m
                    .strip_prefix("HTTP ")
                    .and_then(|s| s.get(..3))
                    .and_then(|s| s.parse().ok()),
                _ => None,
            });
            observer.observe(&CallRecord {
                route,
                started,
                finished,
                status,
                retry_after,
            });
        }
        result
    }
}

/// A 2xx answer passes; anything else becomes a [`CallError`].
async fn classify(resp: reqwest::Response) -> Result<reqwest::Response, CallError> {
    let status = resp.status();
    if status.is_success() {
        return Ok(resp);
    }
    let header_retry = resp
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let bytes = resp.bytes().await.unwrap_or_default();
    match serde_json::from_slice::<ApiError>(&bytes) {
        Ok(error) => {
            let retry_after = header_retry.or(error.retry_after_seconds.map(Duration::from_secs));
            Err(CallError::Api {
                status: status.as_u16(),
                error,
                retry_after,
            })
        }
        // Proxies and load balancers answer 502/503 pages: that is being offline.
        Err(_) if matches!(status.as_u16(), 502..=504) => {
            Err(CallError::Unreachable(format!("HTTP {status}")))
        }
        Err(e) => Err(CallError::Protocol {
            status: status.as_u16(),
            reason: e.to_string(),
        }),
    }
}

async fn read<T: DeserializeOwned>(resp: reqwest::Response) -> Result<T, CallError> {
    let status = resp.status().as_u16();
    let bytes = resp
        .bytes()
        .await
        .map_err(|e| CallError::Unreachable(error_chain(&e)))?;
    serde_json::from_slice(&bytes).map_err(|e| CallError::Protocol {
        status,
        reason: e.to_string(),
    })
}

/// The error and its sources on one line (reqwest hides the useful part in sources).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        out.push_str(": ");
        out.push_str(&s.to_string());
        cur = s.source();
    }
    out
}
