//! The route table and the cross-cutting layers: request durations by route template,
//! operator authentication on `/v1/operator/*`, and JSON 404/405 bodies.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use siteboot_wire::{ApiError, ErrorCode};

use super::error::error_response;
use super::state::AppState;
use super::{device_api, fleet_api, health, operator_api};

/// Builds the application router.
pub fn build(state: Arc<AppState>) -> Router {
    let operator = Router::new()
        .route("/v1/operator/tokens", post(operator_api::mint_token))
        .route(
            "/v1/operator/tokens/{token_id}",
            get(operator_api::token_info),
        )
        .route(
            "/v1/operator/tokens/{token_id}/extend",
            post(operator_api::extend_token),
        )
        .route(
            "/v1/operator/tokens/{token_id}/revoke",
            post(operator_api::revoke_token),
        )
        .route("/v1/operator/claims", post(operator_api::mint_claim))
        .route("/v1/operator/sites", get(operator_api::sites))
        .route("/v1/operator/sites/{site_id}", get(operator_api::site))
        .route("/v1/operator/devices", get(operator_api::devices))
        .route(
            "/v1/operator/devices/{device_id}",
            get(operator_api::device),
        )
        .route(
            "/v1/operator/devices/{device_id}/revoke",
            post(operator_api::revoke_device),
        )
        .route("/v1/operator/pending", get(operator_api::pending))
        .route(
            "/v1/operator/pending/{pending_id}/approve",
            post(operator_api::approve),
        )
        .route(
            "/v1/operator/pending/{pending_id}/reject",
            post(operator_api::reject),
        )
        .route(
            "/v1/operator/inventory/reload",
            post(operator_api::reload_inventory),
        )
        .route(siteboot_wire::fleet::PATH_FLEET, get(fleet_api::fleet))
        .route(
            &format!("{}/{{site_id}}", siteboot_wire::fleet::PATH_FLEET_SITES),
            get(fleet_api::site),
        )
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            require_operator,
        ));
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(fleet_api::metrics))
        .route("/openapi.json", get(health::openapi))
        .route("/v1/register", post(device_api::register))
        .route("/v1/register/{pending_id}", get(device_api::poll))
        .route("/v1/checkin", post(device_api::checkin))
        .route("/v1/certificate", post(device_api::renew))
        .route("/v1/assignment", get(device_api::assignment))
        .merge(operator)
        .merge(crate::dashboard::routes(state.clone()))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(state.clone(), track))
        .with_state(state)
}

async fn not_found() -> Response {
    error_response(ApiError::new(
        ErrorCode::NotFound,
        "no such endpoint; see /openapi.json",
    ))
}

async fn method_not_allowed() -> Response {
    let mut resp = error_response(ApiError::new(
        ErrorCode::InvalidRequest,
        "method not allowed on this endpoint; see /openapi.json",
    ));
    *resp.status_mut() = axum::http::StatusCode::METHOD_NOT_ALLOWED;
    resp
}

async fn require_operator(
    State(state): State<Arc<AppState>>,
    req: Request,
    next: Next,
) -> Response {
    let header = req
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .map(|v| v.as_bytes());
    match state.operator.check(header) {
        Ok(()) => next.run(req).await,
        Err(e) => {
            tracing::info!(path = %req.uri().path(), "operator request refused: missing or wrong credential");
            error_response(e)
        }
    }
}

async fn track(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().to_string();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let resp = next.run(req).await.into_response();
    let status = format!("{}xx", resp.status().as_u16() / 100);
    state
        .metrics
        .durations
        .get_or_create(&crate::metrics::RouteLabels {
            method,
            route,
            status,
        })
        .observe(started.elapsed().as_secs_f64());
    resp
}
