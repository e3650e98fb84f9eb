//! Registration token format: `sbt1.<id>.<secret>`.
//!
//! The id (10 Crockford symbols, 50 bits) is public: stores index it, logs may name it.
//! The secret (26 Crockford symbols, 130 bits) is shown once when minted and otherwise
//! only ever stored as a SHA-256 hash. Parsing is strict so a malformed token is
//! rejected before any lookup.

use crate::crockford;
use crate::secret::SecretString;

/// Prefix and version of the token format.
pub const PREFIX: &str = "sbt1";
/// Symbols in the public id part.
pub const ID_LEN: usize = 10;
/// Symbols in the secret part (26 * 5 = 130 bits >= 128).
pub const SECRET_LEN: usize = 26;
/// Random bytes needed to mint one token (id and secret).
pub const RANDOM_BYTES: usize = 7 + 17;

/// A parsed registration token. `Debug` and `Display` show only the id.
#[derive(Clone, PartialEq, Eq)]
pub struct RegistrationToken {
    id: String,
    secret: SecretString,
}

/// Why a presented token string is not a token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("registration token is malformed: expected sbt1.<10 symbols>.<26 symbols>")]
pub struct MalformedToken;

impl RegistrationToken {
    /// Mints a token from caller-supplied random bytes (pure: the caller owns the RNG).
    pub fn from_random(random: &[u8; RANDOM_BYTES]) -> Self {
        let id = crockford::encode_bits(&random[..7], ID_LEN);
        let secret = crockford::encode_bits(&random[7..], SECRET_LEN);
        Self {
            id,
            secret: SecretString::new(secret),
        }
    }

    /// Parses `sbt1.<id>.<secret>`; surrounding whitespace is ignored.
    pub fn parse(text: &str) -> Result<Self, MalformedToken> {
        let mut parts = text.trim().split('.');
        let (Some(prefix), Some(id), Some(secret), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(MalformedToken);
        };
        let canonical = |s: &str, len: usize| -> Result<String, MalformedToken> {
            if s.len() != len {
                return Err(MalformedToken);
            }
            let values = crockford::decode_symbols(s).map_err(|_| MalformedToken)?;
            Ok(crockford::encode_symbols(&values))
        };
        if prefix != PREFIX {
            return Err(MalformedToken);
        }
        Ok(Self {
            id: canonical(id, ID_LEN)?,
            secret: SecretString::new(canonical(secret, SECRET_LEN)?),
        })
    }

    /// The public id, safe to log.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The secret part.
    pub fn secret(&self) -> &SecretString {
        &self.secret
    }

    /// SHA-256 (hex) of the secret part: the only form a store keeps.
    pub fn secret_hash(&self) -> String {
        self.secret.sha256_hex()
    }

    /// The full token text, for the one place that hands it to a device.
    pub fn to_secret_string(&self) -> SecretString {
        SecretString::new(format!("{PREFIX}.{}.{}", self.id, self.secret.expose()))
    }
}

impl std::fmt::Debug for RegistrationToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RegistrationToken(id={}, secret=<redacted>)", self.id)
    }
}

impl std::fmt::Display for RegistrationToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "token {}", self.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> RegistrationToken {
        let mut r = [0u8; RANDOM_BYTES];
        for (i, b) in r.iter_mut().enumerate() {
            *b = (i as u8).wrapping_mul(37).wrapping_add(11);
        }
        RegistrationToken::from_random(&r)
    }

    #[test]
    fn round_trips_through_text() {
        let t = sample();
        let text = t.to_secret_string();
        let parsed = RegistrationToken::parse(text.expose()).unwrap();
        assert_eq!(parsed, t);
        assert_eq!(parsed.id().len(), ID_LEN);
        assert_eq!(parsed.secret().expose().len(), SECRET_LEN);
    }

    #[test]
    fn parse_is_forgiving_about_case_and_whitespace_only() {
        let t = sample();
        let lower = t
            .to_secret_string()
            .expose()
            .to_lowercase()
            .replace("sbt1", "sbt1");
        assert_eq!(
            RegistrationToken::parse(&format!("  {lower}\n")).unwrap(),
            t
        );
    }

    #[test]
    fn rejects_malformed_tokens() {
        let good = sample().to_secret_string().expose().to_string();
        let cases = [
            String::new(),
            "sbt1".into(),
            good.replace("sbt1", "sbt2"),
            format!("{good}.extra"),
            good[..good.len() - 1].to_string(),
            good.replacen('.', ".U", 1),
            good.replace('.', ":"),
        ];
        for c in cases {
            assert_eq!(RegistrationToken::parse(&c), Err(MalformedToken), "{c:?}");
        }
    }

    #[test]
    fn debug_and_display_hide_the_secret() {
        let t = sample();
        let secret = t.secret().expose().to_string();
        assert!(!format!("{t:?}").contains(&secret));
        assert!(!format!("{t}").contains(&secret));
        assert!(format!("{t:?}").contains(t.id()));
    }
}
