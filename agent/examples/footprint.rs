//! Footprint benchmark: stripped binary size, peak RSS while applying a 500-object site
//! and idle RSS afterwards, for the real `siteboot-agent` binary.
//!
//! ```text
//! cargo build --release -p siteboot-agent
//! cargo run -p siteboot-agent --example footprint -- target/release/siteboot-agent
//! ```
//!
//! The agent runs as a child process against the Kubernetes API emulator (in this
//! process) with an already-registered data directory and `--source-dir` pointing at 500
//! ConfigMaps; the registration service URL is unreachable on purpose (the agent stays
//! offline, as a site would). RSS figures come from `/proc/<pid>/status` (`VmHWM` = peak,
//! `VmRSS` = current). Prints figures; asserts nothing about them.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rcgen::{CertificateParams, KeyPair};
use serde_json::json;

const OBJECTS: usize = 500;

fn proc_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let binary = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "target/release/siteboot-agent".into()),
    );
    let size = std::fs::metadata(&binary)?.len();

    let emu = siteboot_e2e::emulator::Emulator::start().await?;
    let tmp = tempfile::tempdir()?;
    let (data, source) = (tmp.path().join("data"), tmp.path().join("source"));
    prepare_data_dir(&data)?;
    let baseline = source.join("baseline");
    std::fs::create_dir_all(&baseline)?;
    std::fs::write(
        baseline.join("00-namespace.yaml"),
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: bench\n",
    )?;
    let mut many = String::new();
    for i in 0..OBJECTS - 1 {
        many.push_str(&format!(
            "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-{i:04}\n  namespace: bench\ndata:\n  payload: \"{}\"\n",
            "x".repeat(256)
        ));
    }
    std::fs::write(baseline.join("10-configmaps.yaml"), many)?;
    let config = tmp.path().join("agent.yaml");
    std::fs::write(
        &config,
        format!(
            "registrationUrl: https://127.0.0.1:9\ncaFile: {}\ndataDir: {}\nkubeconfig: {}\npollIntervalSeconds: 2\nresyncIntervalSeconds: 3600\n",
            data.join("ca.pem").display(),
            data.display(),
            emu.kubeconfig_path().display()
        ),
    )?;
    let mut child = Command::new(&binary)
        .args(["run", "--config"])
        .arg(&config)
        .arg("--source-dir")
        .arg(&source)
        .env("SITEBOOT_SERIAL", "FOOTPRINT-1")
        .env("SITEBOOT_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let pid = child.id();
    let start = Instant::now();
    let status = data.join("status.json");
    loop {
        let s: serde_json::Value = std::fs::read(&status)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        if s["appliedRevision"].is_string() {
            break;
        }
        if start.elapsed() > Duration::from_secs(300) || child.try_wait()?.is_some() {
            let _ = child.kill();
            anyhow::bail!("the agent did not apply the site within 300 s: {s}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let apply_time = start.elapsed();
    let peak_apply = proc_kib(pid, "VmHWM:");
    tokio::time::sleep(Duration::from_secs(15)).await;
    let idle = proc_kib(pid, "VmRSS:");
    let peak = proc_kib(pid, "VmHWM:");
    let _ = child.kill();
    let _ = child.wait();
    println!(
        "binary            {} ({} bytes) {}",
        mib(size / 1024),
        size,
        binary.display()
    );
    println!(
        "apply {OBJECTS} objects {:.1} s (start to applied, emulator over loopback HTTP)",
        apply_time.as_secs_f64()
    );
    println!(
        "peak RSS          {} (VmHWM when the {OBJECTS} objects were applied)",
        mib(peak_apply)
    );
    println!(
        "peak RSS overall  {} (VmHWM at the end, including offline check-in retries)",
        mib(peak)
    );
    println!(
        "idle RSS          {} (VmRSS, 15 s after apply, offline service)",
        mib(idle)
    );
    Ok(())
}

/// A registered data directory: identity, CA, marker and an assignment.
fn prepare_data_dir(data: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(data)?;
    let key = KeyPair::generate()?;
    let cert = CertificateParams::new(vec!["footprint".to_string()])?.self_signed(&key)?;
    std::fs::write(
        data.join("identity.pem"),
        format!("{}{}", cert.pem(), key.serialize_pem()),
    )?;
    std::fs::write(data.join("ca.pem"), cert.pem())?;
    let write = |name: &str, v: serde_json::Value| {
        std::fs::write(data.join(name), serde_json::to_vec(&v).unwrap())
    };
    write(
        "registered.json",
        json!({"deviceId": "dev-footprint", "siteId": "footprint", "registeredAt": "2026-01-01T00:00:00Z", "checkinIntervalSeconds": 60}),
    )?;
    write(
        "assignment.json",
        json!({"siteId": "footprint", "source": {"url": "file:///unused", "revision": {"type": "branch", "name": "main"}},
               "paths": ["baseline/"], "labels": {}}),
    )?;
    Ok(())
}
