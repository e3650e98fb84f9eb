//! The operator credential: a random bearer token kept in the data directory (mode 0600)
//! and compared in constant time. The operator API is never anonymous.

use siteboot_wire::secret::ct_eq;
use siteboot_wire::{ApiError, ErrorCode, SecretString};

/// Prefix that makes an operator credential recognisable (e.g. by secret scanners).
pub const PREFIX: &str = "sbop1_";

/// The operator credential.
#[derive(Clone, Debug)]
pub struct OperatorCredential(SecretString);

impl OperatorCredential {
    /// Wraps a stored credential (surrounding whitespace is ignored).
    pub fn new(value: &str) -> Self {
        Self(SecretString::new(value.trim()))
    }

    /// Mints a credential from 32 caller-supplied random bytes.
    pub fn from_random(random: &[u8; 32]) -> Self {
        use base64::Engine;
        let body = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random);
        Self(SecretString::new(format!("{PREFIX}{body}")))
    }

    /// The value, to write to the credential file.
    pub fn secret(&self) -> &SecretString {
        &self.0
    }

    /// Checks an `Authorization` header value; the same error for missing and wrong.
    pub fn check(&self, authorization: Option<&[u8]>) -> Result<(), ApiError> {
        let presented = authorization
            .and_then(|h| h.strip_prefix(b"Bearer ".as_slice()))
            .map(|v| v.trim_ascii());
        match presented {
            Some(v) if !self.0.is_empty() && ct_eq(v, self.0.expose().as_bytes()) => Ok(()),
            _ => Err(unauthenticated()),
        }
    }
}

/// The one 401 body of the operator API.
pub fn unauthenticated() -> ApiError {
    ApiError::new(
        ErrorCode::Unauthenticated,
        "operator credential missing or wrong: send Authorization: Bearer <contents of the data directory's operator-token file>",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_table() {
        let cred = OperatorCredential::from_random(&[9; 32]);
        let good = format!("Bearer {}", cred.secret().expose());
        let cases: Vec<(Option<Vec<u8>>, bool)> = vec![
            (Some(good.clone().into_bytes()), true),
            (Some(format!("{good} ").into_bytes()), true),
            (None, false),
            (Some(b"Bearer ".to_vec()), false),
            (Some(cred.secret().expose().as_bytes().to_vec()), false),
            (Some(format!("{good}x").into_bytes()), false),
            (Some(b"Basic abc".to_vec()), false),
        ];
        for (header, ok) in cases {
            assert_eq!(cred.check(header.as_deref()).is_ok(), ok, "{header:?}");
        }
        assert!(cred.secret().expose().starts_with(PREFIX));
        assert!(!format!("{cred:?}").contains(&cred.secret().expose()[6..]));
    }

    #[test]
    fn empty_credential_never_matches() {
        let cred = OperatorCredential::new("  ");
        assert!(cred.check(Some(b"Bearer ")).is_err());
    }
}
