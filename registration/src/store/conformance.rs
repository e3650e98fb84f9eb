//! The store conformance suite: every [`Store`] implementation must pass it.
//!
//! Written against the trait only, so the in-cluster store can run the same checks:
//!
//! ```text
//! siteboot_registration::store::conformance::run_all(|| async { Arc::new(MyStore::new()) as Arc<dyn Store> }).await;
//! ```
//!
//! Each check gets a fresh store from the factory and panics (with the check's name)
//! on the first violated expectation.

use std::future::Future;
use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use siteboot_wire::facts::DeviceFacts;

use super::{BindCredential, BindOutcome, Binding, DeviceRecord, NewDevice, Store, TokenRecord};

mod credentials;
mod devices;
mod fleet;

/// A named check.
pub type Check = fn(Arc<dyn Store>) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send>>;

/// All checks, by name (a harness may run them one by one).
pub fn checks() -> Vec<(&'static str, Check)> {
    let mut all = credentials::checks();
    all.extend(devices::checks());
    all.extend(fleet::checks());
    all
}

/// Runs every check, each against a fresh store from `factory`.
pub async fn run_all<F, Fut>(factory: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn Store>>,
{
    for (name, check) in checks() {
        tracing::info!(check = name, "store conformance");
        let store = factory().await;
        let outcome = tokio::spawn(check(store)).await;
        if let Err(e) = outcome {
            panic!("store conformance check {name:?} failed: {e}");
        }
    }
}

/// A fixed point in time the checks count from.
pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 4, 1, 8, 0, 0).unwrap()
}

pub(crate) fn facts(serial: &str) -> DeviceFacts {
    DeviceFacts {
        serial: serial.into(),
        macs: vec!["52:54:00:aa:bb:cc".into()],
        tpm_ek_sha256: None,
        hostname: format!("box-{serial}"),
        arch: "x86_64".into(),
        os: "Debian GNU/Linux 12 (bookworm)".into(),
    }
}

pub(crate) fn token(id: &str, site: &str, hash: &str) -> TokenRecord {
    TokenRecord {
        id: id.into(),
        secret_hash: hash.into(),
        site_id: site.into(),
        machine: None,
        created_at: t0(),
        expires_at: t0() + Duration::hours(24),
        redeemed_at: None,
        revoked_at: None,
        device_id: None,
    }
}

pub(crate) fn binding(
    cred: BindCredential,
    device: &str,
    site: &str,
    serial: &str,
    at: DateTime<Utc>,
) -> Binding {
    Binding {
        credential: cred,
        device: NewDevice {
            id: device.into(),
            site_id: site.into(),
            facts: facts(serial),
            machine: None,
            key_sha256: Some(format!("key-{device}")),
        },
        now: at,
    }
}

pub(crate) fn tok(id: &str, hash: &str) -> BindCredential {
    BindCredential::Token {
        id: id.into(),
        secret_hash: hash.into(),
    }
}

pub(crate) fn bound(outcome: BindOutcome, what: &str) -> (DeviceRecord, Option<String>) {
    match outcome {
        BindOutcome::Bound { device, replaced } => (device, replaced),
        other => panic!("{what}: expected Bound, got {other:?}"),
    }
}

/// Registers `device` at `site` with a fresh token (a helper for device checks).
pub async fn register(
    store: &dyn Store,
    device: &str,
    site: &str,
    serial: &str,
    at: DateTime<Utc>,
) -> DeviceRecord {
    let id = format!("tok-{device}");
    let hash = format!("hash-{device}");
    let mut t = token(&id, site, &hash);
    t.created_at = at - Duration::minutes(1);
    t.expires_at = at + Duration::hours(1);
    store.insert_token(&t).await.expect("insert token");
    let out = store
        .bind_device(&binding(tok(&id, &hash), device, site, serial, at))
        .await
        .expect("bind");
    bound(out, "register").0
}
