//! rustls configuration (ring provider only) for the server and for clients of the service.
//!
//! The server *requests* a client certificate chained to the service CA but does not
//! require one: token, enrollment and claim registration happen before a device has a
//! certificate. Routes that need mTLS refuse requests whose connection carried no verified
//! certificate. A certificate from another CA fails the handshake.

use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use siteboot_wire::identity::{peer_identity, PeerIdentity};

/// Why a TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// PEM could not be parsed.
    #[error("parse {what} pem: {reason}")]
    Pem {
        /// Which PEM.
        what: &'static str,
        /// Why.
        reason: String,
    },
    /// rustls refused the configuration.
    #[error("configure tls: {0}")]
    Rustls(#[from] rustls::Error),
    /// The client verifier could not be built.
    #[error("configure client certificate verification: {0}")]
    Verifier(String),
}

/// The ring crypto provider; installed as the process default when none is.
pub fn provider() -> Arc<CryptoProvider> {
    let p = Arc::new(rustls::crypto::ring::default_provider());
    // Another component may already have installed ring; that is fine.
    let _ = CryptoProvider::install_default(rustls::crypto::ring::default_provider());
    p
}

/// Parses every certificate in a PEM bundle.
pub fn certs_from_pem(
    what: &'static str,
    pem: &str,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::Pem {
            what,
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Pem {
            what,
            reason: "no certificate found".into(),
        });
    }
    Ok(certs)
}

/// Parses a private key PEM (PKCS#8, SEC1 or PKCS#1).
pub fn key_from_pem(what: &'static str, pem: &str) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_slice(pem.as_bytes()).map_err(|_| TlsError::Pem {
        what,
        reason: "no private key found".into(),
    })
}

fn roots(ca_pem: &str) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for c in certs_from_pem("ca", ca_pem)? {
        roots.add(c)?;
    }
    Ok(roots)
}

/// The server's TLS config: server certificate + optional client certificates from the CA.
pub fn server_config(
    ca_pem: &str,
    cert_pem: &str,
    key_pem: &str,
) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = provider();
    let verifier =
        WebPkiClientVerifier::builder_with_provider(Arc::new(roots(ca_pem)?), provider.clone())
            .allow_unauthenticated()
            .build()
            .map_err(|e| TlsError::Verifier(e.to_string()))?;
    let mut chain = certs_from_pem("server certificate", cert_pem)?;
    chain.extend(certs_from_pem("ca", ca_pem)?);
    let mut cfg = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key_from_pem("server key", key_pem)?)?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// A client config trusting only `ca_pem`, optionally presenting a client certificate.
pub fn client_config(
    ca_pem: &str,
    identity: Option<(&str, &str)>,
) -> Result<ClientConfig, TlsError> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots(ca_pem)?);
    let mut cfg = match identity {
        Some((cert, key)) => builder.with_client_auth_cert(
            certs_from_pem("client certificate", cert)?,
            key_from_pem("client key", key)?,
        )?,
        None => builder.with_no_client_auth(),
    };
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(cfg)
}

/// Site and device named by a (verified) client certificate's URI SANs.
pub fn identity_of(cert: &CertificateDer<'_>) -> Option<PeerIdentity> {
    use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};
    let (_, parsed) = X509Certificate::from_der(cert.as_ref()).ok()?;
    let san = parsed.subject_alternative_name().ok()??;
    let uris = san.value.general_names.iter().filter_map(|n| match n {
        GeneralName::URI(u) => Some(*u),
        _ => None,
    });
    peer_identity(uris)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ca::{parse_csr, ServiceCa};
    use chrono::Utc;

    #[test]
    fn builds_configs_and_reads_identity() {
        let (ca, pair) = ServiceCa::generate(Utc::now()).unwrap();
        let server = ca
            .issue_server(&["localhost".into()], Utc::now(), [3; 16])
            .unwrap();
        server_config(&pair.cert_pem, &server.cert_pem, &server.key_pem).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let csr = rcgen::CertificateParams::default()
            .serialize_request(&key)
            .unwrap()
            .pem()
            .unwrap();
        let signed = ca
            .sign_device(
                &parse_csr(&csr).unwrap(),
                "s1",
                "d1",
                Utc::now(),
                std::time::Duration::from_secs(60),
                [4; 16],
            )
            .unwrap();
        let der = &certs_from_pem("c", &signed.pem).unwrap()[0];
        let id = identity_of(der).unwrap();
        assert_eq!((id.site_id.as_str(), id.device_id.as_str()), ("s1", "d1"));
        client_config(&pair.cert_pem, Some((&signed.pem, &key.serialize_pem()))).unwrap();
        assert!(certs_from_pem("c", "nothing").is_err());
    }
}
