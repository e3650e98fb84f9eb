//! A Kubernetes API emulator served over plain HTTP on `127.0.0.1` (random port), reached
//! by unmodified `kube::Client`s through a generated kubeconfig, so tests can run the real
//! binaries against it as separate processes or use it in-process as their fake cluster.
//!
//! It keeps objects in memory with real API semantics where our code depends on them:
//! discovery (legacy and aggregated) including CRDs registered at run time, create /
//! get / list / replace / delete, merge, JSON and strategic (as merge) patches, server-side
//! apply with per-manager field ownership and conflicts, the `status` subresource,
//! `resourceVersion` conflicts, `generation`, label and field selectors, list + watch with
//! resume, bookmarks and 410 on expired history, finalizers, owner-reference cascading
//! and namespace deletion. `e2e/README.md` lists precisely what it does and does not do.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! let emu = siteboot_e2e::emulator::Emulator::start().await?;
//! let client = emu.client().await?;               // in-process
//! let kubeconfig = emu.kubeconfig_path();         // for KUBECONFIG of child processes
//! # let _ = (client, kubeconfig); Ok(()) }
//! ```

mod crd;
mod discovery;
mod fields;
mod gc;
mod handlers;
mod kubeconfig;
mod meta;
mod ops;
mod patch;
mod registry;
mod route;
mod selectors;
mod server;
mod status;
mod store;
mod watch;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;

pub use kubeconfig::NAME as KUBECONFIG_NAME;

/// Failures starting or connecting to the emulator.
#[derive(Debug, thiserror::Error)]
pub enum EmulatorError {
    #[error("bind the emulator listener on 127.0.0.1: {0}")]
    Bind(#[source] std::io::Error),
    #[error("write the emulator kubeconfig: {0}")]
    WriteKubeconfig(#[source] std::io::Error),
    #[error("create the emulator's initial namespaces: {0}")]
    Seed(String),
    #[error("build a kube client from the emulator kubeconfig: {0}")]
    Client(String),
}

/// Entry point: [`Emulator::start`] with defaults, or [`Emulator::builder`] for options.
pub struct Emulator;

impl Emulator {
    /// Starts an emulator with default options.
    pub async fn start() -> Result<EmulatorHandle, EmulatorError> {
        Self::builder().start().await
    }

    /// Options: event history size, bookmark interval.
    pub fn builder() -> EmulatorBuilder {
        EmulatorBuilder::default()
    }
}

/// Emulator options.
#[derive(Debug, Clone)]
pub struct EmulatorBuilder {
    history_limit: usize,
    bookmark_interval: Duration,
}

impl Default for EmulatorBuilder {
    fn default() -> Self {
        EmulatorBuilder {
            history_limit: 10_000,
            bookmark_interval: Duration::from_secs(5),
        }
    }
}

/// Namespaces a fresh cluster has.
const INITIAL_NAMESPACES: &[&str] = &["default", "kube-system", "kube-public", "kube-node-lease"];

impl EmulatorBuilder {
    /// How many events (across all types) are retained for watches to resume from; a watch
    /// from an older `resourceVersion` gets 410 Gone. Default 10 000.
    pub fn history_limit(mut self, events: usize) -> Self {
        self.history_limit = events;
        self
    }

    /// How often watches that allow bookmarks get a BOOKMARK. Default 5 s.
    pub fn bookmark_interval(mut self, every: Duration) -> Self {
        self.bookmark_interval = every;
        self
    }

    /// Binds `127.0.0.1:0`, seeds the initial namespaces, writes the kubeconfig and serves.
    pub async fn start(self) -> Result<EmulatorHandle, EmulatorError> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(EmulatorError::Bind)?;
        let addr = listener.local_addr().map_err(EmulatorError::Bind)?;
        let url = format!("http://{addr}");
        let dir = tempfile::Builder::new()
            .prefix("siteboot-emulator-")
            .tempdir()
            .map_err(EmulatorError::WriteKubeconfig)?;
        let kubeconfig = dir.path().join("kubeconfig");
        std::fs::write(&kubeconfig, kubeconfig::render(&url))
            .map_err(EmulatorError::WriteKubeconfig)?;
        let store = Arc::new(Mutex::new(store::Store::new(self.history_limit)));
        seed(&store)?;
        let (shutdown_tx, shutdown_rx) = tokio::sync::watch::channel(false);
        let shared = Arc::new(server::Shared {
            store: store.clone(),
            shutdown: shutdown_rx.clone(),
            bookmark_interval: self.bookmark_interval,
        });
        let app = server::router(shared);
        let mut stop = shutdown_rx;
        let task = tokio::spawn(async move {
            let served = axum::serve(listener, app).with_graceful_shutdown(async move {
                let _ = stop.wait_for(|s| *s).await;
            });
            if let Err(e) = served.await {
                tracing::warn!(error = %e, "emulator server stopped with an error");
            }
        });
        tracing::info!(%url, "kubernetes api emulator listening");
        Ok(EmulatorHandle {
            addr,
            url,
            _dir: dir,
            kubeconfig,
            store,
            shutdown: shutdown_tx,
            task: Some(task),
        })
    }
}

fn seed(store: &Arc<Mutex<store::Store>>) -> Result<(), EmulatorError> {
    let mut s = store.lock().unwrap_or_else(|e| e.into_inner());
    let def = s
        .registry
        .find("", "v1", "namespaces")
        .cloned()
        .ok_or_else(|| EmulatorError::Seed("no namespace type".into()))?;
    let opts = ops::WriteOpts {
        manager: "emulator".into(),
        manager_given: true,
        ..Default::default()
    };
    for ns in INITIAL_NAMESPACES {
        let t = ops::Target {
            def: def.clone(),
            version: "v1".into(),
            namespace: String::new(),
            name: String::new(),
            status: false,
        };
        let body = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
        ops::create(&mut s, &t, body, &opts, chrono::Utc::now())
            .map_err(|e| EmulatorError::Seed(e.to_string()))?;
    }
    Ok(())
}

/// A running emulator. Dropping it stops the server (and ends open watches).
pub struct EmulatorHandle {
    addr: SocketAddr,
    url: String,
    _dir: tempfile::TempDir,
    kubeconfig: PathBuf,
    store: Arc<Mutex<store::Store>>,
    shutdown: tokio::sync::watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl EmulatorHandle {
    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The kubeconfig file (cluster, user and context all named `emulator`); valid while the
    /// handle lives. Give it to child processes as `KUBECONFIG`.
    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig
    }

    /// The kubeconfig's YAML text.
    pub fn kubeconfig_yaml(&self) -> String {
        kubeconfig::render(&self.url)
    }

    /// A `kube::Client` built from the kubeconfig exactly as a binary would build it.
    pub async fn client(&self) -> Result<kube::Client, EmulatorError> {
        let kc = kube::config::Kubeconfig::read_from(&self.kubeconfig)
            .map_err(|e| EmulatorError::Client(e.to_string()))?;
        let config =
            kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
                .await
                .map_err(|e| EmulatorError::Client(e.to_string()))?;
        kube::Client::try_from(config).map_err(|e| EmulatorError::Client(e.to_string()))
    }

    /// The latest committed `resourceVersion`.
    pub fn resource_version(&self) -> u64 {
        self.store.lock().unwrap_or_else(|e| e.into_inner()).rv()
    }

    /// Drops the retained event history, as an etcd compaction would: every watch from an
    /// older `resourceVersion` now gets 410 Gone.
    pub fn compact_history(&self) {
        self.store
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .compact();
    }

    /// Stops serving: open watches end, the listener closes.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        if let Some(task) = self.task.take() {
            let abort = task.abort_handle();
            if tokio::time::timeout(Duration::from_secs(10), task)
                .await
                .is_err()
            {
                tracing::warn!("emulator server did not stop within 10 s; aborting it");
                abort.abort();
            }
        }
    }
}

impl Drop for EmulatorHandle {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}
