//! Agent configuration: the YAML file written by bootstrap data or baked into a factory
//! image (`/etc/siteboot/agent.yaml`), overridden field by field by flags and environment.
//!
//! Resolution is pure: a parsed file plus overrides in, validated [`Settings`] out; a bad
//! value yields one [`ConfigError`] naming the camelCase field.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use siteboot_wire::SecretString;

#[cfg(test)]
mod tests;

/// Default config path.
pub const DEFAULT_CONFIG: &str = "/etc/siteboot/agent.yaml";
/// Default data directory.
pub const DEFAULT_DATA_DIR: &str = "/var/lib/siteboot";

/// The file's shape (every field optional here; [`resolve`] enforces what is required).
/// Flags and environment produce the same shape and are overlaid on the file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FileConfig {
    /// `https://` URL of the registration service.
    pub registration_url: Option<String>,
    /// PEM bundle to trust for the service.
    pub ca_file: Option<PathBuf>,
    /// Optional pin: SHA-256 (hex) of a CA certificate's DER in `caFile`.
    pub ca_sha256: Option<String>,
    /// Expected site id; a different assignment is refused.
    pub site_id: Option<String>,
    /// One-time registration token file (deleted after success).
    pub token_file: Option<PathBuf>,
    /// Factory enrollment credential.
    pub enrollment: Option<EnrollmentConfig>,
    /// File holding a claim code (e.g. on a seed USB stick).
    pub claim_code_file: Option<PathBuf>,
    /// A claim code given directly.
    pub claim_code: Option<SecretString>,
    /// State directory.
    pub data_dir: Option<PathBuf>,
    /// Kubeconfig of the local cluster (absent: in-cluster config or `KUBECONFIG`).
    pub kubeconfig: Option<PathBuf>,
    /// Seconds between Git polls (default 60).
    pub poll_interval_seconds: Option<u64>,
    /// Seconds between drift repairs of the applied revision (default 300).
    pub resync_interval_seconds: Option<u64>,
    /// Seed media or directories to look for a claim file on before registering
    /// (default [`crate::seed::DEFAULT_SEED_PATHS`]; `[]` turns seeds off).
    pub seed_paths: Option<Vec<PathBuf>>,
    /// Directories where the boot system keeps copies of the bootstrap data (default
    /// [`DEFAULT_BOOTSTRAP_COPY_DIRS`]: cloud-init's instance cache). Once the one-time
    /// token is spent, files under them that hold it are deleted; `[]` turns this off.
    pub bootstrap_copy_dirs: Option<Vec<PathBuf>>,
}

/// Where cloud-init keeps the user-data it ran (`user-data.txt`, `cloud-config.txt`,
/// `obj.pkl`, ... per instance).
pub const DEFAULT_BOOTSTRAP_COPY_DIRS: &[&str] = &["/var/lib/cloud/instances"];

/// `enrollment: { batch, secretFile }`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EnrollmentConfig {
    /// Batch name.
    pub batch: Option<String>,
    /// File holding the batch secret.
    pub secret_file: Option<PathBuf>,
}

/// Where the one registration credential comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialSource {
    /// `tokenFile`.
    TokenFile(PathBuf),
    /// `enrollment`.
    Enrollment {
        /// Batch name.
        batch: String,
        /// Secret file.
        secret_file: PathBuf,
    },
    /// `claimCodeFile`.
    ClaimCodeFile(PathBuf),
    /// `claimCode`.
    ClaimCode(SecretString),
}

/// Validated settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Service base URL without a trailing slash.
    pub registration_url: String,
    /// CA bundle file.
    pub ca_file: PathBuf,
    /// Lower-case hex pin.
    pub ca_sha256: Option<String>,
    /// Expected site.
    pub site_id: Option<String>,
    /// The credential; `None` means "prompt on the console if one is needed".
    pub credential: Option<CredentialSource>,
    /// State directory.
    pub data_dir: PathBuf,
    /// Kubeconfig path.
    pub kubeconfig: Option<PathBuf>,
    /// Git poll interval (before jitter).
    pub poll_interval: Duration,
    /// Drift repair interval.
    pub resync_interval: Duration,
    /// Where to look for a seed claim (empty: never).
    pub seed_paths: Vec<PathBuf>,
    /// Where copies of the bootstrap data are scrubbed of the spent token.
    pub bootstrap_copy_dirs: Vec<PathBuf>,
}

/// A bad configuration value: one line naming the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid agent config: {field}: {reason}")]
pub struct ConfigError {
    /// camelCase field name (`enrollment.secretFile`), or the file for parse errors.
    pub field: String,
    /// What is wrong and what to write instead.
    pub reason: String,
}

fn bad(field: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError {
        field: field.into(),
        reason: reason.into(),
    }
}

impl FileConfig {
    /// Parses the YAML text of a config file.
    pub fn parse(text: &str, path: &str) -> Result<FileConfig, ConfigError> {
        if text.trim().is_empty() {
            return Ok(FileConfig::default());
        }
        serde_norway::from_str(text).map_err(|e| bad(path, e.to_string().replace('\n', " ")))
    }

    /// Overlays `over` (flags, environment) on `self` (the file). Any credential in
    /// `over` replaces the file's credential as a whole.
    pub fn overlay(mut self, over: FileConfig) -> FileConfig {
        let over_has_credential = over.token_file.is_some()
            || over.enrollment.is_some()
            || over.claim_code_file.is_some()
            || over.claim_code.is_some();
        if over_has_credential {
            self.token_file = None;
            self.enrollment = None;
            self.claim_code_file = None;
            self.claim_code = None;
        }
        let enrollment = match (self.enrollment, over.enrollment) {
            (Some(a), Some(b)) => Some(EnrollmentConfig {
                batch: b.batch.or(a.batch),
                secret_file: b.secret_file.or(a.secret_file),
            }),
            (a, b) => b.or(a),
        };
        FileConfig {
            registration_url: over.registration_url.or(self.registration_url),
            ca_file: over.ca_file.or(self.ca_file),
            ca_sha256: over.ca_sha256.or(self.ca_sha256),
            site_id: over.site_id.or(self.site_id),
            token_file: over.token_file.or(self.token_file),
            enrollment,
            claim_code_file: over.claim_code_file.or(self.claim_code_file),
            claim_code: over.claim_code.or(self.claim_code),
            data_dir: over.data_dir.or(self.data_dir),
            kubeconfig: over.kubeconfig.or(self.kubeconfig),
            poll_interval_seconds: over.poll_interval_seconds.or(self.poll_interval_seconds),
            resync_interval_seconds: over
                .resync_interval_seconds
                .or(self.resync_interval_seconds),
            seed_paths: over.seed_paths.or(self.seed_paths),
            bootstrap_copy_dirs: over.bootstrap_copy_dirs.or(self.bootstrap_copy_dirs),
        }
    }

    /// The data directory, defaulted.
    pub fn data_dir_or_default(&self) -> PathBuf {
        self.data_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR))
    }
}

/// Validates a merged configuration.
pub fn resolve(cfg: FileConfig) -> Result<Settings, ConfigError> {
    let url = cfg
        .registration_url
        .as_deref()
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .ok_or_else(|| {
            bad(
                "registrationUrl",
                "required: the https:// URL of the registration service",
            )
        })?;
    match reqwest::Url::parse(url) {
        Ok(u) if u.scheme() == "https" && u.host_str().is_some_and(|h| !h.is_empty()) => {}
        _ => {
            return Err(bad(
                "registrationUrl",
                format!("must be an https:// URL, got {url:?}"),
            ))
        }
    }
    let ca_file = cfg.ca_file.clone().ok_or_else(|| {
        bad(
            "caFile",
            "required: the PEM bundle of the CA that signed the service's certificate",
        )
    })?;
    let ca_sha256 = match &cfg.ca_sha256 {
        None => None,
        Some(pin) => {
            let pin = pin.trim().to_ascii_lowercase();
            if pin.len() != 64 || !pin.chars().all(|c| c.is_ascii_hexdigit()) {
                return Err(bad(
                    "caSha256",
                    "must be 64 hex characters (SHA-256 of the CA certificate's DER)",
                ));
            }
            Some(pin)
        }
    };
    if let Some(site) = &cfg.site_id {
        if !siteboot_wire::labels::is_valid_site_id(site) {
            return Err(bad(
                "siteId",
                format!("{site:?} is not a valid site id (a DNS label such as store-0142)"),
            ));
        }
    }
    let credential = credential(&cfg)?;
    let seconds = |field: &str, v: Option<u64>, default: u64| match v {
        None => Ok(Duration::from_secs(default)),
        Some(s) if (1..=86_400).contains(&s) => Ok(Duration::from_secs(s)),
        Some(s) => Err(bad(
            field,
            format!("{s} is out of range: use 1 to 86400 seconds"),
        )),
    };
    Ok(Settings {
        registration_url: url.trim_end_matches('/').to_string(),
        ca_file,
        ca_sha256,
        site_id: cfg.site_id.clone(),
        credential,
        data_dir: cfg.data_dir_or_default(),
        kubeconfig: cfg.kubeconfig.clone(),
        poll_interval: seconds("pollIntervalSeconds", cfg.poll_interval_seconds, 60)?,
        resync_interval: seconds("resyncIntervalSeconds", cfg.resync_interval_seconds, 300)?,
        seed_paths: cfg.seed_paths.clone().unwrap_or_else(|| {
            crate::seed::DEFAULT_SEED_PATHS
                .iter()
                .map(PathBuf::from)
                .collect()
        }),
        bootstrap_copy_dirs: cfg.bootstrap_copy_dirs.clone().unwrap_or_else(|| {
            DEFAULT_BOOTSTRAP_COPY_DIRS
                .iter()
                .map(PathBuf::from)
                .collect()
        }),
    })
}

fn credential(cfg: &FileConfig) -> Result<Option<CredentialSource>, ConfigError> {
    let mut set: Vec<&str> = Vec::new();
    if cfg.token_file.is_some() {
        set.push("tokenFile");
    }
    if cfg.enrollment.is_some() {
        set.push("enrollment");
    }
    if cfg.claim_code_file.is_some() {
        set.push("claimCodeFile");
    }
    if cfg.claim_code.is_some() {
        set.push("claimCode");
    }
    if set.len() > 1 {
        return Err(bad(
            &set.join(", "),
            "set exactly one credential source (tokenFile, enrollment, claimCodeFile or claimCode)",
        ));
    }
    Ok(if let Some(p) = &cfg.token_file {
        Some(CredentialSource::TokenFile(p.clone()))
    } else if let Some(e) = &cfg.enrollment {
        let batch = e
            .batch
            .clone()
            .filter(|b| !b.trim().is_empty())
            .ok_or_else(|| bad("enrollment.batch", "required with enrollment"))?;
        let secret_file = e
            .secret_file
            .clone()
            .ok_or_else(|| bad("enrollment.secretFile", "required with enrollment"))?;
        Some(CredentialSource::Enrollment { batch, secret_file })
    } else if let Some(p) = &cfg.claim_code_file {
        Some(CredentialSource::ClaimCodeFile(p.clone()))
    } else if let Some(code) = &cfg.claim_code {
        siteboot_wire::ClaimCode::parse(code.expose())
            // The parse error may quote a character of the code: do not echo it.
            .map_err(|_| {
                bad(
                    "claimCode",
                    "not a valid claim code XXXX-XXXX-C (check for a typo)",
                )
            })?;
        Some(CredentialSource::ClaimCode(code.clone()))
    } else {
        None
    })
}
