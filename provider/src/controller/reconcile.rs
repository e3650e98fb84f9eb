//! One reconcile: fetch, then repeatedly ask [`plan`] for the next step and perform it,
//! then write the status if (and only if) it changed.
//!
//! Token ordering, chosen so no Secret ever holds a bad token and no minted token is
//! ever lost track of:
//! 1. validate the spec by rendering with a placeholder token (bad spec: no token minted);
//! 2. mint the token;
//! 3. patch `status.tokenId`/`tokenExpiresAt` (the token's public facts) BEFORE any data
//!    exists, so a crash from here on leaves a recorded id; the next reconcile finds a
//!    recorded id without a Secret, revokes it and mints afresh (the text was never
//!    stored anywhere, so the old token can never be delivered);
//! 4. render with the real token and server-side apply the Secret, which also carries the
//!    token id in an annotation (so status lost after this point is rebuilt from it);
//! 5. patch `dataSecretName`, `initialization.dataSecretCreated`, `ready`, conditions.
//!
//! A registration service failure at step 2 leaves no Secret and degrades
//! `DataSecretAvailable` with reason `RegistrationServiceUnavailable`; the error policy
//! retries with jittered exponential backoff.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::ResourceExt;
use siteboot_wire::operator::{MachineRef, MintTokenRequest, TokenInfo, TokenState};

use super::{apply, fetch, Context, ReconcileError};
use crate::api::{ConditionStatus, Initialization, SiteBootstrapConfig, SiteBootstrapConfigStatus};
use crate::bootstrap_input;
use crate::conditions::{self, timestamp};
use crate::consts::{self, condition, reason};
use crate::operator_client::{OperatorClient, OperatorError};
use crate::plan::{self, Observed, Plan, SecretObservation, TokenObservation};

/// How a reconcile ended without error.
struct Done {
    action: Action,
    /// Record `observedGeneration` (not while paused: nothing was reconciled).
    observed: bool,
    /// The object is gone (finalizer removed): no status to write.
    gone: bool,
}

impl Done {
    fn wait(after: Option<std::time::Duration>) -> Self {
        Done {
            action: after
                .map(Action::requeue)
                .unwrap_or_else(Action::await_change),
            observed: true,
            gone: false,
        }
    }
}

/// Safety net for waiting states; the watches normally wake us earlier.
const WAIT_REQUEUE: std::time::Duration = std::time::Duration::from_secs(300);

/// Reconciles one `SiteBootstrapConfig`.
pub async fn reconcile(
    obj: Arc<SiteBootstrapConfig>,
    ctx: Arc<Context>,
) -> Result<Action, ReconcileError> {
    let ns = obj.namespace().unwrap_or_default();
    let name = obj.name_any();
    let api: Api<SiteBootstrapConfig> = Api::namespaced(ctx.client.clone(), &ns);
    // Fresh read: the reflector cache may predate our own last status patch, and acting on
    // it could mint a second token.
    let Some(cfg) = api
        .get_opt(&name)
        .await
        .map_err(|source| ReconcileError::Fetch {
            what: format!("SiteBootstrapConfig {ns}/{name}"),
            source,
        })?
    else {
        return Ok(Action::await_change());
    };
    let mut run = Run {
        stored: cfg.status.clone().unwrap_or_default(),
        status: cfg.status.clone().unwrap_or_default(),
        generation: cfg.metadata.generation,
        now: Utc::now(),
        ctx: ctx.clone(),
        api: api.clone(),
        cfg,
        operator: None,
    };
    let result = run.steps().await;
    match result {
        Ok(done) => {
            if !done.gone {
                if done.observed {
                    run.status.observed_generation = run.generation;
                }
                apply::patch_status(&run.api, &name, &run.stored, &run.status).await?;
            }
            Ok(done.action)
        }
        Err(e) => {
            // Degraded conditions were set by the failing step; write them, keep the error.
            if let Err(status_err) =
                apply::patch_status(&run.api, &name, &run.stored, &run.status).await
            {
                tracing::warn!(config = %format!("{ns}/{name}"), error = %status_err, "could not record the failure in status");
            }
            Err(e)
        }
    }
}

struct Run {
    ctx: Arc<Context>,
    api: Api<SiteBootstrapConfig>,
    cfg: SiteBootstrapConfig,
    /// Status as stored on the server.
    stored: SiteBootstrapConfigStatus,
    /// Working copy.
    status: SiteBootstrapConfigStatus,
    generation: Option<i64>,
    now: DateTime<Utc>,
    operator: Option<OperatorClient>,
}

impl Run {
    async fn steps(&mut self) -> Result<Done, ReconcileError> {
        let fetched = fetch::related(&self.ctx, &self.cfg).await?;
        let mut secret = fetched.secret.clone();
        let mut token = TokenObservation::NotChecked;
        let (now, generation) = (self.now, self.generation);
        let ttl = match self
            .cfg
            .spec
            .token_ttl
            .as_deref()
            .map(plan::parse_ttl)
            .transpose()
        {
            Ok(t) => t.unwrap_or(self.ctx.settings.default_ttl),
            Err(message) => {
                conditions::not_paused(&mut self.status, now, generation);
                conditions::not_available(
                    &mut self.status,
                    reason::INVALID_SPEC,
                    &message,
                    now,
                    generation,
                );
                return Ok(Done::wait(None));
            }
        };
        for _ in 0..10 {
            let step = plan::plan(&Observed {
                now,
                spec: &self.cfg.spec,
                status: &self.status,
                deleting: self.cfg.metadata.deletion_timestamp.is_some(),
                has_finalizer: self.cfg.finalizers().iter().any(|f| f == consts::FINALIZER),
                config_paused: plan::is_paused(self.cfg.annotations()),
                machine: fetched.machine.as_ref(),
                cluster_name: fetched.cluster_name.as_deref(),
                cluster: fetched.cluster.as_ref(),
                secret: &secret,
                token: &token,
                ttl,
                check_interval: self.ctx.settings.check_interval,
            });
            tracing::debug!(config = %self.cfg.name_any(), ?step, "plan");
            if !matches!(step, Plan::Paused { .. }) {
                conditions::not_paused(&mut self.status, now, generation);
            }
            match step {
                Plan::WaitForOwner => {
                    conditions::not_available(
                        &mut self.status,
                        reason::WAITING_FOR_OWNER,
                        "waiting for a Machine to own this config",
                        now,
                        generation,
                    );
                    return Ok(Done::wait(Some(WAIT_REQUEUE)));
                }
                Plan::WaitForCluster { cluster_name } => {
                    let msg = format!("waiting for Cluster {cluster_name}");
                    conditions::not_available(
                        &mut self.status,
                        reason::WAITING_FOR_CLUSTER,
                        &msg,
                        now,
                        generation,
                    );
                    return Ok(Done::wait(Some(WAIT_REQUEUE)));
                }
                Plan::Paused { message } => {
                    conditions::set(
                        &mut self.status,
                        condition::PAUSED,
                        ConditionStatus::True,
                        reason::PAUSED,
                        &message,
                        now,
                        generation,
                    );
                    return Ok(Done {
                        action: Action::await_change(),
                        observed: false,
                        gone: false,
                    });
                }
                Plan::AddFinalizer => {
                    self.cfg = apply::set_finalizer(&self.api, &self.cfg, true).await?;
                }
                Plan::WaitForInfrastructure => {
                    conditions::not_available(
                        &mut self.status,
                        reason::WAITING_FOR_CLUSTER_INFRASTRUCTURE,
                        "waiting for the Cluster infrastructure to be provisioned",
                        now,
                        generation,
                    );
                    return Ok(Done::wait(Some(WAIT_REQUEUE)));
                }
                Plan::InvalidSpec { message } => {
                    conditions::not_available(
                        &mut self.status,
                        reason::INVALID_SPEC,
                        &message,
                        now,
                        generation,
                    );
                    return Ok(Done::wait(None));
                }
                Plan::AdoptFromMachine { secret_name } => {
                    self.mark_created(secret_name);
                }
                Plan::RecoverFromSecret {
                    token_id,
                    revoke_orphan,
                } => {
                    if let Some(orphan) = revoke_orphan {
                        self.revoke_quietly(&orphan).await?;
                    }
                    self.status.token_id = token_id;
                    self.mark_created(self.cfg.name_any());
                }
                Plan::MintToken {
                    site_id,
                    revoke_previous,
                } => {
                    let Some(id) = self
                        .mint(
                            &site_id,
                            revoke_previous,
                            ttl,
                            fetched.cluster_name.as_deref().unwrap_or_default(),
                            fetched.machine.as_ref(),
                        )
                        .await?
                    else {
                        return Ok(Done::wait(None));
                    };
                    secret = SecretObservation::Present {
                        token_id: Some(id.clone()),
                    };
                    token = TokenObservation::Known {
                        state: TokenState::Unused,
                        expires_at: now + ttl,
                        device_id: None,
                    };
                }
                Plan::CheckToken { token_id } => {
                    let op = self.operator().await?;
                    token = match op.info(&token_id).await {
                        Ok(info) => self.observe(&info),
                        Err(OperatorError::NotFound { .. }) => TokenObservation::Unknown,
                        Err(e) => return Err(self.registration_down(e)),
                    };
                }
                Plan::ExtendToken { token_id } => {
                    let op = self.operator().await?;
                    token = match op.extend(&token_id, ttl.num_seconds().max(1) as u64).await {
                        Ok(info) => self.observe(&info),
                        Err(OperatorError::NotFound { .. }) => TokenObservation::Unknown,
                        // Redeemed or expired meanwhile: look again.
                        Err(OperatorError::Rejected { .. }) => match op.info(&token_id).await {
                            Ok(info) => self.observe(&info),
                            Err(OperatorError::NotFound { .. }) => TokenObservation::Unknown,
                            Err(e) => return Err(self.registration_down(e)),
                        },
                        Err(e) => return Err(self.registration_down(e)),
                    };
                }
                Plan::MarkRegistered { device_id } => {
                    let note = format!(
                        "device {device_id} redeemed the registration token for site {}",
                        self.status.site_id.clone().unwrap_or_default()
                    );
                    self.ctx
                        .event(
                            &self.cfg,
                            EventType::Normal,
                            reason::REGISTERED,
                            "Register",
                            note,
                        )
                        .await;
                    self.status.device_id = Some(device_id);
                }
                Plan::NothingToDo { requeue_after } => {
                    self.refresh_created_conditions();
                    return Ok(Done::wait(requeue_after.and_then(|d| d.to_std().ok())));
                }
                Plan::RevokeToken { token_id } => {
                    match self.operator().await {
                        Ok(op) => match op.revoke(&token_id).await {
                            Ok(_)
                            | Err(
                                OperatorError::NotFound { .. } | OperatorError::Rejected { .. },
                            ) => {}
                            Err(e) => return Err(e.into()),
                        },
                        // Inputs gone (namespace teardown): the token expires on its own.
                        Err(ReconcileError::Input { what, reason }) => {
                            tracing::warn!(config = %self.cfg.name_any(), %what, %reason, token_id = %token_id, "cannot revoke the token; it will expire unused");
                        }
                        Err(e) => return Err(e),
                    }
                    self.ctx
                        .event(
                            &self.cfg,
                            EventType::Normal,
                            "TokenRevoked",
                            "Delete",
                            format!("revoked unused registration token {token_id}"),
                        )
                        .await;
                    token = TokenObservation::Unknown;
                }
                Plan::RemoveFinalizer => {
                    apply::set_finalizer(&self.api, &self.cfg, false).await?;
                    return Ok(Done {
                        action: Action::await_change(),
                        observed: false,
                        gone: true,
                    });
                }
            }
        }
        Ok(Done::wait(Some(std::time::Duration::from_secs(1))))
    }

    fn mark_created(&mut self, secret_name: String) {
        self.status.data_secret_name = Some(secret_name);
        self.status.initialization = Some(Initialization {
            data_secret_created: Some(true),
        });
        self.status.ready = true;
        self.refresh_created_conditions();
    }

    fn refresh_created_conditions(&mut self) {
        if !self.status.data_secret_created() {
            return;
        }
        let (now, generation) = (self.now, self.generation);
        conditions::available(&mut self.status, now, generation);
        match (&self.status.device_id, &self.status.token_id) {
            (Some(device), _) => {
                let msg = format!("device {device} registered");
                conditions::set(
                    &mut self.status,
                    condition::REGISTERED,
                    ConditionStatus::True,
                    reason::REGISTERED,
                    &msg,
                    now,
                    generation,
                );
            }
            (None, Some(token_id)) => {
                let until = self.status.token_expires_at.clone().unwrap_or_default();
                let msg = format!(
                    "waiting for the device to redeem token {token_id} (valid until {until})"
                );
                conditions::set(
                    &mut self.status,
                    condition::REGISTERED,
                    ConditionStatus::False,
                    reason::WAITING_FOR_DEVICE,
                    &msg,
                    now,
                    generation,
                );
            }
            (None, None) => {}
        }
    }

    fn observe(&mut self, info: &TokenInfo) -> TokenObservation {
        if info.state == TokenState::Unused {
            self.status.token_expires_at = Some(timestamp(info.expires_at));
        }
        TokenObservation::Known {
            state: info.state,
            expires_at: info.expires_at,
            device_id: info.device_id.clone(),
        }
    }

    fn registration_down(&mut self, e: OperatorError) -> ReconcileError {
        let msg = e.to_string();
        conditions::set(
            &mut self.status,
            condition::REGISTERED,
            ConditionStatus::Unknown,
            reason::REGISTRATION_SERVICE_UNAVAILABLE,
            &msg,
            self.now,
            self.generation,
        );
        e.into()
    }

    async fn operator(&mut self) -> Result<OperatorClient, ReconcileError> {
        if let Some(op) = &self.operator {
            return Ok(op.clone());
        }
        let ca = fetch::ca_bundle(&self.ctx, &self.cfg).await?;
        let credential = fetch::credential(&self.ctx, &self.cfg).await?;
        let reg = &self.cfg.spec.registration;
        let base = reg.operator_url.as_deref().unwrap_or(&reg.url);
        let op = self.ctx.operators.client(base, &ca, credential)?;
        self.operator = Some(op.clone());
        Ok(op)
    }

    async fn revoke_quietly(&mut self, token_id: &str) -> Result<(), ReconcileError> {
        let op = self.operator().await?;
        match op.revoke(token_id).await {
            Ok(_) | Err(OperatorError::NotFound { .. } | OperatorError::Rejected { .. }) => Ok(()),
            Err(e) => {
                let msg = e.to_string();
                conditions::not_available(
                    &mut self.status,
                    reason::REGISTRATION_SERVICE_UNAVAILABLE,
                    &msg,
                    self.now,
                    self.generation,
                );
                Err(e.into())
            }
        }
    }

    /// Steps 1-5 of the module docs. `Ok(None)`: the spec is invalid (condition set).
    async fn mint(
        &mut self,
        site_id: &str,
        revoke_previous: Option<String>,
        ttl: chrono::Duration,
        cluster_name: &str,
        machine: Option<&crate::capi::MachineFacts>,
    ) -> Result<Option<String>, ReconcileError> {
        let (now, generation) = (self.now, self.generation);
        let ca = match fetch::ca_bundle(&self.ctx, &self.cfg).await {
            Ok(ca) => ca,
            Err(ReconcileError::Input { what, reason: why }) => {
                conditions::not_available(
                    &mut self.status,
                    reason::INVALID_SPEC,
                    &format!("{what} {why}"),
                    now,
                    generation,
                );
                return Err(ReconcileError::Input { what, reason: why });
            }
            Err(e) => return Err(e),
        };
        if let Err(message) = bootstrap_input::validate(&self.cfg.spec, site_id, &ca) {
            conditions::not_available(
                &mut self.status,
                reason::INVALID_SPEC,
                &message,
                now,
                generation,
            );
            return Ok(None);
        }
        let op = match self.operator().await {
            Ok(op) => op,
            Err(e) => {
                let msg = e.to_string();
                conditions::not_available(
                    &mut self.status,
                    reason::INVALID_SPEC,
                    &msg,
                    now,
                    generation,
                );
                return Err(e);
            }
        };
        if let Some(prev) = revoke_previous {
            self.revoke_quietly(&prev).await?;
        }
        let req = MintTokenRequest {
            site_id: site_id.to_string(),
            machine: machine.map(|m| MachineRef {
                namespace: m.namespace.clone(),
                name: m.name.clone(),
                uid: m.uid.clone(),
            }),
            ttl_seconds: Some(ttl.num_seconds().max(1) as u64),
        };
        let minted = match op.mint(&req).await {
            Ok(m) => m,
            Err(e) => {
                let why = match e {
                    OperatorError::Unavailable { .. } => reason::REGISTRATION_SERVICE_UNAVAILABLE,
                    _ => reason::REGISTRATION_REJECTED,
                };
                let msg = e.to_string();
                conditions::not_available(&mut self.status, why, &msg, now, generation);
                return Err(e.into());
            }
        };
        self.ctx.metrics.minted();
        let token_id = minted.info.token_id.clone();
        self.status.token_id = Some(token_id.clone());
        self.status.token_expires_at = Some(timestamp(minted.info.expires_at));
        self.status.site_id = Some(site_id.to_string());
        self.status.device_id = None;
        // Step 3: the id is on record before any data carries the token.
        apply::patch_status(&self.api, &self.cfg.name_any(), &self.stored, &self.status).await?;
        self.stored = self.status.clone();

        let started = std::time::Instant::now();
        let rendered = bootstrap_input::render_input(&self.cfg.spec, site_id, &ca, minted.token)
            .map_err(|e| crate::render::RenderError::Invalid {
                field: "spec".into(),
                reason: e.to_string(),
            })
            .and_then(|input| bootstrap_input::render(self.cfg.spec.format, &input));
        self.ctx.metrics.rendered(started.elapsed());
        let value = match rendered {
            Ok(v) => v,
            Err(e) => {
                // Cannot happen after a successful validation render, but never leave a live
                // token behind.
                let _ = op.revoke(&token_id).await;
                conditions::not_available(
                    &mut self.status,
                    reason::DATA_SECRET_GENERATION_FAILED,
                    &e.to_string(),
                    now,
                    generation,
                );
                return Err(e.into());
            }
        };
        let secret = apply::data_secret(
            &self.cfg,
            cluster_name,
            self.cfg.spec.format,
            value,
            &token_id,
        );
        if let Err(e) = apply::write_secret(&self.ctx.client, &secret).await {
            conditions::not_available(
                &mut self.status,
                reason::DATA_SECRET_GENERATION_FAILED,
                &e.to_string(),
                now,
                generation,
            );
            return Err(e);
        }
        self.mark_created(self.cfg.name_any());
        let note = format!(
            "wrote bootstrap data ({}) with registration token {token_id} for site {site_id}",
            self.cfg.spec.format.as_str()
        );
        self.ctx
            .event(
                &self.cfg,
                EventType::Normal,
                "DataSecretCreated",
                "Bootstrap",
                note,
            )
            .await;
        Ok(Some(token_id))
    }
}
