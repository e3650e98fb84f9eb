//! The device identity: a P-256 key generated on the box (never leaves it, files 0600),
//! the CSR sent to the service, the client certificate it signed, and when to renew.

use chrono::{DateTime, TimeZone, Utc};
use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair, PKCS_ECDSA_P256_SHA256};

use crate::store::{DataDir, StoreError, KEY};
use crate::tls::certs_from_pem;

/// Failures creating keys, CSRs or reading certificates.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// Key generation or CSR signing failed.
    #[error("generate device key or CSR: {0}")]
    Generate(String),
    /// The stored key does not parse.
    #[error("stored device key is unusable: {0}; remove {1} to start registration over")]
    StoredKey(String, String),
    /// The certificate does not parse.
    #[error("client certificate is unusable: {0}")]
    Certificate(String),
    /// Data directory failure.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Generates a new P-256 key.
pub fn generate_key() -> Result<KeyPair, IdentityError> {
    KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)
        .map_err(|e| IdentityError::Generate(e.to_string()))
}

/// The key of the registration in progress, created (0600) on first use.
pub fn load_or_create_key(dir: &DataDir) -> Result<KeyPair, IdentityError> {
    if let Some(pem) = dir.read(KEY)? {
        let text = String::from_utf8_lossy(&pem);
        return KeyPair::from_pem(&text).map_err(|e| {
            IdentityError::StoredKey(e.to_string(), dir.path(KEY).display().to_string())
        });
    }
    let key = generate_key()?;
    dir.write_atomic(KEY, key.serialize_pem().as_bytes(), 0o600)?;
    Ok(key)
}

/// A PEM CSR for `key`; the subject names the serial for operators reading it.
pub fn csr_pem(key: &KeyPair, serial: &str) -> Result<String, IdentityError> {
    let mut params = CertificateParams::new(Vec::<String>::new())
        .map_err(|e| IdentityError::Generate(e.to_string()))?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, format!("siteboot-device {serial}"));
    params.distinguished_name = dn;
    params
        .serialize_request(key)
        .and_then(|csr| csr.pem())
        .map_err(|e| IdentityError::Generate(e.to_string()))
}

/// `identity.pem` content: the certificate chain followed by the key.
pub fn identity_pem(cert_chain_pem: &str, key: &KeyPair) -> String {
    let mut out = cert_chain_pem.trim_end().to_string();
    out.push('\n');
    out.push_str(&key.serialize_pem());
    out
}

/// Validity of the first certificate in a PEM text.
pub fn validity(pem: &[u8]) -> Result<(DateTime<Utc>, DateTime<Utc>), IdentityError> {
    let der = certs_from_pem(pem)
        .into_iter()
        .next()
        .ok_or_else(|| IdentityError::Certificate("no certificate in PEM".into()))?;
    let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref())
        .map_err(|e| IdentityError::Certificate(e.to_string()))?;
    let ts = |t: i64| {
        Utc.timestamp_opt(t, 0)
            .single()
            .ok_or_else(|| IdentityError::Certificate("validity out of range".into()))
    };
    Ok((
        ts(cert.validity().not_before.timestamp())?,
        ts(cert.validity().not_after.timestamp())?,
    ))
}

/// Renewal is due once 2/3 of the certificate's lifetime (from `start`: its `notBefore`,
/// or when it was received if later) has passed.
pub fn renewal_due(
    not_before: DateTime<Utc>,
    not_after: DateTime<Utc>,
    now: DateTime<Utc>,
) -> bool {
    let life = not_after - not_before;
    now >= not_before + life * 2 / 3
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewal_table() {
        let t = |h: i64| Utc.timestamp_opt(1_800_000_000 + h * 3600, 0).unwrap();
        let cases = [
            (t(0), t(24), t(0), false),
            (t(0), t(24), t(15), false),
            (t(0), t(24), t(16), true),
            (t(0), t(24), t(30), true),
            (t(0), t(3), t(1), false),
            (t(0), t(3), t(2), true),
        ];
        for (nb, na, now, due) in cases {
            assert_eq!(renewal_due(nb, na, now), due, "{nb} {na} {now}");
        }
    }

    #[test]
    fn key_is_created_once_with_mode_0600_and_csr_parses() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::open(tmp.path()).unwrap();
        let a = load_or_create_key(&dir).unwrap();
        let b = load_or_create_key(&dir).unwrap();
        use rcgen::PublicKeyData;
        assert_eq!(a.public_key_pem(), b.public_key_pem());
        let mode = std::fs::metadata(dir.path(KEY))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
        let csr = csr_pem(&a, "SN-1").unwrap();
        let parsed = rcgen::CertificateSigningRequestParams::from_pem(&csr).unwrap();
        assert_eq!(parsed.public_key.der_bytes(), a.public_key_raw());
    }
}
