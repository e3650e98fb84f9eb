//! The secret scan: no token, claim code, key or credential may appear in any log.
//!
//! siteboot promises that tokens, claim codes and keys never appear in logs (design notes,
//! "Identity and tokens"). Every e2e test therefore registers each secret value it creates
//! or receives (registration tokens, claim codes, batch enrollment credentials, operator
//! passwords, bearer tokens, private keys) in the [`SecretSet`] of its
//! [`TestRun`](crate::process::TestRun). When the run finishes, every captured log (each
//! process's stdout+stderr and every server log) is scanned for every registered value;
//! any hit fails the test.
//!
//! How values are matched:
//! - A plain secret ([`SecretSet::register`]) is searched for byte-for-byte, and also in
//!   its percent-encoded form when that differs (a token in a logged URL query).
//!   Values shorter than [`MIN_SECRET_LEN`] are refused: they would match by accident.
//! - An HTTP basic-auth password ([`SecretSet::register_basic_auth`]) is also searched
//!   for as the base64 `user:password` an `Authorization: Basic` header carries.
//! - A PEM or OpenSSH private key ([`SecretSet::register_pem`]) is registered as each of
//!   its base64 body lines of at least [`MIN_PEM_CHUNK_LEN`] characters, so a key that is
//!   logged partly, or re-wrapped at another line width, is still caught by its first
//!   full line. `-----BEGIN ...-----` armour lines are not secret and are skipped.
//!
//! Reports never contain a value: a [`Leak`] names the log file, the line number and the
//! secret's *name* only; [`SecretSet::redact`] replaces every value with
//! `[REDACTED:<name>]` and is applied to every log dump the harness prints, so a failing
//! test cannot spill a secret into CI output either.
//!
//! The matching core ([`find_leaks`]) is pure: byte values in, findings out.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Shortest plain secret accepted (shorter values would match ordinary log text).
pub const MIN_SECRET_LEN: usize = 8;
/// Shortest base64 line of a PEM body that is registered as a chunk.
pub const MIN_PEM_CHUNK_LEN: usize = 16;

/// One value to look for, under a name that may be printed.
#[derive(Clone)]
pub struct Needle {
    /// What the value is ("registration-token", "deploy-key#3"); safe to print.
    pub name: String,
    /// The secret bytes; never printed.
    pub value: Vec<u8>,
}

impl fmt::Debug for Needle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Needle({}, [REDACTED])", self.name)
    }
}

/// A registered secret found in a haystack: which one and on which line (1-based).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub secret: String,
    pub line: usize,
}

/// A registered secret found in a log file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leak {
    pub file: PathBuf,
    pub secret: String,
    pub line: usize,
}

impl fmt::Display for Leak {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "secret `{}` appears in {} line {}",
            self.secret,
            self.file.display(),
            self.line
        )
    }
}

/// Renders a leak report for a panic message: names and places only, never values.
pub fn report(leaks: &[Leak]) -> String {
    let mut out = format!("{} secret leak(s) in captured logs:\n", leaks.len());
    for leak in leaks {
        out.push_str("  - ");
        out.push_str(&leak.to_string());
        out.push('\n');
    }
    out
}

fn line_of(haystack: &[u8], offset: usize) -> usize {
    1 + haystack[..offset].iter().filter(|b| **b == b'\n').count()
}

fn positions<'a>(haystack: &'a [u8], needle: &'a [u8]) -> impl Iterator<Item = usize> + 'a {
    let n = needle.len();
    (0..haystack.len().saturating_sub(n.saturating_sub(1)))
        .filter(move |&i| n > 0 && &haystack[i..i + n] == needle)
}

/// Every occurrence of every needle in `haystack`, one finding per (secret, line), in
/// line order.
pub fn find_leaks(needles: &[Needle], haystack: &[u8]) -> Vec<Finding> {
    let mut found: Vec<Finding> = needles
        .iter()
        .flat_map(|needle| {
            positions(haystack, &needle.value).map(|at| Finding {
                secret: needle.name.clone(),
                line: line_of(haystack, at),
            })
        })
        .collect();
    found.sort_by(|a, b| (a.line, &a.secret).cmp(&(b.line, &b.secret)));
    found.dedup();
    found
}

/// Replaces every occurrence of every needle by `[REDACTED:<name>]`. Longer needles go
/// first so a value that contains another is redacted whole.
pub fn redact_bytes(needles: &[Needle], text: &[u8]) -> Vec<u8> {
    let mut sorted: Vec<&Needle> = needles.iter().filter(|n| !n.value.is_empty()).collect();
    sorted.sort_by_key(|n| std::cmp::Reverse(n.value.len()));
    let mut out = text.to_vec();
    for needle in sorted {
        let mut next = Vec::with_capacity(out.len());
        let mut i = 0;
        while i < out.len() {
            if out[i..].starts_with(&needle.value) {
                next.extend_from_slice(format!("[REDACTED:{}]", needle.name).as_bytes());
                i += needle.value.len();
            } else {
                next.push(out[i]);
                i += 1;
            }
        }
        out = next;
    }
    out
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn percent_encode(value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len());
    for &b in value {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b);
        } else {
            out.extend_from_slice(format!("%{b:02X}").as_bytes());
        }
    }
    out
}

/// The needles one plain secret expands to.
pub fn plain_needles(name: &str, value: &[u8]) -> Vec<Needle> {
    let mut needles = vec![Needle {
        name: name.to_owned(),
        value: value.to_vec(),
    }];
    let encoded = percent_encode(value);
    if encoded != value {
        needles.push(Needle {
            name: name.to_owned(),
            value: encoded,
        });
    }
    needles
}

/// The needles a PEM / OpenSSH key expands to: one per base64 body line of at least
/// [`MIN_PEM_CHUNK_LEN`] characters, named `<name>#<n>`.
pub fn pem_needles(name: &str, pem: &str) -> Vec<Needle> {
    pem.lines()
        .map(str::trim)
        .filter(|l| !l.starts_with("-----") && !l.contains(':'))
        .filter(|l| l.len() >= MIN_PEM_CHUNK_LEN)
        .enumerate()
        .map(|(i, l)| Needle {
            name: format!("{name}#{}", i + 1),
            value: l.as_bytes().to_vec(),
        })
        .collect()
}

/// The secrets of one test run. Registration takes `&self` so every part of a test can
/// register through a shared reference.
#[derive(Default)]
pub struct SecretSet {
    needles: Mutex<Vec<Needle>>,
}

impl fmt::Debug for SecretSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<String> = self.needles().into_iter().map(|n| n.name).collect();
        f.debug_struct("SecretSet").field("names", &names).finish()
    }
}

impl SecretSet {
    pub fn new() -> Self {
        Self::default()
    }

    fn push(&self, needles: Vec<Needle>) {
        self.needles
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(needles);
    }

    /// A snapshot of every needle registered so far.
    pub fn needles(&self) -> Vec<Needle> {
        self.needles
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Registers a plain secret (token, claim code, password, credential).
    ///
    /// # Panics
    /// When the value is shorter than [`MIN_SECRET_LEN`] bytes: that is a test bug (the
    /// value would match unrelated log text), and the panic names the secret, not its value.
    pub fn register(&self, name: &str, value: impl AsRef<[u8]>) {
        let value = value.as_ref();
        assert!(
            value.len() >= MIN_SECRET_LEN,
            "secret `{name}` is shorter than {MIN_SECRET_LEN} bytes; register a longer value"
        );
        self.push(plain_needles(name, value));
    }

    /// Registers a PEM or OpenSSH-armoured private key by its body lines.
    ///
    /// # Panics
    /// When the text has no body line of at least [`MIN_PEM_CHUNK_LEN`] characters.
    pub fn register_pem(&self, name: &str, pem: &str) {
        let needles = pem_needles(name, pem);
        assert!(
            !needles.is_empty(),
            "secret `{name}` has no PEM body line to register"
        );
        self.push(needles);
    }

    /// Registers an HTTP basic-auth password and the `Authorization` header value it
    /// travels as (`base64("user:password")`), so a logged header is caught too.
    pub fn register_basic_auth(&self, name: &str, user: &str, password: &str) {
        use base64::Engine as _;
        self.register(name, password);
        let header = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        self.push(plain_needles(
            &format!("{name} (basic auth header)"),
            header.as_bytes(),
        ));
    }

    /// Every registered secret found in `text`.
    pub fn scan_bytes(&self, text: &[u8]) -> Vec<Finding> {
        find_leaks(&self.needles(), text)
    }

    /// Every registered secret found in the given files; unreadable files (not yet
    /// created by a process that never started) are skipped.
    pub fn scan_files<'a>(&self, files: impl IntoIterator<Item = &'a Path>) -> Vec<Leak> {
        let needles = self.needles();
        let mut leaks = Vec::new();
        for file in files {
            let Ok(text) = std::fs::read(file) else {
                continue;
            };
            leaks.extend(find_leaks(&needles, &text).into_iter().map(|f| Leak {
                file: file.to_path_buf(),
                secret: f.secret,
                line: f.line,
            }));
        }
        leaks
    }

    /// `text` with every registered value replaced by `[REDACTED:<name>]`.
    pub fn redact(&self, text: &str) -> String {
        String::from_utf8_lossy(&redact_bytes(&self.needles(), text.as_bytes())).into_owned()
    }
}

#[cfg(test)]
mod tests;
