//! The `siteboot-agent run` process against a fake registration service over real HTTPS:
//! a registration refused for good (401 spent credential, 403, 409 cloned serial, 422)
//! exits with status 3 (`EXIT_REFUSED`, which the systemd units exempt from
//! `Restart=always`) and a message that says what to do next; a 503 or an unreachable
//! service never ends the process: it keeps retrying with backoff.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use siteboot_agent::cli::EXIT_REFUSED;
use siteboot_wire::{ApiError, ErrorCode};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

const TOKEN: &str = "sbt1.0123456789.0123456789ABCDEFGHJKMNPQRS";
/// Generous: the machine is shared with other builds.
const WAIT: Duration = Duration::from_secs(90);

/// How the fake answers every `POST /v1/register`.
#[derive(Clone, Copy)]
struct Answer {
    status: StatusCode,
    code: ErrorCode,
    message: &'static str,
    retry_after: Option<u64>,
}

struct Fake {
    answer: Answer,
    calls: AtomicU32,
}

async fn register(State(fake): State<Arc<Fake>>) -> Response {
    fake.calls.fetch_add(1, Ordering::SeqCst);
    let a = fake.answer;
    let mut body = ApiError::new(a.code, a.message);
    body.retry_after_seconds = a.retry_after;
    let mut resp = (a.status, Json(body)).into_response();
    if let Some(r) = a.retry_after {
        resp.headers_mut()
            .insert("retry-after", r.to_string().parse().unwrap());
    }
    resp
}

/// TLS in front of axum; failed handshakes are skipped.
struct TlsListener {
    tcp: TcpListener,
    acceptor: TlsAcceptor,
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;
    async fn accept(&mut self) -> (Self::Io, SocketAddr) {
        loop {
            let Ok((tcp, addr)) = self.tcp.accept().await else {
                continue;
            };
            if let Ok(tls) = self.acceptor.accept(tcp).await {
                return (tls, addr);
            }
        }
    }
    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.tcp.local_addr()
    }
}

/// A CA and a server certificate for 127.0.0.1 signed by it.
fn server_tls() -> (String, rustls::ServerConfig) {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let server_key = KeyPair::generate().unwrap();
    let server_cert = CertificateParams::new(vec!["127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&server_key, &issuer)
        .unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(
        vec![CertificateDer::from(server_cert.der().to_vec())],
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server_key.serialize_der())),
    )
    .unwrap();
    (ca_cert.pem(), config)
}

/// Starts the fake; returns its URL, the CA PEM and the fake.
async fn start(answer: Answer) -> (String, String, Arc<Fake>) {
    let (ca_pem, config) = server_tls();
    let fake = Arc::new(Fake {
        answer,
        calls: AtomicU32::new(0),
    });
    let app = Router::new()
        .route("/v1/register", post(register))
        .with_state(fake.clone());
    let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("https://{}", tcp.local_addr().unwrap());
    let listener = TlsListener {
        tcp,
        acceptor: TlsAcceptor::from(Arc::new(config)),
    };
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, ca_pem, fake)
}

/// `siteboot-agent run` with a token file, an empty seed directory and stdin closed.
fn spawn_agent(tmp: &Path, url: &str, ca_pem: &str) -> Child {
    let ca = tmp.join("ca.pem");
    std::fs::write(&ca, ca_pem).unwrap();
    let token = tmp.join("token");
    std::fs::write(&token, format!("{TOKEN}\n")).unwrap();
    let seeds = tmp.join("no-seed");
    std::fs::create_dir_all(&seeds).unwrap();
    let config = tmp.join("agent.yaml");
    std::fs::write(&config, format!("registrationUrl: {url}\n")).unwrap();
    Command::new(env!("CARGO_BIN_EXE_siteboot-agent"))
        .env_clear()
        .env("SITEBOOT_LOG", "warn")
        .arg("run")
        .arg("--config")
        .arg(&config)
        .arg("--ca-file")
        .arg(&ca)
        .arg("--token-file")
        .arg(&token)
        .arg("--data-dir")
        .arg(tmp.join("data"))
        .arg("--seed")
        .arg(&seeds)
        .args(["--serial", "SN-REFUSED-1"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn siteboot-agent")
}

async fn wait_exit(child: &mut Child) -> ExitStatus {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "the agent did not exit within {WAIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn stderr_of(child: Child) -> String {
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test]
async fn a_permanent_refusal_exits_3_once_with_the_next_step() {
    // (answer, words the message must carry)
    let cases: &[(Answer, &[&str])] = &[
        (
            Answer {
                status: StatusCode::UNAUTHORIZED,
                code: ErrorCode::InvalidCredential,
                message: "registration credential is not valid (unknown, expired or already used): ask the operator for a new one",
                retry_after: None,
            },
            &["401", "already used", "fresh credential", "restart siteboot-agent"],
        ),
        (
            Answer {
                status: StatusCode::CONFLICT,
                code: ErrorCode::SerialConflict,
                message: "serial \"SN-REFUSED-1\" is already held by an active device (cloned image?)",
                retry_after: None,
            },
            &["409", "already held", "revoke", "claim create", "restart siteboot-agent"],
        ),
        (
            Answer {
                status: StatusCode::FORBIDDEN,
                code: ErrorCode::Forbidden,
                message: "token is bound to another machine",
                retry_after: None,
            },
            &["403", "another machine", "operator action needed", "restart siteboot-agent"],
        ),
        (
            Answer {
                status: StatusCode::UNPROCESSABLE_ENTITY,
                code: ErrorCode::InvalidRequest,
                message: "facts.serial: must be 1-128 printable characters",
                retry_after: None,
            },
            &["422", "facts.serial", "restart siteboot-agent"],
        ),
    ];
    for (answer, words) in cases {
        let (url, ca_pem, fake) = start(*answer).await;
        let tmp = tempfile::tempdir().unwrap();
        let mut child = spawn_agent(tmp.path(), &url, &ca_pem);
        let status = wait_exit(&mut child).await;
        let err = stderr_of(child);
        assert_eq!(
            status.code(),
            Some(i32::from(EXIT_REFUSED)),
            "{}: {err}",
            answer.status
        );
        assert_eq!(
            fake.calls.load(Ordering::SeqCst),
            1,
            "{}: one attempt, no retry",
            answer.status
        );
        for word in *words {
            assert!(err.contains(word), "{}: {word:?} in {err}", answer.status);
        }
        assert!(!err.contains(TOKEN), "the token never reaches the log");
        assert!(tmp.path().join("token").exists(), "the token file stays");
    }
}

/// Waits until `count()` reaches `n`, then checks the agent is still running.
async fn still_running_after(child: &mut Child, n: u32, count: impl Fn() -> u32) {
    let deadline = Instant::now() + WAIT;
    while count() < n {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the agent exited ({status}) after {} attempts", count());
        }
        assert!(
            Instant::now() < deadline,
            "only {} attempts within {WAIT:?}",
            count()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        child.try_wait().unwrap().is_none(),
        "still retrying inside the process after {n} attempts"
    );
    child.kill().unwrap();
    let _ = child.wait();
}

#[tokio::test]
async fn unavailable_or_unreachable_keeps_retrying_in_process() {
    // 503 with Retry-After: 1.
    let (url, ca_pem, fake) = start(Answer {
        status: StatusCode::SERVICE_UNAVAILABLE,
        code: ErrorCode::Unavailable,
        message: "the registration store is unavailable: retry later",
        retry_after: Some(1),
    })
    .await;
    let tmp = tempfile::tempdir().unwrap();
    let mut child = spawn_agent(tmp.path(), &url, &ca_pem);
    still_running_after(&mut child, 3, || fake.calls.load(Ordering::SeqCst)).await;

    // Unreachable: a port that accepts TCP and hangs up at once (no TLS).
    let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("https://{}", tcp.local_addr().unwrap());
    let accepted = Arc::new(AtomicU32::new(0));
    {
        let accepted = accepted.clone();
        std::thread::spawn(move || {
            for conn in tcp.incoming() {
                drop(conn);
                accepted.fetch_add(1, Ordering::SeqCst);
            }
        });
    }
    let tmp = tempfile::tempdir().unwrap();
    let (ca_pem, _) = server_tls();
    let mut child = spawn_agent(tmp.path(), &url, &ca_pem);
    still_running_after(&mut child, 3, || accepted.load(Ordering::SeqCst)).await;
}
