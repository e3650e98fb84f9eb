//! Device-facing endpoints: registration (token, enrollment, claim), pending polls, and the
//! mTLS-only check-in, certificate renewal and assignment.
//!
//! Order of checks on `POST /v1/register`: source-address rate limit, body cap, JSON,
//! facts, CSR, credential format (claim typos never reach a lookup), per-credential-id
//! rate limit, and only then [`Registry::register`](crate::registry::Registry::register).
//! The registry never signs; this module signs the CSR once the registry says who the
//! device is. Logs name credential ids, never credential values.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use siteboot_wire::api::{
    CheckinRequest, Credential, PollResponse, RegisterRequest, Registered, RenewRequest,
    RenewResponse, HEADER_POLL_SECRET,
};
use siteboot_wire::operator::DeviceStatus;
use siteboot_wire::{ApiError, Assignment, ClaimCode, ErrorCode, RegistrationToken, SecretString};

use super::body;
use super::error::{internal, Failure};
use super::peer::ConnInfo;
use super::state::AppState;
use crate::ca::{parse_csr, CsrError, ValidCsr};
use crate::registry::{PollOutcome, RegisterOutcome, RegistryError};

/// Largest accepted check-in error text.
const MAX_ERROR_TEXT: usize = 4096;

/// The stable snake_case name of an error code (for metrics and logs).
pub fn code_name(code: ErrorCode) -> String {
    serde_json::to_value(code)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| "internal".into())
}

fn remote_key(parts_remote: Option<&ConnInfo>) -> String {
    parts_remote
        .map(|c| c.remote.ip().to_string())
        .unwrap_or_else(|| "unknown".into())
}

fn csr_error(e: CsrError) -> ApiError {
    ApiError::invalid("csr", e.to_string())
}

/// What the credential is, for logs, metrics and rate-limit keys. Never the secret.
struct CredentialKey {
    kind: &'static str,
    /// Public id (`token:<id>`, `claim:<id>`, `batch:<name>:<serial>`), if it parses.
    key: Option<String>,
}

fn credential_key(req: &RegisterRequest) -> Result<CredentialKey, ApiError> {
    let kind = req.credential.kind();
    let key = match &req.credential {
        // A malformed token gets the same 401 as an unknown one (from the registry).
        Credential::Token { token } => RegistrationToken::parse(token.expose())
            .ok()
            .map(|t| format!("token:{}", t.id())),
        Credential::Claim { code } => {
            let parsed = ClaimCode::parse(code.expose()).map_err(|_| {
                ApiError::invalid(
                    "credential.code",
                    "claim code is mistyped (length or check character): it looks like XXXX-XXXX-C; re-enter it",
                )
            })?;
            Some(format!("claim:{}", parsed.id()))
        }
        Credential::Enrollment { batch, .. } => Some(format!("batch:{batch}:{}", req.facts.serial)),
    };
    Ok(CredentialKey { kind, key })
}

/// `POST /v1/register`.
pub async fn register(State(state): State<Arc<AppState>>, parts: Parts, body: Body) -> Response {
    let mut kind = "unknown";
    match register_inner(&state, &parts, body, &mut kind).await {
        Ok((status, resp, outcome)) => {
            state.metrics.registration(outcome, kind);
            (status, resp).into_response()
        }
        Err(e) => {
            state.metrics.registration(&code_name(e.code), kind);
            Failure(e).into_response()
        }
    }
}

async fn register_inner(
    state: &AppState,
    parts: &Parts,
    body: Body,
    kind: &mut &'static str,
) -> Result<(StatusCode, Response, &'static str), ApiError> {
    let conn = parts.extensions.get::<ConnInfo>();
    let ip = remote_key(conn);
    state.limit(
        "register_ip",
        &format!("ip:{ip}"),
        "registration requests from this address",
    )?;
    let req: RegisterRequest = body::json(&parts.headers, body, state.max_body_bytes).await?;
    *kind = req.credential.kind();
    req.facts
        .validate()
        .map_err(|e| ApiError::invalid(e.field.clone(), e.to_string()))?;
    let csr = parse_csr(&req.csr).map_err(csr_error)?;
    let cred = credential_key(&req)?;
    if let Some(key) = &cred.key {
        state.limit("credential", key, "attempts with this credential")?;
    }
    let now = Utc::now();
    let id = cred.key.as_deref().unwrap_or("malformed");
    let permit = state.domain.acquire().await;
    let outcome = state.registry.register(&req, now).await;
    drop(permit);
    match outcome {
        Ok(RegisterOutcome::Registered {
            device_id,
            site_id,
            assignment,
        }) => {
            let body = registered(state, &csr, device_id, site_id, assignment)?;
            tracing::info!(credential = cred.kind, credential_id = id, device_id = %body.device_id, site_id = %body.site_id, "device registered");
            Ok((
                StatusCode::CREATED,
                axum::Json(body).into_response(),
                "registered",
            ))
        }
        Ok(RegisterOutcome::Pending(pending)) => {
            tracing::info!(credential = cred.kind, credential_id = id, pending_id = %pending.pending_id, serial = %req.facts.serial, "registration pending operator approval");
            Ok((
                StatusCode::ACCEPTED,
                axum::Json(pending).into_response(),
                "pending",
            ))
        }
        Err(e) => {
            let api = e.to_api_error();
            tracing::info!(credential = cred.kind, credential_id = id, code = %code_name(api.code), reason = %e, "registration refused");
            Err(api)
        }
    }
}

fn registered(
    state: &AppState,
    csr: &ValidCsr,
    device_id: String,
    site_id: String,
    assignment: Assignment,
) -> Result<Registered, ApiError> {
    let signed = state
        .ca
        .sign_device(
            csr,
            &site_id,
            &device_id,
            Utc::now(),
            state.cert_ttl,
            rand::random(),
        )
        .map_err(|e| {
            tracing::error!(error = %e, %device_id, "signing a registered device's csr failed");
            internal("sign the device certificate")
        })?;
    Ok(Registered {
        device_id,
        site_id,
        certificate: signed.pem,
        ca_bundle: state.ca.cert_pem().to_string(),
        assignment,
        checkin_interval_seconds: state.checkin_interval_seconds,
    })
}

/// `GET /v1/register/{pending_id}` with `x-siteboot-poll-secret`.
pub async fn poll(
    State(state): State<Arc<AppState>>,
    Path(pending_id): Path<String>,
    parts: Parts,
) -> Result<Response, Failure> {
    let ip = remote_key(parts.extensions.get::<ConnInfo>());
    state.limit(
        "register_ip",
        &format!("ip:{ip}"),
        "requests from this address",
    )?;
    if pending_id.len() > 128 {
        return Err(ApiError::new(ErrorCode::NotFound, "no such pending registration").into());
    }
    state.limit(
        "credential",
        &format!("pending:{pending_id}"),
        "polls for this pending registration",
    )?;
    let secret = poll_secret(&parts.headers)?;
    let now = Utc::now();
    let outcome = state
        .registry
        .poll_pending(&pending_id, &secret, now)
        .await
        .map_err(|e| Failure(e.to_api_error()))?;
    let body = match outcome {
        PollOutcome::Pending { poll_after_seconds } => PollResponse::Pending { poll_after_seconds },
        PollOutcome::Rejected { reason } => PollResponse::Rejected { reason },
        PollOutcome::Approved {
            device_id,
            site_id,
            assignment,
            csr_pem,
        } => {
            let csr = parse_csr(&csr_pem).map_err(|_| Failure(internal("read the stored csr")))?;
            let reg = registered(&state, &csr, device_id, site_id, assignment)?;
            state.metrics.registration("registered", "approval");
            tracing::info!(%pending_id, device_id = %reg.device_id, site_id = %reg.site_id, "approved device collected its certificate");
            PollResponse::Approved(reg)
        }
    };
    Ok(axum::Json(body).into_response())
}

fn poll_secret(headers: &HeaderMap) -> Result<SecretString, ApiError> {
    headers
        .get(HEADER_POLL_SECRET)
        .and_then(|v| v.to_str().ok())
        .map(|v| SecretString::new(v.trim()))
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::InvalidCredential,
                format!(
                    "send the poll secret from the 202 answer in the {HEADER_POLL_SECRET} header"
                ),
            )
        })
}

/// The identity named by the connection's verified client certificate (not yet checked
/// against the store).
#[derive(Debug, Clone)]
pub struct CertIdentity {
    /// Site.
    pub site_id: String,
    /// Device.
    pub device_id: String,
}

impl FromRequestParts<Arc<AppState>> for CertIdentity {
    type Rejection = Failure;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &Arc<AppState>,
    ) -> Result<Self, Failure> {
        let peer = parts
            .extensions
            .get::<ConnInfo>()
            .and_then(|c| c.peer.clone())
            .ok_or_else(|| {
                ApiError::new(
                    ErrorCode::Unauthenticated,
                    "this endpoint requires mTLS: present the client certificate issued at registration",
                )
            })?;
        Ok(Self {
            site_id: peer.site_id,
            device_id: peer.device_id,
        })
    }
}

/// A device authenticated by its client certificate and still active in the store.
#[derive(Debug, Clone)]
pub struct AuthedDevice {
    /// Site.
    pub site_id: String,
    /// Device.
    pub device_id: String,
}

fn revoked(site_id: &str, device_id: &str) -> ApiError {
    tracing::info!(device_id, site_id, "revoked device refused");
    ApiError::new(
        ErrorCode::DeviceRevoked,
        "this device was revoked (replaced or retired): register again with a claim code",
    )
}

impl FromRequestParts<Arc<AppState>> for AuthedDevice {
    type Rejection = Failure;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Self, Failure> {
        let peer = CertIdentity::from_request_parts(parts, state).await?;
        // Checked on every request so a revocation (e.g. a claim redeemed by a replacement
        // box) takes effect at once, even on kept-alive connections.
        let device = {
            let _permit = state.domain.acquire().await;
            state.registry.device(&peer.device_id).await
        }
        .map_err(|e| Failure(e.to_api_error()))?;
        match device {
            Some(d) if d.status == DeviceStatus::Active && d.site_id == peer.site_id => Ok(Self {
                site_id: peer.site_id,
                device_id: peer.device_id,
            }),
            Some(d) if d.status == DeviceStatus::Revoked => {
                Err(revoked(&peer.site_id, &peer.device_id).into())
            }
            _ => Err(ApiError::new(
                ErrorCode::Forbidden,
                "the client certificate names a device this service does not hold for that site",
            )
            .into()),
        }
    }
}

/// `POST /v1/checkin` (mTLS). [`Registry::checkin`](crate::registry::Registry::checkin)
/// reads the device record itself and refuses revoked devices and foreign sites, so this
/// route skips the extra gate read that [`AuthedDevice`] does.
///
/// The answer body is a [`CheckinResponse`](siteboot_wire::api::CheckinResponse) serialised by the registry (once per site and
/// inventory version, see [`Registry::checkin_json`](crate::registry::Registry::checkin_json)).
pub async fn checkin(
    State(state): State<Arc<AppState>>,
    device: CertIdentity,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Failure> {
    let result = checkin_inner(&state, &device, &headers, body).await;
    match &result {
        Ok(_) => state.metrics.checkin("ok"),
        Err(e) => state.metrics.checkin(&code_name(e.code)),
    }
    let answer = result.map_err(Failure)?;
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        Bytes::from_owner(answer),
    )
        .into_response())
}

async fn checkin_inner(
    state: &AppState,
    device: &CertIdentity,
    headers: &HeaderMap,
    body: Body,
) -> Result<Arc<[u8]>, ApiError> {
    let req: CheckinRequest = body::json(headers, body, state.max_body_bytes).await?;
    if req.error.as_ref().is_some_and(|e| e.len() > MAX_ERROR_TEXT) {
        return Err(ApiError::invalid(
            "error",
            "error text must be at most 4096 bytes",
        ));
    }
    if let Some(facts) = &req.facts {
        facts
            .validate()
            .map_err(|e| ApiError::invalid(e.field.clone(), e.to_string()))?;
    }
    siteboot_wire::api::validate_attempts(&req.attempts)
        .map_err(|e| ApiError::invalid(e.field.clone(), e.to_string()))?;
    let _permit = state.domain.acquire().await;
    let answer = state
        .registry
        .checkin_json(&device.site_id, &device.device_id, &req, Utc::now())
        .await
        .map_err(|e| match e {
            RegistryError::DeviceRevoked { .. } => revoked(&device.site_id, &device.device_id),
            other => other.to_api_error(),
        })?;
    // Only an accepted check-in is observed: the agent resends its timings until a 2xx,
    // so observing a refused one would count them twice (and a resend after a lost answer
    // is recognised by its finish times).
    state.metrics.attempts(&device.device_id, &req.attempts);
    Ok(answer)
}

/// `POST /v1/certificate` (mTLS): a new certificate for a new key, same identity.
pub async fn renew(
    State(state): State<Arc<AppState>>,
    device: AuthedDevice,
    headers: HeaderMap,
    body: Body,
) -> Result<axum::Json<RenewResponse>, Failure> {
    let req: RenewRequest = body::json(&headers, body, state.max_body_bytes).await?;
    let csr = parse_csr(&req.csr).map_err(csr_error)?;
    let signed = state
        .ca
        .sign_device(
            &csr,
            &device.site_id,
            &device.device_id,
            Utc::now(),
            state.cert_ttl,
            rand::random(),
        )
        .map_err(|e| {
            tracing::error!(error = %e, device_id = %device.device_id, "renewal signing failed");
            Failure(internal("sign the renewed certificate"))
        })?;
    state.metrics.renewals.inc();
    tracing::info!(device_id = %device.device_id, site_id = %device.site_id, not_after = %signed.not_after, "client certificate renewed");
    Ok(axum::Json(RenewResponse {
        certificate: signed.pem,
        ca_bundle: state.ca.cert_pem().to_string(),
        not_after: signed.not_after,
    }))
}

/// `GET /v1/assignment` (mTLS).
pub async fn assignment(
    State(state): State<Arc<AppState>>,
    device: AuthedDevice,
) -> Result<axum::Json<Assignment>, Failure> {
    state
        .registry
        .assignment(&device.site_id)
        .await
        .map(axum::Json)
        .map_err(|e| Failure(e.to_api_error()))
}
