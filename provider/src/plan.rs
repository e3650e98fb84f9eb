//! The pure heart of the reconcile: plain observations in, one next [`Plan`] step out.
//!
//! The reconcile loop (`controller::reconcile`) fetches, asks [`plan`] what to do, performs
//! that one step, updates its observations and asks again, until a step ends the
//! reconcile (waiting, nothing to do, or an error). Keeping every decision here makes each
//! branch a row in a table test, with `now` passed in.

use chrono::{DateTime, Duration, Utc};
use siteboot_wire::operator::TokenState;

use crate::api::{SiteBootstrapConfigSpec, SiteBootstrapConfigStatus};
use crate::capi::{ClusterFacts, MachineFacts};
use crate::consts;

/// What the data Secret looks like now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretObservation {
    /// No Secret of the config's name.
    Missing,
    /// A Secret exists; `token_id` is our annotation naming the token inside, if any.
    Present { token_id: Option<String> },
}

/// What the registration service said about the status's token, if we asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenObservation {
    /// Not asked during this reconcile.
    NotChecked,
    /// The service knows the token.
    Known {
        state: TokenState,
        expires_at: DateTime<Utc>,
        device_id: Option<String>,
    },
    /// The service does not know the token (404).
    Unknown,
}

/// Everything [`plan`] decides on.
#[derive(Debug, Clone)]
pub struct Observed<'a> {
    pub now: DateTime<Utc>,
    pub spec: &'a SiteBootstrapConfigSpec,
    pub status: &'a SiteBootstrapConfigStatus,
    pub deleting: bool,
    pub has_finalizer: bool,
    /// The config carries `cluster.x-k8s.io/paused`.
    pub config_paused: bool,
    /// The owning Machine (controller owner reference of kind Machine), if found.
    pub machine: Option<&'a MachineFacts>,
    /// The config's cluster-name label (or the Machine's cluster name).
    pub cluster_name: Option<&'a str>,
    /// The Cluster, if found.
    pub cluster: Option<&'a ClusterFacts>,
    pub secret: &'a SecretObservation,
    pub token: &'a TokenObservation,
    /// Token lifetime for this config.
    pub ttl: Duration,
    /// How often an unregistered token is checked at the registration service.
    pub check_interval: Duration,
}

/// One step of the reconcile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// No Machine owns the config yet; CAPI sets the owner reference, the watch wakes us.
    WaitForOwner,
    /// The Cluster named by the cluster-name label does not exist (yet).
    WaitForCluster { cluster_name: String },
    /// The Cluster or the config is paused: only the `Paused` condition is written.
    Paused { message: String },
    /// Add the finalizer before any token exists, so deletion can always revoke it.
    AddFinalizer,
    /// Cluster infrastructure is not provisioned yet.
    WaitForInfrastructure,
    /// The spec cannot produce bootstrap data (e.g. no site id); waits for a spec change.
    InvalidSpec { message: String },
    /// The Machine already carries `spec.bootstrap.dataSecretName` but our status was lost
    /// (`clusterctl move`): record it as created, generate nothing.
    AdoptFromMachine { secret_name: String },
    /// Our Secret exists but the status does not say so (crash between the Secret write
    /// and the status patch, or a move): rebuild the status from the Secret. A different
    /// token id recorded in the status was never delivered and is revoked.
    RecoverFromSecret {
        token_id: Option<String>,
        revoke_orphan: Option<String>,
    },
    /// Mint a token, record its id, render and write the Secret. `revoke_previous` is a
    /// token recorded earlier that never reached a Secret (or whose Secret is gone) or
    /// that expired unused.
    MintToken {
        site_id: String,
        revoke_previous: Option<String>,
    },
    /// Ask the registration service about the token.
    CheckToken { token_id: String },
    /// Push the token's expiry to now + TTL.
    ExtendToken { token_id: String },
    /// The device redeemed the token.
    MarkRegistered { device_id: String },
    /// Done for now; look again after `requeue_after` if set.
    NothingToDo { requeue_after: Option<Duration> },
    /// Deleting: revoke the unused token, then drop the finalizer.
    RevokeToken { token_id: String },
    /// Deleting: release the object.
    RemoveFinalizer,
}

/// Resolves the site id: `spec.site.siteId`, else the `siteIdFrom` label on the Machine,
/// else on the Cluster.
pub fn resolve_site(
    spec: &SiteBootstrapConfigSpec,
    machine: Option<&MachineFacts>,
    cluster: Option<&ClusterFacts>,
) -> Result<String, String> {
    let site = if let Some(id) = spec.site.site_id.as_deref().filter(|s| !s.is_empty()) {
        id.to_string()
    } else if let Some(from) = &spec.site.site_id_from {
        machine
            .and_then(|m| m.labels.get(&from.label))
            .or_else(|| cluster.and_then(|c| c.labels.get(&from.label)))
            .cloned()
            .ok_or_else(|| {
                format!(
                    "label {:?} is set on neither the Machine nor the Cluster",
                    from.label
                )
            })?
    } else {
        return Err("spec.site needs siteId or siteIdFrom".to_string());
    };
    if !siteboot_wire::labels::is_valid_site_id(&site) {
        return Err(format!(
            "site id {site:?} is not a DNS label (a-z, 0-9, '-', at most 63)"
        ));
    }
    Ok(site)
}

/// Decides the next step.
pub fn plan(o: &Observed<'_>) -> Plan {
    let registered = o.status.device_id.is_some();
    let cluster_paused = o.cluster.is_some_and(|c| c.paused);
    if cluster_paused || o.config_paused {
        // Also while deleting: `clusterctl move` pauses the Cluster and deletes the source
        // copies; revoking then would kill the token the moved config still uses.
        let cause = match (cluster_paused, o.config_paused) {
            (true, true) => "Cluster and SiteBootstrapConfig are paused",
            (true, false) => "Cluster is paused",
            _ => "SiteBootstrapConfig is paused",
        };
        return Plan::Paused {
            message: cause.to_string(),
        };
    }
    if o.deleting {
        if !o.has_finalizer {
            return Plan::NothingToDo {
                requeue_after: None,
            };
        }
        return match (&o.status.token_id, registered, token_expired(o)) {
            (Some(id), false, false) if !matches!(o.token, TokenObservation::Unknown) => {
                Plan::RevokeToken {
                    token_id: id.clone(),
                }
            }
            _ => Plan::RemoveFinalizer,
        };
    }
    let Some(machine) = o.machine else {
        return Plan::WaitForOwner;
    };
    let Some(cluster_name) = o.cluster_name.or(machine.cluster_name.as_deref()) else {
        return Plan::WaitForOwner;
    };
    let Some(cluster) = o.cluster else {
        return Plan::WaitForCluster {
            cluster_name: cluster_name.to_string(),
        };
    };
    if !o.has_finalizer {
        return Plan::AddFinalizer;
    }
    let created = o.status.data_secret_created();
    if !created {
        if let SecretObservation::Present { token_id: Some(id) } = o.secret {
            let orphan = o.status.token_id.clone().filter(|t| t != id);
            return Plan::RecoverFromSecret {
                token_id: Some(id.clone()),
                revoke_orphan: orphan,
            };
        }
        if let (Some(name), SecretObservation::Missing) = (&machine.data_secret_name, o.secret) {
            return Plan::AdoptFromMachine {
                secret_name: name.clone(),
            };
        }
    }
    if !cluster.infrastructure_provisioned && !created {
        return Plan::WaitForInfrastructure;
    }
    let mint = |revoke_previous: Option<String>| match resolve_site(
        o.spec,
        Some(machine),
        Some(cluster),
    ) {
        Ok(site_id) => Plan::MintToken {
            site_id,
            revoke_previous,
        },
        Err(message) => Plan::InvalidSpec { message },
    };
    if !created || *o.secret == SecretObservation::Missing {
        if registered || machine.has_node_ref {
            // The device is in; regenerating a token for it would only widen exposure.
            return Plan::NothingToDo {
                requeue_after: None,
            };
        }
        return mint(o.status.token_id.clone());
    }
    // The Secret exists and the status says so: keep the token alive until redeemed.
    let Some(token_id) = o.status.token_id.clone() else {
        // Adopted from a Machine or an old Secret without a token annotation: nothing to track.
        return Plan::NothingToDo {
            requeue_after: None,
        };
    };
    if registered {
        return Plan::NothingToDo {
            requeue_after: None,
        };
    }
    match o.token {
        TokenObservation::NotChecked => Plan::CheckToken { token_id },
        TokenObservation::Known {
            state: TokenState::Redeemed,
            device_id,
            ..
        } => Plan::MarkRegistered {
            device_id: device_id.clone().unwrap_or_default(),
        },
        TokenObservation::Known {
            state: TokenState::Unused,
            expires_at,
            ..
        } => {
            if machine.has_node_ref || machine.deleting {
                // The node joined (or is going away): stop extending, as kubeadm does,
                // but keep looking so a late redemption still shows up.
                return Plan::NothingToDo {
                    requeue_after: Some(o.check_interval),
                };
            }
            // kubeadm's rule: refresh when less than 5/6 of the TTL remains.
            let refresh_at = *expires_at - o.ttl / 6;
            if o.now >= refresh_at {
                Plan::ExtendToken { token_id }
            } else {
                let until_refresh = refresh_at - o.now;
                Plan::NothingToDo {
                    requeue_after: Some(
                        until_refresh
                            .min(o.check_interval)
                            .max(Duration::seconds(1)),
                    ),
                }
            }
        }
        TokenObservation::Known {
            state: TokenState::Expired | TokenState::Revoked,
            ..
        }
        | TokenObservation::Unknown => {
            if machine.has_node_ref || machine.deleting {
                Plan::NothingToDo {
                    requeue_after: None,
                }
            } else {
                // The box has not joined and its token is dead: new token, same Secret.
                mint(None)
            }
        }
    }
}

fn token_expired(o: &Observed<'_>) -> bool {
    match o.token {
        TokenObservation::Known {
            state, expires_at, ..
        } => *state != TokenState::Unused || *expires_at <= o.now,
        _ => o
            .status
            .token_expires_at
            .as_deref()
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .is_some_and(|t| t.with_timezone(&Utc) <= o.now),
    }
}

/// Parses a Go-style duration (`24h`, `90m`, `1h30m`, `45s`) into a positive duration.
pub fn parse_ttl(text: &str) -> Result<Duration, String> {
    let bad = || format!("tokenTTL {text:?} is not a duration like 24h, 90m or 1h30m");
    let mut total = 0i64;
    let mut digits = String::new();
    for c in text.trim().chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let n: i64 = digits.parse().map_err(|_| bad())?;
        digits.clear();
        let unit = match c {
            'h' => 3600,
            'm' => 60,
            's' => 1,
            _ => return Err(bad()),
        };
        total = n
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(bad)?;
    }
    if !digits.is_empty() || total <= 0 {
        return Err(bad());
    }
    if total < 300 {
        return Err(format!("tokenTTL {text:?} is too short: use at least 5m"));
    }
    Ok(Duration::seconds(total))
}

/// The paused-annotation check on object annotations.
pub fn is_paused(annotations: &std::collections::BTreeMap<String, String>) -> bool {
    annotations.contains_key(consts::PAUSED_ANNOTATION)
}

#[cfg(test)]
mod tests;
