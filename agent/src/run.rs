//! `siteboot-agent run`: load trust, gather facts, register (or resume), then hand over to
//! the reconcile loop. Also the `render` and `status` commands' I/O.

use std::path::{Path, PathBuf};

use siteboot_wire::labels::Labels;
use siteboot_wire::Assignment;

use crate::apply::Applier;
use crate::checkout::load_layers;
use crate::client::ServiceClient;
use crate::config::Settings;
use crate::facts::FactSources;
use crate::reconcile::{Agent, AgentParts};
use crate::register::ensure_registered;
use crate::render::render;
use crate::source::Source;
use crate::status::LocalStatus;
use crate::store::{DataDir, ASSIGNMENT, CA, CHECKOUT, IDENTITY, STATUS};
use crate::tls::Trust;

/// Options of `run` beyond the config file.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Serial override.
    pub serial: Option<String>,
    /// Use this directory instead of the assignment's Git source (tests, demos).
    pub source_dir: Option<PathBuf>,
}

/// Installs the ring crypto provider as rustls' process default (kube uses it).
pub fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Runs the agent until stopped.
pub async fn run(settings: Settings, opts: RunOptions) -> anyhow::Result<()> {
    install_crypto();
    let dir = DataDir::open(&settings.data_dir)?;
    let trust = Trust::load(&settings.ca_file, settings.ca_sha256.as_deref())?;
    let facts = FactSources::system(opts.serial.clone()).gather()?;
    let anonymous = ServiceClient::new(&settings.registration_url, trust.anonymous()?)?;
    let record = ensure_registered(&dir, &settings, &anonymous, &facts).await?;
    let trust = match dir.read(CA)? {
        Some(ca) => trust.with_extra(&ca),
        None => trust,
    };
    let identity = dir.read(IDENTITY)?.ok_or_else(|| {
        anyhow::anyhow!(
            "{} is missing: remove registered.json to register again",
            dir.path(IDENTITY).display()
        )
    })?;
    let service = ServiceClient::new(&settings.registration_url, trust.mtls(&identity)?)?;
    let assignment: Assignment = dir
        .read_json(ASSIGNMENT)?
        .ok_or_else(|| anyhow::anyhow!("{} is missing", dir.path(ASSIGNMENT).display()))?;
    let client = kube_client(settings.kubeconfig.as_deref()).await?;
    let source = match &opts.source_dir {
        Some(d) => Source::Dir(d.clone()),
        None => Source::Git {
            workdir: dir.path(CHECKOUT),
        },
    };
    let agent = Agent::new(AgentParts {
        applier: Applier::new(client, &record.site_id),
        dir,
        settings,
        record,
        trust,
        service,
        source,
        facts,
        assignment,
    })?;
    agent.run().await?;
    Ok(())
}

/// A client for the local cluster: the kubeconfig file if set, else in-cluster config
/// or `KUBECONFIG`.
pub async fn kube_client(kubeconfig: Option<&Path>) -> anyhow::Result<kube::Client> {
    let config = match kubeconfig {
        Some(path) => {
            let kc = kube::config::Kubeconfig::read_from(path)
                .map_err(|e| anyhow::anyhow!("kubeconfig {}: {e}", path.display()))?;
            kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
                .await?
        }
        None => kube::Config::infer().await?,
    };
    Ok(kube::Client::try_from(config)?)
}

/// `render`: the YAML that would be applied, from `dir` (with `labels` and `paths`) or
/// from the last fetched checkout and assignment in the data directory.
pub fn render_command(
    data_dir: &Path,
    dir: Option<&Path>,
    labels: Labels,
    paths: Vec<String>,
) -> anyhow::Result<String> {
    let data = DataDir::existing(data_dir);
    let assignment: Option<Assignment> = data.read_json(ASSIGNMENT).ok().flatten();
    let (root, paths, labels) = match dir {
        Some(d) => {
            let paths = if !paths.is_empty() {
                paths
            } else if let Some(a) = &assignment {
                a.paths.clone()
            } else {
                vec![String::new()]
            };
            (d.to_path_buf(), paths, labels)
        }
        None => {
            let a = assignment.ok_or_else(|| {
                anyhow::anyhow!("no assignment in {}: the agent has not registered yet (use --dir to render a local directory)", data_dir.display())
            })?;
            let status: LocalStatus = data.read_json(STATUS)?.ok_or_else(|| {
                anyhow::anyhow!("no status in {}: nothing fetched yet", data_dir.display())
            })?;
            let rev = status
                .fetched_revision
                .ok_or_else(|| anyhow::anyhow!("nothing fetched yet"))?;
            let root = Source::Git {
                workdir: data.path(CHECKOUT),
            }
            .existing(&a, &rev)
            .ok_or_else(|| anyhow::anyhow!("the checkout of {rev} is no longer on disk"))?;
            let mut all = a.labels.clone();
            all.extend(labels);
            (root, a.paths.clone(), all)
        }
    };
    let layers = load_layers(&root, &paths)?;
    Ok(render(&layers, &labels)?.to_yaml())
}

/// `status`: the local status file, pretty-printed.
pub fn status_command(data_dir: &Path) -> anyhow::Result<String> {
    let data = DataDir::existing(data_dir);
    match data.read(STATUS)? {
        Some(bytes) => {
            let v: serde_json::Value = serde_json::from_slice(&bytes)?;
            Ok(serde_json::to_string_pretty(&v)?)
        }
        None => Err(anyhow::anyhow!(
            "no status file in {}: the agent has not run yet",
            data_dir.display()
        )),
    }
}
