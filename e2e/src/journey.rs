//! Shared setup of the user-journey tests (`e2e/tests/journey_*.rs`): the fleet Git
//! repository with its three layers, the real registration service as a restartable
//! process with `sitebootctl` next to it, agents as processes, site clusters (emulators)
//! and the checks that a site hydrated. [`bootdata`] reads rendered bootstrap data back
//! into files; [`capi`] plays Cluster API core on the management emulator; [`factory`]
//! images boxes with a factory enrollment.

pub mod bootdata;
pub mod capi;
pub mod factory;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::Api;
use serde_json::Value;

use crate::emulator::{Emulator, EmulatorHandle};
use crate::git::{GitHttpConfig, GitHttpServer, GitRepo};
use crate::ports;
use crate::process::{binaries, Process, Spec, TestRun};

/// How long any one step of a journey may take (generous: a loaded 2-core machine).
pub const DEADLINE: Duration = Duration::from_secs(120);

/// Polls `check` every 200 ms until it returns `Some`, failing after [`DEADLINE`].
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(v) = check().await {
            return Ok(v);
        }
        if Instant::now() > deadline {
            bail!("timed out after {DEADLINE:?} waiting for: {what}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// One site of the journeys' inventory.
#[derive(Debug, Clone)]
pub struct SiteSpec {
    /// Site id.
    pub id: &'static str,
    /// `region` label.
    pub region: &'static str,
    /// Free-form `city` label (substituted into the site layer).
    pub city: &'static str,
    /// Serials logistics shipped to the site.
    pub expected_serials: Vec<&'static str>,
}

/// The fleet repository: a baseline Namespace and ConfigMap using `${site-id}` and
/// `${region}`, a region overlay merged over it per region, and a site overlay per site
/// using `${city}`.
pub fn fleet_files(sites: &[SiteSpec]) -> Vec<(String, String)> {
    let mut files = vec![
        (
            "baseline/namespace.yaml".to_string(),
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n".to_string(),
        ),
        (
            "baseline/config.yaml".to_string(),
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: shop-config\n  namespace: shop\ndata:\n  site: ${site-id}\n  region: ${region}\n  tier: baseline\n".to_string(),
        ),
    ];
    for s in sites {
        let region = format!("regions/{}/config.yaml", s.region);
        if !files.iter().any(|(p, _)| *p == region) {
            files.push((
                region,
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: shop-config\n  namespace: shop\ndata:\n  tier: region-${region}\n".to_string(),
            ));
        }
        files.push((
            format!("clusters/{}/site.yaml", s.id),
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: site-info\n  namespace: shop\ndata:\n  city: ${city}\n  site: ${site-id}\n".to_string(),
        ));
    }
    files
}

/// The inventory naming `git_url` (ring `broad` on `main`) and `sites`.
pub fn inventory_yaml(git_url: &str, sites: &[SiteSpec]) -> String {
    let mut out = format!(
        "apiVersion: siteboot.io/v1alpha1\nkind: Inventory\ngit:\n  url: {git_url}\n  rings:\n    broad:\n      branch: main\nsites:\n"
    );
    for s in sites {
        out.push_str(&format!(
            "  - id: {}\n    region: {}\n    country: DE\n    ring: broad\n    networkTier: fiber\n    hardwareClass: nuc\n    maintenanceWindow: always\n    registryZone: {}-mirror\n    labels:\n      city: {}\n",
            s.id, s.region, s.region, s.city
        ));
        if !s.expected_serials.is_empty() {
            out.push_str("    expectedSerials:\n");
            for serial in &s.expected_serials {
                out.push_str(&format!("      - {serial}\n"));
            }
        }
    }
    out
}

/// The fleet repository served over HTTP by the real `git http-backend`.
pub struct Fleet {
    /// The repository (commit to it to publish a revision).
    pub repo: GitRepo,
    /// The server (dropping it stops serving).
    pub server: GitHttpServer,
    /// Clone URL.
    pub url: String,
}

impl Fleet {
    /// Creates the repository for `sites` and serves it.
    pub fn serve(run: &TestRun, sites: &[SiteSpec]) -> Result<Fleet> {
        let files = fleet_files(sites);
        let refs: Vec<(&str, &str)> = files
            .iter()
            .map(|(p, c)| (p.as_str(), c.as_str()))
            .collect();
        let repo = GitRepo::create("fleet", &refs)?;
        let server = GitHttpServer::start(
            &repo,
            GitHttpConfig::http().port(ports::free_port()?),
            &run.log_path("git-http"),
        )?;
        let url = server.url(&repo);
        Ok(Fleet { repo, server, url })
    }
}

/// The real `siteboot-registration` on a fixed port (so it can be restarted), with its
/// data directory and inventory file.
pub struct RegistrationService {
    /// Data directory (CA, operator credential, database, batches).
    pub data: PathBuf,
    /// Listening port.
    pub port: u16,
    /// Inventory file.
    pub inventory: PathBuf,
    /// More flags for every start (e.g. `--cert-ttl 45s`).
    pub extra_args: Vec<String>,
}

/// Output of one `sitebootctl` run.
#[derive(Debug)]
pub struct CtlOutput {
    /// Exit code (`None`: killed by a signal).
    pub code: Option<i32>,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl RegistrationService {
    /// Writes the inventory and picks a port; nothing runs yet.
    pub fn new(run: &TestRun, inventory_yaml: &str) -> Result<RegistrationService> {
        let inventory = run.dir().join("inventory.yaml");
        std::fs::write(&inventory, inventory_yaml)?;
        Ok(RegistrationService {
            data: run.subdir("registration"),
            port: ports::free_port()?,
            inventory,
            extra_args: Vec::new(),
        })
    }

    /// `https://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    /// The service CA (exists once the service started once).
    pub fn ca_file(&self) -> PathBuf {
        self.data.join("ca.pem")
    }

    /// The operator credential, registered with the run's secret scan.
    pub fn operator_token(&self, run: &TestRun) -> Result<String> {
        let token = std::fs::read_to_string(self.data.join("operator-token"))
            .context("operator-token (start the service first)")?
            .trim()
            .to_string();
        run.register_secret("operator credential", &token);
        Ok(token)
    }

    /// `siteboot-registration --add-batch NAME`: the batch secret, registered with the
    /// secret scan, and the file holding it.
    pub fn add_batch(&self, run: &TestRun, name: &str) -> Result<(String, PathBuf)> {
        let out = std::process::Command::new(binaries::binary("siteboot-registration")?)
            .arg("--data-dir")
            .arg(&self.data)
            .arg("--add-batch")
            .arg(name)
            .output()?;
        ensure!(
            out.status.success(),
            "--add-batch {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let file = self.data.join(format!("batch-{name}.secret"));
        let secret = std::fs::read_to_string(&file)
            .with_context(|| format!("{}", file.display()))?
            .trim()
            .to_string();
        run.register_secret(&format!("batch {name} secret"), &secret);
        Ok((secret, file))
    }

    /// Starts the service (1 s check-ins and heartbeat flushes) and waits until it listens.
    pub async fn start(&self, run: &TestRun) -> Result<Process> {
        let mut p = run.spawn(
            "registration",
            &Spec::new(binaries::binary("siteboot-registration")?)
                .arg("--data-dir")
                .arg(&self.data)
                .arg("--listen")
                .arg(format!("127.0.0.1:{}", self.port))
                .arg("--inventory")
                .arg(&self.inventory)
                .arg("--checkin-interval-seconds")
                .arg("1")
                .arg("--heartbeat-flush-interval")
                .arg("1s")
                .args(&self.extra_args)
                .env("NO_COLOR", "1"),
        )?;
        let addr = format!("127.0.0.1:{}", self.port).parse()?;
        let deadline = Instant::now() + DEADLINE;
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

    /// Runs `sitebootctl` (the real CLI) against the service, as an operator would.
    pub async fn ctl(&self, args: &[&str]) -> Result<CtlOutput> {
        let out = tokio::process::Command::new(binaries::binary("sitebootctl")?)
            .arg("--server")
            .arg(self.url())
            .arg("--data-dir")
            .arg(&self.data)
            .args(args)
            .env("NO_COLOR", "1")
            .output()
            .await?;
        Ok(CtlOutput {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }

    /// `sitebootctl -o json ARGS`, which must succeed.
    pub async fn ctl_json(&self, args: &[&str]) -> Result<Value> {
        let mut all = vec!["-o", "json"];
        all.extend_from_slice(args);
        let out = self.ctl(&all).await?;
        ensure!(
            out.code == Some(0),
            "sitebootctl {args:?} exited {:?}: {}",
            out.code,
            out.stderr
        );
        serde_json::from_str(&out.stdout)
            .with_context(|| format!("sitebootctl {args:?} printed no JSON: {}", out.stdout))
    }

    /// `GET /metrics` (Prometheus text) over HTTPS, trusting only the service CA.
    pub async fn metrics(&self) -> Result<String> {
        let tls = siteboot_agent::tls::Trust::load(&self.ca_file(), None)?.anonymous()?;
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .timeout(Duration::from_secs(30))
            .build()?;
        let resp = client
            .get(format!("{}/metrics", self.url()))
            .send()
            .await?
            .error_for_status()?;
        Ok(resp.text().await?)
    }

    /// The value of one sample line (`name{labels}`, exactly as exposed) in `/metrics`.
    pub async fn metric(&self, series: &str) -> Result<Option<f64>> {
        let text = self.metrics().await?;
        Ok(text.lines().find_map(|l| {
            l.strip_prefix(series)
                .and_then(|rest| rest.strip_prefix(' '))
                .and_then(|v| v.trim().parse().ok())
        }))
    }

    /// `sitebootctl sites show ID -o json`, flattened: the site's own fields whether the
    /// answer is a plain site or a detail view with the site under `site`.
    pub async fn site(&self, site_id: &str) -> Result<Value> {
        let v = self.ctl_json(&["sites", "show", site_id]).await?;
        Ok(match v.get("site") {
            Some(site) if site.is_object() => {
                let mut site = site.clone();
                if let (Some(obj), Some(history)) = (site.as_object_mut(), v.get("history")) {
                    obj.insert("history".into(), history.clone());
                }
                site
            }
            _ => v,
        })
    }
}

/// A site's local cluster: an API emulator standing in for k3s.
pub struct SiteCluster {
    /// The emulator (dropping it stops the cluster).
    pub emu: EmulatorHandle,
    /// Client for assertions.
    pub client: kube::Client,
}

impl SiteCluster {
    /// Starts an empty cluster.
    pub async fn start() -> Result<SiteCluster> {
        let emu = Emulator::start().await?;
        let client = emu.client().await?;
        Ok(SiteCluster { emu, client })
    }

    /// `shop/<name>`'s data, if the ConfigMap exists.
    pub async fn config(&self, name: &str) -> Option<std::collections::BTreeMap<String, String>> {
        let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), "shop");
        api.get_opt(name).await.ok().flatten()?.data
    }

    /// Waits until the three layers of `site` are applied with its labels substituted.
    pub async fn wait_hydrated(&self, site: &SiteSpec) -> Result<()> {
        eventually(&format!("{} hydrated", site.id), || async {
            let shop = self.config("shop-config").await?;
            let info = self.config("site-info").await?;
            let want_region = format!("region-{}", site.region);
            (shop.get("site").map(String::as_str) == Some(site.id)
                && shop.get("region").map(String::as_str) == Some(site.region)
                && shop.get("tier") == Some(&want_region)
                && info.get("city").map(String::as_str) == Some(site.city)
                && info.get("site").map(String::as_str) == Some(site.id))
            .then_some(())
        })
        .await
    }
}

/// The agent's local status file (`<dataDir>/status.json`), or `null`.
pub fn agent_status(data_dir: &Path) -> Value {
    std::fs::read(data_dir.join("status.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or(Value::Null)
}

/// Starts the real agent as `name` with `args` and extra environment.
pub fn spawn_agent(
    run: &TestRun,
    name: &str,
    args: &[String],
    env: &[(&str, &str)],
) -> Result<Process> {
    let mut spec = Spec::new(binaries::binary("siteboot-agent")?)
        .args(args)
        .env("SITEBOOT_LOG", "info,kube=warn")
        .env("NO_COLOR", "1");
    for (k, v) in env {
        spec = spec.env(k, v);
    }
    Ok(run.spawn(name, &spec)?)
}

/// Prints how long a journey took (shown with `--nocapture`, kept in the test log).
pub fn report_wall_time(name: &str, started: Instant) {
    println!("{name}: wall time {:.1} s", started.elapsed().as_secs_f64());
}
