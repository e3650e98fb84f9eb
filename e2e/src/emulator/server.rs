//! The HTTP edge: one axum fallback handler that parses the path ([`super::route`]),
//! answers discovery from the registry, and hands resource requests to
//! [`super::handlers`]. Every error leaves as a `Status` body.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use tokio::sync::watch;

use super::discovery;
use super::handlers;
use super::ops::Target;
use super::route::{self, ResourcePath, Route};
use super::status::ApiError;
use super::store::Store;

/// State shared by every request.
pub struct Shared {
    pub store: Arc<Mutex<Store>>,
    pub shutdown: watch::Receiver<bool>,
    pub bookmark_interval: Duration,
}

impl Shared {
    pub fn lock(&self) -> std::sync::MutexGuard<'_, Store> {
        // A panic while holding the lock leaves a store that is still consistent enough for
        // tests to report the original failure; do not cascade the poison.
        self.store.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The parsed parts of one request.
pub struct Req {
    pub method: Method,
    pub query: HashMap<String, String>,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Req {
    pub fn q(&self, key: &str) -> Option<&str> {
        self.query.get(key).map(String::as_str)
    }

    pub fn flag(&self, key: &str) -> bool {
        matches!(self.q(key), Some("true" | "1"))
    }

    pub fn header(&self, name: header::HeaderName) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }
}

/// A JSON response.
pub fn json(code: StatusCode, v: &Value) -> Response {
    let mut resp = (code, serde_json::to_vec(v).expect("json values serialise")).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

/// An error as a `Status` response.
pub fn error(e: &ApiError) -> Response {
    json(
        StatusCode::from_u16(e.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        &e.to_status(),
    )
}

/// The router: everything goes through one handler.
pub fn router(shared: Arc<Shared>) -> axum::Router {
    axum::Router::new()
        .fallback(handle)
        .layer(axum::extract::DefaultBodyLimit::max(32 * 1024 * 1024))
        .with_state(shared)
}

async fn handle(
    State(sh): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let query: HashMap<String, String> =
        url::form_urlencoded::parse(uri.query().unwrap_or_default().as_bytes())
            .into_owned()
            .collect();
    let req = Req {
        method,
        query,
        headers,
        body,
    };
    tracing::debug!(method = %req.method, path = uri.path(), "emulator request");
    match dispatch(&sh, route::parse(uri.path()), &req).await {
        Ok(resp) => resp,
        Err(e) => error(&e),
    }
}

fn discovery_doc(
    req: &Req,
    doc: Option<Value>,
    aggregated: Option<Value>,
) -> Result<Response, ApiError> {
    if req.method != Method::GET {
        return Err(ApiError::method_not_allowed(
            "discovery documents are read-only",
        ));
    }
    if let Some(agg) =
        aggregated.filter(|_| discovery::wants_aggregated(req.header(header::ACCEPT)))
    {
        let mut resp = json(StatusCode::OK, &agg);
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(discovery::AGGREGATED_CONTENT_TYPE),
        );
        return Ok(resp);
    }
    doc.map(|d| json(StatusCode::OK, &d))
        .ok_or_else(|| ApiError::no_route("discovery"))
}

async fn dispatch(sh: &Arc<Shared>, route: Route, req: &Req) -> Result<Response, ApiError> {
    match route {
        Route::Version => discovery_doc(req, Some(discovery::version()), None),
        Route::CoreVersions => {
            let agg = discovery::aggregated(&sh.lock().registry, true);
            discovery_doc(req, Some(discovery::core_versions()), Some(agg))
        }
        Route::Groups => {
            let (doc, agg) = {
                let s = sh.lock();
                (
                    discovery::group_list(&s.registry),
                    discovery::aggregated(&s.registry, false),
                )
            };
            discovery_doc(req, Some(doc), Some(agg))
        }
        Route::Group(g) => discovery_doc(req, discovery::group(&sh.lock().registry, &g), None),
        Route::Resources { group, version } => discovery_doc(
            req,
            discovery::resource_list(&sh.lock().registry, &group, &version),
            None,
        ),
        Route::Resource(p) => {
            let target = resolve(sh, &p)?;
            handlers::resource(sh, target, p.name.is_none(), req).await
        }
        Route::Unknown => Err(ApiError::no_route("unknown path")),
    }
}

/// Looks the path's type up and checks its scope and subresource.
fn resolve(sh: &Shared, p: &ResourcePath) -> Result<Target, ApiError> {
    let not_found = || ApiError::no_route(&format!("{}/{} {}", p.group, p.version, p.plural));
    let def = sh
        .lock()
        .registry
        .find(&p.group, &p.version, &p.plural)
        .cloned()
        .ok_or_else(not_found)?;
    if p.namespace.is_some() && !def.namespaced {
        return Err(not_found());
    }
    if def.namespaced && p.namespace.is_none() && p.name.is_some() {
        return Err(not_found());
    }
    let status = match p.subresource.as_deref() {
        None => false,
        Some("status") if def.status => true,
        Some(_) => return Err(not_found()),
    };
    Ok(Target {
        def,
        version: p.version.clone(),
        namespace: p.namespace.clone().unwrap_or_default(),
        name: p.name.clone().unwrap_or_default(),
        status,
    })
}

/// A streaming response body fed by a channel.
pub fn stream_body(rx: tokio::sync::mpsc::Receiver<Bytes>) -> Body {
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|b| (Ok::<_, std::convert::Infallible>(b), rx))
    });
    Body::from_stream(stream)
}
