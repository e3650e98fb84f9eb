//! Running the service as a process: serve, print where everything is and what to run
//! next, wait for SIGINT/SIGTERM, shut down gracefully (heartbeats flushed).

use std::fmt::Write as _;
use std::path::Path;

use crate::config::ServeConfig;
use crate::server::{serve, ServeError, ServerInfo};

/// Serves until SIGINT or SIGTERM.
pub async fn run(config: ServeConfig) -> Result<(), ServeError> {
    let handle = serve(config).await?;
    println!("{}", banner(handle.info()));
    wait_for_signal().await;
    tracing::info!("signal received: shutting down");
    handle.shutdown().await
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

fn show(p: &Path) -> String {
    p.display().to_string()
}

/// The start-up text: locations (never secret values) and next steps.
pub fn banner(info: &ServerInfo) -> String {
    let d = &info.data_dir;
    let url = &info.url;
    let mut b = String::new();
    let _ = writeln!(
        b,
        "siteboot-registration {} is serving on {url}",
        env!("CARGO_PKG_VERSION")
    );
    let _ = writeln!(b);
    let rows = [
        (
            "dashboard",
            format!("{url}/  (sign in with the operator credential below)"),
        ),
        ("data directory", show(&d.root)),
        ("database (SQLite)", show(&d.database)),
        (
            "service CA",
            format!("{}  (agents and sitebootctl trust this)", show(&d.ca_cert)),
        ),
        (
            "operator credential",
            format!(
                "{}  (file path; keep the file secret)",
                show(&d.operator_token)
            ),
        ),
        (
            "enrollment batches",
            format!(
                "{}  (demo batch secret in {})",
                show(&d.batches),
                show(&d.demo_batch_secret)
            ),
        ),
        ("git credentials", show(&d.git_credentials)),
        (
            "inventory",
            match &info.inventory {
                Some(p) => format!("{}  ({} sites)", show(p), info.sites),
                None => "none (pass --inventory FILE; see config/samples/inventory.yaml)".into(),
            },
        ),
        ("health", format!("{url}/healthz  {url}/readyz")),
        ("metrics", format!("{url}/metrics")),
        ("api document", format!("{url}/openapi.json")),
    ];
    for (k, v) in rows {
        let _ = writeln!(b, "  {k:<20} {v}");
    }
    if !info.created.is_empty() {
        let _ = writeln!(b, "  created on this start: {}", info.created.len());
    }
    let ctl = "cargo run -q -p siteboot-registration --bin sitebootctl --";
    let _ = writeln!(b);
    let _ = writeln!(b, "next (in another terminal, same working directory):");
    let _ = writeln!(b, "  {ctl} sites list");
    let _ = writeln!(b, "  {ctl} token create --site <SITE_ID>");
    let _ = writeln!(
        b,
        "  {ctl} claim create --site <SITE_ID>      # prints the code and a QR code"
    );
    let _ = writeln!(b, "  {ctl} sites show <SITE_ID>");
    let _ = writeln!(
        b,
        "  cargo run -q -p siteboot-agent -- --registration-url {url} --ca-file {} \\",
        show(&d.ca_cert)
    );
    let _ = writeln!(
        b,
        "      --site-id <SITE_ID> --claim-code <CODE> --serial DEMO-0001 --data-dir .siteboot/agent \\"
    );
    let _ = writeln!(
        b,
        "      --kubeconfig <KUBECONFIG of the site's cluster, e.g. a local k3s>"
    );
    let _ = writeln!(b, "  curl --cacert {} {url}/readyz", show(&d.ca_cert));
    let _ = write!(
        b,
        "stop with Ctrl-C (heartbeats are flushed on the way out)"
    );
    b
}
