//! A simulated site agent: the agent crate's own code, minus the Kubernetes side. Booting
//! one is what `siteboot-agent run` does up to its first check-in: open the data
//! directory, load the trust, [`ensure_registered`] (key + CSR, the one credential,
//! full-jitter backoff honouring `Retry-After`, resumable state in the data directory),
//! build the mTLS client from `identity.pem`, then check in until it succeeds, waiting
//! [`checkin_retry_delay`] between offline failures exactly as the reconcile loop does.
//!
//! Each agent binds its own loopback source address (`127.x.y.z`, all routed to `lo`),
//! because the service rate-limits registrations per source address and 2,000 stores
//! have 2,000 addresses; agents behind one NAT share an address on purpose. Every HTTP
//! exchange lands in the agent's [`CallLog`] through the client's observer hook.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use chrono::Utc;
use siteboot_agent::backoff::{checkin_retry_delay, jittered, unit};
use siteboot_agent::client::{CallObserver, CallRecord, ClientOptions, ServiceClient};
use siteboot_agent::config::{resolve, EnrollmentConfig, FileConfig, Settings};
use siteboot_agent::offline::SERVICE;
use siteboot_agent::register::{ensure_registered, RegistrationRecord};
use siteboot_agent::status::LocalStatus;
use siteboot_agent::store::{DataDir, CA, IDENTITY, REGISTERED, STATUS};
use siteboot_agent::tls::Trust;
use siteboot_wire::api::{AgentState, CheckinRequest};
use siteboot_wire::DeviceFacts;

/// The revision every simulated site reports as applied.
pub const REVISION: &str = "5e1f0c2a9b8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f";

/// Every exchange one agent had with the service.
#[derive(Debug, Default)]
pub struct CallLog(Mutex<Vec<CallRecord>>);

impl CallObserver for CallLog {
    fn observe(&self, call: &CallRecord) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(call.clone());
    }
}

impl CallLog {
    /// A copy of the records so far.
    pub fn records(&self) -> Vec<CallRecord> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// How a box proves what it is on first boot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// A one-time token minted by the operator API (bootstrap data of a CAPI Machine).
    Token(String),
    /// The factory batch credential; the serial is pre-assigned in the inventory.
    Enrollment,
}

/// One simulated box.
#[derive(Debug)]
pub struct SimAgent {
    /// Position in the fleet.
    pub index: usize,
    /// Site it belongs to.
    pub site_id: String,
    /// Its serial (the inventory expects it for enrollment).
    pub serial: String,
    /// Its source address.
    pub source: IpAddr,
    /// Agent settings, resolved by the agent's own config code.
    pub settings: Settings,
    /// What it saw.
    pub calls: Arc<CallLog>,
}

/// Source address of agent `index`: `127.1.0.1` upwards, 250 per /24.
pub fn own_address(index: usize) -> IpAddr {
    let (hi, lo) = (index / 250, index % 250);
    IpAddr::V4(Ipv4Addr::new(
        127,
        1 + (hi / 256) as u8,
        (hi % 256) as u8,
        lo as u8 + 1,
    ))
}

/// Source address of NAT group `group` (`127.200.0.1` upwards).
pub fn nat_address(group: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(
        127,
        200,
        (group / 250) as u8,
        (group % 250) as u8 + 1,
    ))
}

/// The facts a box of `serial` reports.
pub fn facts(index: usize, serial: &str) -> DeviceFacts {
    let b = (index as u32).to_be_bytes();
    DeviceFacts {
        serial: serial.to_string(),
        macs: vec![format!(
            "02:5b:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3]
        )],
        tpm_ek_sha256: None,
        hostname: format!("box-{index}"),
        arch: "x86_64".into(),
        os: "Debian GNU/Linux 12 (bookworm)".into(),
    }
}

impl SimAgent {
    /// Writes the box's config (and token file) under `root` and resolves it with the
    /// agent's own config code.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        index: usize,
        site_id: &str,
        serial: &str,
        source: IpAddr,
        root: &Path,
        url: &str,
        ca_file: &Path,
        batch: (&str, &Path),
        credential: &Credential,
    ) -> anyhow::Result<SimAgent> {
        let dir = root.join(format!("agent-{index:05}"));
        std::fs::create_dir_all(&dir)?;
        let mut cfg = FileConfig {
            registration_url: Some(url.to_string()),
            ca_file: Some(ca_file.to_path_buf()),
            site_id: Some(site_id.to_string()),
            data_dir: Some(dir.join("data")),
            ..FileConfig::default()
        };
        match credential {
            Credential::Token(t) => {
                let path = dir.join("token");
                std::fs::write(&path, t)?;
                cfg.token_file = Some(path);
            }
            Credential::Enrollment => {
                cfg.enrollment = Some(EnrollmentConfig {
                    batch: Some(batch.0.to_string()),
                    secret_file: Some(batch.1.to_path_buf()),
                });
            }
        }
        Ok(SimAgent {
            index,
            site_id: site_id.to_string(),
            serial: serial.to_string(),
            source,
            settings: resolve(cfg)?,
            calls: Arc::new(CallLog::default()),
        })
    }

    fn client(&self, tls: rustls::ClientConfig) -> anyhow::Result<ServiceClient> {
        let options = ClientOptions {
            local_address: Some(self.source),
            observer: Some(self.calls.clone()),
        };
        Ok(ServiceClient::with_options(
            &self.settings.registration_url,
            tls,
            options,
        )?)
    }

    /// The data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.settings.data_dir.clone()
    }

    /// The registration marker, if registered.
    pub fn record(&self) -> Option<RegistrationRecord> {
        DataDir::existing(&self.settings.data_dir)
            .read_json(REGISTERED)
            .ok()
            .flatten()
    }

    /// Powers the box on: registers if it has not yet, then checks in until a check-in
    /// succeeds. Returns the mTLS client (its kept-alive connection stays open while the
    /// caller holds it, as a running agent's does).
    pub async fn boot(&self) -> anyhow::Result<ServiceClient> {
        let dir = DataDir::open(&self.settings.data_dir)?;
        let trust = Trust::load(&self.settings.ca_file, None)?;
        let facts = facts(self.index, &self.serial);
        let record = {
            let anonymous = self.client(trust.anonymous()?)?;
            ensure_registered(&dir, &self.settings, &anonymous, &facts)
                .await
                .with_context(|| format!("agent {} ({}): register", self.index, self.site_id))?
        };
        let trust = match dir.read(CA)? {
            Some(ca) => trust.with_extra(&ca),
            None => trust,
        };
        let identity = dir
            .read(IDENTITY)?
            .context("identity.pem missing after registration")?;
        let service = self.client(trust.mtls(&identity)?)?;
        let interval = Duration::from_secs(record.checkin_interval_seconds.clamp(1, 86_400));
        let mut status = dir
            .read_json::<LocalStatus>(STATUS)?
            .unwrap_or_else(|| LocalStatus::new(Utc::now()));
        // The site is hydrated: what a healthy agent reports.
        status.state = AgentState::Ready;
        status.applied_revision = Some(REVISION.into());
        status.attempted_revision = Some(REVISION.into());
        let mut failures = 0u32;
        loop {
            let now = Utc::now();
            let periods = status.offline.report(now);
            let req = CheckinRequest {
                applied_revision: status.applied_revision.clone(),
                attempted_revision: status.attempted_revision.clone(),
                state: status.state,
                error: None,
                health: status.health,
                offline_periods: periods.clone(),
                facts: Some(facts.clone()),
                attempts: Vec::new(),
            };
            match service.checkin(&req).await {
                Ok(_) => {
                    status.offline.reported(&periods);
                    status.last_checkin = Some(now);
                    status.updated_at = now;
                    dir.write_json(STATUS, &status)?;
                    return Ok(service);
                }
                Err(e) if e.is_revoked() => anyhow::bail!("agent {}: revoked: {e}", self.index),
                Err(e) if e.is_offline() => {
                    status.offline.failed(SERVICE, now);
                    failures = failures.saturating_add(1);
                    let wait = checkin_retry_delay(failures, interval, e.retry_after(), unit());
                    tokio::time::sleep(wait).await;
                }
                // What the reconcile loop does with any other failure: try again next interval.
                Err(e) => {
                    tracing::warn!(agent = self.index, error = %e, "check in failed");
                    tokio::time::sleep(jittered(interval, unit())).await;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_distinct_loopback() {
        let mut seen = std::collections::HashSet::new();
        for i in 0..20_000 {
            let a = own_address(i);
            assert!(a.is_loopback(), "{a}");
            assert!(seen.insert(a), "duplicate {a} at {i}");
        }
        assert_eq!(own_address(0), "127.1.0.1".parse::<IpAddr>().unwrap());
        assert_eq!(own_address(250), "127.1.1.1".parse::<IpAddr>().unwrap());
        assert!(nat_address(0).is_loopback());
        assert!(!seen.contains(&nat_address(3)));
        facts(7, "SN-7").validate().unwrap();
    }
}
