//! The HTTPS edge of the admission webhook: loads `tls.crt`/`tls.key` from a certificate
//! directory (cert-manager's Secret layout), serves [`TEMPLATE_PATH`](super::TEMPLATE_PATH)
//! and [`CONFIG_PATH`](super::CONFIG_PATH) with rustls (ring provider) and answers each
//! `AdmissionReview` with [`review_body`](super::review_body).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::routing::post;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

/// Largest accepted `AdmissionReview` body (the API server sends at most ~3 MiB objects).
const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the webhook server cannot start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("read webhook certificate file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("webhook certificate file {0} holds no PEM certificate/private key; mount the cert-manager Secret (tls.crt, tls.key) there")]
    Empty(PathBuf),
    #[error("build the webhook TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
    #[error("bind the webhook address {addr} (check --webhook-bind-address): {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// A running webhook server; aborted when dropped.
#[derive(Debug)]
pub struct WebhookServer {
    /// The bound address (useful with port 0).
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl WebhookServer {
    /// Waits until the accept loop ends (it only ends when aborted).
    pub async fn wait(&mut self) {
        let _ = (&mut self.task).await;
    }
}

impl Drop for WebhookServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The TLS configuration from `<cert_dir>/tls.crt` (chain) and `<cert_dir>/tls.key`.
pub fn tls_config(cert_dir: &Path) -> Result<rustls::ServerConfig, ServeError> {
    let read = |name: &str| {
        let path = cert_dir.join(name);
        std::fs::read(&path)
            .map(|b| (path.clone(), b))
            .map_err(|source| ServeError::Read { path, source })
    };
    let (crt_path, crt) = read("tls.crt")?;
    let (key_path, key) = read("tls.key")?;
    let certs: Vec<_> = rustls_pemfile::certs(&mut crt.as_slice())
        .collect::<Result<_, _>>()
        .map_err(|source| ServeError::Read {
            path: crt_path.clone(),
            source,
        })?;
    if certs.is_empty() {
        return Err(ServeError::Empty(crt_path));
    }
    let key = rustls_pemfile::private_key(&mut key.as_slice())
        .map_err(|source| ServeError::Read {
            path: key_path.clone(),
            source,
        })?
        .ok_or(ServeError::Empty(key_path))?;
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_no_client_auth()
    .with_single_cert(certs, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// The webhook routes.
pub fn router() -> axum::Router {
    let handler = |body: axum::body::Bytes| async move { axum::Json(super::review_body(&body)) };
    axum::Router::new()
        .route(super::TEMPLATE_PATH, post(handler))
        .route(super::CONFIG_PATH, post(handler))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
}

/// Binds `addr` and serves the webhook over HTTPS with the certificate in `cert_dir`.
/// Returns once the socket is bound.
pub async fn serve(addr: SocketAddr, cert_dir: &Path) -> Result<WebhookServer, ServeError> {
    let acceptor = TlsAcceptor::from(Arc::new(tls_config(cert_dir)?));
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { addr, source })?;
    let addr = listener
        .local_addr()
        .map_err(|source| ServeError::Bind { addr, source })?;
    let app = router();
    let task = tokio::spawn(async move {
        loop {
            let (tcp, remote) = match listener.accept().await {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "webhook accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            tokio::spawn(connection(tcp, remote, acceptor.clone(), app.clone()));
        }
    });
    tracing::info!(%addr, "admission webhook listening");
    Ok(WebhookServer { addr, task })
}

async fn connection(
    tcp: tokio::net::TcpStream,
    remote: SocketAddr,
    acceptor: TlsAcceptor,
    app: axum::Router,
) {
    let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            tracing::debug!(%remote, error = %e, "webhook tls handshake failed");
            return;
        }
        Err(_) => {
            tracing::debug!(%remote, "webhook tls handshake timed out");
            return;
        }
    };
    let service = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
        app.clone().oneshot(req.map(axum::body::Body::new))
    });
    let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    if let Err(e) = builder.serve_connection(TokioIo::new(tls), service).await {
        tracing::debug!(%remote, error = %e, "webhook connection ended with an error");
    }
}
