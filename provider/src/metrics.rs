//! Prometheus metrics of the controller and the `/metrics`, `/healthz`, `/readyz` HTTP
//! endpoints. Error categories come from `ReconcileError::category()`.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

type Labels = Vec<(String, String)>;

/// Controller metrics.
pub struct Metrics {
    registry: Mutex<Registry>,
    reconciles: Family<Labels, Counter>,
    errors: Family<Labels, Counter>,
    tokens_minted: Counter,
    render_seconds: Histogram,
    render_count: AtomicU64,
    render_nanos: AtomicU64,
    /// Set once the controller's watches are running.
    pub ready: AtomicBool,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("siteboot_provider");
        let reconciles = Family::<Labels, Counter>::default();
        let errors = Family::<Labels, Counter>::default();
        let tokens_minted = Counter::default();
        let render_seconds = Histogram::new(exponential_buckets(0.000_05, 2.0, 14));
        registry.register("reconciles", "Reconciles by result", reconciles.clone());
        registry.register(
            "reconcile_errors",
            "Failed reconciles by error category",
            errors.clone(),
        );
        registry.register(
            "tokens_minted",
            "Registration tokens minted",
            tokens_minted.clone(),
        );
        registry.register(
            "render_seconds",
            "Time spent rendering bootstrap data",
            render_seconds.clone(),
        );
        Metrics {
            registry: Mutex::new(registry),
            reconciles,
            errors,
            tokens_minted,
            render_seconds,
            render_count: AtomicU64::new(0),
            render_nanos: AtomicU64::new(0),
            ready: AtomicBool::new(false),
        }
    }
}

impl Metrics {
    pub fn reconciled(&self, result: &str) {
        self.reconciles
            .get_or_create(&vec![("result".into(), result.into())])
            .inc();
    }
    pub fn failed(&self, category: &str) {
        self.errors
            .get_or_create(&vec![("category".into(), category.into())])
            .inc();
    }
    pub fn minted(&self) {
        self.tokens_minted.inc();
    }
    pub fn rendered(&self, took: std::time::Duration) {
        self.render_seconds.observe(took.as_secs_f64());
        self.render_count.fetch_add(1, Ordering::Relaxed);
        self.render_nanos
            .fetch_add(took.as_nanos() as u64, Ordering::Relaxed);
    }
    /// (renders, total render time) since start.
    pub fn render_totals(&self) -> (u64, std::time::Duration) {
        (
            self.render_count.load(Ordering::Relaxed),
            std::time::Duration::from_nanos(self.render_nanos.load(Ordering::Relaxed)),
        )
    }
    /// Text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let registry = self.registry.lock().unwrap_or_else(|e| e.into_inner());
        let _ = encode(&mut out, &registry);
        out
    }
}

/// Serves `/metrics` on `metrics` and `/healthz` + `/readyz` on `health` (may be equal).
pub async fn serve(
    metrics: Arc<Metrics>,
    metrics_addr: SocketAddr,
    health_addr: SocketAddr,
) -> std::io::Result<()> {
    use axum::{routing::get, Router};
    let m = metrics.clone();
    let metrics_router = Router::new().route(
        "/metrics",
        get(move || {
            let m = m.clone();
            async move { m.encode() }
        }),
    );
    let r = metrics.clone();
    let health_router = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(move || {
                let r = r.clone();
                async move {
                    if r.ready.load(Ordering::Relaxed) {
                        (axum::http::StatusCode::OK, "ok")
                    } else {
                        (axum::http::StatusCode::SERVICE_UNAVAILABLE, "starting")
                    }
                }
            }),
        );
    if metrics_addr == health_addr {
        let l = tokio::net::TcpListener::bind(metrics_addr).await?;
        return axum::serve(l, metrics_router.merge(health_router)).await;
    }
    let ml = tokio::net::TcpListener::bind(metrics_addr).await?;
    let hl = tokio::net::TcpListener::bind(health_addr).await?;
    let (a, b) = tokio::join!(
        axum::serve(ml, metrics_router),
        axum::serve(hl, health_router)
    );
    a.and(b)
}
