//! Probes and documents: `/healthz` (process up), `/readyz` (store reachable, inventory
//! loaded), `/metrics` (Prometheus text), `/openapi.json` (the committed document).

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use siteboot_wire::{ApiError, ErrorCode};

use super::error::Failure;
use super::state::AppState;

/// The committed OpenAPI document (drift-checked against [`crate::openapi::document`]).
pub const OPENAPI_JSON: &str = include_str!("../../openapi.json");

/// `GET /healthz`.
pub async fn healthz() -> impl IntoResponse {
    axum::Json(json!({"status": "ok"}))
}

/// `GET /readyz`.
pub async fn readyz(State(state): State<Arc<AppState>>) -> Result<Response, Failure> {
    match super::wiring::readiness(&state.registry).await {
        Ok(sites) => Ok(axum::Json(json!({"status": "ready", "sites": sites})).into_response()),
        Err(reason) => Err(Failure(ApiError::new(
            ErrorCode::Unavailable,
            format!("not ready: {reason}"),
        ))),
    }
}

/// `GET /metrics`.
pub async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.encode(),
    )
        .into_response()
}

/// `GET /openapi.json`.
pub async fn openapi() -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        OPENAPI_JSON,
    )
        .into_response()
}
