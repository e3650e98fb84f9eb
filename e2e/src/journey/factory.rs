//! A factory-imaged box for journeys 2 and 3: a directory standing in for its `/` with
//! what the factory bakes in (`bootstrap-images/lib/enrollment.sh`): `/etc/siteboot/`
//! `agent.yaml` (registration URL, CA file and its SHA-256 pin, the batch credential),
//! `ca.pem` and `enrollment.secret`; k3s's kubeconfig for the box's own cluster; the agent
//! started as the image's unit does (`run --config /etc/siteboot/agent.yaml`) with
//! `--root`. Nothing per box except its serial (a hardware fact).

use std::path::{Path, PathBuf};

use anyhow::{ensure, Context, Result};

use super::{spawn_agent, RegistrationService, SiteCluster};
use crate::process::{Process, TestRun};

/// `sha256sum FILE`, lower-case hex.
pub fn sha256_file(path: &Path) -> Result<String> {
    let out = std::process::Command::new("sha256sum").arg(path).output()?;
    ensure!(out.status.success(), "sha256sum {}", path.display());
    Ok(String::from_utf8(out.stdout)?
        .split_whitespace()
        .next()
        .context("sha256sum printed nothing")?
        .to_string())
}

/// The agent's `caSha256` pin: SHA-256 of the first certificate's DER in `ca_pem`.
pub fn ca_pin(ca_pem: &Path, scratch: &Path) -> Result<String> {
    use rustls::pki_types::pem::PemObject as _;
    let der = rustls::pki_types::CertificateDer::pem_file_iter(ca_pem)?
        .next()
        .context("no certificate in the CA bundle")??;
    let file = scratch.join("ca.der");
    std::fs::write(&file, der.as_ref())?;
    sha256_file(&file)
}

/// One box.
pub struct FactoryBox {
    /// Its `/`.
    pub root: PathBuf,
    /// Its serial (DMI).
    pub serial: String,
    /// Its local cluster.
    pub cluster: SiteCluster,
}

impl FactoryBox {
    /// Images a box with the factory enrollment of `batch` (name, secret file) for `reg`.
    pub async fn image(
        run: &TestRun,
        name: &str,
        serial: &str,
        reg: &RegistrationService,
        batch: (&str, &Path),
    ) -> Result<FactoryBox> {
        let root = run.subdir(name);
        let etc = root.join("etc/siteboot");
        std::fs::create_dir_all(&etc)?;
        std::fs::copy(reg.ca_file(), etc.join("ca.pem"))?;
        std::fs::copy(batch.1, etc.join("enrollment.secret"))?;
        let pin = ca_pin(&reg.ca_file(), &root)?;
        std::fs::write(
            etc.join("agent.yaml"),
            format!(
                "# factory enrollment, batch {batch}\nregistrationUrl: {url}\ncaFile: /etc/siteboot/ca.pem\ncaSha256: {pin}\nenrollment:\n  batch: {batch}\n  secretFile: /etc/siteboot/enrollment.secret\ndataDir: /var/lib/siteboot\nkubeconfig: /etc/rancher/k3s/k3s.yaml\npollIntervalSeconds: 2\nresyncIntervalSeconds: 2\n",
                batch = batch.0,
                url = reg.url(),
            ),
        )?;
        let cluster = SiteCluster::start().await?;
        let k3s = root.join("etc/rancher/k3s");
        std::fs::create_dir_all(&k3s)?;
        std::fs::copy(cluster.emu.kubeconfig_path(), k3s.join("k3s.yaml"))?;
        Ok(FactoryBox {
            root,
            serial: serial.to_string(),
            cluster,
        })
    }

    /// Its data directory as seen from the host.
    pub fn data_dir(&self) -> PathBuf {
        self.root.join("var/lib/siteboot")
    }

    /// Powers the box on: the agent as the image's unit starts it, plus `env` (e.g. a
    /// claim code a tech typed: `SITEBOOT_CLAIM_CODE`).
    pub fn power_on(&self, run: &TestRun, name: &str, env: &[(&str, &str)]) -> Result<Process> {
        let mut all = vec![("SITEBOOT_SERIAL", self.serial.as_str())];
        all.extend_from_slice(env);
        spawn_agent(
            run,
            name,
            &[
                "run".into(),
                "--config".into(),
                "/etc/siteboot/agent.yaml".into(),
                "--root".into(),
                self.root.display().to_string(),
            ],
            &all,
        )
    }
}
