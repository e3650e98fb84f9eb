//! Wiring the domain (reg-core's [`Registry`], [`SqliteStore`], [`InventoryHandle`]) to the
//! HTTP layer's state, from the config and the prepared data directory.

use std::sync::Arc;

use crate::config::ServeConfig;
use crate::datadir::{DataDir, Prepared};
use crate::inventory::{parse_credentials, Inventory, InventoryHandle};
use crate::metrics::Metrics;
use crate::registry::{parse_enrollment_batches, Registry, RegistryConfig};
use crate::store::sqlite::SqliteStore;

use super::state::{AppState, Limiters};
use super::ServeError;

/// Git URL placeholder of the empty inventory served when no inventory file is given.
const NO_INVENTORY_GIT_URL: &str = "https://git.invalid/no-inventory-configured.git";

/// Builds the shared state; returns it with the number of sites loaded.
pub async fn build_state(
    config: &ServeConfig,
    data_dir: &DataDir,
    prepared: Prepared,
) -> Result<(AppState, usize), ServeError> {
    let wiring = |e: String| ServeError::Wiring(e);
    let db = data_dir.database.clone();
    let store = tokio::task::spawn_blocking(move || SqliteStore::open(&db))
        .await
        .map_err(|e| wiring(format!("open the store: {e}")))?
        .map_err(|e| {
            wiring(format!(
                "open the store {}: {e}",
                data_dir.database.display()
            ))
        })?;
    let inventory = match &config.inventory {
        Some(path) => {
            InventoryHandle::load(path).map_err(|e| wiring(format!("load inventory: {e}")))?
        }
        None => InventoryHandle::fixed(Inventory::empty(NO_INVENTORY_GIT_URL)),
    };
    let sites = inventory.current().len();
    if prepared.created.contains(&data_dir.git_credentials) {
        seed_placeholders(data_dir, &inventory.current())?;
    }
    let read = |p: &std::path::Path| {
        std::fs::read_to_string(p).map_err(|e| wiring(format!("read {}: {e}", p.display())))
    };
    let cred_file = data_dir.git_credentials.display().to_string();
    let git_credentials = parse_credentials(&read(&data_dir.git_credentials)?, &cred_file)
        .map_err(|e| wiring(format!("load git credentials: {e}")))?;
    let batch_file = data_dir.batches.display().to_string();
    let enrollment_batches = parse_enrollment_batches(&read(&data_dir.batches)?, &batch_file)
        .map_err(|e| wiring(format!("load enrollment batches: {e}")))?;
    let registry_config = RegistryConfig {
        token_ttl: config.token_ttl,
        claim_ttl: config.claim_ttl,
        checkin_interval_seconds: config.checkin_interval_seconds,
        enrollment_batches,
        git_credentials,
        ..RegistryConfig::default()
    };
    let registry = Registry::new(Arc::new(store), inventory, registry_config);
    let state = AppState {
        registry,
        ca: prepared.ca,
        operator: prepared.operator,
        metrics: Metrics::new(),
        limiters: Limiters::new(&config.limits),
        cert_ttl: config.cert_ttl,
        max_body_bytes: config.max_body_bytes,
        checkin_interval_seconds: config.checkin_interval_seconds,
        domain: tokio::sync::Semaphore::new(super::state::DOMAIN_CONCURRENCY),
    };
    Ok((state, sites))
}

/// On first start, writes a placeholder for every credential the inventory names, so the
/// embedded demo hands out assignments; the comment says to replace them.
fn seed_placeholders(data_dir: &DataDir, inventory: &Inventory) -> Result<(), ServeError> {
    let refs = inventory.auth_refs();
    if refs.is_empty() {
        return Ok(());
    }
    let mut text = String::from(
        "# Git credentials by name, referenced by the inventory's authRef (type token, basic,\n\
         # ssh or ca). PLACEHOLDERS written on first start: replace them with real credentials\n\
         # and restart the service.\n",
    );
    for name in refs {
        text.push_str(&format!(
            "{}:\n  type: token\n  token: replace-me\n",
            serde_json::to_string(name).unwrap_or_default()
        ));
    }
    crate::datadir::write_atomic(&data_dir.git_credentials, text.as_bytes(), 0o600)
        .map_err(|e| ServeError::Wiring(e.to_string()))?;
    tracing::warn!(file = %data_dir.git_credentials.display(), "wrote placeholder git credentials for the inventory's authRefs: replace them");
    Ok(())
}

/// Ready when the store answers a query and an inventory is loaded; returns the site count.
pub async fn readiness(registry: &Registry) -> Result<usize, String> {
    registry
        .store()
        .device("readiness-probe")
        .await
        .map_err(|e| format!("store unreachable: {e}"))?;
    Ok(registry.inventory().current().len())
}
