//! TLS for the service connection: which CAs to trust (the configured `caFile`, checked
//! against the optional `caSha256` pin, plus the CA bundle the service handed out at
//! registration), and the client identity for mTLS. rustls with the *ring* provider.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore};
use sha2::{Digest, Sha256};

/// Why TLS material could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// `caFile` unreadable.
    #[error("read caFile {path}: {source}")]
    ReadCa {
        /// File.
        path: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// No usable certificate in a bundle.
    #[error("{what} holds no usable PEM certificate")]
    NoCertificates {
        /// Which bundle.
        what: &'static str,
    },
    /// The pin matches no certificate of `caFile`.
    #[error("caSha256 matches no certificate in caFile: check the pin or the bundle")]
    PinMismatch,
    /// The identity file is unusable.
    #[error("identity file is unusable: {0}")]
    Identity(String),
    /// rustls refused the configuration.
    #[error("build TLS configuration: {0}")]
    Config(#[from] rustls::Error),
}

/// Parsed CA certificates to trust.
#[derive(Debug, Clone)]
pub struct Trust {
    certs: Vec<CertificateDer<'static>>,
}

impl Trust {
    /// Loads `caFile` and checks the pin (SHA-256 of one certificate's DER).
    pub fn load(ca_file: &Path, pin: Option<&str>) -> Result<Trust, TlsError> {
        let pem = std::fs::read(ca_file).map_err(|source| TlsError::ReadCa {
            path: ca_file.display().to_string(),
            source,
        })?;
        Self::from_pem(&pem, pin)
    }

    /// Same from PEM bytes.
    pub fn from_pem(pem: &[u8], pin: Option<&str>) -> Result<Trust, TlsError> {
        let certs = certs_from_pem(pem);
        if certs.is_empty() {
            return Err(TlsError::NoCertificates { what: "caFile" });
        }
        if let Some(pin) = pin {
            let matched = certs
                .iter()
                .any(|c| hex::encode(Sha256::digest(c.as_ref())).eq_ignore_ascii_case(pin));
            if !matched {
                return Err(TlsError::PinMismatch);
            }
        }
        Ok(Trust { certs })
    }

    /// Adds the service-provided bundle (from registration) to the trusted set.
    pub fn with_extra(mut self, pem: &[u8]) -> Trust {
        self.certs.extend(certs_from_pem(pem));
        self
    }

    fn roots(&self) -> RootCertStore {
        let mut roots = RootCertStore::empty();
        for c in &self.certs {
            // A CA the parser rejects is skipped; an empty store fails the handshake.
            let _ = roots.add(c.clone());
        }
        roots
    }

    /// Client config without a client certificate (registration).
    pub fn anonymous(&self) -> Result<ClientConfig, TlsError> {
        Ok(builder()?
            .with_root_certificates(self.roots())
            .with_no_client_auth())
    }

    /// Client config presenting the device identity (`identity.pem`: chain, then key).
    pub fn mtls(&self, identity_pem: &[u8]) -> Result<ClientConfig, TlsError> {
        let chain = certs_from_pem(identity_pem);
        if chain.is_empty() {
            return Err(TlsError::Identity("no certificate".into()));
        }
        let key = PrivateKeyDer::from_pem_slice(identity_pem)
            .map_err(|e| TlsError::Identity(format!("no private key: {e}")))?;
        Ok(builder()?
            .with_root_certificates(self.roots())
            .with_client_auth_cert(chain, key)?)
    }
}

fn builder() -> Result<rustls::ConfigBuilder<ClientConfig, rustls::WantsVerifier>, TlsError> {
    Ok(
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()?,
    )
}

/// Every certificate in a PEM text (other blocks are ignored).
pub fn certs_from_pem(pem: &[u8]) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_slice_iter(pem)
        .filter_map(Result::ok)
        .collect()
}
