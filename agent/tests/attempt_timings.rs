//! Apply-attempt timings end to end on the agent side: a real render and server-side apply
//! against the e2e crate's Kubernetes API emulator produce a timing that is persisted in
//! `status.json`, survives restarts and refused (503) check-ins, travels in the next
//! successful check-in to a fake registration service over real HTTPS, and is then cleared.
//! A revision that fails to render is timed too (`failed`, apply 0).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use rcgen::{CertificateParams, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use siteboot_agent::apply::Applier;
use siteboot_agent::client::ServiceClient;
use siteboot_agent::config::Settings;
use siteboot_agent::reconcile::{Agent, AgentParts};
use siteboot_agent::register::RegistrationRecord;
use siteboot_agent::source::Source;
use siteboot_agent::status::LocalStatus;
use siteboot_agent::store::{DataDir, STATUS};
use siteboot_agent::tls::Trust;
use siteboot_e2e::emulator::Emulator;
use siteboot_wire::api::{
    validate_attempts, AttemptOutcome, CheckinRequest, CheckinResponse, PATH_CHECKIN,
};
use siteboot_wire::assignment::{GitSource, RevisionPolicy};
use siteboot_wire::{ApiError, Assignment, DeviceFacts, ErrorCode};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

const SITE: &str = "store-0142";

/// The fake service: answers the first `refuse` check-ins 503, then 200; keeps every body.
#[derive(Default)]
struct Fake {
    refuse: u32,
    seen: Vec<CheckinRequest>,
}

type Shared = Arc<Mutex<Fake>>;

fn assignment() -> Assignment {
    Assignment {
        site_id: SITE.into(),
        source: GitSource {
            url: "file:///unused".into(),
            revision: RevisionPolicy::Branch {
                name: "main".into(),
            },
            auth_ref: None,
            auth: None,
        },
        paths: vec!["baseline/".into()],
        labels: Default::default(),
    }
}

async fn checkin(State(s): State<Shared>, Json(req): Json<CheckinRequest>) -> Response {
    let mut s = s.lock().unwrap();
    validate_attempts(&req.attempts).expect("the agent only sends valid timings");
    s.seen.push(req);
    if s.refuse > 0 {
        s.refuse -= 1;
        let e = ApiError::new(ErrorCode::Unavailable, "try later");
        return (StatusCode::SERVICE_UNAVAILABLE, Json(e)).into_response();
    }
    Json(CheckinResponse {
        assignment: assignment(),
        next_checkin_seconds: 3600,
    })
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

/// Starts the fake; returns its URL and the PEM of its self-signed certificate.
async fn start(fake: Shared) -> (String, String) {
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["127.0.0.1".to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(
        vec![CertificateDer::from(cert.der().to_vec())],
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
    )
    .unwrap();
    let app = Router::new()
        .route(PATH_CHECKIN, post(checkin))
        .with_state(fake);
    let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("https://{}", tcp.local_addr().unwrap());
    let listener = TlsListener {
        tcp,
        acceptor: TlsAcceptor::from(Arc::new(config)),
    };
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, cert.pem())
}

/// A fresh agent process over the same data directory (as after a restart): the first
/// step checks in at once.
fn agent(data: &Path, manifests: &Path, url: &str, ca_pem: &str, kube: kube::Client) -> Agent {
    let trust = Trust::from_pem(ca_pem.as_bytes(), None).unwrap();
    // Any client certificate will do: the fake does not ask for one.
    let id_key = KeyPair::generate().unwrap();
    let id_cert = CertificateParams::new(vec!["device".to_string()])
        .unwrap()
        .self_signed(&id_key)
        .unwrap();
    let identity = format!("{}\n{}", id_cert.pem(), id_key.serialize_pem());
    let service = ServiceClient::new(url, trust.mtls(identity.as_bytes()).unwrap()).unwrap();
    let settings = Settings {
        registration_url: url.into(),
        ca_file: data.join("ca.pem"),
        ca_sha256: None,
        site_id: Some(SITE.into()),
        credential: None,
        data_dir: data.to_path_buf(),
        kubeconfig: None,
        poll_interval: Duration::from_secs(3600),
        resync_interval: Duration::from_secs(3600),
        seed_paths: vec![],
        bootstrap_copy_dirs: vec![],
    };
    Agent::new(AgentParts {
        dir: DataDir::open(data).unwrap(),
        settings,
        record: RegistrationRecord {
            device_id: "dev-1".into(),
            site_id: SITE.into(),
            registered_at: chrono::Utc::now(),
            checkin_interval_seconds: 3600,
        },
        trust,
        service,
        applier: Applier::new(kube, SITE),
        source: Source::Dir(manifests.to_path_buf()),
        facts: DeviceFacts {
            serial: "SN-T-1".into(),
            macs: vec![],
            tpm_ek_sha256: None,
            hostname: "box".into(),
            arch: "x86_64".into(),
            os: "test".into(),
        },
        assignment: assignment(),
    })
    .unwrap()
}

fn status(data: &Path) -> LocalStatus {
    DataDir::open(data)
        .unwrap()
        .read_json::<LocalStatus>(STATUS)
        .unwrap()
        .unwrap()
}

#[tokio::test]
async fn a_real_apply_is_timed_kept_through_refused_checkins_then_sent_once_and_cleared(
) -> anyhow::Result<()> {
    siteboot_agent::run::install_crypto();
    let emu = Emulator::start().await?;
    let kube = emu.client().await?;
    let tmp = tempfile::tempdir()?;
    let data = tmp.path().join("data");
    let manifests = tmp.path().join("repo");
    std::fs::create_dir_all(manifests.join("baseline"))?;
    std::fs::write(
        manifests.join("baseline/app.yaml"),
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app\n  namespace: shop\ndata:\n  k: v\n",
    )?;
    let fake: Shared = Arc::new(Mutex::new(Fake {
        refuse: 2,
        ..Fake::default()
    }));
    let (url, ca) = start(fake.clone()).await;

    // Run 1: the check-in (before any apply) is refused; the revision is applied and timed.
    let mut a = agent(&data, &manifests, &url, &ca, kube.clone());
    a.step().await?;
    drop(a);
    let st = status(&data);
    let revision = st.applied_revision.clone().expect("applied");
    assert_eq!(st.attempts.pending.len(), 1, "{:?}", st.attempts);
    let timed = st.attempts.pending[0].clone();
    assert_eq!(timed.revision, revision);
    assert_eq!(timed.outcome, AttemptOutcome::Applied);
    assert!(
        timed.render_seconds > 0.0 && timed.apply_seconds > 0.0,
        "{timed:?}"
    );
    assert!(fake.lock().unwrap().seen[0].attempts.is_empty());

    // Run 2 (a restart): the check-in carries the timing and is refused: nothing is lost,
    // and the unchanged revision is not attempted again.
    let mut a = agent(&data, &manifests, &url, &ca, kube.clone());
    a.step().await?;
    drop(a);
    assert_eq!(fake.lock().unwrap().seen[1].attempts, vec![timed.clone()]);
    assert_eq!(status(&data).attempts.pending, vec![timed.clone()]);

    // Run 3: accepted; the same timing (not a second copy) was sent, and is now cleared.
    let mut a = agent(&data, &manifests, &url, &ca, kube.clone());
    a.step().await?;
    drop(a);
    assert_eq!(fake.lock().unwrap().seen[2].attempts, vec![timed.clone()]);
    assert!(status(&data).attempts.pending.is_empty());

    // A revision whose YAML does not parse: timed as failed, nothing applied.
    std::fs::write(manifests.join("baseline/broken.yaml"), "kind: [unclosed\n")?;
    let mut a = agent(&data, &manifests, &url, &ca, kube.clone());
    a.step().await?; // check-in (nothing to send), then the failed attempt
    drop(a);
    assert!(fake.lock().unwrap().seen[3].attempts.is_empty());
    let st = status(&data);
    assert_eq!(st.applied_revision.as_deref(), Some(revision.as_str()));
    let failed = st.attempts.pending.clone();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0].outcome, AttemptOutcome::Failed);
    assert_ne!(failed[0].revision, revision);
    assert_eq!(failed[0].apply_seconds, 0.0);

    let mut a = agent(&data, &manifests, &url, &ca, kube.clone());
    a.step().await?;
    drop(a);
    assert_eq!(fake.lock().unwrap().seen[4].attempts, failed);
    // Delivered and removed; this fresh process (no in-memory back-off) retried the
    // broken revision after the check-in, so exactly one new timing waits.
    let left = status(&data).attempts.pending;
    assert_eq!(left.len(), 1, "{left:?}");
    assert_ne!(left, failed);
    assert_eq!(left[0].outcome, AttemptOutcome::Failed);
    Ok(())
}
