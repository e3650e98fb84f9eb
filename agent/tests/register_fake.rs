//! Registration against a fake registration service over real HTTPS (rustls): retry with
//! `Retry-After`, 202 + polling with the poll secret, a restart while pending that does not
//! present the token again, atomic storage of the identity and deletion of the token file.

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, IsCa, Issuer, KeyPair,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use siteboot_agent::client::ServiceClient;
use siteboot_agent::config::{resolve, FileConfig};
use siteboot_agent::register::{ensure_registered, RegisterError};
use siteboot_agent::store::{DataDir, IDENTITY, PENDING, REGISTERED};
use siteboot_agent::tls::Trust;
use siteboot_wire::api::{
    Credential, PendingRegistration, PollResponse, RegisterRequest, Registered,
};
use siteboot_wire::assignment::{GitSource, RevisionPolicy};
use siteboot_wire::{ApiError, Assignment, DeviceFacts, ErrorCode, SecretString};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

const TOKEN: &str = "sbt1.0123456789.0123456789ABCDEFGHJKMNPQRS";

/// What the fake saw and how it answers.
#[derive(Default)]
struct Fake {
    register_calls: Vec<(Instant, String)>,
    poll_calls: u32,
    /// Polls answered "pending" before approving (`u32::MAX`: never approve).
    pending_polls: u32,
    /// First registrations answered 503 + Retry-After.
    unavailable: u32,
    csr: Option<String>,
    wrong_secret: bool,
}

struct Server {
    state: Arc<Mutex<Fake>>,
    issuer: Issuer<'static, KeyPair>,
}

type Shared = Arc<Server>;

fn api_error(status: StatusCode, code: ErrorCode, retry: Option<u64>) -> Response {
    let mut e = ApiError::new(code, "try later");
    e.retry_after_seconds = retry;
    let mut resp = (status, Json(e)).into_response();
    if let Some(r) = retry {
        resp.headers_mut()
            .insert("retry-after", r.to_string().parse().unwrap());
    }
    resp
}

async fn register(State(s): State<Shared>, Json(req): Json<RegisterRequest>) -> Response {
    let mut st = s.state.lock().unwrap();
    let kind = match &req.credential {
        Credential::Token { token } => {
            assert_eq!(token.expose(), TOKEN);
            "token"
        }
        other => other.kind(),
    };
    st.register_calls.push((Instant::now(), kind.to_string()));
    assert!(req.facts.validate().is_ok());
    if st.unavailable > 0 {
        st.unavailable -= 1;
        return api_error(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Unavailable,
            Some(1),
        );
    }
    st.csr = Some(req.csr.clone());
    let p = PendingRegistration {
        pending_id: "pend-1".into(),
        poll_secret: SecretString::new("poll-secret-xyz"),
        poll_after_seconds: 1,
    };
    (StatusCode::ACCEPTED, Json(p)).into_response()
}

async fn poll(State(s): State<Shared>, Path(id): Path<String>, headers: HeaderMap) -> Response {
    let mut st = s.state.lock().unwrap();
    st.poll_calls += 1;
    if id != "pend-1"
        || headers
            .get("x-siteboot-poll-secret")
            .and_then(|v| v.to_str().ok())
            != Some("poll-secret-xyz")
    {
        st.wrong_secret = true;
        return api_error(StatusCode::NOT_FOUND, ErrorCode::NotFound, None);
    }
    if st.poll_calls <= st.pending_polls {
        return Json(PollResponse::Pending {
            poll_after_seconds: 1,
        })
        .into_response();
    }
    let csr = CertificateSigningRequestParams::from_pem(st.csr.as_deref().unwrap()).unwrap();
    let cert = csr.signed_by(&s.issuer).unwrap();
    Json(PollResponse::Approved(Registered {
        device_id: "dev-1".into(),
        site_id: "store-0142".into(),
        certificate: cert.pem(),
        ca_bundle: "".into(),
        assignment: Assignment {
            site_id: "store-0142".into(),
            source: GitSource {
                url: "file:///nowhere".into(),
                revision: RevisionPolicy::Branch {
                    name: "main".into(),
                },
                auth_ref: None,
                auth: None,
            },
            paths: vec!["baseline/".into()],
            labels: Default::default(),
        },
        checkin_interval_seconds: 30,
    }))
    .into_response()
}

/// TLS in front of axum: the handshake happens in `accept`, failures are skipped.
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

/// Starts the fake; returns its URL, the CA PEM and the shared state.
async fn start(fake: Fake) -> (String, String, Arc<Mutex<Fake>>) {
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
    let state = Arc::new(Mutex::new(fake));
    let shared = Arc::new(Server {
        state: state.clone(),
        issuer,
    });
    let app = Router::new()
        .route("/v1/register", post(register))
        .route("/v1/register/{id}", get(poll))
        .with_state(shared);
    let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("https://{}", tcp.local_addr().unwrap());
    let listener = TlsListener {
        tcp,
        acceptor: TlsAcceptor::from(Arc::new(config)),
    };
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, ca_cert.pem(), state)
}

fn facts() -> DeviceFacts {
    DeviceFacts {
        serial: "SN-TEST-1".into(),
        macs: vec!["52:54:00:00:00:01".into()],
        tpm_ek_sha256: None,
        hostname: "box".into(),
        arch: "x86_64".into(),
        os: "test".into(),
    }
}

#[tokio::test]
async fn retries_after_503_polls_pending_resumes_after_restart_and_stores_identity(
) -> anyhow::Result<()> {
    siteboot_agent::run::install_crypto();
    let (url, ca_pem, state) = start(Fake {
        unavailable: 1,
        pending_polls: u32::MAX,
        ..Fake::default()
    })
    .await;
    let tmp = tempfile::tempdir()?;
    let ca_file = tmp.path().join("ca.pem");
    std::fs::write(&ca_file, &ca_pem)?;
    let token_file = tmp.path().join("token");
    std::fs::write(&token_file, format!("{TOKEN}\n"))?;
    let pin = {
        use rustls::pki_types::pem::PemObject;
        use sha2::Digest;
        let der = CertificateDer::from_pem_slice(ca_pem.as_bytes())?;
        hex::encode(sha2::Sha256::digest(der.as_ref()))
    };
    let settings = resolve(FileConfig {
        registration_url: Some(url.clone()),
        ca_file: Some(ca_file.clone()),
        ca_sha256: Some(pin.clone()),
        token_file: Some(token_file.clone()),
        data_dir: Some(tmp.path().join("data")),
        ..FileConfig::default()
    })?;
    let trust = Trust::load(&ca_file, Some(&pin))?;
    let client = ServiceClient::new(&settings.registration_url, trust.anonymous()?)?;
    let dir = DataDir::open(&settings.data_dir)?;

    // First run: 503 (Retry-After: 1), then 202; the agent "crashes" while pending.
    let first = {
        let (dir, settings, client) = (dir.clone(), settings.clone(), client.clone());
        tokio::spawn(async move { ensure_registered(&dir, &settings, &client, &facts()).await })
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while state.lock().unwrap().poll_calls == 0 {
        assert!(Instant::now() < deadline, "no poll within 60 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    first.abort();
    {
        let st = state.lock().unwrap();
        assert_eq!(st.register_calls.len(), 2, "one 503, one 202");
        let gap = st.register_calls[1].0 - st.register_calls[0].0;
        assert!(
            gap >= Duration::from_millis(950),
            "Retry-After: 1 honoured, got {gap:?}"
        );
    }
    assert!(dir.exists(PENDING), "pending state persisted");
    assert!(
        token_file.exists(),
        "the token file stays until registration completes"
    );

    // Restart: resumes polling with the poll secret and never registers again.
    {
        let mut st = state.lock().unwrap();
        st.pending_polls = st.poll_calls + 1;
    }
    let record = tokio::time::timeout(
        Duration::from_secs(60),
        ensure_registered(&dir, &settings, &client, &facts()),
    )
    .await??;
    assert_eq!(
        (record.site_id.as_str(), record.device_id.as_str()),
        ("store-0142", "dev-1")
    );
    {
        let st = state.lock().unwrap();
        assert_eq!(
            st.register_calls.len(),
            2,
            "the consumed token is not presented again"
        );
        assert!(!st.wrong_secret);
    }
    assert!(!token_file.exists(), "the one-time token file is deleted");
    assert!(!dir.exists(PENDING) && dir.exists(REGISTERED));
    let identity = std::fs::read_to_string(dir.path(IDENTITY))?;
    assert!(identity.contains("BEGIN CERTIFICATE") && identity.contains("PRIVATE KEY"));
    assert_eq!(
        std::fs::metadata(dir.path(IDENTITY))?.permissions().mode() & 0o777,
        0o600
    );
    // The identity is usable for mTLS.
    trust.mtls(identity.as_bytes())?;
    // A third start is a no-op.
    let again = ensure_registered(&dir, &settings, &client, &facts()).await?;
    assert_eq!(again, record);
    assert_eq!(state.lock().unwrap().register_calls.len(), 2);
    Ok(())
}

#[tokio::test]
async fn a_wrong_pin_or_a_site_mismatch_is_refused() -> anyhow::Result<()> {
    siteboot_agent::run::install_crypto();
    let (url, ca_pem, _state) = start(Fake::default()).await;
    let tmp = tempfile::tempdir()?;
    let ca_file = tmp.path().join("ca.pem");
    std::fs::write(&ca_file, &ca_pem)?;
    let err = Trust::load(&ca_file, Some(&"0".repeat(64))).unwrap_err();
    assert!(err.to_string().contains("caSha256"), "{err}");
    let settings = resolve(FileConfig {
        registration_url: Some(url),
        ca_file: Some(ca_file.clone()),
        site_id: Some("store-9999".into()),
        claim_code: Some(SecretString::new(claim_code())),
        data_dir: Some(tmp.path().join("data")),
        ..FileConfig::default()
    })?;
    let client = ServiceClient::new(
        &settings.registration_url,
        Trust::load(&ca_file, None)?.anonymous()?,
    )?;
    let dir = DataDir::open(&settings.data_dir)?;
    let err = tokio::time::timeout(
        Duration::from_secs(60),
        ensure_registered(&dir, &settings, &client, &facts()),
    )
    .await?
    .unwrap_err();
    assert!(matches!(err, RegisterError::SiteMismatch { .. }), "{err}");
    assert!(!dir.exists(REGISTERED));
    Ok(())
}

fn claim_code() -> String {
    siteboot_wire::ClaimCode::from_random(&[1, 2, 3, 4, 5])
        .to_secret_string()
        .expose()
        .to_string()
}
