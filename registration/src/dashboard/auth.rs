//! Dashboard access control: the login form takes the operator credential (the same one
//! as the operator API's bearer token), a session cookie carries the signed-in state, and
//! every page route sits behind [`require_session`].
//!
//! Attempts are rate limited per source address with the service's token buckets
//! ([`crate::ratelimit`]). The credential is compared in constant time by
//! [`OperatorCredential::check`] and never logged, echoed or stored.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Extension, Form, Router};
use chrono::{DateTime, Utc};
use rand::RngCore;
use serde::Deserialize;

use super::format::{encode, is_local_path};
use super::session::{clear_cookie, cookie_value, set_cookie, SessionStore};
use super::view::{ErrorPage, LoginPage};
use super::{html, Clock, DashboardConfig};
use crate::operator_auth::OperatorCredential;
use crate::ratelimit::{retry_after_seconds, Limiter, Rate};
use crate::server::ConnInfo;

/// Called when a login attempt is refused by the rate limit (counts it in metrics).
pub type LimitedHook = Arc<dyn Fn() + Send + Sync>;

/// Shared state of the login routes and the session check. Cheap to clone.
#[derive(Clone)]
pub struct Auth {
    inner: Arc<Inner>,
}

struct Inner {
    operator: OperatorCredential,
    sessions: SessionStore,
    limiter: Limiter,
    clock: Clock,
    on_limited: Option<LimitedHook>,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Auth")
    }
}

impl Auth {
    /// Sessions and login limits for `operator`, as `cfg` says.
    pub fn new(
        operator: OperatorCredential,
        cfg: &DashboardConfig,
        on_limited: Option<LimitedHook>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                operator,
                sessions: SessionStore::new(cfg.session_ttl),
                limiter: Limiter::new(Rate::per_minute(cfg.login_attempts_per_minute)),
                clock: cfg.clock.clone(),
                on_limited,
            }),
        }
    }

    fn now(&self) -> DateTime<Utc> {
        (self.inner.clock)()
    }

    /// Whether the request carries a live session.
    pub fn signed_in(&self, headers: &HeaderMap) -> bool {
        self.inner
            .sessions
            .check(cookie_value(headers), self.now())
            .is_ok()
    }
}

/// `GET /login`, `POST /login`, `POST /logout`.
pub fn routes<S: Clone + Send + Sync + 'static>(auth: Auth) -> Router<S> {
    Router::new()
        .route("/login", get(login_form).post(login))
        .route("/logout", post(logout))
        .with_state(auth)
}

/// Middleware: pages need a live session; anything else goes to the login page, which
/// brings the user back here afterwards.
pub async fn require_session(State(auth): State<Auth>, req: Request, next: Next) -> Response {
    let cookie = cookie_value(req.headers());
    match auth.inner.sessions.check(cookie, auth.now()) {
        Ok(()) => next.run(req).await,
        Err(why) => {
            tracing::debug!(path = %req.uri().path(), reason = %why, "dashboard request without a live session: sent to login");
            let here = req
                .uri()
                .path_and_query()
                .map(|p| p.as_str())
                .unwrap_or("/");
            let target = if here == "/" {
                "/login".to_string()
            } else {
                format!("/login?next={}", encode(here))
            };
            let mut resp = Redirect::to(&target).into_response();
            if cookie.is_some() {
                set_header(&mut resp, &clear_cookie());
            }
            resp
        }
    }
}

fn set_header(resp: &mut Response, cookie: &str) {
    if let Ok(v) = HeaderValue::from_str(cookie) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
}

fn safe_next(next: Option<&str>) -> &str {
    next.filter(|n| is_local_path(n)).unwrap_or("/")
}

/// Query of `GET /login`.
#[derive(Debug, Deserialize)]
struct NextQuery {
    next: Option<String>,
}

async fn login_form(
    State(auth): State<Auth>,
    headers: HeaderMap,
    Query(q): Query<NextQuery>,
) -> Response {
    let next = safe_next(q.next.as_deref());
    if auth.signed_in(&headers) {
        return Redirect::to(next).into_response();
    }
    html(StatusCode::OK, &LoginPage::new(next, ""))
}

/// Body of `POST /login`.
#[derive(Deserialize)]
struct LoginForm {
    credential: String,
    #[serde(default)]
    next: String,
}

async fn login(
    State(auth): State<Auth>,
    conn: Option<Extension<ConnInfo>>,
    Form(form): Form<LoginForm>,
) -> Response {
    let remote = conn
        .map(|Extension(c)| c.remote.ip().to_string())
        .unwrap_or_else(|| "unknown".into());
    let next = safe_next(Some(&form.next));
    if let Err(wait) = auth
        .inner
        .limiter
        .check(&format!("login:{remote}"), Instant::now())
    {
        if let Some(hook) = &auth.inner.on_limited {
            hook();
        }
        let secs = retry_after_seconds(wait);
        tracing::warn!(%remote, retry_after = secs, "dashboard login rate limited");
        let mut resp = html(
            StatusCode::TOO_MANY_REQUESTS,
            &ErrorPage::new(
                429,
                "Too many sign-in attempts",
                &format!("Wait {secs} s, then sign in again with the operator credential."),
                false,
            ),
        );
        if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return resp;
    }
    let mut presented = b"Bearer ".to_vec();
    presented.extend_from_slice(form.credential.trim().as_bytes());
    if auth.inner.operator.check(Some(&presented)).is_err() {
        tracing::info!(%remote, "dashboard login refused: wrong operator credential");
        return html(
            StatusCode::UNAUTHORIZED,
            &LoginPage::new(
                next,
                "That is not the operator credential. Copy the whole contents of the data directory's operator-token file.",
            ),
        );
    }
    let mut random = [0u8; 32];
    rand::rng().fill_bytes(&mut random);
    let id = auth.inner.sessions.issue(&random, auth.now());
    tracing::info!(%remote, "dashboard login");
    let mut resp = Redirect::to(next).into_response();
    set_header(&mut resp, &set_cookie(&id, auth.inner.sessions.ttl()));
    resp
}

async fn logout(State(auth): State<Auth>, headers: HeaderMap) -> Response {
    auth.inner.sessions.revoke(cookie_value(&headers));
    let mut resp = Redirect::to("/login").into_response();
    set_header(&mut resp, &clear_cookie());
    resp
}
