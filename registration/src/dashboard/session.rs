//! Dashboard sessions: a random session id in a cookie, held server-side (as its SHA-256)
//! with an absolute expiry. Pure apart from the mutex: every call takes `now`, and the
//! random bytes of a new id come from the caller.
//!
//! Only the hash of an id is kept, so the table never holds a usable cookie value. Lookups
//! go through a hash map keyed by that SHA-256; an attacker cannot steer a 256-bit random
//! id's hash, so the lookup's timing reveals nothing useful.

use std::collections::HashMap;
use std::sync::Mutex;

use axum::http::HeaderMap;
use base64::Engine;
use chrono::{DateTime, TimeDelta, Utc};
use sha2::{Digest, Sha256};
use siteboot_wire::SecretString;

/// Name of the session cookie.
pub const COOKIE_NAME: &str = "siteboot_session";

/// Characters in an encoded session id (32 bytes, base64url without padding).
const ID_LEN: usize = 43;

/// Above this many live sessions, expired ones are swept on the next login; past twice
/// this, the oldest are dropped (a flood of logins cannot grow memory without bound).
const MAX_SESSIONS: usize = 10_000;

/// Why a request's session was refused (for logs; every refusal leads to the login page).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SessionRefusal {
    /// No session cookie was sent.
    #[error("no session cookie")]
    Missing,
    /// The cookie is not a session id this service could have issued.
    #[error("malformed session cookie")]
    Malformed,
    /// Well-formed, but not issued here (tampered, logged out, or from before a restart).
    #[error("unknown session")]
    Unknown,
    /// The session's lifetime is over.
    #[error("session expired")]
    Expired,
}

/// Live sessions: SHA-256 of the id -> expiry.
#[derive(Debug)]
pub struct SessionStore {
    ttl: TimeDelta,
    sessions: Mutex<HashMap<[u8; 32], DateTime<Utc>>>,
}

fn digest(id: &str) -> [u8; 32] {
    Sha256::digest(id.as_bytes()).into()
}

fn well_formed(id: &str) -> bool {
    id.len() == ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl SessionStore {
    /// A store whose sessions live `ttl` from login.
    pub fn new(ttl: TimeDelta) -> Self {
        Self {
            ttl,
            sessions: Mutex::new(HashMap::new()),
        }
    }

    /// Session lifetime.
    pub fn ttl(&self) -> TimeDelta {
        self.ttl
    }

    /// Starts a session from 32 caller-supplied random bytes; returns the cookie value.
    pub fn issue(&self, random: &[u8; 32], now: DateTime<Utc>) -> SecretString {
        let id = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random);
        let mut map = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= MAX_SESSIONS {
            map.retain(|_, exp| *exp > now);
        }
        if map.len() >= 2 * MAX_SESSIONS {
            let mut by_expiry: Vec<_> = map.iter().map(|(k, v)| (*v, *k)).collect();
            by_expiry.sort();
            for (_, k) in by_expiry.into_iter().take(MAX_SESSIONS) {
                map.remove(&k);
            }
        }
        map.insert(digest(&id), now + self.ttl);
        SecretString::new(id)
    }

    /// Checks a cookie value at `now`. An expired session is forgotten.
    pub fn check(&self, cookie: Option<&str>, now: DateTime<Utc>) -> Result<(), SessionRefusal> {
        let id = cookie.ok_or(SessionRefusal::Missing)?;
        if !well_formed(id) {
            return Err(SessionRefusal::Malformed);
        }
        let key = digest(id);
        let mut map = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        match map.get(&key) {
            None => Err(SessionRefusal::Unknown),
            Some(exp) if *exp <= now => {
                map.remove(&key);
                Err(SessionRefusal::Expired)
            }
            Some(_) => Ok(()),
        }
    }

    /// Ends a session (logout). Unknown or malformed values are ignored.
    pub fn revoke(&self, cookie: Option<&str>) {
        if let Some(id) = cookie.filter(|id| well_formed(id)) {
            let mut map = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
            map.remove(&digest(id));
        }
    }

    /// Number of live (unexpired at `now`) sessions.
    pub fn live(&self, now: DateTime<Utc>) -> usize {
        let map = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        map.values().filter(|exp| **exp > now).count()
    }
}

/// The session cookie's value from the request's `Cookie` headers, if any.
pub fn cookie_value(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE_NAME)
        .map(|(_, value)| value.trim())
}

/// `Set-Cookie` value starting a session (host-only, HTTPS-only, not readable by scripts,
/// never sent on cross-site requests).
pub fn set_cookie(id: &SecretString, ttl: TimeDelta) -> String {
    format!(
        "{COOKIE_NAME}={}; HttpOnly; Secure; SameSite=Strict; Path=/; Max-Age={}",
        id.expose(),
        ttl.num_seconds().max(0)
    )
}

/// `Set-Cookie` value removing the session cookie.
pub fn clear_cookie() -> String {
    format!("{COOKIE_NAME}=; HttpOnly; Secure; SameSite=Strict; Path=/; Max-Age=0")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn session_lifecycle_table() {
        let store = SessionStore::new(TimeDelta::hours(8));
        let t0 = t("2026-11-22T08:00:00Z");
        let id = store.issue(&[7; 32], t0);
        let other = store.issue(&[8; 32], t0);
        let good = id.expose().to_string();
        let mut tampered = good.clone().into_bytes();
        tampered[10] = if tampered[10] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(tampered).unwrap();
        let too_long = format!("{good}A");
        let bad_alphabet = format!("{}+", &good[..42]);
        let rows: Vec<(
            &str,
            Option<&str>,
            DateTime<Utc>,
            Result<(), SessionRefusal>,
        )> = vec![
            ("fresh", Some(&good), t0, Ok(())),
            (
                "just before expiry",
                Some(&good),
                t("2026-11-22T15:59:59Z"),
                Ok(()),
            ),
            ("missing", None, t0, Err(SessionRefusal::Missing)),
            ("empty", Some(""), t0, Err(SessionRefusal::Malformed)),
            (
                "too long",
                Some(&too_long),
                t0,
                Err(SessionRefusal::Malformed),
            ),
            (
                "bad alphabet",
                Some(&bad_alphabet),
                t0,
                Err(SessionRefusal::Malformed),
            ),
            (
                "tampered",
                Some(&tampered),
                t0,
                Err(SessionRefusal::Unknown),
            ),
            (
                "at expiry",
                Some(&good),
                t("2026-11-22T16:00:00Z"),
                Err(SessionRefusal::Expired),
            ),
            (
                "forgotten once expired",
                Some(&good),
                t0,
                Err(SessionRefusal::Unknown),
            ),
            ("other session unaffected", Some(other.expose()), t0, Ok(())),
        ];
        for (name, cookie, now, want) in rows {
            assert_eq!(store.check(cookie, now), want, "{name}");
        }
        store.revoke(Some(other.expose()));
        assert_eq!(
            store.check(Some(other.expose()), t0),
            Err(SessionRefusal::Unknown),
            "logged out"
        );
        assert_eq!(store.live(t0), 0);
    }

    #[test]
    fn cookie_parsing_table() {
        let id = "a".repeat(43);
        let rows: Vec<(Vec<&str>, Option<&str>)> = vec![
            (vec![], None),
            (vec!["other=1"], None),
            (vec!["siteboot_session=abc"], Some("abc")),
            (vec!["a=1; siteboot_session=abc; b=2"], Some("abc")),
            (vec!["a=1", "siteboot_session=abc"], Some("abc")),
            (vec!["xsiteboot_session=abc"], None),
        ];
        for (cookies, want) in rows {
            let mut h = HeaderMap::new();
            for c in &cookies {
                h.append(axum::http::header::COOKIE, c.parse().unwrap());
            }
            assert_eq!(cookie_value(&h), want, "{cookies:?}");
        }
        let set = set_cookie(&SecretString::new(id.clone()), TimeDelta::hours(8));
        assert_eq!(
            set,
            format!(
                "siteboot_session={id}; HttpOnly; Secure; SameSite=Strict; Path=/; Max-Age=28800"
            )
        );
        assert!(clear_cookie().contains("Max-Age=0"));
    }

    #[test]
    fn sessions_are_bounded() {
        let store = SessionStore::new(TimeDelta::seconds(1));
        let t0 = t("2026-11-22T08:00:00Z");
        for i in 0..(MAX_SESSIONS as u32 + 5) {
            let mut r = [0u8; 32];
            r[..4].copy_from_slice(&i.to_be_bytes());
            store.issue(&r, t0);
        }
        // All but the last few expired by the time they were swept.
        let later = t0 + TimeDelta::seconds(2);
        store.issue(&[1; 32], later);
        assert_eq!(store.live(later), 1);
    }
}
