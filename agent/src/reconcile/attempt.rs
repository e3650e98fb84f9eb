//! Moving to a new revision: window check, render, record, apply, prune; on failure the
//! cluster is converged back to the last good revision and the attempt is reported failed.
//! Each attempt is timed (render, then apply + prune, on the monotonic clock) and queued
//! for the next check-in ([`crate::attempts`]); a rollback is not part of the timing.

use std::time::Duration;

use chrono::Utc;
use siteboot_wire::api::{AgentState, AttemptOutcome};
use siteboot_wire::labels::MAINTENANCE_WINDOW;
use tokio::time::Instant;

use super::{render_key, Agent, LastGood};
use crate::apply::{plan, ApplyError};
use crate::attempts::timing;
use crate::checkout::{load_layers, missing_paths, CheckoutError};
use crate::render::{render, ObjectRef, RenderError, Rendered};
use crate::source::Fetched;
use crate::status::clip_error;
use crate::store::{StoreError, INVENTORY, LAST_GOOD};
use crate::window::Window;

/// Why a revision could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum AttemptError {
    /// Reading the checkout.
    #[error(transparent)]
    Checkout(#[from] CheckoutError),
    /// Rendering.
    #[error(transparent)]
    Render(#[from] RenderError),
    /// Applying or pruning.
    #[error(transparent)]
    Apply(#[from] ApplyError),
    /// Recording state.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Agent {
    /// Applies the fetched revision if it is new, allowed and not a recent failure.
    pub(crate) async fn consider_new_revision(&mut self) -> Result<(), StoreError> {
        let Some(fetched) = self.fetched.clone() else {
            return Ok(());
        };
        let key = render_key(&fetched.revision, &self.assignment);
        if self
            .last_good
            .as_ref()
            .is_some_and(|lg| lg.render_key == key)
        {
            self.status.waiting_for_window = None;
            return Ok(());
        }
        if self.status.revoked {
            return Ok(());
        }
        if let Some((k, at)) = &self.failed {
            if *k == key && at.elapsed() < self.settings.resync_interval {
                return Ok(());
            }
        }
        if self.last_good.is_some() {
            let label = self
                .assignment
                .labels
                .get(MAINTENANCE_WINDOW)
                .map(String::as_str);
            let open = match Window::parse(label) {
                Ok(w) => w.is_open(jiff::Timestamp::now()),
                Err(e) => {
                    // A broken label must not open the gate: report it and wait.
                    self.status.error = Some(e.to_string());
                    false
                }
            };
            if !open {
                if self.status.waiting_for_window.as_deref() != Some(fetched.revision.as_str()) {
                    tracing::info!(revision = %fetched.revision, "new revision waits for the maintenance window");
                    self.status.waiting_for_window = Some(fetched.revision.clone());
                }
                return Ok(());
            }
        }
        self.status.waiting_for_window = None;
        self.attempt(&fetched, key).await
    }

    async fn attempt(&mut self, fetched: &Fetched, key: String) -> Result<(), StoreError> {
        tracing::info!(revision = %fetched.revision, "applying revision");
        self.status.state = AgentState::Applying;
        self.status.attempted_revision = Some(fetched.revision.clone());
        self.status.error = None;
        self.save_status()?;
        let mut stages = Stages::default();
        let result = self.try_apply(fetched, &mut stages).await;
        let outcome = match result {
            Ok(_) => AttemptOutcome::Applied,
            Err(_) => AttemptOutcome::Failed,
        };
        let t = timing(
            &fetched.revision,
            outcome,
            stages.render,
            stages.apply,
            Utc::now(),
        );
        tracing::debug!(revision = %fetched.revision, render_seconds = t.render_seconds, apply_seconds = t.apply_seconds, "attempt timed");
        if self.status.attempts.push(t) {
            tracing::warn!(
                dropped = self.status.attempts.dropped,
                "attempt timings queue full: dropped the oldest unreported timing"
            );
        }
        match result {
            Ok(lg) => {
                let lg = LastGood {
                    render_key: key,
                    ..lg
                };
                self.dir.write_json(LAST_GOOD, &lg)?;
                self.status.applied_revision = Some(lg.revision.clone());
                self.last_good = Some(lg);
                self.failed = None;
                self.refresh_state();
                tracing::info!(revision = %fetched.revision, health = ?self.status.health, "revision applied");
            }
            Err(e) => {
                tracing::error!(revision = %fetched.revision, error = %e, "revision failed; staying on the last good revision");
                self.status.error = Some(clip_error(&e.to_string()));
                self.failed = Some((key, Instant::now()));
                let touched_cluster = matches!(e, AttemptError::Apply(_));
                if touched_cluster {
                    if let Some(lg) = self.last_good.clone() {
                        if let Err(re) = self.converge(&lg).await {
                            tracing::warn!(error = %re, "could not roll back to the last good revision yet; the next resync retries");
                        }
                    }
                }
                self.refresh_state();
            }
        }
        self.save_status()
    }

    /// Renders, then applies and prunes; `stages` receives each stage's duration even
    /// when the stage fails (apply stays zero when rendering failed).
    async fn try_apply(
        &mut self,
        fetched: &Fetched,
        stages: &mut Stages,
    ) -> Result<LastGood, AttemptError> {
        let started = std::time::Instant::now();
        let rendered = self.render_fetched(fetched);
        stages.render = started.elapsed();
        let rendered = rendered?;
        let started = std::time::Instant::now();
        let applied = self.apply_rendered(fetched, rendered).await;
        stages.apply = started.elapsed();
        applied
    }

    fn render_fetched(&self, fetched: &Fetched) -> Result<Rendered, AttemptError> {
        let layers = load_layers(&fetched.root, &self.assignment.paths)?;
        for missing in missing_paths(&fetched.root, &self.assignment.paths) {
            tracing::warn!(path = %missing, revision = %fetched.revision, "assigned path is absent from this revision: rendered as an empty layer");
        }
        Ok(render(&layers, &self.assignment.labels)?)
    }

    async fn apply_rendered(
        &mut self,
        fetched: &Fetched,
        rendered: Rendered,
    ) -> Result<LastGood, AttemptError> {
        let refs: Vec<ObjectRef> = rendered.refs();
        // Record before touching the cluster: a crash from here on can still prune.
        let recorded = plan::union(&self.inventory.refs, &refs);
        if recorded != self.inventory.refs {
            self.inventory.refs = recorded;
            self.dir.write_json(INVENTORY, &self.inventory)?;
        }
        let applied = self.applier.apply_all(&rendered.objects).await?;
        self.status.health = applied.health;
        self.prune_to(&refs).await?;
        Ok(LastGood {
            revision: fetched.revision.clone(),
            render_key: String::new(),
            objects: rendered.objects,
            applied_at: Utc::now(),
        })
    }
}

/// How long each stage of one attempt took.
#[derive(Debug, Default)]
struct Stages {
    /// Loading and rendering the layers.
    render: Duration,
    /// Recording, applying and pruning.
    apply: Duration,
}
