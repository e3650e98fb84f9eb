//! [`GitHttpServer`]: smart HTTP(S) Git via `git http-backend` run as a CGI per request
//! behind a small hyper server, with optional basic or bearer authentication.
//!
//! The server runs on its own thread with its own two-worker tokio runtime, so it serves
//! while a sync test blocks and while a `#[tokio::test]` awaits; dropping it stops the
//! runtime (killing any CGI still running: `kill_on_drop`) and joins the thread.

mod cgi;

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use base64::Engine as _;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::sync::oneshot;
use tokio_rustls::TlsAcceptor;

use super::{io_err, GitError, GitRepo, TestCa};
use crate::ports;

/// Who may fetch: nobody needs credentials, a user/password pair (HTTP basic), or a
/// bearer token.
#[derive(Clone, Default, PartialEq, Eq)]
pub enum HttpAuth {
    #[default]
    None,
    Basic {
        user: String,
        password: String,
    },
    Bearer {
        token: String,
    },
}

impl std::fmt::Debug for HttpAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HttpAuth::None => f.write_str("None"),
            HttpAuth::Basic { user, .. } => write!(f, "Basic({user}, [REDACTED])"),
            HttpAuth::Bearer { .. } => f.write_str("Bearer([REDACTED])"),
        }
    }
}

/// How to serve: TLS or not, authentication, and optionally a fixed port (to restart a
/// server on the same URL); otherwise a port is reserved with [`crate::ports`].
#[derive(Debug, Clone, Default)]
pub struct GitHttpConfig {
    pub tls: bool,
    pub auth: HttpAuth,
    pub port: Option<u16>,
}

impl GitHttpConfig {
    pub fn http() -> Self {
        Self::default()
    }

    pub fn https() -> Self {
        Self {
            tls: true,
            ..Self::default()
        }
    }

    pub fn basic(mut self, user: &str, password: &str) -> Self {
        self.auth = HttpAuth::Basic {
            user: user.into(),
            password: password.into(),
        };
        self
    }

    pub fn bearer(mut self, token: &str) -> Self {
        self.auth = HttpAuth::Bearer {
            token: token.into(),
        };
        self
    }

    pub fn port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }
}

/// One request the server answered; credentials are never recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestRecord {
    pub method: String,
    pub path: String,
    pub query: String,
    pub status: u16,
    /// The authenticated user (basic auth), `"bearer"` for a valid token, else `None`.
    pub user: Option<String>,
    /// The `Git-Protocol` request header ("version=2"), if any.
    pub git_protocol: Option<String>,
    /// The `Content-Encoding` of the request body ("gzip"), if any.
    pub content_encoding: Option<String>,
}

/// Compares two byte strings in time independent of where they differ.
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Decides a request's `Authorization` header against `auth`. `Ok(user)` admits it
/// (`user` becomes `REMOTE_USER`); `Err(challenge)` is the `WWW-Authenticate` value of
/// the 401 to send.
pub fn authorize(auth: &HttpAuth, header: Option<&str>) -> Result<Option<String>, &'static str> {
    match auth {
        HttpAuth::None => Ok(None),
        HttpAuth::Basic { user, password } => {
            const CHALLENGE: &str = "Basic realm=\"siteboot-e2e\"";
            let encoded = header
                .and_then(|h| h.strip_prefix("Basic "))
                .ok_or(CHALLENGE)?;
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(encoded.trim())
                .map_err(|_| CHALLENGE)?;
            let expected = format!("{user}:{password}");
            if ct_eq(&decoded, expected.as_bytes()) {
                Ok(Some(user.clone()))
            } else {
                Err(CHALLENGE)
            }
        }
        HttpAuth::Bearer { token } => {
            const CHALLENGE: &str = "Bearer realm=\"siteboot-e2e\"";
            let got = header
                .and_then(|h| h.strip_prefix("Bearer "))
                .ok_or(CHALLENGE)?;
            if ct_eq(got.trim().as_bytes(), token.as_bytes()) {
                Ok(Some("bearer".into()))
            } else {
                Err(CHALLENGE)
            }
        }
    }
}

/// What every request handler shares.
pub(crate) struct State {
    pub base: PathBuf,
    pub home: PathBuf,
    pub auth: HttpAuth,
    pub port: u16,
    pub log: Mutex<File>,
    pub requests: Arc<Mutex<Vec<RequestRecord>>>,
}

impl State {
    pub(crate) fn log_line(&self, line: &str) {
        if let Ok(mut f) = self.log.lock() {
            let _ = writeln!(f, "{line}");
        }
    }

    pub(crate) fn record(&self, r: RequestRecord) {
        self.log_line(&format!(
            "{} {}{}{} -> {} user={} git-protocol={} content-encoding={}",
            r.method,
            r.path,
            if r.query.is_empty() { "" } else { "?" },
            r.query,
            r.status,
            r.user.as_deref().unwrap_or("-"),
            r.git_protocol.as_deref().unwrap_or("-"),
            r.content_encoding.as_deref().unwrap_or("-"),
        ));
        if let Ok(mut all) = self.requests.lock() {
            all.push(r);
        }
    }
}

/// A running smart-HTTP Git server; stopped on drop.
pub struct GitHttpServer {
    addr: SocketAddr,
    tls: bool,
    ca_pem: Option<String>,
    ca_file: Option<PathBuf>,
    _dir: tempfile::TempDir,
    requests: Arc<Mutex<Vec<RequestRecord>>>,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for GitHttpServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitHttpServer")
            .field("addr", &self.addr)
            .field("tls", &self.tls)
            .finish_non_exhaustive()
    }
}

impl GitHttpServer {
    /// Serves the base path of `repo` with `config`, logging requests and CGI stderr to
    /// `log`. Returns once the port accepts connections.
    pub fn start(repo: &GitRepo, config: GitHttpConfig, log: &Path) -> Result<Self, GitError> {
        let port = match config.port {
            Some(p) => p,
            None => ports::free_port()?,
        };
        let dir = tempfile::Builder::new()
            .prefix("siteboot-e2e-http-")
            .tempdir()
            .map_err(io_err(Path::new("/tmp")))?;
        let home = dir.path().join("home");
        std::fs::create_dir_all(&home).map_err(io_err(&home))?;
        let (acceptor, ca_pem, ca_file) = if config.tls {
            let ca = TestCa::new("siteboot-e2e git https CA")?;
            let acceptor = TlsAcceptor::from(ca.server_config()?);
            let ca_file = dir.path().join("ca.pem");
            std::fs::write(&ca_file, ca.cert_pem()).map_err(io_err(&ca_file))?;
            (
                Some(acceptor),
                Some(ca.cert_pem().to_owned()),
                Some(ca_file),
            )
        } else {
            (None, None, None)
        };
        if let Some(parent) = log.parent() {
            std::fs::create_dir_all(parent).map_err(io_err(parent))?;
        }
        let log_file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .map_err(io_err(log))?;
        let requests = Arc::new(Mutex::new(Vec::new()));
        let state = Arc::new(State {
            base: repo.base_path(),
            home,
            auth: config.auth,
            port,
            log: Mutex::new(log_file),
            requests: requests.clone(),
        });
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let listener = std::net::TcpListener::bind(addr).map_err(io_err(log))?;
        listener.set_nonblocking(true).map_err(io_err(log))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("siteboot-e2e-git-http")
            .enable_all()
            .build()
            .map_err(|e| GitError::Http(e.to_string()))?;
        let (tx, rx) = oneshot::channel();
        state.log_line(&format!(
            "listening on {}://{addr}",
            if acceptor.is_some() { "https" } else { "http" }
        ));
        let thread = std::thread::Builder::new()
            .name("siteboot-e2e-git-http".into())
            .spawn(move || {
                runtime.block_on(accept_loop(listener, acceptor, state, rx));
                runtime.shutdown_timeout(std::time::Duration::from_secs(2));
            })
            .map_err(|e| GitError::Http(e.to_string()))?;
        Ok(GitHttpServer {
            addr,
            tls: config.tls,
            ca_pem,
            ca_file,
            _dir: dir,
            requests,
            shutdown: Some(tx),
            thread: Some(thread),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `http(s)://127.0.0.1:<port>/<name>.git`
    pub fn url(&self, repo: &GitRepo) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!(
            "{scheme}://127.0.0.1:{}{}",
            self.addr.port(),
            repo.url_path()
        )
    }

    /// The CA certificate (PEM) clients must trust, for HTTPS servers.
    pub fn ca_pem(&self) -> Option<&str> {
        self.ca_pem.as_deref()
    }

    /// A file holding [`GitHttpServer::ca_pem`] (for `git -c http.sslCAInfo=`).
    pub fn ca_file(&self) -> Option<&Path> {
        self.ca_file.as_deref()
    }

    /// Every request answered so far.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.requests.lock().map(|r| r.clone()).unwrap_or_default()
    }
}

impl Drop for GitHttpServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn accept_loop(
    listener: std::net::TcpListener,
    acceptor: Option<TlsAcceptor>,
    state: Arc<State>,
    mut shutdown: oneshot::Receiver<()>,
) {
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            state.log_line(&format!("error: register listener: {e}"));
            return;
        }
    };
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => {
                let Ok((stream, peer)) = accepted else { continue };
                let state = state.clone();
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let svc_state = state.clone();
                    let svc = service_fn(move |req| cgi::handle(req, svc_state.clone(), peer));
                    let http = hyper::server::conn::http1::Builder::new();
                    let result = match acceptor {
                        None => http.serve_connection(TokioIo::new(stream), svc).await,
                        Some(acceptor) => match acceptor.accept(stream).await {
                            Ok(tls) => http.serve_connection(TokioIo::new(tls), svc).await,
                            Err(e) => {
                                state.log_line(&format!("tls handshake from {peer} failed: {e}"));
                                return;
                            }
                        },
                    };
                    if let Err(e) = result {
                        state.log_line(&format!("connection from {peer}: {e}"));
                    }
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    #[test]
    fn authorize_table() {
        let basic = HttpAuth::Basic {
            user: "fleet".into(),
            password: "s3cret-pw".into(),
        };
        let bearer = HttpAuth::Bearer {
            token: "tok-123456".into(),
        };
        let good_basic = format!("Basic {}", b64("fleet:s3cret-pw"));
        let bad_basic = format!("Basic {}", b64("fleet:wrong"));
        type Want<'a> = Result<Option<&'a str>, &'a str>;
        let cases: Vec<(&HttpAuth, Option<&str>, Want)> = vec![
            (&HttpAuth::None, None, Ok(None)),
            (&HttpAuth::None, Some("Basic x"), Ok(None)),
            (&basic, Some(&good_basic), Ok(Some("fleet"))),
            (
                &basic,
                Some(&bad_basic),
                Err("Basic realm=\"siteboot-e2e\""),
            ),
            (&basic, None, Err("Basic realm=\"siteboot-e2e\"")),
            (
                &basic,
                Some("Basic !!notbase64"),
                Err("Basic realm=\"siteboot-e2e\""),
            ),
            (
                &basic,
                Some("Bearer tok-123456"),
                Err("Basic realm=\"siteboot-e2e\""),
            ),
            (&bearer, Some("Bearer tok-123456"), Ok(Some("bearer"))),
            (
                &bearer,
                Some("Bearer tok-1234567"),
                Err("Bearer realm=\"siteboot-e2e\""),
            ),
            (&bearer, None, Err("Bearer realm=\"siteboot-e2e\"")),
        ];
        for (auth, header, want) in cases {
            let got = authorize(auth, header);
            let got = got.as_ref().map(|u| u.as_deref()).map_err(|c| *c);
            assert_eq!(got, want, "{auth:?} {header:?}");
        }
    }

    #[test]
    fn auth_debug_is_redacted() {
        let text = format!(
            "{:?}",
            GitHttpConfig::http().basic("fleet", "s3cret-pw").auth
        );
        assert!(!text.contains("s3cret-pw"), "{text}");
        let text = format!("{:?}", GitHttpConfig::http().bearer("tok-123456"));
        assert!(!text.contains("tok-123456"), "{text}");
    }
}
