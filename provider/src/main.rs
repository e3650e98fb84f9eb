//! `siteboot-provider`: the Cluster API bootstrap provider manager. Parses flags, starts
//! logging, metrics and health endpoints, and runs the controller until SIGTERM/SIGINT.
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Parser;
use siteboot_provider::controller::{self, Context, Settings};
use siteboot_provider::metrics::Metrics;

/// Cluster API bootstrap provider for siteboot edge sites.
#[derive(Debug, Parser)]
#[command(name = "siteboot-provider", version, about)]
struct Args {
    /// Watch only this namespace (default: all namespaces).
    #[arg(long, env = "SITEBOOT_NAMESPACE")]
    namespace: Option<String>,
    /// Only reconcile objects labelled cluster.x-k8s.io/watch-filter=<VALUE>.
    #[arg(long, env = "SITEBOOT_WATCH_FILTER")]
    watch_filter: Option<String>,
    /// Address for Prometheus metrics (/metrics).
    #[arg(long, default_value = "127.0.0.1:8080")]
    metrics_bind_address: SocketAddr,
    /// Address for /healthz and /readyz.
    #[arg(long, default_value = "0.0.0.0:9440")]
    health_probe_bind_address: SocketAddr,
    /// Configs reconciled at the same time.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..))]
    concurrency: u16,
    /// Registration token lifetime when a config has no tokenTTL (e.g. 24h, 90m).
    #[arg(long, default_value = "24h", value_parser = parse_ttl)]
    token_ttl: chrono::Duration,
    /// How often an unregistered token is checked at the registration service, in seconds.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u32).range(1..))]
    token_check_interval_seconds: u32,
    /// Directory with tls.crt and tls.key for the admission webhook; the webhook runs only
    /// when this is set (config/webhook mounts the cert-manager Secret there).
    #[arg(long)]
    webhook_cert_dir: Option<std::path::PathBuf>,
    /// Address of the HTTPS admission webhook (with --webhook-cert-dir).
    #[arg(long, default_value = "0.0.0.0:9443")]
    webhook_bind_address: SocketAddr,
}

fn parse_ttl(s: &str) -> Result<chrono::Duration, String> {
    siteboot_provider::plan::parse_ttl(s)
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("siteboot-provider: start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // One line: what failed and what to do, then the direct cause (kube errors
            // already fold their own sources into their message).
            match e.chain().nth(1) {
                Some(cause) => eprintln!("siteboot-provider: {e}: {cause}"),
                None => eprintln!("siteboot-provider: {e}"),
            }
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,kube=warn".into()),
        )
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .init();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let _webhook = match &args.webhook_cert_dir {
        Some(dir) => Some(
            siteboot_provider::webhook::server::serve(args.webhook_bind_address, dir)
                .await
                .context("start the admission webhook (check --webhook-cert-dir and --webhook-bind-address)")?,
        ),
        None => None,
    };
    let client = kube::Client::try_default()
        .await
        .context("connect to Kubernetes: set KUBECONFIG or run in a cluster")?;
    let settings = Settings {
        // clusterctl templates pass `--namespace=` / `--watch-filter=` when unset: empty means "all" / "none".
        namespace: args.namespace.filter(|n| !n.trim().is_empty()),
        watch_filter: args.watch_filter.filter(|f| !f.trim().is_empty()),
        concurrency: args.concurrency,
        default_ttl: args.token_ttl,
        check_interval: chrono::Duration::seconds(args.token_check_interval_seconds.into()),
    };
    let metrics = Arc::new(Metrics::default());
    let served = tokio::spawn(siteboot_provider::metrics::serve(
        metrics.clone(),
        args.metrics_bind_address,
        args.health_probe_bind_address,
    ));
    let ctx = Arc::new(Context::new(client, settings, metrics).await);
    let shutdown = async {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
        }
    };
    tokio::select! {
        _ = controller::run(ctx, shutdown) => Ok(()),
        res = served => match res {
            Ok(Err(e)) => Err(e).context("serve metrics/health endpoints (check --metrics-bind-address and --health-probe-bind-address)"),
            _ => Ok(()),
        },
    }
}
