//! The registration store: tokens, claim codes, devices, the pending queue, fleet status
//! and the event history.
//!
//! [`Store`] is the seam: SQLite ([`sqlite::SqliteStore`]) implements it now, an
//! in-cluster store (custom resources) will later, and both must pass
//! [`conformance::run_all`]. The trait's operations are shaped so that every rule that
//! needs atomicity is ONE call: [`Store::bind_device`] consumes the credential, checks
//! the serial, revokes the site's previous device and inserts the new one, all or
//! nothing. Callers never check-then-write.
//!
//! Secrets never reach the store: tokens, claim codes and poll secrets arrive as SHA-256
//! hashes. Times are passed in (`now`); the store reads no clock.

use chrono::{DateTime, Utc};
use siteboot_wire::api::{AgentState, HealthSummary, OfflinePeriod};
use siteboot_wire::facts::DeviceFacts;
use siteboot_wire::operator::{DeviceStatus, MachineRef};

pub mod conformance;
pub mod sqlite;

/// Why a store operation failed. Messages never contain secrets (stores only see hashes).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The store cannot write or read right now (disk full, I/O error, locked too long).
    /// Nothing committed before is lost; retry later.
    #[error("store unavailable while trying to {action}: {detail}")]
    Unavailable {
        /// What was being done.
        action: &'static str,
        /// Underlying cause.
        detail: String,
    },
    /// A unique id collided (e.g. a freshly minted claim id); mint again.
    #[error("store conflict while trying to {action}: {detail}")]
    Conflict {
        /// What was being done.
        action: &'static str,
        /// Underlying cause.
        detail: String,
    },
    /// The stored data is not what this version understands (corrupt row, newer schema).
    #[error("store data problem while trying to {action}: {detail}")]
    Data {
        /// What was being done.
        action: &'static str,
        /// Underlying cause.
        detail: String,
    },
}

/// A minted registration token (hash only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    /// Public id.
    pub id: String,
    /// SHA-256 hex of the secret part.
    pub secret_hash: String,
    /// Site it registers a device for.
    pub site_id: String,
    /// Machine it was minted for.
    pub machine: Option<MachineRef>,
    /// Mint time.
    pub created_at: DateTime<Utc>,
    /// Expiry.
    pub expires_at: DateTime<Utc>,
    /// Redemption time.
    pub redeemed_at: Option<DateTime<Utc>>,
    /// Revocation time.
    pub revoked_at: Option<DateTime<Utc>>,
    /// Device that redeemed it.
    pub device_id: Option<String>,
}

/// A minted claim code (hash only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimRecord {
    /// Public id (first four symbols).
    pub id: String,
    /// Salted SHA-256 hex of the secret part.
    pub secret_hash: String,
    /// Site the replacement box takes over.
    pub site_id: String,
    /// Mint time.
    pub created_at: DateTime<Utc>,
    /// Expiry.
    pub expires_at: DateTime<Utc>,
    /// Redemption time.
    pub redeemed_at: Option<DateTime<Utc>>,
    /// Revocation time.
    pub revoked_at: Option<DateTime<Utc>>,
    /// Device that redeemed it.
    pub device_id: Option<String>,
    /// Wrong-secret attempts so far.
    pub failed_attempts: u32,
}

/// A device and its last reported status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRecord {
    /// Device id.
    pub id: String,
    /// Site.
    pub site_id: String,
    /// Serial (also in `facts`).
    pub serial: String,
    /// Active or revoked.
    pub status: DeviceStatus,
    /// Facts at registration.
    pub facts: DeviceFacts,
    /// `token`, `enrollment`, `claim` or `approval`.
    pub registered_via: String,
    /// Registration time.
    pub registered_at: DateTime<Utc>,
    /// Revocation time.
    pub revoked_at: Option<DateTime<Utc>>,
    /// Why it was revoked (`replaced by dev-...`, operator reason).
    pub revoke_reason: Option<String>,
    /// Machine of the token it redeemed.
    pub machine: Option<MachineRef>,
    /// Last check-in written.
    pub last_seen: Option<DateTime<Utc>>,
    /// Last applied revision.
    pub applied_revision: Option<String>,
    /// Last attempted revision.
    pub attempted_revision: Option<String>,
    /// Last reported state.
    pub agent_state: Option<AgentState>,
    /// Last reported error.
    pub last_error: Option<String>,
    /// Last reported health.
    pub health: HealthSummary,
    /// SHA-256 (hex) of the public key it registered with (none for old records).
    pub key_sha256: Option<String>,
}

/// A device about to be bound to a site.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDevice {
    /// Fresh device id.
    pub id: String,
    /// Site to bind to.
    pub site_id: String,
    /// Facts (the serial is `facts.serial`).
    pub facts: DeviceFacts,
    /// Machine reference copied from the token.
    pub machine: Option<MachineRef>,
    /// SHA-256 (hex) of the public key the device registered with (from its CSR), so a
    /// retry with the same credential and key can be answered again.
    pub key_sha256: Option<String>,
}

/// The credential a binding consumes, checked inside the binding's transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BindCredential {
    /// Consume the token: unredeemed, unrevoked, unexpired, hash and site equal.
    Token {
        /// Token id.
        id: String,
        /// Presented secret hash.
        secret_hash: String,
    },
    /// Consume the claim: as a token, and fewer than `max_failures` failed attempts.
    Claim {
        /// Claim id.
        id: String,
        /// Presented secret hash.
        secret_hash: String,
        /// Lockout threshold.
        max_failures: u32,
    },
    /// A batch credential already verified against config, for an expected serial.
    /// Unlike the others, an active device holding the serial at the same site is a
    /// conflict too (a cloned image), never a replacement.
    Enrollment {
        /// Batch name.
        batch: String,
    },
    /// An operator approval of a pending record (must still be pending).
    Approval {
        /// Pending id.
        pending_id: String,
    },
}

impl BindCredential {
    /// How the device registered, as stored in `registered_via`.
    pub fn via(&self) -> &'static str {
        match self {
            BindCredential::Token { .. } => "token",
            BindCredential::Claim { .. } => "claim",
            BindCredential::Enrollment { .. } => "enrollment",
            BindCredential::Approval { .. } => "approval",
        }
    }
}

/// One atomic binding of a device to a site.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    /// What is consumed.
    pub credential: BindCredential,
    /// The device.
    pub device: NewDevice,
    /// Time of the binding.
    pub now: DateTime<Utc>,
}

/// Result of [`Store::bind_device`].
#[derive(Debug, Clone, PartialEq, Eq)]
// Built once per request and matched by value; boxing would only burden callers.
#[allow(clippy::large_enum_variant)]
pub enum BindOutcome {
    /// Bound; `replaced` is the site's previous active device, now revoked.
    Bound {
        /// The new device.
        device: DeviceRecord,
        /// The revoked predecessor.
        replaced: Option<String>,
    },
    /// The credential could not be consumed (unknown, wrong secret, used, revoked,
    /// expired, locked, not pending); nothing was written.
    CredentialRejected,
    /// An active device holds the serial; nothing was bound, the conflict was recorded
    /// as an event and the credential was NOT consumed.
    SerialConflict {
        /// The holder.
        device_id: String,
        /// The holder's site.
        site_id: String,
    },
}

/// A pending enrollment as first written (or re-requested).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPending {
    /// Fresh id, used only when no open record exists for the serial.
    pub id: String,
    /// Hash of the poll secret handed out with this answer.
    pub poll_secret_hash: String,
    /// Batch presented.
    pub batch: String,
    /// Facts.
    pub facts: DeviceFacts,
    /// CSR (PEM) to sign on approval.
    pub csr_pem: String,
    /// Time of the request.
    pub now: DateTime<Utc>,
}

/// Where a pending record stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PendingStatus {
    /// Waiting for an operator.
    Pending,
    /// Approved and bound.
    Approved {
        /// The device created.
        device_id: String,
        /// Its site.
        site_id: String,
    },
    /// Rejected.
    Rejected {
        /// Operator reason.
        reason: String,
    },
    /// The serial registered another way (e.g. logistics added it to the inventory).
    Superseded,
}

/// A pending enrollment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingRecord {
    /// Id.
    pub id: String,
    /// Current poll secret hash.
    pub poll_secret_hash: String,
    /// Batch.
    pub batch: String,
    /// Latest facts.
    pub facts: DeviceFacts,
    /// Latest CSR.
    pub csr_pem: String,
    /// First request.
    pub requested_at: DateTime<Utc>,
    /// Latest request or decision.
    pub updated_at: DateTime<Utc>,
    /// Status.
    pub status: PendingStatus,
}

/// History event kinds (stable strings, used by the dashboard later).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// A device was bound to a site.
    Registered,
    /// A site's previous device was revoked because a new one was bound.
    Replaced,
    /// An operator revoked a device.
    Revoked,
    /// A serial already held by an active device tried to register (cloned image?).
    SerialConflict,
    /// A device entered the pending queue.
    PendingCreated,
    /// An operator rejected a pending device.
    PendingRejected,
    /// A device reported a new state, revision or error.
    StateChanged,
    /// A device reported an offline period.
    Offline,
    /// A claim code was locked after too many failed attempts.
    ClaimLocked,
}

impl EventKind {
    /// Stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Registered => "registered",
            EventKind::Replaced => "replaced",
            EventKind::Revoked => "revoked",
            EventKind::SerialConflict => "serial-conflict",
            EventKind::PendingCreated => "pending-created",
            EventKind::PendingRejected => "pending-rejected",
            EventKind::StateChanged => "state-changed",
            EventKind::Offline => "offline",
            EventKind::ClaimLocked => "claim-locked",
        }
    }

    /// Parses a stable name.
    pub fn parse(s: &str) -> Option<Self> {
        ALL_EVENT_KINDS.into_iter().find(|k| k.as_str() == s)
    }
}

const ALL_EVENT_KINDS: [EventKind; 9] = [
    EventKind::Registered,
    EventKind::Replaced,
    EventKind::Revoked,
    EventKind::SerialConflict,
    EventKind::PendingCreated,
    EventKind::PendingRejected,
    EventKind::StateChanged,
    EventKind::Offline,
    EventKind::ClaimLocked,
];

/// A history event (secret-free by construction: ids, serials, states, reasons).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Monotonic sequence (0 for events not yet stored).
    pub seq: i64,
    /// When.
    pub at: DateTime<Utc>,
    /// What.
    pub kind: EventKind,
    /// Site, if any.
    pub site_id: Option<String>,
    /// Device, if any.
    pub device_id: Option<String>,
    /// Serial, if any.
    pub serial: Option<String>,
    /// Human detail.
    pub detail: String,
}

/// A check-in written through to the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckinWrite {
    /// Device.
    pub device_id: String,
    /// When.
    pub now: DateTime<Utc>,
    /// Applied revision.
    pub applied_revision: Option<String>,
    /// Attempted revision.
    pub attempted_revision: Option<String>,
    /// State.
    pub state: AgentState,
    /// Error.
    pub error: Option<String>,
    /// Health.
    pub health: HealthSummary,
    /// Offline periods reported (each becomes an event).
    pub offline_periods: Vec<OfflinePeriod>,
    /// Record a `state-changed` event.
    pub state_changed: bool,
}

/// A coalesced heartbeat: only liveness and health, no state change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeartbeatWrite {
    /// Device.
    pub device_id: String,
    /// Time of the latest check-in.
    pub last_seen: DateTime<Utc>,
    /// Health reported then.
    pub health: HealthSummary,
}

/// The store seam. Implementations must be safe to share across tasks and processes
/// (several registration replicas on one database).
#[async_trait::async_trait]
pub trait Store: Send + Sync + 'static {
    /// Inserts a token. If it is bound to a machine, every other unused token of the same
    /// machine (namespace, name, uid) is revoked in the same transaction, so a Machine has
    /// at most one live token. A colliding id is [`StoreError::Conflict`].
    async fn insert_token(&self, token: &TokenRecord) -> Result<(), StoreError>;
    /// A token by id.
    async fn token(&self, id: &str) -> Result<Option<TokenRecord>, StoreError>;
    /// Sets a new expiry if the token is still unused (not redeemed, not revoked, not
    /// expired at `now`); returns the updated record, `None` if not eligible.
    async fn extend_token(
        &self,
        id: &str,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Option<TokenRecord>, StoreError>;
    /// Revokes a token unless already redeemed or revoked; returns the record after.
    async fn revoke_token(
        &self,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<TokenRecord>, StoreError>;
    /// Inserts a claim; a colliding id is [`StoreError::Conflict`].
    async fn insert_claim(&self, claim: &ClaimRecord) -> Result<(), StoreError>;
    /// A claim by id.
    async fn claim(&self, id: &str) -> Result<Option<ClaimRecord>, StoreError>;
    /// Counts a failed attempt against an unredeemed claim; returns the new count.
    async fn record_claim_failure(&self, id: &str, now: DateTime<Utc>) -> Result<u32, StoreError>;
    /// The atomic registration step, see [`Binding`] and [`BindOutcome`].
    async fn bind_device(&self, binding: &Binding) -> Result<BindOutcome, StoreError>;
    /// A device by id.
    async fn device(&self, id: &str) -> Result<Option<DeviceRecord>, StoreError>;
    /// Devices, optionally of one site, ordered by registration time.
    async fn devices(&self, site_id: Option<&str>) -> Result<Vec<DeviceRecord>, StoreError>;
    /// The active device holding `serial`, if any.
    async fn active_device_by_serial(
        &self,
        serial: &str,
    ) -> Result<Option<DeviceRecord>, StoreError>;
    /// Revokes an active device; returns the record after (`None` if unknown).
    async fn revoke_device(
        &self,
        id: &str,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<DeviceRecord>, StoreError>;
    /// Creates a pending record, or, if one is open for the same serial, returns it with
    /// the new poll secret hash, facts and CSR (the previous poll secret stops working).
    async fn upsert_pending(&self, pending: &NewPending) -> Result<PendingRecord, StoreError>;
    /// A pending record by id (any status).
    async fn pending(&self, id: &str) -> Result<Option<PendingRecord>, StoreError>;
    /// Open pending records, oldest first.
    async fn open_pending(&self) -> Result<Vec<PendingRecord>, StoreError>;
    /// Rejects an open pending record; `false` if it is not open.
    async fn reject_pending(
        &self,
        id: &str,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError>;
    /// Writes a check-in (status fields, last seen, events) for an active device;
    /// `false` if the device is not active.
    async fn write_checkin(&self, checkin: &CheckinWrite) -> Result<bool, StoreError>;
    /// Writes coalesced heartbeats in one transaction: last seen (never moved backwards)
    /// and, when newer than the stored last seen, the health summary. Unknown or revoked
    /// devices are skipped.
    async fn write_heartbeats(&self, beats: &[HeartbeatWrite]) -> Result<(), StoreError>;
    /// Appends an event.
    async fn record_event(&self, event: &Event) -> Result<(), StoreError>;
    /// Events with `seq > after`, oldest first, at most `limit`. Also the change feed of
    /// device records: every device status change is recorded as an event in the same
    /// write, and events become visible in `seq` order.
    async fn events(&self, after: i64, limit: usize) -> Result<Vec<Event>, StoreError>;
    /// The `seq` of the newest event (0 when there is none): where a reader of the change
    /// feed starts. The default pages through [`Store::events`]; stores override it.
    async fn latest_event_seq(&self) -> Result<i64, StoreError> {
        const PAGE: usize = 1000;
        let mut after = 0;
        loop {
            let page = self.events(after, PAGE).await?;
            after = page.last().map_or(after, |e| e.seq);
            if page.len() < PAGE {
                return Ok(after);
            }
        }
    }
    /// The latest `limit` events of one site, newest first (the site page's history).
    async fn site_events(&self, site_id: &str, limit: usize) -> Result<Vec<Event>, StoreError>;
    /// Sites with a registration underway at `now`: an unredeemed, unrevoked, unexpired
    /// token, or such a claim with fewer than `claim_max_failures` failed attempts.
    /// One read for the whole fleet.
    async fn registration_underway(
        &self,
        now: DateTime<Utc>,
        claim_max_failures: u32,
    ) -> Result<std::collections::BTreeSet<String>, StoreError>;
}
