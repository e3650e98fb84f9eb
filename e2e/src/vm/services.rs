//! The host side of a VM test's network: the registration service with a certificate
//! valid for the guest-facing address, the `guestfwd` table, and the CONNECT proxy that
//! gives host processes (provider, `sitebootctl`) the same view of the services.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{ensure, Result};

use super::proxy::ConnectProxy;
use super::SERVICE_IP;
use crate::journey::RegistrationService;
use crate::process::{binaries, Process, Spec, TestRun};

/// A guest-facing port and the loopback port behind it.
#[derive(Debug, Clone, Copy)]
pub struct Service {
    pub guest_port: u16,
    pub host_port: u16,
}

/// Starts `reg` with `--san 10.0.2.100` (the name the guest uses), 3 s check-ins and
/// 1 s heartbeat flushes, and waits until it listens.
pub async fn start_registration(run: &TestRun, reg: &RegistrationService) -> Result<Process> {
    let mut p = run.spawn(
        "registration",
        &Spec::new(binaries::binary("siteboot-registration")?)
            .arg("--data-dir")
            .arg(&reg.data)
            .arg("--listen")
            .arg(format!("127.0.0.1:{}", reg.port))
            .arg("--inventory")
            .arg(&reg.inventory)
            .arg("--san")
            .arg(SERVICE_IP)
            .arg("--checkin-interval-seconds")
            .arg("3")
            .arg("--heartbeat-flush-interval")
            .arg("1s")
            .env("NO_COLOR", "1"),
    )?;
    let addr = format!("127.0.0.1:{}", reg.port).parse()?;
    let deadline = Instant::now() + Duration::from_secs(120);
    while std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        ensure!(
            p.try_exit()?.is_none(),
            "registration exited early:\n{}",
            p.log()
        );
        ensure!(
            Instant::now() < deadline,
            "registration did not listen:\n{}",
            p.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(p)
}

/// The CONNECT proxy mapping every `10.0.2.100:guest_port` to its loopback port.
pub async fn host_proxy(services: &[Service]) -> Result<ConnectProxy> {
    let map: HashMap<String, String> = services
        .iter()
        .map(|s| {
            (
                format!("{SERVICE_IP}:{}", s.guest_port),
                format!("127.0.0.1:{}", s.host_port),
            )
        })
        .collect();
    ConnectProxy::start(map).await
}

/// Environment for a host process that must reach the guest-facing URLs through
/// `proxy` while talking to loopback (the emulator) directly. `ALL_PROXY` is what
/// reqwest reads and kube does not (kube would take `HTTPS_PROXY` for the cluster too
/// and refuses it without its `http-proxy` feature).
pub fn proxy_env(proxy: &ConnectProxy) -> Vec<(String, String)> {
    vec![
        ("ALL_PROXY".into(), proxy.url()),
        ("NO_PROXY".into(), "127.0.0.1,localhost".into()),
    ]
}

/// SHA-256 (hex) of a file, with coreutils' `sha256sum`.
pub fn sha256_file(path: &std::path::Path) -> Result<String> {
    let out = std::process::Command::new("sha256sum").arg(path).output()?;
    ensure!(out.status.success(), "sha256sum {}", path.display());
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(text
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string())
}
