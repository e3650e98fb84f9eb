//! A tiny in-process fake of the registration service's operator token API (plain HTTP on
//! 127.0.0.1), recording every request so tests can assert what the provider called.
//! The real service is exercised by the e2e journey test.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{Duration, Utc};
use rand::RngCore;
use siteboot_wire::operator::{
    ExtendTokenRequest, MintTokenRequest, MintTokenResponse, TokenInfo, TokenState,
};
use siteboot_wire::RegistrationToken;

#[derive(Default)]
struct Inner {
    tokens: BTreeMap<String, TokenInfo>,
    texts: BTreeMap<String, String>,
    requests: Vec<String>,
    mint_bodies: Vec<MintTokenRequest>,
}

/// Handle on the fake.
#[derive(Clone)]
pub struct FakeRegistration {
    url: String,
    credential: String,
    inner: Arc<Mutex<Inner>>,
    down: Arc<AtomicBool>,
}

type S = FakeRegistration;

impl FakeRegistration {
    pub async fn start(credential: &str) -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let fake = FakeRegistration {
            url: format!("http://{}", listener.local_addr()?),
            credential: credential.to_string(),
            inner: Arc::default(),
            down: Arc::default(),
        };
        let app = Router::new()
            .route("/v1/operator/tokens", post(mint))
            .route("/v1/operator/tokens/{id}", get(info))
            .route("/v1/operator/tokens/{id}/extend", post(extend))
            .route("/v1/operator/tokens/{id}/revoke", post(revoke))
            .with_state(fake.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(fake)
    }

    pub fn url(&self) -> &str {
        &self.url
    }
    /// Makes every call answer 503 (`true`) or work again.
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }
    /// `METHOD /path` of every request so far.
    pub fn requests(&self) -> Vec<String> {
        self.lock().requests.clone()
    }
    pub fn mint_bodies(&self) -> Vec<MintTokenRequest> {
        self.lock().mint_bodies.clone()
    }
    pub fn token(&self, id: &str) -> Option<TokenInfo> {
        self.lock().tokens.get(id).cloned()
    }
    /// The full token text minted under `id` (what only the Secret may contain).
    pub fn token_text(&self, id: &str) -> Option<String> {
        self.lock().texts.get(id).cloned()
    }
    pub fn all_token_texts(&self) -> Vec<String> {
        self.lock().texts.values().cloned().collect()
    }
    /// A device redeems the token.
    pub fn redeem(&self, id: &str, device: &str) {
        if let Some(t) = self.lock().tokens.get_mut(id) {
            t.state = TokenState::Redeemed;
            t.device_id = Some(device.to_string());
        }
    }
    /// Moves the token's expiry.
    pub fn set_expiry(&self, id: &str, at: chrono::DateTime<Utc>) {
        if let Some(t) = self.lock().tokens.get_mut(id) {
            t.expires_at = at;
        }
    }
    /// Mints a token directly (as if minted by a reconcile that then crashed).
    pub fn mint_direct(&self, site: &str) -> String {
        let (text, info) = new_token(site, None, 3600);
        let id = info.token_id.clone();
        let mut inner = self.lock();
        inner.tokens.insert(id.clone(), info);
        inner.texts.insert(id.clone(), text);
        id
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records the request; answers 503/401 when down or unauthenticated.
    fn gate(&self, what: String, headers: &HeaderMap) -> Option<Response> {
        self.lock().requests.push(what);
        if self.down.load(Ordering::SeqCst) {
            return Some((StatusCode::SERVICE_UNAVAILABLE, "down").into_response());
        }
        let expected = format!("Bearer {}", self.credential);
        if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(expected.as_str()) {
            return Some(StatusCode::UNAUTHORIZED.into_response());
        }
        None
    }
}

fn new_token(
    site: &str,
    machine: Option<siteboot_wire::operator::MachineRef>,
    ttl: u64,
) -> (String, TokenInfo) {
    let mut random = [0u8; siteboot_wire::token::RANDOM_BYTES];
    rand::rng().fill_bytes(&mut random);
    let token = RegistrationToken::from_random(&random);
    let info = TokenInfo {
        token_id: token.id().to_string(),
        site_id: site.to_string(),
        machine,
        state: TokenState::Unused,
        expires_at: Utc::now() + Duration::seconds(ttl as i64),
        device_id: None,
    };
    (token.to_secret_string().expose().to_string(), info)
}

async fn mint(
    State(s): State<S>,
    headers: HeaderMap,
    Json(req): Json<MintTokenRequest>,
) -> Response {
    if let Some(r) = s.gate("POST /v1/operator/tokens".into(), &headers) {
        return r;
    }
    let (text, info) = new_token(
        &req.site_id,
        req.machine.clone(),
        req.ttl_seconds.unwrap_or(86_400),
    );
    let mut inner = s.lock();
    inner.mint_bodies.push(req);
    inner.tokens.insert(info.token_id.clone(), info.clone());
    inner.texts.insert(info.token_id.clone(), text.clone());
    (
        StatusCode::CREATED,
        Json(MintTokenResponse {
            token: text.into(),
            info,
        }),
    )
        .into_response()
}

async fn info(State(s): State<S>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    if let Some(r) = s.gate(format!("GET /v1/operator/tokens/{id}"), &headers) {
        return r;
    }
    let mut inner = s.lock();
    match inner.tokens.get_mut(&id) {
        Some(t) => {
            if t.state == TokenState::Unused && t.expires_at <= Utc::now() {
                t.state = TokenState::Expired;
            }
            Json(t.clone()).into_response()
        }
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn extend(
    State(s): State<S>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Json(req): Json<ExtendTokenRequest>,
) -> Response {
    if let Some(r) = s.gate(format!("POST /v1/operator/tokens/{id}/extend"), &headers) {
        return r;
    }
    let mut inner = s.lock();
    match inner.tokens.get_mut(&id) {
        Some(t) if t.state == TokenState::Unused => {
            t.expires_at = Utc::now() + Duration::seconds(req.ttl_seconds as i64);
            Json(t.clone()).into_response()
        }
        Some(_) => StatusCode::CONFLICT.into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn revoke(State(s): State<S>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    if let Some(r) = s.gate(format!("POST /v1/operator/tokens/{id}/revoke"), &headers) {
        return r;
    }
    let mut inner = s.lock();
    match inner.tokens.get_mut(&id) {
        Some(t) if t.state == TokenState::Unused => {
            t.state = TokenState::Revoked;
            Json(t.clone()).into_response()
        }
        Some(_) => StatusCode::CONFLICT.into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}
