//! The reconcile loop of a registered agent: poll Git, render, apply and prune within the
//! maintenance window, repair drift of the last good revision at the resync interval,
//! check in (and renew the certificate) with jitter. Offline-first: nothing here needs
//! the network to keep the cluster on the last good revision.
//!
//! State across restarts lives in the data directory: `last-good.json` (the rendered set
//! of the last good revision), `inventory.json` (every object the agent may have
//! created, written *before* touching the cluster so a crash mid-apply can still prune),
//! `status.json` and `assignment.json`.

mod attempt;
mod checkin;

use std::time::Duration;

use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use siteboot_wire::api::AgentState;
use siteboot_wire::{Assignment, DeviceFacts};
use tokio::time::Instant;

use crate::apply::{plan, Applier};
use crate::backoff::{jittered, unit};
use crate::client::ServiceClient;
use crate::config::Settings;
use crate::offline::GIT;
use crate::register::RegistrationRecord;
use crate::render::ObjectRef;
use crate::source::{Fetched, Source};
use crate::status::{clip_error, LocalStatus};
use crate::store::{DataDir, StoreError, INVENTORY, LAST_GOOD, STATUS};
use crate::tls::Trust;

/// The last successfully applied rendered set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LastGood {
    /// Revision.
    pub revision: String,
    /// Revision + paths + labels digest: a label change re-renders the same revision.
    pub render_key: String,
    /// Rendered objects.
    pub objects: Vec<Value>,
    /// When applied.
    pub applied_at: chrono::DateTime<Utc>,
}

/// Objects the agent may have created.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inventory {
    /// References as rendered.
    pub refs: Vec<ObjectRef>,
}

/// Everything the loop needs.
pub struct Agent {
    pub(crate) dir: DataDir,
    pub(crate) settings: Settings,
    pub(crate) record: RegistrationRecord,
    pub(crate) trust: Trust,
    pub(crate) service: ServiceClient,
    pub(crate) applier: Applier,
    pub(crate) source: Source,
    pub(crate) facts: DeviceFacts,
    pub(crate) assignment: Assignment,
    pub(crate) status: LocalStatus,
    pub(crate) last_good: Option<LastGood>,
    pub(crate) inventory: Inventory,
    pub(crate) fetched: Option<Fetched>,
    /// Render key and time of the last failed attempt (retried after the resync interval).
    pub(crate) failed: Option<(String, Instant)>,
    pub(crate) checkin_every: Duration,
    pub(crate) checkin_failures: u32,
    pub(crate) next_poll: Instant,
    pub(crate) next_resync: Instant,
    pub(crate) next_checkin: Instant,
    /// The parked message was logged.
    pub(crate) parked_logged: bool,
}

/// Inputs to [`Agent::new`].
pub struct AgentParts {
    /// Data directory.
    pub dir: DataDir,
    /// Settings.
    pub settings: Settings,
    /// Registration record.
    pub record: RegistrationRecord,
    /// Trust for the service.
    pub trust: Trust,
    /// mTLS client.
    pub service: ServiceClient,
    /// Applier for the local cluster.
    pub applier: Applier,
    /// Manifest source.
    pub source: Source,
    /// Device facts.
    pub facts: DeviceFacts,
    /// Current assignment.
    pub assignment: Assignment,
}

impl Agent {
    /// Loads persisted state and schedules the first poll, resync and check-in now.
    pub fn new(p: AgentParts) -> Result<Agent, StoreError> {
        let now = Utc::now();
        let mut status = p
            .dir
            .read_json::<LocalStatus>(STATUS)?
            .unwrap_or_else(|| LocalStatus::new(now));
        status.site_id = Some(p.record.site_id.clone());
        status.device_id = Some(p.record.device_id.clone());
        status.revoked = p.dir.exists(crate::store::REVOKED);
        status.registration = if status.revoked {
            "revoked"
        } else {
            "registered"
        }
        .into();
        let last_good = p.dir.read_json::<LastGood>(LAST_GOOD)?;
        let inventory = p.dir.read_json::<Inventory>(INVENTORY)?.unwrap_or_default();
        let start = Instant::now();
        Ok(Agent {
            checkin_every: Duration::from_secs(p.record.checkin_interval_seconds.clamp(1, 86_400)),
            dir: p.dir,
            settings: p.settings,
            record: p.record,
            trust: p.trust,
            service: p.service,
            applier: p.applier,
            source: p.source,
            facts: p.facts,
            assignment: p.assignment,
            status,
            last_good,
            inventory,
            fetched: None,
            failed: None,
            checkin_failures: 0,
            next_poll: start,
            next_resync: start,
            next_checkin: start,
            parked_logged: false,
        })
    }

    /// Runs until SIGTERM / SIGINT.
    pub async fn run(mut self) -> Result<(), StoreError> {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        loop {
            self.step().await?;
            let wake = if self.status.revoked {
                // Parked: nothing is due ever again; only a signal ends the process (an
                // exit would make systemd restart it into the same state every 10 s).
                None
            } else {
                Some(self.next_poll.min(self.next_resync).min(self.next_checkin))
            };
            if wake.is_none() && !self.parked_logged {
                self.parked_logged = true;
                tracing::error!(
                    site = %self.record.site_id,
                    device = %self.record.device_id,
                    "parked: the registration service refused this device's certificate (revoked: replaced by another box, or by an operator); no further changes are made to this cluster and nothing more is reported; to reuse the box, wipe {} and register it again with a claim code",
                    self.dir.root().display()
                );
            }
            tokio::select! {
                _ = async { match wake { Some(w) => tokio::time::sleep_until(w).await, None => std::future::pending().await } } => {}
                _ = tokio::signal::ctrl_c() => break,
                _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => break,
            }
        }
        tracing::info!("stopping");
        self.save_status()
    }

    /// One pass: whatever is due now.
    pub async fn step(&mut self) -> Result<(), StoreError> {
        let now = Instant::now();
        // Check in first: a box that was replaced while it was off (or unplugged) learns
        // that its certificate is refused before it touches the cluster again.
        if !self.status.revoked && now >= self.next_checkin {
            self.checkin().await?;
        }
        let plan = plan_step(self.status.revoked, now, self.next_poll, self.next_resync);
        if plan.poll {
            self.poll().await?;
            self.next_poll = now + jittered(self.settings.poll_interval, unit());
        }
        if plan.apply {
            self.consider_new_revision().await?;
        }
        if plan.resync {
            self.resync().await?;
            self.next_resync = now + self.settings.resync_interval;
        }
        self.save_status()
    }

    async fn poll(&mut self) -> Result<(), StoreError> {
        let known = self.status.fetched_revision.clone();
        match self.source.fetch(&self.assignment, known.as_deref()).await {
            Ok(f) => {
                self.status.offline.succeeded(GIT, Utc::now());
                if self.status.fetched_revision.as_deref() != Some(f.revision.as_str()) {
                    tracing::info!(revision = %f.revision, "fetched a new revision");
                }
                self.status.fetched_revision = Some(f.revision.clone());
                self.fetched = Some(f);
            }
            Err(e) if e.offline => {
                if !self.status.offline.is_offline(GIT) {
                    tracing::warn!(error = %e, "git source unreachable: keeping the last applied revision");
                }
                self.status.offline.failed(GIT, Utc::now());
            }
            Err(e) => {
                tracing::warn!(error = %e, "git fetch failed");
                self.status.error = Some(clip_error(&format!("fetch: {e}")));
            }
        }
        Ok(())
    }

    /// Drift repair: re-apply the last good set and prune leftovers (e.g. from a crash
    /// in the middle of an apply). Ignores the maintenance window.
    async fn resync(&mut self) -> Result<(), StoreError> {
        let Some(lg) = self.last_good.clone() else {
            return Ok(());
        };
        match self.converge(&lg).await {
            Ok(()) => {
                self.status.last_resync = Some(Utc::now());
                tracing::debug!(revision = %lg.revision, "drift repair done");
            }
            Err(e) => tracing::warn!(error = %e, "drift repair of the applied revision failed"),
        }
        Ok(())
    }

    /// Applies `lg` and prunes recorded objects not in it; refreshes health.
    pub(crate) async fn converge(&mut self, lg: &LastGood) -> Result<(), crate::apply::ApplyError> {
        let applied = self.applier.apply_all(&lg.objects).await?;
        let refs: Vec<ObjectRef> = lg
            .objects
            .iter()
            .filter_map(|o| ObjectRef::of(o).ok())
            .collect();
        self.prune_to(&refs).await?;
        self.status.health = applied.health;
        self.refresh_state();
        Ok(())
    }

    /// Prunes recorded objects absent from `desired`; the record keeps what could not be
    /// deleted and becomes `desired` plus those.
    pub(crate) async fn prune_to(
        &mut self,
        desired: &[ObjectRef],
    ) -> Result<(), crate::apply::ApplyError> {
        let stale = plan::prune_candidates(&self.inventory.refs, desired);
        let result = self.applier.prune(&stale).await;
        let gone = match &result {
            Ok(g) => g.clone(),
            Err(_) => Vec::new(),
        };
        let left: Vec<ObjectRef> = stale.into_iter().filter(|r| !gone.contains(r)).collect();
        let refs = plan::union(desired, &left);
        if refs != self.inventory.refs {
            self.inventory.refs = refs;
            if let Err(e) = self.dir.write_json(INVENTORY, &self.inventory) {
                tracing::warn!(error = %e, "cannot record the applied objects");
            }
        }
        result.map(|_| ())
    }

    /// State from the attempt outcome and health.
    pub(crate) fn refresh_state(&mut self) {
        let failed = self.status.attempted_revision.is_some()
            && self.status.attempted_revision != self.status.applied_revision
            && self.status.error.is_some();
        self.status.state = if failed {
            AgentState::Failed
        } else if self.status.health.failed > 0 {
            AgentState::Degraded
        } else if self.status.health.progressing > 0 {
            AgentState::Applying
        } else {
            AgentState::Ready
        };
    }

    pub(crate) fn save_status(&mut self) -> Result<(), StoreError> {
        self.status.updated_at = Utc::now();
        self.dir.write_json(STATUS, &self.status)
    }
}

/// What one pass of the loop does after the check-in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StepPlan {
    /// Fetch from Git.
    pub poll: bool,
    /// Apply a fetched revision if it is new (and the window allows).
    pub apply: bool,
    /// Repair drift of the applied revision.
    pub resync: bool,
}

/// Decides a pass: a revoked (replaced) device is parked and does nothing at all, so the
/// site belongs to its replacement alone; otherwise whatever is due.
pub fn plan_step(
    revoked: bool,
    now: Instant,
    next_poll: Instant,
    next_resync: Instant,
) -> StepPlan {
    if revoked {
        return StepPlan {
            poll: false,
            apply: false,
            resync: false,
        };
    }
    StepPlan {
        poll: now >= next_poll,
        apply: true,
        resync: now >= next_resync,
    }
}

/// Digest of what decides the rendered output: revision, paths and labels.
pub fn render_key(revision: &str, assignment: &Assignment) -> String {
    let mut h = Sha256::new();
    h.update(revision.as_bytes());
    h.update([0]);
    h.update(assignment.paths.join("\n").as_bytes());
    h.update([0]);
    h.update(serde_json::to_vec(&assignment.labels).unwrap_or_default());
    hex::encode(&h.finalize()[..12])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_plans() {
        let now = Instant::now();
        let past = now - Duration::from_secs(1);
        let later = now + Duration::from_secs(1);
        let rows = [
            ("both due", false, past, past, (true, true, true)),
            ("exactly now is due", false, now, now, (true, true, true)),
            (
                "nothing due still considers a fetched revision",
                false,
                later,
                later,
                (false, true, false),
            ),
            ("poll only", false, past, later, (true, true, false)),
            ("resync only", false, later, past, (false, true, true)),
            (
                "revoked: parked, nothing at all",
                true,
                past,
                past,
                (false, false, false),
            ),
            (
                "revoked, nothing due",
                true,
                later,
                later,
                (false, false, false),
            ),
        ];
        for (name, revoked, poll, resync, (p, a, r)) in rows {
            assert_eq!(
                plan_step(revoked, now, poll, resync),
                StepPlan {
                    poll: p,
                    apply: a,
                    resync: r
                },
                "{name}"
            );
        }
    }
}
