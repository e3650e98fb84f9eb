//! The kube-runtime `Controller` for `SiteBootstrapConfig`: watches configs, owns their
//! data Secrets, maps Machines (by `spec.bootstrap.configRef`) and Clusters (by the
//! cluster-name label of configs) to configs, and runs the reconcile pipeline
//! fetch -> plan -> render -> apply -> status ([`reconcile`]).

mod apply;
mod error;
mod fetch;
mod reconcile;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ApiResource, DynamicObject};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use rand::Rng;

pub use apply::data_secret;
pub use error::ReconcileError;
pub use reconcile::reconcile;

use crate::api::SiteBootstrapConfig;
use crate::capi::{self, MachineFacts};
use crate::consts;
use crate::metrics::Metrics;
use crate::operator_client::ClientCache;

/// Controller settings (from flags).
#[derive(Debug, Clone)]
pub struct Settings {
    /// Watch one namespace, or all when `None`.
    pub namespace: Option<String>,
    /// Only handle objects labelled `cluster.x-k8s.io/watch-filter=<value>`.
    pub watch_filter: Option<String>,
    /// Concurrent reconciles.
    pub concurrency: u16,
    /// Token lifetime when the spec has none.
    pub default_ttl: chrono::Duration,
    /// How often an unregistered token is checked.
    pub check_interval: chrono::Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            namespace: None,
            watch_filter: None,
            concurrency: 16,
            default_ttl: chrono::Duration::hours(24),
            check_interval: chrono::Duration::seconds(60),
        }
    }
}

/// Shared state of all reconciles.
pub struct Context {
    pub client: kube::Client,
    pub settings: Settings,
    pub machine_ar: ApiResource,
    pub cluster_ar: ApiResource,
    pub operators: ClientCache,
    pub metrics: Arc<Metrics>,
    /// Publishes Kubernetes events about configs.
    pub recorder: Recorder,
    failures: Mutex<HashMap<String, u32>>,
}

impl Context {
    /// Builds a context, discovering which CAPI version (`v1beta2` or `v1beta1`) the
    /// cluster serves.
    pub async fn new(client: kube::Client, settings: Settings, metrics: Arc<Metrics>) -> Self {
        let version = capi_version(&client).await;
        tracing::info!(%version, "using cluster.x-k8s.io version for Machines and Clusters");
        let reporter = Reporter {
            controller: consts::FIELD_MANAGER.to_string(),
            instance: std::env::var("POD_NAME").ok(),
        };
        Context {
            recorder: Recorder::new(client.clone(), reporter),
            machine_ar: capi::api_resource("Machine", &version),
            cluster_ar: capi::api_resource("Cluster", &version),
            client,
            settings,
            operators: ClientCache::default(),
            metrics,
            failures: Mutex::new(HashMap::new()),
        }
    }

    fn backoff(&self, key: &str) -> Duration {
        let mut f = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let n = f.entry(key.to_string()).or_insert(0);
        *n = n.saturating_add(1);
        // 2 s, 4 s, ... capped at 5 min, with +-25 % jitter so a fleet does not retry in step.
        let base = (2u64 << (*n - 1).min(8)).min(300) as f64;
        let jitter = rand::rng().random_range(0.75..1.25);
        Duration::from_secs_f64(base * jitter)
    }

    /// Publishes an event about `cfg`, best effort (a lost event never fails a reconcile).
    pub async fn event(
        &self,
        cfg: &SiteBootstrapConfig,
        type_: EventType,
        reason: &str,
        action: &str,
        note: String,
    ) {
        let ev = Event {
            type_,
            reason: reason.to_string(),
            note: Some(note),
            action: action.to_string(),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&ev, &cfg.object_ref(&())).await {
            tracing::debug!(error = %e, "could not publish event");
        }
    }

    fn succeeded(&self, key: &str) {
        self.failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
    }
}

async fn capi_version(client: &kube::Client) -> String {
    for v in consts::CAPI_VERSIONS {
        if let Ok(list) = client
            .list_api_group_resources(&format!("{}/{v}", consts::CAPI_GROUP))
            .await
        {
            if list.resources.iter().any(|r| r.name == "machines") {
                return v.to_string();
            }
        }
    }
    consts::CAPI_VERSIONS[0].to_string()
}

fn error_policy(cfg: Arc<SiteBootstrapConfig>, err: &ReconcileError, ctx: Arc<Context>) -> Action {
    let key = format!("{}/{}", cfg.namespace().unwrap_or_default(), cfg.name_any());
    ctx.metrics.failed(err.category());
    let delay = ctx.backoff(&key);
    tracing::warn!(config = %key, category = err.category(), error = %err, retry_in = ?delay, "reconcile failed");
    let (reason, note) = (err.event_reason(), err.to_string());
    tokio::spawn(async move {
        ctx.event(&cfg, EventType::Warning, reason, "Reconcile", note)
            .await
    });
    Action::requeue(delay)
}

fn api<K>(client: &kube::Client, ns: &Option<String>) -> Api<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
{
    match ns {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

fn dynamic_api(client: &kube::Client, ns: &Option<String>, ar: &ApiResource) -> Api<DynamicObject> {
    match ns {
        Some(ns) => Api::namespaced_with(client.clone(), ns, ar),
        None => Api::all_with(client.clone(), ar),
    }
}

/// Config refs a Machine points at.
pub fn machine_to_config(m: &MachineFacts) -> Option<ObjectRef<SiteBootstrapConfig>> {
    match &m.config_ref {
        Some((kind, name)) if kind == consts::KIND => {
            Some(ObjectRef::new(name).within(&m.namespace))
        }
        _ => None,
    }
}

/// Runs the controller until `shutdown` resolves.
pub async fn run(
    ctx: Arc<Context>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let s = &ctx.settings;
    let filter = s
        .watch_filter
        .as_ref()
        .map(|v| format!("{}={v}", consts::WATCH_FILTER_LABEL));
    let wc = || match &filter {
        Some(f) => watcher::Config::default().labels(f),
        None => watcher::Config::default(),
    };
    let configs: Api<SiteBootstrapConfig> = api(&ctx.client, &s.namespace);
    let secrets: Api<Secret> = api(&ctx.client, &s.namespace);
    let machines = dynamic_api(&ctx.client, &s.namespace, &ctx.machine_ar);
    let clusters = dynamic_api(&ctx.client, &s.namespace, &ctx.cluster_ar);
    let controller = Controller::new(configs, wc());
    let store = controller.store();
    let controller = controller
        .owns(
            secrets,
            watcher::Config::default().labels(consts::CLUSTER_NAME_LABEL),
        )
        .watches_with(machines, ctx.machine_ar.clone(), wc(), |m| {
            machine_to_config(&MachineFacts::from_dynamic(&m))
        })
        .watches_with(clusters, ctx.cluster_ar.clone(), wc(), move |c| {
            let ns = c.namespace().unwrap_or_default();
            let name = c.name_any();
            store
                .state()
                .into_iter()
                .filter(|cfg| {
                    cfg.namespace().as_deref() == Some(ns.as_str())
                        && cfg.labels().get(consts::CLUSTER_NAME_LABEL) == Some(&name)
                })
                .map(|cfg| ObjectRef::from_obj(&*cfg))
                .collect::<Vec<_>>()
        })
        .with_config(kube::runtime::controller::Config::default().concurrency(s.concurrency))
        .graceful_shutdown_on(shutdown);
    ctx.metrics
        .ready
        .store(true, std::sync::atomic::Ordering::Relaxed);
    controller
        .run(reconcile_and_count, error_policy, ctx.clone())
        .for_each(|res| async move {
            if let Err(e) = res {
                tracing::debug!(error = %e, "controller event");
            }
        })
        .await;
}

async fn reconcile_and_count(
    cfg: Arc<SiteBootstrapConfig>,
    ctx: Arc<Context>,
) -> Result<Action, ReconcileError> {
    let key = format!("{}/{}", cfg.namespace().unwrap_or_default(), cfg.name_any());
    let res = reconcile(cfg, ctx.clone()).await;
    match &res {
        Ok(_) => {
            ctx.succeeded(&key);
            ctx.metrics.reconciled("success");
        }
        Err(_) => ctx.metrics.reconciled("error"),
    }
    res
}
