//! A minimal blocking HTTP(S) GET used only as a readiness probe: it returns the status
//! code of the first response line and nothing else.
//!
//! HTTPS probes accept any server certificate on purpose: readiness asks "does the
//! server answer?", not "should we trust it?". Tests that check trust use real clients.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, SignatureScheme, StreamOwned};

const IO_TIMEOUT: Duration = Duration::from_secs(3);

/// Why a probe did not yield a status (only ever shown as "not ready yet").
#[derive(Debug, thiserror::Error)]
pub(crate) enum ProbeError {
    #[error("bad url: {0}")]
    Url(String),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    #[error("tls: {0}")]
    Tls(#[from] rustls::Error),
    #[error("no http status line in response")]
    NoStatus,
}

/// `GET url` and return the response status code.
pub(crate) fn get_status(url: &str) -> Result<u16, ProbeError> {
    let url = url::Url::parse(url).map_err(|e| ProbeError::Url(e.to_string()))?;
    let host = url
        .host_str()
        .ok_or_else(|| ProbeError::Url("no host".into()))?
        .to_owned();
    let port = url
        .port_or_known_default()
        .ok_or_else(|| ProbeError::Url("no port".into()))?;
    let mut path = url.path().to_owned();
    if let Some(q) = url.query() {
        path = format!("{path}?{q}");
    }
    let addr = (host.trim_matches(['[', ']']), port)
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| ProbeError::Url("host does not resolve".into()))?;
    let tcp = TcpStream::connect_timeout(&addr, IO_TIMEOUT)?;
    tcp.set_read_timeout(Some(IO_TIMEOUT))?;
    tcp.set_write_timeout(Some(IO_TIMEOUT))?;
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n");
    let head = match url.scheme() {
        "http" => exchange(tcp, &request)?,
        "https" => {
            let name = ServerName::try_from(host.trim_matches(['[', ']']).to_owned())
                .map_err(|e| ProbeError::Url(e.to_string()))?;
            let conn = ClientConnection::new(Arc::new(any_cert_config()), name)?;
            exchange(StreamOwned::new(conn, tcp), &request)?
        }
        other => return Err(ProbeError::Url(format!("unsupported scheme {other}"))),
    };
    parse_status(&head).ok_or(ProbeError::NoStatus)
}

fn exchange(mut stream: impl Read + Write, request: &str) -> Result<String, ProbeError> {
    stream.write_all(request.as_bytes())?;
    stream.flush()?;
    let mut buf = [0u8; 512];
    let mut head = Vec::new();
    while !head.contains(&b'\n') && head.len() < 4096 {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    Ok(String::from_utf8_lossy(&head).into_owned())
}

/// The status code of an HTTP/1.x status line ("HTTP/1.1 200 OK").
pub(crate) fn parse_status(head: &str) -> Option<u16> {
    let line = head.lines().next()?;
    let mut parts = line.split_whitespace();
    if !parts.next()?.starts_with("HTTP/") {
        return None;
    }
    parts.next()?.parse().ok()
}

fn any_cert_config() -> ClientConfig {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCert(provider)))
        .with_no_client_auth()
}

#[derive(Debug)]
struct AnyCert(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn verify_tls13_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::parse_status;

    #[test]
    fn parses_status_lines() {
        let cases = [
            ("HTTP/1.1 200 OK\r\n", Some(200)),
            ("HTTP/1.0 503 Service Unavailable\r\n\r\n", Some(503)),
            ("HTTP/1.1 204\r\n", Some(204)),
            ("SSH-2.0-OpenSSH\r\n", None),
            ("", None),
        ];
        for (head, want) in cases {
            assert_eq!(parse_status(head), want, "{head:?}");
        }
    }
}
