//! Operator API bodies (`/v1/operator/...`), used by `sitebootctl` and the provider.
//! Every operator call carries `Authorization: Bearer <operator credential>`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::facts::DeviceFacts;
use crate::labels::Labels;
use crate::secret::SecretString;

/// `POST`: mint a registration token.
pub const PATH_TOKENS: &str = "/v1/operator/tokens";
/// `POST`: mint a claim code.
pub const PATH_CLAIMS: &str = "/v1/operator/claims";
/// `GET`: list sites; `GET {PATH_SITES}/{id}`: one site.
pub const PATH_SITES: &str = "/v1/operator/sites";
/// `GET`: list devices; `POST {PATH_DEVICES}/{id}/revoke`.
pub const PATH_DEVICES: &str = "/v1/operator/devices";
/// `GET`: list pending; `POST {PATH_PENDING}/{id}/approve` or `/reject`.
pub const PATH_PENDING: &str = "/v1/operator/pending";
/// `POST`: reload the inventory file.
pub const PATH_INVENTORY_RELOAD: &str = "/v1/operator/inventory/reload";

/// Which CAPI Machine a token is minted for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MachineRef {
    /// Namespace of the Machine.
    pub namespace: String,
    /// Name of the Machine.
    pub name: String,
    /// UID of the Machine, so a recreated Machine of the same name gets a new token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
}

/// `POST /v1/operator/tokens` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MintTokenRequest {
    /// Site the token registers a device for.
    pub site_id: String,
    /// Machine the token is bound to, if minted by the provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine: Option<MachineRef>,
    /// Lifetime; the service default (24 h) when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_seconds: Option<u64>,
}

/// State of a minted token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TokenState {
    /// Not redeemed yet and not expired.
    Unused,
    /// Redeemed by a device.
    Redeemed,
    /// Expired unused.
    Expired,
    /// Revoked by an operator or the provider.
    Revoked,
}

/// Token metadata (never the secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenInfo {
    /// Public token id.
    pub token_id: String,
    /// Bound site.
    pub site_id: String,
    /// Bound machine, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine: Option<MachineRef>,
    /// State now.
    pub state: TokenState,
    /// Expiry.
    pub expires_at: DateTime<Utc>,
    /// Device that redeemed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
}

/// `POST /v1/operator/tokens` answer: the only time the token text is shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MintTokenResponse {
    /// `sbt1.<id>.<secret>`.
    pub token: SecretString,
    /// Metadata.
    pub info: TokenInfo,
}

/// `POST /v1/operator/tokens/{id}/extend` body: extend an unused token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExtendTokenRequest {
    /// New lifetime from now.
    pub ttl_seconds: u64,
}

/// `POST /v1/operator/claims` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MintClaimRequest {
    /// Site the replacement box will take over.
    pub site_id: String,
    /// Lifetime; the service default (72 h) when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_seconds: Option<u64>,
}

/// `POST /v1/operator/claims` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MintClaimResponse {
    /// `XXXX-XXXX-C`, shown once.
    pub code: SecretString,
    /// Public claim id.
    pub claim_id: String,
    /// Site.
    pub site_id: String,
    /// Expiry.
    pub expires_at: DateTime<Utc>,
}

/// Device status as an operator sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DeviceStatus {
    /// Holds the site's identity.
    Active,
    /// Replaced or revoked: its certificate is refused.
    Revoked,
}

/// A device record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeviceInfo {
    /// Device id.
    pub device_id: String,
    /// Site.
    pub site_id: String,
    /// Status.
    pub status: DeviceStatus,
    /// Facts at registration.
    pub facts: DeviceFacts,
    /// How it registered (`token`, `enrollment`, `claim`, `approval`).
    pub registered_via: String,
    /// When it registered.
    pub registered_at: DateTime<Utc>,
    /// Last check-in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seen: Option<DateTime<Utc>>,
}

/// A site as an operator sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SiteInfo {
    /// Site id.
    pub site_id: String,
    /// Labels from the inventory.
    pub labels: Labels,
    /// Active device, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
    /// Last check-in of the active device.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seen: Option<DateTime<Utc>>,
    /// Last applied revision reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied_revision: Option<String>,
    /// Last attempted revision reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempted_revision: Option<String>,
    /// Last reported agent state (`applying`, `ready`, `failed`, `degraded`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_state: Option<String>,
    /// Last error reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// A device waiting for approval.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PendingInfo {
    /// Pending id.
    pub pending_id: String,
    /// Enrollment batch it presented.
    pub batch: String,
    /// Its facts.
    pub facts: DeviceFacts,
    /// When it first asked.
    pub requested_at: DateTime<Utc>,
}

/// `POST /v1/operator/pending/{id}/approve` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApproveRequest {
    /// Site to bind the device to.
    pub site_id: String,
}

/// `POST /v1/operator/pending/{id}/reject` and `/devices/{id}/revoke` body.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReasonRequest {
    /// Why, for the audit trail.
    #[serde(default)]
    pub reason: String,
}
