//! The data directory: everything the agent must remember across restarts, each file
//! written atomically (temp file, fsync, rename, fsync of the directory), so a power cut
//! at any point leaves either the old or the new content, never a torn file.
//!
//! Files (all in `dataDir`, the directory itself 0700):
//! `key.pem` (0600) key of a registration in progress; `pending.json` (0600) pending id and
//! poll secret; `identity.pem` (0600) client certificate chain + its key, swapped as one
//! file on renewal; `ca.pem`; `registered.json` (the marker written last);
//! `assignment.json`; `status.json`; `inventory.json`; `last-good.json`; `revoked.json`;
//! `checkout/` (the Git working copy).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Serialize;

/// Key of a registration in progress.
pub const KEY: &str = "key.pem";
/// Pending registration (id + poll secret).
pub const PENDING: &str = "pending.json";
/// Client certificate chain followed by its private key.
pub const IDENTITY: &str = "identity.pem";
/// CA bundle returned by the service.
pub const CA: &str = "ca.pem";
/// Registered marker: device and site ids. Written last.
pub const REGISTERED: &str = "registered.json";
/// The current assignment.
pub const ASSIGNMENT: &str = "assignment.json";
/// Local status, for humans and `siteboot-agent status`.
pub const STATUS: &str = "status.json";
/// Objects the agent may have created (prune candidates).
pub const INVENTORY: &str = "inventory.json";
/// The last successfully applied rendered set.
pub const LAST_GOOD: &str = "last-good.json";
/// Marker: the service said this device is revoked.
pub const REVOKED: &str = "revoked.json";
/// Git working copy.
pub const CHECKOUT: &str = "checkout";

/// Failures reading or writing the data directory.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Filesystem error on a named file.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// Cause.
        #[source]
        source: io::Error,
    },
    /// A state file is not valid JSON of the expected shape.
    #[error("state file {path} is corrupt: {reason}; move it away to start that step over")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Parser message.
        reason: String,
    },
}

/// The data directory.
#[derive(Debug, Clone)]
pub struct DataDir {
    root: PathBuf,
}

impl DataDir {
    /// Opens (creating, mode 0700) the directory.
    pub fn open(root: impl Into<PathBuf>) -> Result<DataDir, StoreError> {
        let root = root.into();
        let io = |source| StoreError::Io {
            action: "create data directory",
            path: root.clone(),
            source,
        };
        fs::create_dir_all(&root).map_err(io)?;
        fs::set_permissions(&root, fs::Permissions::from_mode(0o700)).map_err(io)?;
        Ok(DataDir { root })
    }

    /// Opens without creating (read-only commands).
    pub fn existing(root: impl Into<PathBuf>) -> DataDir {
        DataDir { root: root.into() }
    }

    /// The directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Path of a file in the directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    /// True when the file exists.
    pub fn exists(&self, name: &str) -> bool {
        self.path(name).exists()
    }

    /// Writes `bytes` to `name` atomically with `mode`.
    pub fn write_atomic(&self, name: &str, bytes: &[u8], mode: u32) -> Result<(), StoreError> {
        write_atomic(&self.path(name), bytes, mode)
    }

    /// Reads a file, `None` when absent.
    pub fn read(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let path = self.path(name);
        match fs::read(&path) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(StoreError::Io {
                action: "read",
                path,
                source,
            }),
        }
    }

    /// Reads and parses a JSON file, `None` when absent.
    pub fn read_json<T: DeserializeOwned>(&self, name: &str) -> Result<Option<T>, StoreError> {
        match self.read(name)? {
            None => Ok(None),
            Some(bytes) => {
                serde_json::from_slice(&bytes)
                    .map(Some)
                    .map_err(|e| StoreError::Corrupt {
                        path: self.path(name),
                        reason: e.to_string(),
                    })
            }
        }
    }

    /// Writes a JSON file atomically (0600: state may hold secrets such as poll secrets).
    pub fn write_json<T: Serialize>(&self, name: &str, value: &T) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec_pretty(value).map_err(|e| StoreError::Corrupt {
            path: self.path(name),
            reason: e.to_string(),
        })?;
        self.write_atomic(name, &bytes, 0o600)
    }

    /// Removes a file; absent is fine. The directory is synced so the removal is durable.
    pub fn remove(&self, name: &str) -> Result<(), StoreError> {
        remove_durably(&self.path(name))
    }
}

/// Removes `path` (absent is fine) and syncs its directory.
pub fn remove_durably(path: &Path) -> Result<(), StoreError> {
    match fs::remove_file(path) {
        Ok(()) => sync_dir(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(StoreError::Io {
            action: "remove",
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Temp file in the same directory, write, fsync, rename over `path`, fsync the directory.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<(), StoreError> {
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    let io = |action, source| StoreError::Io {
        action,
        path: path.to_path_buf(),
        source,
    };
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .map_err(|e| io("create temporary file for", e))?;
    // `mode` applies only at creation; a stale temp file keeps its old mode otherwise.
    f.set_permissions(fs::Permissions::from_mode(mode))
        .map_err(|e| io("set permissions of", e))?;
    f.write_all(bytes).map_err(|e| io("write", e))?;
    f.sync_all().map_err(|e| io("fsync", e))?;
    drop(f);
    fs::rename(&tmp, path).map_err(|e| io("rename into place", e))?;
    sync_dir(path)
}

fn sync_dir(path: &Path) -> Result<(), StoreError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| StoreError::Io {
            action: "fsync directory of",
            path: path.to_path_buf(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_and_sets_mode() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::open(tmp.path().join("d")).unwrap();
        dir.write_atomic("k", b"one", 0o600).unwrap();
        dir.write_atomic("k", b"two", 0o600).unwrap();
        assert_eq!(dir.read("k").unwrap().unwrap(), b"two");
        let mode = fs::metadata(dir.path("k")).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let dmode = fs::metadata(dir.root()).unwrap().permissions().mode() & 0o777;
        assert_eq!(dmode, 0o700);
        assert_eq!(
            fs::read_dir(dir.root()).unwrap().count(),
            1,
            "no temp file left"
        );
        dir.remove("k").unwrap();
        dir.remove("k").unwrap();
        assert!(dir.read("k").unwrap().is_none());
        dir.write_atomic("bad.json", b"{", 0o600).unwrap();
        let err = dir.read_json::<serde_json::Value>("bad.json").unwrap_err();
        assert!(err.to_string().contains("is corrupt"), "{err}");
    }
}
