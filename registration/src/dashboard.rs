//! The fleet dashboard: server-rendered HTML (askama, `templates/dashboard/`) for
//! operators at `/` (counts per state by ring and region, a filterable sites table) and
//! `/sites/{id}` (labels, devices, history), reloading itself every
//! [`DashboardConfig::refresh_seconds`] with `<meta http-equiv="refresh">` (no script).
//!
//! Never anonymous: pages need a session from `/login` ([`auth`]). Every response carries
//! a strict CSP (no script at all, inline styles only), `X-Frame-Options: DENY`,
//! `nosniff`, `Referrer-Policy: no-referrer` and `Cache-Control: no-store`.
//!
//! Thin: handlers parse the filter, call [`Registry::fleet`](crate::registry::Registry::fleet)
//! or `site_detail`, and render the pure page models of [`view`].

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use chrono::{DateTime, TimeDelta, Utc};
use siteboot_wire::fleet::{FleetQuery, SiteState};

use crate::registry::RegistryError;
use crate::server::AppState;

pub mod auth;
pub mod format;
pub mod session;
pub mod view;

use view::{ErrorPage, IndexOptions, IndexPage, SitePage};

/// The dashboard's Content-Security-Policy: nothing may load or run but inline styles;
/// forms post only to this origin; no framing.
pub const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Where the time comes from (tests move it).
pub type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// Dashboard knobs.
#[derive(Clone)]
pub struct DashboardConfig {
    /// Absolute lifetime of a session from login.
    pub session_ttl: TimeDelta,
    /// Seconds between automatic page reloads.
    pub refresh_seconds: u64,
    /// Most rows in the sites table (the counts always cover the whole fleet).
    pub max_rows: usize,
    /// Login attempts per minute per source address.
    pub login_attempts_per_minute: u32,
    /// Clock.
    pub clock: Clock,
}

impl Default for DashboardConfig {
    fn default() -> Self {
        Self {
            session_ttl: TimeDelta::hours(8),
            refresh_seconds: 10,
            max_rows: 500,
            login_attempts_per_minute: 10,
            clock: Arc::new(Utc::now),
        }
    }
}

impl std::fmt::Debug for DashboardConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DashboardConfig")
            .field("session_ttl", &self.session_ttl)
            .field("refresh_seconds", &self.refresh_seconds)
            .field("max_rows", &self.max_rows)
            .field("login_attempts_per_minute", &self.login_attempts_per_minute)
            .finish_non_exhaustive()
    }
}

#[derive(Clone)]
struct Pages {
    app: Arc<AppState>,
    cfg: DashboardConfig,
}

/// The dashboard routes with the default [`DashboardConfig`], ready to merge into the
/// service router.
pub fn routes<S: Clone + Send + Sync + 'static>(app: Arc<AppState>) -> Router<S> {
    routes_with(app, DashboardConfig::default())
}

/// The dashboard routes with an explicit config.
pub fn routes_with<S: Clone + Send + Sync + 'static>(
    app: Arc<AppState>,
    cfg: DashboardConfig,
) -> Router<S> {
    let metrics_app = app.clone();
    let hook: auth::LimitedHook = Arc::new(move || metrics_app.metrics.limited("dashboard_login"));
    let auth = auth::Auth::new(app.operator.clone(), &cfg, Some(hook));
    Router::new()
        .route("/", get(index))
        .route("/sites/{site_id}", get(site))
        .route_layer(middleware::from_fn_with_state(
            auth.clone(),
            auth::require_session,
        ))
        .with_state(Pages { app, cfg })
        .merge(auth::routes(auth))
        .layer(middleware::map_response(security_headers))
}

/// Adds the dashboard's security headers to a response.
pub async fn security_headers(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    let set = [
        (header::CONTENT_SECURITY_POLICY, CSP),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::CACHE_CONTROL, "no-store"),
    ];
    for (name, value) in set {
        h.insert(name, HeaderValue::from_static(value));
    }
    resp
}

/// Renders a page with a status; a template failure becomes a plain 500.
pub(crate) fn html<T: Template>(status: StatusCode, page: &T) -> Response {
    match page.render() {
        Ok(body) => (status, Html(body)).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "dashboard template failed to render");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the dashboard page failed to render; see the service log",
            )
                .into_response()
        }
    }
}

fn failure(e: &RegistryError) -> Response {
    tracing::error!(error = %e, "dashboard could not read the fleet");
    html(
        StatusCode::INTERNAL_SERVER_ERROR,
        &ErrorPage::new(
            500,
            "The fleet could not be read",
            "The registration service could not read its store; the service log says why. This page retries when reloaded.",
            true,
        ),
    )
}

/// Parses the filter of `GET /` (empty values mean any).
pub fn parse_filter(raw: &HashMap<String, String>) -> Result<FleetQuery, String> {
    let get = |k: &str| {
        raw.get(k)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    let state = match get("state") {
        None => None,
        Some(s) => Some(SiteState::parse(&s).ok_or_else(|| {
            let names: Vec<&str> = SiteState::ALL.iter().map(|s| s.as_str()).collect();
            format!(
                "Unknown state {s:?}: choose one of {} (or leave it empty for any).",
                names.join(", ")
            )
        })?),
    };
    Ok(FleetQuery {
        region: get("region"),
        ring: get("ring"),
        state,
    })
}

async fn index(State(p): State<Pages>, Query(raw): Query<HashMap<String, String>>) -> Response {
    let q = match parse_filter(&raw) {
        Ok(q) => q,
        Err(msg) => {
            return html(
                StatusCode::BAD_REQUEST,
                &ErrorPage::new(400, "Bad filter", &msg, true),
            )
        }
    };
    let now = (p.cfg.clock)();
    // Counts cover the whole fleet; the table is filtered from the same view.
    let fleet = match p.app.registry.fleet(&FleetQuery::default(), now).await {
        Ok(f) => f,
        Err(e) => return failure(&e),
    };
    let inventory = p.app.registry.inventory().current();
    let regions: BTreeSet<String> = inventory.sites.values().map(|s| s.region.clone()).collect();
    let rings: BTreeSet<String> = inventory.sites.values().map(|s| s.ring.clone()).collect();
    let opts = IndexOptions {
        refresh_seconds: p.cfg.refresh_seconds,
        regions,
        rings,
        max_rows: p.cfg.max_rows,
    };
    html(StatusCode::OK, &IndexPage::build(&fleet, &q, &opts))
}

async fn site(State(p): State<Pages>, Path(site_id): Path<String>) -> Response {
    let now = (p.cfg.clock)();
    match p.app.registry.site_detail(&site_id, now).await {
        Ok(d) => html(
            StatusCode::OK,
            &SitePage::build(&d, p.cfg.refresh_seconds, now),
        ),
        Err(RegistryError::NotFound { .. }) => html(
            StatusCode::NOT_FOUND,
            &ErrorPage::new(
                404,
                "No such site",
                &format!("There is no site {site_id:?} in the inventory. Check the id, or find the site in the fleet table."),
                true,
            ),
        ),
        Err(e) => failure(&e),
    }
}

#[cfg(test)]
mod tests;
