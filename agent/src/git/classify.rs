//! Turn a gix error chain into a typed [`FetchError`]: unreachable (offline) versus
//! authentication, TLS, missing repository, or a protocol failure.

use std::error::Error as StdError;
use std::io::ErrorKind;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use siteboot_wire::assignment::GitAuth;

use super::error::{scrub, FetchError};

/// What we know about the attempt besides the error itself.
pub(crate) struct Context<'a> {
    pub display: &'a str,
    /// Set when the server asked for credentials (HTTP 401).
    pub auth_asked: Arc<AtomicBool>,
    /// The remote process's stderr (file and ssh transports).
    pub stderr: Option<Arc<Mutex<String>>>,
    pub secrets: &'a [String],
}

/// The secret strings of `auth`, to scrub from messages.
pub(crate) fn secrets(auth: Option<&GitAuth>) -> Vec<String> {
    match auth {
        Some(GitAuth::Token { token, .. }) => vec![token.expose().to_owned()],
        Some(GitAuth::Basic { password, .. }) => vec![password.expose().to_owned()],
        Some(GitAuth::Ssh { private_key, .. }) => vec![private_key.expose().to_owned()],
        Some(GitAuth::Ca { .. }) | None => Vec::new(),
    }
}

/// The broad kind found in an error chain.
#[derive(Debug, PartialEq, Eq)]
enum Kind {
    Unreachable,
    Auth,
    Tls,
    NotFound,
}

fn io_kind(kind: ErrorKind) -> Option<Kind> {
    match kind {
        ErrorKind::ConnectionRefused
        | ErrorKind::ConnectionReset
        | ErrorKind::ConnectionAborted
        | ErrorKind::TimedOut
        | ErrorKind::HostUnreachable
        | ErrorKind::NetworkUnreachable
        | ErrorKind::NetworkDown
        | ErrorKind::AddrNotAvailable => Some(Kind::Unreachable),
        ErrorKind::PermissionDenied => Some(Kind::Auth),
        _ => None,
    }
}

/// Inspect one error and everything beneath it.
fn kind_of(err: &(dyn StdError + 'static)) -> Option<Kind> {
    let mut cur: Option<&(dyn StdError + 'static)> = Some(err);
    let mut found = None;
    while let Some(e) = cur {
        if e.downcast_ref::<rustls::Error>().is_some() {
            return Some(Kind::Tls);
        }
        if let Some(re) = e.downcast_ref::<reqwest::Error>() {
            if let Some(status) = re.status() {
                match status.as_u16() {
                    401 | 403 => return Some(Kind::Auth),
                    404 => return Some(Kind::NotFound),
                    _ => {}
                }
            }
            if re.is_connect() || re.is_timeout() {
                found = found.or(Some(Kind::Unreachable));
            }
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            if let Some(inner) = io.get_ref() {
                if let Some(k @ (Kind::Tls | Kind::Auth | Kind::NotFound)) = kind_of(inner) {
                    return Some(k);
                }
            }
            if let Some(k) = io_kind(io.kind()) {
                found = found.or(Some(k));
            }
        }
        cur = e.source();
    }
    found
}

impl Context<'_> {
    /// Classify a gix error.
    pub(crate) fn classify(&self, err: &gix::Error) -> FetchError {
        let secrets: Vec<&str> = self.secrets.iter().map(String::as_str).collect();
        let mut parts: Vec<String> = Vec::new();
        let mut kind = None;
        for e in err.iter_errors() {
            let text = e.to_string();
            if !parts.iter().any(|p| p.contains(&text)) {
                parts.push(text);
            }
            match (kind_of(e), &kind) {
                (Some(k @ (Kind::Tls | Kind::Auth | Kind::NotFound)), _) => {
                    kind = Some(k);
                    break;
                }
                (Some(k), None) => kind = Some(k),
                _ => {}
            }
        }
        let stderr = self
            .stderr
            .as_ref()
            .map(|s| s.lock().expect("lock").trim().to_owned())
            .unwrap_or_default();
        if !stderr.is_empty() {
            parts.push(format!("remote said: {stderr}"));
        }
        let mut reason = parts.join(": ");
        if reason.len() > 800 {
            let mut cut = 800;
            while !reason.is_char_boundary(cut) {
                cut -= 1;
            }
            reason.truncate(cut);
        }
        let reason = scrub(&reason, &secrets);
        let url = self.display.to_owned();
        let lower = reason.to_lowercase();
        if self.auth_asked.load(Ordering::SeqCst) {
            return FetchError::AuthRejected {
                url,
                reason: "the server asked for credentials (http 401)".into(),
            };
        }
        if lower.contains("not a git repository")
            || lower.contains("does not appear to be a git repository")
            || lower.contains("repository not exported")
        {
            return FetchError::RepositoryNotFound { url, reason };
        }
        match kind {
            Some(Kind::Unreachable) => FetchError::Unreachable { url, reason },
            Some(Kind::Auth) => FetchError::AuthRejected { url, reason },
            Some(Kind::Tls) => FetchError::Tls { url, reason },
            Some(Kind::NotFound) => FetchError::RepositoryNotFound { url, reason },
            None => FetchError::Protocol { url, reason },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_kinds_table() {
        let cases = [
            (ErrorKind::ConnectionRefused, Some(Kind::Unreachable)),
            (ErrorKind::TimedOut, Some(Kind::Unreachable)),
            (ErrorKind::PermissionDenied, Some(Kind::Auth)),
            (ErrorKind::InvalidData, None),
            (ErrorKind::UnexpectedEof, None),
        ];
        for (input, want) in cases {
            let err = std::io::Error::from(input);
            assert_eq!(kind_of(&err), want, "{input:?}");
        }
    }

    #[test]
    fn secrets_cover_every_credential() {
        let auth = GitAuth::Token {
            token: siteboot_wire::secret::SecretString::new("t0ken"),
            ca_pem: None,
        };
        assert_eq!(secrets(Some(&auth)), vec!["t0ken".to_owned()]);
        assert!(secrets(None).is_empty());
    }
}
