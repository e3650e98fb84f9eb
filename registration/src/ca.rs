//! The service CA: an ECDSA P-256 key and self-signed certificate generated on first start,
//! loaded from the data directory afterwards. It issues the HTTPS server certificate and
//! signs device CSRs into short-lived client certificates naming the site and the device as
//! URI SANs (`urn:siteboot:site:<id>`, `urn:siteboot:device:<id>`).
//!
//! Everything here is pure: the caller passes `now` and the random serial bytes. Reading
//! and writing the PEM files is `datadir`'s job.

use chrono::{DateTime, Utc};
use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
    PKCS_ECDSA_P256_SHA256,
};
use siteboot_wire::identity::{device_uri, site_uri};

/// Lifetime of the CA certificate.
const CA_LIFETIME_DAYS: i64 = 3650;
/// Lifetime of the HTTPS server certificate (re-issued on every start).
const SERVER_LIFETIME_DAYS: i64 = 365;
/// Backdating that tolerates small clock skew between the service and devices.
const BACKDATE_MINUTES: i64 = 5;

/// Why a CA operation failed. Messages never contain key material.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    /// Key or certificate generation failed.
    #[error("generate the service ca: {0}")]
    Generate(rcgen::Error),
    /// The stored CA certificate or key could not be read back.
    #[error(
        "load the service ca: {0}; move the data directory's ca files away to generate a new ca"
    )]
    Load(String),
    /// Signing a certificate failed.
    #[error("sign a certificate with the service ca: {0}")]
    Sign(rcgen::Error),
}

/// Why a presented CSR is unacceptable (answered as 422 naming the field `csr`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CsrError {
    /// Not PEM, not PKCS#10, or a bad signature.
    #[error("csr must be a PEM PKCS#10 certificate request signed by its own key")]
    Malformed,
    /// Parsed, but uses an extension or algorithm the service does not sign.
    #[error("csr uses an unsupported key algorithm or extension: send a plain ECDSA P-256, P-384, Ed25519 or RSA request")]
    Unsupported,
}

/// A CSR whose PEM parsed and whose self-signature verified.
pub struct ValidCsr(CertificateSigningRequestParams);

impl std::fmt::Debug for ValidCsr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ValidCsr")
    }
}

/// Parses a PEM CSR and verifies its signature (proof of possession of the key).
pub fn parse_csr(pem: &str) -> Result<ValidCsr, CsrError> {
    match CertificateSigningRequestParams::from_pem(pem) {
        Ok(p) => Ok(ValidCsr(p)),
        Err(rcgen::Error::UnsupportedExtension)
        | Err(rcgen::Error::UnsupportedSignatureAlgorithm) => Err(CsrError::Unsupported),
        Err(_) => Err(CsrError::Malformed),
    }
}

/// SHA-256 (hex) of a PEM CSR's SubjectPublicKeyInfo; `None` if it does not parse. It
/// does not verify the CSR: callers that act on it have verified it with [`parse_csr`].
pub fn csr_key_sha256(pem: &str) -> Option<String> {
    use sha2::Digest;
    use x509_parser::prelude::FromDer;
    let (_, p) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).ok()?;
    let (_, csr) =
        x509_parser::certification_request::X509CertificationRequest::from_der(&p.contents).ok()?;
    Some(hex::encode(sha2::Sha256::digest(
        csr.certification_request_info.subject_pki.raw,
    )))
}

/// A signed device certificate.
#[derive(Debug, Clone)]
pub struct SignedCert {
    /// Certificate PEM.
    pub pem: String,
    /// Expiry.
    pub not_after: DateTime<Utc>,
}

/// A freshly generated key pair and certificate, both PEM.
pub struct IssuedPair {
    /// Certificate PEM.
    pub cert_pem: String,
    /// Private key PEM (PKCS#8); callers write it with mode 0600.
    pub key_pem: String,
}

impl std::fmt::Debug for IssuedPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IssuedPair(<key redacted>)")
    }
}

/// The loaded service CA.
pub struct ServiceCa {
    issuer: Issuer<'static, KeyPair>,
    cert_pem: String,
}

impl std::fmt::Debug for ServiceCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServiceCa(<key redacted>)")
    }
}

fn to_time(t: DateTime<Utc>) -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp(t.timestamp())
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
}

impl ServiceCa {
    /// Generates a new CA valid from `now` for ten years. Returns the CA and its key PEM.
    pub fn generate(now: DateTime<Utc>) -> Result<(Self, IssuedPair), CaError> {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(CaError::Generate)?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "siteboot registration ca");
        dn.push(DnType::OrganizationName, "siteboot");
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.not_before = to_time(now - chrono::Duration::minutes(BACKDATE_MINUTES));
        params.not_after = to_time(now + chrono::Duration::days(CA_LIFETIME_DAYS));
        let cert = params.self_signed(&key).map_err(CaError::Generate)?;
        let pair = IssuedPair {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        };
        let ca = Self {
            cert_pem: pair.cert_pem.clone(),
            issuer: Issuer::new(params, key),
        };
        Ok((ca, pair))
    }

    /// Loads a CA from its certificate and key PEM.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Self, CaError> {
        let key = KeyPair::from_pem(key_pem).map_err(|e| CaError::Load(format!("ca key: {e}")))?;
        let issuer = Issuer::from_ca_cert_pem(cert_pem, key)
            .map_err(|e| CaError::Load(format!("ca certificate: {e}")))?;
        Ok(Self {
            issuer,
            cert_pem: cert_pem.to_string(),
        })
    }

    /// The CA certificate (PEM), the bundle devices and clients trust.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// Issues a server certificate for DNS names and IP addresses in `names`.
    pub fn issue_server(
        &self,
        names: &[String],
        now: DateTime<Utc>,
        serial: [u8; 16],
    ) -> Result<IssuedPair, CaError> {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(CaError::Generate)?;
        let mut params = CertificateParams::new(names.to_vec()).map_err(CaError::Generate)?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "siteboot registration");
        params.distinguished_name = dn;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.not_before = to_time(now - chrono::Duration::minutes(BACKDATE_MINUTES));
        params.not_after = to_time(now + chrono::Duration::days(SERVER_LIFETIME_DAYS));
        params.serial_number = Some(positive_serial(serial));
        params.use_authority_key_identifier_extension = true;
        let cert = params
            .signed_by(&key, &self.issuer)
            .map_err(CaError::Sign)?;
        Ok(IssuedPair {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// Signs a device CSR into a client certificate for (`site_id`, `device_id`). Whatever
    /// names or extensions the CSR asked for are ignored: the service decides the identity.
    pub fn sign_device(
        &self,
        csr: &ValidCsr,
        site_id: &str,
        device_id: &str,
        now: DateTime<Utc>,
        ttl: std::time::Duration,
        serial: [u8; 16],
    ) -> Result<SignedCert, CaError> {
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, device_id);
        dn.push(DnType::OrganizationalUnitName, site_id);
        params.distinguished_name = dn;
        let uri = |s: String| {
            rcgen::string::Ia5String::try_from(s)
                .map(SanType::URI)
                .map_err(CaError::Sign)
        };
        params.subject_alt_names = vec![uri(site_uri(site_id))?, uri(device_uri(device_id))?];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let not_after =
            now + chrono::Duration::from_std(ttl).unwrap_or_else(|_| chrono::Duration::days(7));
        params.not_before = to_time(now - chrono::Duration::minutes(BACKDATE_MINUTES));
        params.not_after = to_time(not_after);
        params.serial_number = Some(positive_serial(serial));
        params.use_authority_key_identifier_extension = true;
        let request = CertificateSigningRequestParams {
            params,
            public_key: csr.0.public_key.clone(),
        };
        let cert = request.signed_by(&self.issuer).map_err(CaError::Sign)?;
        Ok(SignedCert {
            pem: cert.pem(),
            not_after: DateTime::from_timestamp(not_after.timestamp(), 0).unwrap_or(not_after),
        })
    }
}

/// A DER INTEGER serial must be positive: clear the top bit.
fn positive_serial(mut bytes: [u8; 16]) -> SerialNumber {
    bytes[0] &= 0x7f;
    bytes[0] |= 0x01;
    SerialNumber::from_slice(&bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use x509_parser::prelude::*;

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap()
    }

    fn device_csr() -> String {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let params = CertificateParams::new(vec!["evil.example".to_string()]).unwrap();
        params.serialize_request(&key).unwrap().pem().unwrap()
    }

    #[test]
    fn signs_device_certificates_with_uri_sans_and_client_auth() {
        let (ca, _) = ServiceCa::generate(now()).unwrap();
        let csr = parse_csr(&device_csr()).unwrap();
        let ttl = std::time::Duration::from_secs(7 * 86400);
        let signed = ca
            .sign_device(&csr, "store-1", "dev-1", now(), ttl, [7; 16])
            .unwrap();
        assert_eq!(signed.not_after, now() + chrono::Duration::days(7));
        let der = rustls_pki_types::pem::PemObject::from_pem_slice(signed.pem.as_bytes());
        let der: rustls_pki_types::CertificateDer<'static> = der.unwrap();
        let (_, cert) = X509Certificate::from_der(&der).unwrap();
        let san = cert.subject_alternative_name().unwrap().unwrap();
        let uris: Vec<String> = san
            .value
            .general_names
            .iter()
            .map(|n| match n {
                GeneralName::URI(u) => u.to_string(),
                other => format!("{other:?}"),
            })
            .collect();
        assert_eq!(
            uris,
            vec!["urn:siteboot:site:store-1", "urn:siteboot:device:dev-1"]
        );
        let eku = cert.extended_key_usage().unwrap().unwrap();
        assert!(eku.value.client_auth && !eku.value.server_auth);
        assert!(!cert.is_ca());
    }

    #[test]
    fn round_trips_through_pem() {
        let (_, pair) = ServiceCa::generate(now()).unwrap();
        let ca = ServiceCa::from_pem(&pair.cert_pem, &pair.key_pem).unwrap();
        let server = ca
            .issue_server(&["localhost".into(), "127.0.0.1".into()], now(), [1; 16])
            .unwrap();
        assert!(server.cert_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(!format!("{pair:?}").contains("PRIVATE"));
    }

    #[test]
    fn rejects_bad_csrs() {
        assert_eq!(parse_csr("not pem").unwrap_err(), CsrError::Malformed);
        let cert_pem = ServiceCa::generate(now()).unwrap().1.cert_pem;
        assert_eq!(parse_csr(&cert_pem).unwrap_err(), CsrError::Malformed);
        // Flip one byte of the signature: parses, but the signature no longer verifies.
        let good = device_csr();
        let der: rustls_pki_types::CertificateSigningRequestDer<'static> =
            rustls_pki_types::pem::PemObject::from_pem_slice(good.as_bytes()).unwrap();
        let mut bytes = der.as_ref().to_vec();
        let n = bytes.len();
        bytes[n - 3] ^= 0x55;
        let pem = rcgen_pem(&bytes);
        assert!(parse_csr(&pem).is_err());
    }

    fn rcgen_pem(der: &[u8]) -> String {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD.encode(der);
        let lines: Vec<&str> = b64
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        format!(
            "-----BEGIN CERTIFICATE REQUEST-----\n{}\n-----END CERTIFICATE REQUEST-----\n",
            lines.join("\n")
        )
    }
}
