//! Typed fetch errors, their offline/failed category, and URL redaction.
//!
//! Messages are lower-case, say what to check, and never carry credentials: URLs are
//! shown without userinfo, and known secrets are scrubbed from wrapped error text.

/// How the agent should report a fetch error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCategory {
    /// The Git server could not be reached (connection refused, timeout, DNS, network
    /// down): report `offline`, keep the last applied revision, retry later.
    Offline,
    /// Everything else (bad credentials, unknown branch, refused host key, corrupt data,
    /// bad configuration): report as a failed attempt.
    Failed,
}

/// A failed fetch.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The server could not be reached.
    #[error("git server {url} is unreachable: {reason}; check the network path and that the server is up")]
    Unreachable {
        /// Redacted URL.
        url: String,
        /// What failed (connect refused, timeout, ...).
        reason: String,
    },
    /// The server refused our credentials (or asked for credentials we do not have).
    #[error("git server {url} rejected the credentials: {reason}; check the assignment's git credential")]
    AuthRejected {
        /// Redacted URL.
        url: String,
        /// Server's answer.
        reason: String,
    },
    /// The SSH server presented a host key other than the pinned one.
    #[error("ssh host key of {host} does not match the pinned key: expected {expected}, server offered {offered}; refusing to connect")]
    HostKeyMismatch {
        /// Host and port.
        host: String,
        /// SHA-256 fingerprint of the pinned key.
        expected: String,
        /// SHA-256 fingerprint of the presented key (or "unknown").
        offered: String,
    },
    /// TLS setup or handshake failed (bad CA bundle, untrusted certificate).
    #[error("tls with git server {url} failed: {reason}; check the assignment's ca bundle")]
    Tls {
        /// Redacted URL.
        url: String,
        /// What failed.
        reason: String,
    },
    /// The assigned branch does not exist on the server.
    #[error("branch {branch:?} not found at {url}; check the site's revision policy")]
    BranchNotFound {
        /// Redacted URL.
        url: String,
        /// Branch name.
        branch: String,
    },
    /// The repository does not exist or is not readable.
    #[error("repository {url} not found: {reason}")]
    RepositoryNotFound {
        /// Redacted URL.
        url: String,
        /// Server's answer.
        reason: String,
    },
    /// The source or paths in the assignment are unusable.
    #[error("invalid git source: {0}")]
    Config(String),
    /// The server answered but the fetch failed (protocol error, missing commit, ...).
    #[error("fetch from {url} failed: {reason}")]
    Protocol {
        /// Redacted URL.
        url: String,
        /// Flattened, scrubbed error chain.
        reason: String,
    },
    /// Local storage failed (object store, checkout directory).
    #[error("local git storage under {path} failed: {reason}; check disk space and permissions")]
    Storage {
        /// The directory involved.
        path: String,
        /// What failed.
        reason: String,
    },
}

impl FetchError {
    /// The reporting category: offline (retry, keep last good) or failed.
    pub fn category(&self) -> ErrorCategory {
        match self {
            FetchError::Unreachable { .. } => ErrorCategory::Offline,
            _ => ErrorCategory::Failed,
        }
    }

    /// Whether the agent should report `offline` rather than a failed attempt.
    pub fn is_offline(&self) -> bool {
        self.category() == ErrorCategory::Offline
    }

    pub(crate) fn storage(path: &std::path::Path, err: impl std::fmt::Display) -> Self {
        FetchError::Storage {
            path: path.display().to_string(),
            reason: err.to_string(),
        }
    }
}

/// Remove `user:password@` (or `user@` with a token) from any URL-looking text.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_owned();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{}://{}", &url[..scheme_end], &rest[at + 1..]),
        None => url.to_owned(),
    }
}

/// Scrub secrets and URL userinfo out of free error text.
pub(crate) fn scrub(text: &str, secrets: &[&str]) -> String {
    let mut out = text
        .split(' ')
        .map(|word| {
            if word.contains("://") {
                redact_url(word)
            } else {
                word.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(" ");
    for secret in secrets.iter().filter(|s| s.len() >= 4) {
        out = out.replace(secret, "[redacted]");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_url_table() {
        let cases = [
            (
                "https://bot:pa55@git.example/fleet.git",
                "https://git.example/fleet.git",
            ),
            ("https://tok3n@git.example/a@b", "https://git.example/a@b"),
            (
                "ssh://git@host:22/srv/fleet.git",
                "ssh://host:22/srv/fleet.git",
            ),
            (
                "https://git.example/fleet.git",
                "https://git.example/fleet.git",
            ),
            ("git@host:fleet.git", "git@host:fleet.git"),
            ("file:///srv/fleet.git", "file:///srv/fleet.git"),
        ];
        for (input, want) in cases {
            assert_eq!(redact_url(input), want, "{input}");
        }
    }

    #[test]
    fn scrub_removes_secrets_and_userinfo() {
        let text = "GET https://bot:hunter22@h/x failed: token hunter22 bad";
        let out = scrub(text, &["hunter22"]);
        assert!(!out.contains("hunter22"), "{out}");
        assert!(out.contains("https://h/x"), "{out}");
    }

    #[test]
    fn only_unreachable_is_offline() {
        let offline = FetchError::Unreachable {
            url: "git://h/r".into(),
            reason: "connection refused".into(),
        };
        assert!(offline.is_offline());
        let failed = FetchError::AuthRejected {
            url: "https://h/r".into(),
            reason: "401".into(),
        };
        assert!(!failed.is_offline());
        assert_eq!(failed.category(), ErrorCategory::Failed);
    }
}
