//! The hub of the storm: the real `siteboot-registration` binary as a process on a fixed
//! loopback port (so it can be killed with SIGKILL and restarted where the agents expect
//! it), its operator API (mint tokens, list devices, health) and its peak RSS.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use serde_json::json;
use siteboot_agent::tls::Trust;
use siteboot_wire::operator::DeviceInfo;
use siteboot_wire::SecretString;

use crate::ports::free_port;
use crate::process::{Process, TestRun, READY_TIMEOUT};

/// Name of the enrollment batch the factory-imaged simulated agents carry.
pub const BATCH: &str = "storm";

/// The registration service under test.
pub struct Hub {
    /// `https://127.0.0.1:PORT`.
    pub url: String,
    /// The service CA (what agents trust).
    pub ca_file: PathBuf,
    /// Secret file of [`BATCH`].
    pub batch_secret_file: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
    data_dir: PathBuf,
    operator: Option<SecretString>,
    http: Option<reqwest::Client>,
    process: Option<Process>,
}

impl Hub {
    /// Writes the inventory, creates the data directory with the enrollment batch
    /// (`--add-batch`, a separate run of the binary) and picks the port.
    pub async fn prepare(
        run: &TestRun,
        inventory_yaml: &str,
        log_level: &str,
    ) -> anyhow::Result<Hub> {
        let dir = run.subdir("hub");
        let inventory = dir.join("inventory.yaml");
        std::fs::write(&inventory, inventory_yaml).context("write the storm inventory")?;
        let data_dir = dir.join("data");
        let mut add = run.spawn_binary(
            "siteboot-registration",
            [
                "--data-dir".into(),
                data_dir.display().to_string(),
                "--add-batch".into(),
                BATCH.to_string(),
            ],
            &[],
        )?;
        let status = add.wait_exit_async(READY_TIMEOUT).await?;
        if !status.success() {
            bail!("--add-batch {BATCH} failed ({status}): {}", add.log());
        }
        let port = free_port()?;
        let url = format!("https://127.0.0.1:{port}");
        let args = vec![
            "--data-dir".into(),
            data_dir.display().to_string(),
            "--listen".into(),
            format!("127.0.0.1:{port}"),
            "--inventory".into(),
            inventory.display().to_string(),
            "--ready-file".into(),
            dir.join("ready").display().to_string(),
        ];
        Ok(Hub {
            url,
            ca_file: data_dir.join("ca.pem"),
            batch_secret_file: data_dir.join(format!("batch-{BATCH}.secret")),
            args,
            env: vec![("RUST_LOG".into(), log_level.into())],
            data_dir,
            operator: None,
            http: None,
            process: None,
        })
    }

    /// Starts the service (first start or restart on the same port and data) without
    /// waiting for it to listen.
    pub fn spawn(&mut self, run: &TestRun) -> anyhow::Result<()> {
        let env: Vec<(&str, &str)> = self
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        self.process = Some(run.spawn_binary("siteboot-registration", &self.args, &env)?);
        Ok(())
    }

    /// Waits until the current process listens (its banner, printed at any log level,
    /// says "is serving on"); on the first start, loads the operator
    /// credential and builds the operator client (registering the secrets with `run`).
    pub async fn wait_ready(&mut self, run: &TestRun) -> anyhow::Result<()> {
        let p = self.process.as_mut().context("hub not started")?;
        p.wait_for_log_line_async("is serving on", READY_TIMEOUT)
            .await?;
        if self.http.is_none() {
            let operator = read_trimmed(&self.data_dir.join("operator-token"))?;
            run.register_secret("operator credential", &operator);
            run.register_secret("batch secret", read_trimmed(&self.batch_secret_file)?);
            let tls = Trust::load(&self.ca_file, None)?.anonymous()?;
            self.http = Some(
                reqwest::Client::builder()
                    .tls_backend_preconfigured(tls)
                    .timeout(Duration::from_secs(120))
                    .build()?,
            );
            self.operator = Some(SecretString::new(operator));
        }
        Ok(())
    }

    /// The running process.
    pub fn process(&mut self) -> anyhow::Result<&mut Process> {
        self.process.as_mut().context("hub not started")
    }

    /// Peak resident set of the running process (`VmHWM`), KiB.
    pub fn peak_rss_kib(&self) -> Option<u64> {
        self.process
            .as_ref()
            .and_then(|p| vm_hwm_kib(&format!("/proc/{}/status", p.pid())))
    }

    /// Current resident set of the running process (`VmRSS`), KiB.
    pub fn rss_kib(&self) -> Option<u64> {
        let p = self.process.as_ref()?;
        let text = std::fs::read_to_string(format!("/proc/{}/status", p.pid())).ok()?;
        parse_kib(&text, "VmRSS:")
    }

    /// The power cut: SIGKILL, no flush, no drain.
    pub fn kill9(&mut self) -> anyhow::Result<()> {
        if let Some(p) = self.process.as_mut() {
            p.kill()?;
        }
        Ok(())
    }

    /// SIGTERM; true when the service exited cleanly (heartbeats flushed).
    pub async fn terminate(&mut self) -> anyhow::Result<bool> {
        match self.process.as_mut() {
            Some(p) => Ok(p.terminate_async(Duration::from_secs(60)).await?.success()),
            None => Ok(false),
        }
    }

    fn client(&self) -> anyhow::Result<(&reqwest::Client, &SecretString)> {
        match (&self.http, &self.operator) {
            (Some(h), Some(o)) => Ok((h, o)),
            _ => bail!("hub not ready yet"),
        }
    }

    /// Mints a registration token for `site` through the operator API.
    pub async fn mint_token(&self, site: &str) -> anyhow::Result<String> {
        let (http, op) = self.client()?;
        let resp = http
            .post(format!("{}/v1/operator/tokens", self.url))
            .bearer_auth(op.expose())
            .json(&json!({ "siteId": site }))
            .send()
            .await?;
        let status = resp.status();
        let body: serde_json::Value = resp.json().await.unwrap_or_default();
        if status.as_u16() != 201 {
            bail!(
                "mint a token for {site}: HTTP {status}: {}",
                body["message"]
            );
        }
        body["token"]
            .as_str()
            .map(str::to_string)
            .context("token missing from the answer")
    }

    /// Every device record the service holds.
    pub async fn devices(&self) -> anyhow::Result<Vec<DeviceInfo>> {
        let (http, op) = self.client()?;
        let resp = http
            .get(format!("{}/v1/operator/devices", self.url))
            .bearer_auth(op.expose())
            .send()
            .await?;
        if !resp.status().is_success() {
            bail!("list devices: HTTP {}", resp.status());
        }
        Ok(resp.json().await?)
    }

    /// Status codes of `/healthz` and `/readyz`.
    pub async fn health(&self) -> anyhow::Result<(u16, u16)> {
        let (http, _) = self.client()?;
        let get = |p: &str| http.get(format!("{}{p}", self.url)).send();
        Ok((
            get("/healthz").await?.status().as_u16(),
            get("/readyz").await?.status().as_u16(),
        ))
    }
}

fn read_trimmed(path: &Path) -> anyhow::Result<String> {
    Ok(std::fs::read_to_string(path)
        .with_context(|| format!("read {}", path.display()))?
        .trim()
        .to_string())
}

/// `VmHWM` of a `/proc/<pid>/status` file, KiB.
pub fn vm_hwm_kib(status_file: &str) -> Option<u64> {
    parse_vm_hwm(&std::fs::read_to_string(status_file).ok()?)
}

/// The `VmHWM:` line of a status text, KiB.
pub fn parse_vm_hwm(text: &str) -> Option<u64> {
    parse_kib(text, "VmHWM:")
}

/// The value of a `Key:   123 kB` line of a status text, KiB.
fn parse_kib(text: &str, key: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vm_hwm_table() {
        let cases = [
            (
                "Name:\tx\nVmPeak:\t  999 kB\nVmHWM:\t   12345 kB\nVmRSS:\t 1 kB\n",
                Some(12345),
            ),
            ("VmHWM: 7 kB", Some(7)),
            ("Name: x\n", None),
            ("VmHWM: lots kB\n", None),
        ];
        for (text, want) in cases {
            assert_eq!(parse_vm_hwm(text), want, "{text:?}");
        }
        assert!(vm_hwm_kib("/proc/self/status").is_some_and(|k| k > 0));
    }
}
