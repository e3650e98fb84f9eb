//! The HTTPS server: data directory bootstrap, store and registry wiring, the TLS accept
//! loop that exposes each connection's verified client identity to handlers, the
//! heartbeat flush timer and graceful shutdown.
//!
//! [`serve`] returns once the socket is bound; the returned [`ServerHandle`] names the bound
//! address and shuts the server down (flushing coalesced heartbeats) when asked.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use crate::config::ServeConfig;
use crate::datadir::{DataDir, DataDirError};
use crate::tls::TlsError;

mod body;
mod device_api;
mod error;
mod fleet_api;
mod health;
mod operator_api;
mod peer;
mod router;
mod state;
mod wiring;

pub use peer::ConnInfo;
pub use state::AppState;

/// How long a TLS handshake may take before the connection is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long open connections get to finish after shutdown is requested.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the server could not start or stop cleanly.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The data directory could not be prepared.
    #[error(transparent)]
    DataDir(#[from] DataDirError),
    /// TLS could not be configured.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The store or inventory could not be opened.
    #[error("{0}")]
    Wiring(String),
    /// The listen address could not be bound.
    #[error(
        "listen on {addr}: {source}; pick another address with --listen (port 0 picks a free port)"
    )]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The ready file could not be written.
    #[error("write ready file {path}: {source}")]
    ReadyFile {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The final heartbeat flush failed.
    #[error("flush heartbeats at shutdown: {0}")]
    Flush(String),
}

/// Where the running server keeps things (for banners, tests and tools).
#[derive(Debug, Clone)]
pub struct ServerInfo {
    /// The bound address.
    pub addr: SocketAddr,
    /// `https://127.0.0.1:PORT`.
    pub url: String,
    /// Data directory layout.
    pub data_dir: DataDir,
    /// The inventory file, if any.
    pub inventory: Option<PathBuf>,
    /// Number of sites in the inventory at start.
    pub sites: usize,
    /// Files created by this start.
    pub created: Vec<PathBuf>,
}

/// A running server.
#[derive(Debug)]
pub struct ServerHandle {
    info: ServerInfo,
    shutdown: watch::Sender<bool>,
    task: tokio::task::JoinHandle<Result<(), ServeError>>,
}

impl ServerHandle {
    /// Facts about the running server.
    pub fn info(&self) -> &ServerInfo {
        &self.info
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.info.addr
    }

    /// `https://ADDR`.
    pub fn url(&self) -> &str {
        &self.info.url
    }

    /// Stops accepting, drains connections, flushes heartbeats.
    pub async fn shutdown(self) -> Result<(), ServeError> {
        let _ = self.shutdown.send(true);
        match self.task.await {
            Ok(r) => r,
            Err(e) => Err(ServeError::Flush(format!("server task failed: {e}"))),
        }
    }

    /// Waits until the server stops by itself (it only stops when asked).
    pub async fn wait(&mut self) {
        let _ = (&mut self.task).await;
    }
}

/// Prepares the data directory, opens the store and inventory, binds, and serves.
pub async fn serve(config: ServeConfig) -> Result<ServerHandle, ServeError> {
    let now = Utc::now();
    let data_dir = DataDir::at(&config.data_dir);
    let prepared = data_dir.prepare(&config.server_names, now)?;
    let tls = crate::tls::server_config(
        prepared.ca.cert_pem(),
        &prepared.server.cert_pem,
        &prepared.server.key_pem,
    )?;
    let created = prepared.created.clone();
    let (state, sites) = wiring::build_state(&config, &data_dir, prepared).await?;
    let state = Arc::new(state);

    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| ServeError::Bind {
            addr: config.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| ServeError::Bind {
        addr: config.listen,
        source,
    })?;
    let url = format!("https://{addr}");
    if let Some(path) = &config.ready_file {
        crate::datadir::write_atomic(path, format!("{url}\n").as_bytes(), 0o644).map_err(|e| {
            ServeError::ReadyFile {
                path: path.clone(),
                source: std::io::Error::other(e.to_string()),
            }
        })?;
    }
    tracing::info!(%addr, "listening on {url}");

    let (shutdown, rx) = watch::channel(false);
    let app = router::build(state.clone());
    let task = tokio::spawn(run(
        listener,
        TlsAcceptor::from(tls),
        app,
        state,
        config.heartbeat_flush_interval,
        config.idle_timeout,
        rx,
    ));
    Ok(ServerHandle {
        info: ServerInfo {
            addr,
            url,
            data_dir,
            inventory: config.inventory.clone(),
            sites,
            created,
        },
        shutdown,
        task,
    })
}

async fn run(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    app: axum::Router,
    state: Arc<AppState>,
    flush_every: Duration,
    idle_timeout: Duration,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), ServeError> {
    let mut conns = JoinSet::new();
    let mut flush = tokio::time::interval(flush_every);
    flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    flush.tick().await;
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            _ = flush.tick() => {
                if let Err(e) = state.registry.flush_heartbeats(Utc::now()).await {
                    tracing::warn!(error = %e, "heartbeat flush failed; will retry on the next tick");
                }
            }
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            accepted = listener.accept() => {
                let (tcp, remote) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = tcp.set_nodelay(true);
                conns.spawn(connection(tcp, remote, acceptor.clone(), app.clone(), idle_timeout, shutdown.clone()));
            }
        }
    }
    drop(listener);
    tracing::info!(open = conns.len(), "shutting down: draining connections");
    let drain = async { while conns.join_next().await.is_some() {} };
    if tokio::time::timeout(DRAIN_TIMEOUT, drain).await.is_err() {
        conns.abort_all();
    }
    state
        .registry
        .flush_heartbeats(Utc::now())
        .await
        .map_err(|e| ServeError::Flush(e.to_string()))?;
    tracing::info!("stopped; heartbeats flushed");
    Ok(())
}

async fn connection(
    tcp: tokio::net::TcpStream,
    remote: SocketAddr,
    acceptor: TlsAcceptor,
    app: axum::Router,
    idle_timeout: Duration,
    shutdown: watch::Receiver<bool>,
) {
    // Boxed: the handshake's state is only needed until it completes, and kept inline it
    // would enlarge every long-lived connection task.
    let handshake = Box::pin(tokio::time::timeout(
        HANDSHAKE_TIMEOUT,
        acceptor.accept(tcp),
    ));
    let tls = match handshake.await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            tracing::debug!(%remote, error = %e, "tls handshake failed");
            return;
        }
        Err(_) => {
            tracing::debug!(%remote, "tls handshake timed out");
            return;
        }
    };
    let peer = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|chain| chain.first())
        .and_then(crate::tls::identity_of);
    let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2".as_slice());
    let info = ConnInfo { remote, peer };
    let service =
        hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
            req.extensions_mut().insert(info.clone());
            app.clone().oneshot(req.map(axum::body::Body::new))
        });
    let io = TokioIo::new(tls);
    // Agents speak HTTP/1.1 (their ALPN offers nothing else); browsers and operator tools
    // may negotiate h2. Each protocol gets its own connection type, so an idle agent
    // connection carries only HTTP/1 state.
    let ended = if h2 {
        let conn = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
            .serve_connection(io, service);
        // Boxed: h2 state is large and rare; it must not size every agent's task.
        Box::pin(drive(conn, shutdown, |c| c.graceful_shutdown())).await
    } else {
        // The header-read timer also runs while a kept-alive connection waits for its next
        // request, so it closes dead and idle connections as well as slow senders.
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(idle_timeout)
            .serve_connection(io, service);
        Box::pin(drive(conn, shutdown, |c| c.graceful_shutdown())).await
    };
    if let Err(e) = ended {
        tracing::debug!(%remote, error = %e, "connection ended with an error");
    }
}

/// Runs a connection to its end, or asks it to finish gracefully once shutdown starts.
async fn drive<C>(
    conn: C,
    mut shutdown: watch::Receiver<bool>,
    graceful: fn(std::pin::Pin<&mut C>),
) -> Result<(), hyper::Error>
where
    C: std::future::Future<Output = Result<(), hyper::Error>>,
{
    tokio::pin!(conn);
    tokio::select! {
        res = conn.as_mut() => res,
        _ = shutdown.changed() => {
            graceful(conn.as_mut());
            conn.await
        }
    }
}
