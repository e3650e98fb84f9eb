//! Operator endpoints under `/v1/operator/*` (the router has already checked the bearer
//! credential): tokens, claim codes, sites, devices, pending approvals, inventory reload.
//! Thin: decode, call the registry, encode. Logs name ids only.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde::Deserialize;
use serde_json::json;
use siteboot_wire::operator::{
    ApproveRequest, ExtendTokenRequest, MintClaimRequest, MintTokenRequest, ReasonRequest,
};
use siteboot_wire::{ApiError, ErrorCode};

use super::body;
use super::error::Failure;
use super::state::AppState;
use crate::inventory::SiteFilter;
use crate::registry::RegistryError;

type Answer = Result<Response, Failure>;

fn fail(e: RegistryError) -> Failure {
    Failure(e.to_api_error())
}

fn ok<T: serde::Serialize>(status: StatusCode, body: T) -> Answer {
    Ok((status, axum::Json(body)).into_response())
}

/// Bodies are optional for reason-only calls: an empty body means no reason.
async fn optional_reason(
    state: &AppState,
    headers: &HeaderMap,
    b: Body,
) -> Result<ReasonRequest, ApiError> {
    let bytes = body::read_capped(headers, b, state.max_body_bytes).await?;
    if bytes.iter().all(|c| c.is_ascii_whitespace()) {
        return Ok(ReasonRequest::default());
    }
    body::decode(&bytes)
}

/// `POST /v1/operator/tokens`.
pub async fn mint_token(State(state): State<Arc<AppState>>, headers: HeaderMap, b: Body) -> Answer {
    let req: MintTokenRequest = body::json(&headers, b, state.max_body_bytes).await?;
    let resp = state
        .registry
        .mint_token(&req, Utc::now())
        .await
        .map_err(fail)?;
    tracing::info!(token_id = %resp.info.token_id, site_id = %resp.info.site_id, "operator minted a registration token");
    ok(StatusCode::CREATED, resp)
}

/// `GET /v1/operator/tokens/{token_id}`.
pub async fn token_info(State(state): State<Arc<AppState>>, Path(id): Path<String>) -> Answer {
    ok(
        StatusCode::OK,
        state
            .registry
            .token_info(&id, Utc::now())
            .await
            .map_err(fail)?,
    )
}

/// `POST /v1/operator/tokens/{token_id}/extend`.
pub async fn extend_token(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    b: Body,
) -> Answer {
    let req: ExtendTokenRequest = body::json(&headers, b, state.max_body_bytes).await?;
    let info = state
        .registry
        .extend_token(&id, &req, Utc::now())
        .await
        .map_err(fail)?;
    tracing::info!(token_id = %id, expires_at = %info.expires_at, "operator extended a token");
    ok(StatusCode::OK, info)
}

/// `POST /v1/operator/tokens/{token_id}/revoke`.
pub async fn revoke_token(State(state): State<Arc<AppState>>, Path(id): Path<String>) -> Answer {
    let info = state
        .registry
        .revoke_token(&id, Utc::now())
        .await
        .map_err(fail)?;
    tracing::info!(token_id = %id, "operator revoked a token");
    ok(StatusCode::OK, info)
}

/// `POST /v1/operator/claims`.
pub async fn mint_claim(State(state): State<Arc<AppState>>, headers: HeaderMap, b: Body) -> Answer {
    let req: MintClaimRequest = body::json(&headers, b, state.max_body_bytes).await?;
    let resp = state
        .registry
        .mint_claim(&req, Utc::now())
        .await
        .map_err(fail)?;
    tracing::info!(claim_id = %resp.claim_id, site_id = %resp.site_id, "operator minted a claim code");
    ok(StatusCode::CREATED, resp)
}

/// Query of `GET /v1/operator/sites`.
#[derive(Debug, Deserialize)]
pub struct SitesQuery {
    region: Option<String>,
    ring: Option<String>,
}

/// `GET /v1/operator/sites[?region=&ring=]`.
pub async fn sites(State(state): State<Arc<AppState>>, Query(q): Query<SitesQuery>) -> Answer {
    let filter = SiteFilter {
        region: q.region,
        ring: q.ring,
    };
    ok(
        StatusCode::OK,
        state.registry.sites(&filter).await.map_err(fail)?,
    )
}

/// `GET /v1/operator/sites/{site_id}`.
pub async fn site(State(state): State<Arc<AppState>>, Path(id): Path<String>) -> Answer {
    ok(
        StatusCode::OK,
        state.registry.site(&id).await.map_err(fail)?,
    )
}

/// Query of `GET /v1/operator/devices`.
#[derive(Debug, Deserialize)]
pub struct DevicesQuery {
    site: Option<String>,
}

/// `GET /v1/operator/devices[?site=]`.
pub async fn devices(State(state): State<Arc<AppState>>, Query(q): Query<DevicesQuery>) -> Answer {
    ok(
        StatusCode::OK,
        state
            .registry
            .devices(q.site.as_deref())
            .await
            .map_err(fail)?,
    )
}

/// `GET /v1/operator/devices/{device_id}`.
pub async fn device(State(state): State<Arc<AppState>>, Path(id): Path<String>) -> Answer {
    match state.registry.device(&id).await.map_err(fail)? {
        Some(d) => ok(StatusCode::OK, d),
        None => Err(ApiError::new(ErrorCode::NotFound, format!("no device {id:?}")).into()),
    }
}

/// `POST /v1/operator/devices/{device_id}/revoke`.
pub async fn revoke_device(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    b: Body,
) -> Answer {
    let req = optional_reason(&state, &headers, b).await?;
    let info = state
        .registry
        .revoke_device(&id, &req.reason, Utc::now())
        .await
        .map_err(fail)?;
    tracing::info!(device_id = %id, site_id = %info.site_id, "operator revoked a device");
    ok(StatusCode::OK, info)
}

/// `GET /v1/operator/pending`.
pub async fn pending(State(state): State<Arc<AppState>>) -> Answer {
    ok(
        StatusCode::OK,
        state.registry.pending().await.map_err(fail)?,
    )
}

/// `POST /v1/operator/pending/{pending_id}/approve`.
pub async fn approve(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    b: Body,
) -> Answer {
    let req: ApproveRequest = body::json(&headers, b, state.max_body_bytes).await?;
    state
        .registry
        .approve(&id, &req.site_id, Utc::now())
        .await
        .map_err(fail)?;
    tracing::info!(pending_id = %id, site_id = %req.site_id, "operator approved a pending device");
    ok(
        StatusCode::OK,
        json!({"pendingId": id, "status": "approved", "siteId": req.site_id}),
    )
}

/// `POST /v1/operator/pending/{pending_id}/reject`.
pub async fn reject(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    b: Body,
) -> Answer {
    let req = optional_reason(&state, &headers, b).await?;
    state
        .registry
        .reject(&id, &req.reason, Utc::now())
        .await
        .map_err(fail)?;
    tracing::info!(pending_id = %id, "operator rejected a pending device");
    ok(
        StatusCode::OK,
        json!({"pendingId": id, "status": "rejected"}),
    )
}

/// `POST /v1/operator/inventory/reload`.
pub async fn reload_inventory(State(state): State<Arc<AppState>>) -> Answer {
    let sites = state.registry.reload_inventory().await.map_err(fail)?;
    tracing::info!(sites, "inventory reloaded");
    ok(StatusCode::OK, json!({"sites": sites}))
}
