//! The embedded data directory: where the service keeps its database, CA, server
//! certificate, operator credential, enrollment batches and Git credentials.
//!
//! First start creates what is missing (secrets and keys with mode 0600, written
//! atomically via a temporary file and rename); later starts load what is there. The server
//! certificate is re-issued on every start so `--server-name`/`--san` changes take effect.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use siteboot_wire::SecretString;

use crate::ca::{CaError, IssuedPair, ServiceCa};
use crate::operator_auth::OperatorCredential;

/// Default data directory, relative to the working directory.
pub const DEFAULT_DATA_DIR: &str = ".siteboot/registration";
/// Name of the enrollment batch created on first start.
pub const DEMO_BATCH: &str = "demo";

/// Why the data directory could not be prepared. Messages name the path, never contents.
#[derive(Debug, thiserror::Error)]
pub enum DataDirError {
    /// Filesystem error.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The path.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A key or credential file is readable by group or others.
    #[error("{0} is readable by other users: run chmod 600 on it")]
    Permissions(PathBuf),
    /// The CA could not be generated, loaded or used.
    #[error(transparent)]
    Ca(#[from] CaError),
    /// `batches.yaml` is not a map of batch name to secret hash.
    #[error("{path}: {reason}")]
    Batches {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

/// Paths inside a data directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataDir {
    /// The directory.
    pub root: PathBuf,
    /// SQLite database (reg-core's store).
    pub database: PathBuf,
    /// CA certificate (PEM), the bundle clients trust.
    pub ca_cert: PathBuf,
    /// CA key (PEM, 0600).
    pub ca_key: PathBuf,
    /// Server certificate (PEM).
    pub server_cert: PathBuf,
    /// Server key (PEM, 0600).
    pub server_key: PathBuf,
    /// Operator credential (0600).
    pub operator_token: PathBuf,
    /// Enrollment batches: `name: <sha256 hex of the batch secret>`.
    pub batches: PathBuf,
    /// The demo batch secret (0600), created on first start.
    pub demo_batch_secret: PathBuf,
    /// Git credentials by name (0600).
    pub git_credentials: PathBuf,
}

/// What bootstrapping produced.
#[derive(Debug)]
pub struct Prepared {
    /// The loaded CA.
    pub ca: ServiceCa,
    /// This start's server certificate and key.
    pub server: IssuedPair,
    /// The operator credential.
    pub operator: OperatorCredential,
    /// Enrollment batches (name -> secret hash).
    pub batches: BTreeMap<String, String>,
    /// Files created by this start (for the banner).
    pub created: Vec<PathBuf>,
}

impl DataDir {
    /// The layout under `root` (nothing is touched).
    pub fn at(root: impl Into<PathBuf>) -> Self {
        let root = root.into();
        let p = |name: &str| root.join(name);
        Self {
            database: p("registration.db"),
            ca_cert: p("ca.pem"),
            ca_key: p("ca-key.pem"),
            server_cert: p("server.pem"),
            server_key: p("server-key.pem"),
            operator_token: p("operator-token"),
            batches: p("batches.yaml"),
            demo_batch_secret: p("demo-batch-secret"),
            git_credentials: p("git-credentials.yaml"),
            root,
        }
    }

    /// Creates what is missing and loads the rest.
    pub fn prepare(
        &self,
        server_names: &[String],
        now: DateTime<Utc>,
    ) -> Result<Prepared, DataDirError> {
        let mut created = Vec::new();
        fs::create_dir_all(&self.root).map_err(io("create data directory", &self.root))?;
        let _ = fs::set_permissions(&self.root, fs::Permissions::from_mode(0o700));

        let ca = if self.ca_key.exists() && self.ca_cert.exists() {
            check_private(&self.ca_key)?;
            let cert = read(&self.ca_cert)?;
            let key = read(&self.ca_key)?;
            ServiceCa::from_pem(&cert, &key)?
        } else {
            let (ca, pair) = ServiceCa::generate(now)?;
            write_atomic(&self.ca_key, pair.key_pem.as_bytes(), 0o600)?;
            write_atomic(&self.ca_cert, pair.cert_pem.as_bytes(), 0o644)?;
            created.extend([self.ca_cert.clone(), self.ca_key.clone()]);
            ca
        };

        let server = ca.issue_server(server_names, now, rand::random())?;
        write_atomic(&self.server_key, server.key_pem.as_bytes(), 0o600)?;
        write_atomic(&self.server_cert, server.cert_pem.as_bytes(), 0o644)?;

        let operator = if self.operator_token.exists() {
            check_private(&self.operator_token)?;
            OperatorCredential::new(&read(&self.operator_token)?)
        } else {
            let cred = OperatorCredential::from_random(&rand::random());
            let text = format!("{}\n", cred.secret().expose());
            write_atomic(&self.operator_token, text.as_bytes(), 0o600)?;
            created.push(self.operator_token.clone());
            cred
        };

        let mut batches = if self.batches.exists() {
            self.load_batches()?
        } else {
            BTreeMap::new()
        };
        if !self.batches.exists() {
            let secret = batch_secret(&rand::random());
            batches.insert(DEMO_BATCH.to_string(), secret.sha256_hex());
            write_atomic(
                &self.demo_batch_secret,
                format!("{}\n", secret.expose()).as_bytes(),
                0o600,
            )?;
            self.save_batches(&batches)?;
            created.extend([self.batches.clone(), self.demo_batch_secret.clone()]);
        }

        if !self.git_credentials.exists() {
            let text = "# Git credentials by name, referenced by the inventory's authRef.\n\
                        # Kept out of the inventory so the inventory can live in Git.\n{}\n";
            write_atomic(&self.git_credentials, text.as_bytes(), 0o600)?;
            created.push(self.git_credentials.clone());
        }

        Ok(Prepared {
            ca,
            server,
            operator,
            batches,
            created,
        })
    }

    /// Reads `batches.yaml`.
    pub fn load_batches(&self) -> Result<BTreeMap<String, String>, DataDirError> {
        let text = read(&self.batches)?;
        let map: BTreeMap<String, String> =
            serde_norway::from_str(&text).map_err(|e| DataDirError::Batches {
                path: self.batches.clone(),
                reason: format!("expected a map of batch name to sha-256 hex: {e}"),
            })?;
        for (name, hash) in &map {
            if hash.len() != 64 || !hash.chars().all(|c| c.is_ascii_hexdigit()) {
                return Err(DataDirError::Batches {
                    path: self.batches.clone(),
                    reason: format!(
                        "batch {name:?}: the value must be the 64-hex sha-256 of the secret"
                    ),
                });
            }
        }
        Ok(map)
    }

    fn save_batches(&self, batches: &BTreeMap<String, String>) -> Result<(), DataDirError> {
        let mut text = String::from(
            "# Enrollment batches: name -> sha-256 (hex) of the batch secret. Secrets are not kept here.\n",
        );
        for (name, hash) in batches {
            text.push_str(&format!(
                "{}: \"{hash}\"\n",
                serde_json::to_string(name).unwrap_or_default()
            ));
        }
        write_atomic(&self.batches, text.as_bytes(), 0o600)
    }

    /// Adds (or replaces) a batch; writes its secret to `<root>/batch-<name>.secret` (0600)
    /// and returns that path. The secret itself is never printed.
    pub fn add_batch(&self, name: &str) -> Result<PathBuf, DataDirError> {
        let ok = !name.is_empty()
            && name.len() <= 64
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
        if !ok {
            return Err(DataDirError::Batches {
                path: self.batches.clone(),
                reason: format!(
                    "batch name {name:?} must be 1-64 characters of a-z, 0-9, '-', '_', '.'"
                ),
            });
        }
        fs::create_dir_all(&self.root).map_err(io("create data directory", &self.root))?;
        let mut batches = if self.batches.exists() {
            self.load_batches()?
        } else {
            BTreeMap::new()
        };
        let secret = batch_secret(&rand::random());
        let path = self.root.join(format!("batch-{name}.secret"));
        write_atomic(&path, format!("{}\n", secret.expose()).as_bytes(), 0o600)?;
        batches.insert(name.to_string(), secret.sha256_hex());
        self.save_batches(&batches)?;
        Ok(path)
    }
}

/// A batch secret from 20 random bytes (base32, 32 symbols).
pub fn batch_secret(random: &[u8; 20]) -> SecretString {
    SecretString::new(siteboot_wire::crockford::encode_bits(random, 32))
}

fn io<'a>(
    action: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> DataDirError + 'a {
    move |source| DataDirError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

fn read(path: &Path) -> Result<String, DataDirError> {
    fs::read_to_string(path).map_err(io("read", path))
}

fn check_private(path: &Path) -> Result<(), DataDirError> {
    let meta = fs::metadata(path).map_err(io("inspect", path))?;
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(DataDirError::Permissions(path.to_path_buf()));
    }
    Ok(())
}

/// Writes via a temporary file created with `mode`, fsyncs, and renames into place.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<(), DataDirError> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .map_err(io("create", &tmp))?;
    f.write_all(bytes).map_err(io("write", &tmp))?;
    f.sync_all().map_err(io("sync", &tmp))?;
    fs::set_permissions(&tmp, fs::Permissions::from_mode(mode)).map_err(io("chmod", &tmp))?;
    fs::rename(&tmp, path).map_err(io("rename into", path))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Vec<String> {
        vec!["localhost".into(), "127.0.0.1".into()]
    }

    #[test]
    fn first_start_creates_private_files_and_second_start_reuses_them() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::at(tmp.path().join("data"));
        let first = dir.prepare(&names(), Utc::now()).unwrap();
        for p in [
            &dir.ca_key,
            &dir.operator_token,
            &dir.demo_batch_secret,
            &dir.server_key,
        ] {
            let mode = fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", p.display());
        }
        assert!(first.created.contains(&dir.ca_key));
        assert!(first.batches.contains_key(DEMO_BATCH));
        let second = dir.prepare(&names(), Utc::now()).unwrap();
        assert!(second.created.is_empty());
        assert_eq!(second.ca.cert_pem(), first.ca.cert_pem());
        assert_eq!(second.operator.secret(), first.operator.secret());
        assert_eq!(second.batches, first.batches);
        let demo = fs::read_to_string(&dir.demo_batch_secret).unwrap();
        assert_eq!(
            SecretString::new(demo.trim()).sha256_hex(),
            first.batches[DEMO_BATCH]
        );
    }

    #[test]
    fn refuses_a_world_readable_ca_key_and_adds_batches() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::at(tmp.path());
        dir.prepare(&names(), Utc::now()).unwrap();
        let path = dir.add_batch("2026-w14-lineA").unwrap();
        assert!(dir.load_batches().unwrap().contains_key("2026-w14-lineA"));
        assert!(fs::read_to_string(path).unwrap().trim().len() == 32);
        assert!(dir.add_batch("bad name").is_err());
        fs::set_permissions(&dir.ca_key, fs::Permissions::from_mode(0o644)).unwrap();
        let err = dir.prepare(&names(), Utc::now()).unwrap_err().to_string();
        assert!(err.contains("chmod 600"), "{err}");
    }
}
