//! [`InventoryHandle`]: the current inventory behind a lock-protected `Arc`, swapped only
//! when a reload parses and validates completely.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use super::{Inventory, InventoryError};

/// Shared, cheaply cloneable access to the current inventory.
#[derive(Debug, Clone)]
pub struct InventoryHandle {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    path: Option<PathBuf>,
    current: RwLock<Arc<Inventory>>,
}

impl InventoryHandle {
    /// Loads the inventory file; fails with file, line and reason.
    pub fn load(path: impl Into<PathBuf>) -> Result<Self, InventoryError> {
        let path = path.into();
        let inventory = read(&path)?;
        Ok(Self {
            inner: Arc::new(Inner {
                path: Some(path),
                current: RwLock::new(Arc::new(inventory)),
            }),
        })
    }

    /// A handle over a fixed inventory with no file behind it (reload fails).
    pub fn fixed(inventory: Inventory) -> Self {
        Self {
            inner: Arc::new(Inner {
                path: None,
                current: RwLock::new(Arc::new(inventory)),
            }),
        }
    }

    /// The inventory file, if any.
    pub fn path(&self) -> Option<&Path> {
        self.inner.path.as_deref()
    }

    /// The current inventory (a snapshot; later reloads do not change it).
    pub fn current(&self) -> Arc<Inventory> {
        // A poisoned lock only means a panic elsewhere while swapping an Arc; the value
        // inside is always a complete inventory.
        self.inner
            .current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Re-reads the file; on success swaps it in and returns the site count, on error
    /// keeps serving the previous inventory.
    pub fn reload(&self) -> Result<usize, InventoryError> {
        self.reload_with(|_| Ok(()))
    }

    /// Like [`reload`](Self::reload), with an extra check (e.g. credential references)
    /// that must pass before the new inventory is swapped in.
    pub fn reload_with(
        &self,
        check: impl FnOnce(&Inventory) -> Result<(), InventoryError>,
    ) -> Result<usize, InventoryError> {
        let Some(path) = &self.inner.path else {
            return Err(InventoryError {
                file: "<none>".into(),
                line: None,
                reason: "the service was started without an inventory file: nothing to reload"
                    .into(),
            });
        };
        let inventory = read(path)?;
        check(&inventory)?;
        let n = inventory.len();
        *self
            .inner
            .current
            .write()
            .unwrap_or_else(|p| p.into_inner()) = Arc::new(inventory);
        Ok(n)
    }
}

fn read(path: &Path) -> Result<Inventory, InventoryError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| InventoryError {
        file: file.clone(),
        line: None,
        reason: format!("cannot read the inventory file: {e}"),
    })?;
    Inventory::parse(&text, &file)
}
