//! Server-side apply to the local cluster and pruning, the I/O half (decisions live in
//! [`plan`]). Namespaces first, then CRDs (waiting until each is `Established`, then
//! forgetting cached discovery so the new kinds resolve), then everything else, all with
//! field manager `siteboot-agent` and the agent's labels. Pruning deletes only objects
//! that are in the agent's record *and* still carry both agent labels.

pub mod plan;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams};
use kube::core::GroupVersion;
use kube::discovery::{ApiCapabilities, ApiResource, Scope};
use kube::Client;
use serde_json::Value;
use siteboot_wire::api::HealthSummary;

use crate::render::ObjectRef;
use plan::{Phase, FIELD_MANAGER};

/// How long to wait for a CRD to become `Established`.
const CRD_TIMEOUT: Duration = Duration::from_secs(60);

/// Failures applying or pruning, naming the object.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The cluster refused an object (invalid, forbidden, conflict...).
    #[error("apply {object}: rejected by the cluster: {reason}")]
    Rejected {
        /// Object.
        object: String,
        /// API message.
        reason: String,
    },
    /// The kind is not served by the cluster.
    #[error("apply {object}: the cluster does not serve this kind (missing CRD?)")]
    UnknownKind {
        /// Object.
        object: String,
    },
    /// The cluster API could not be reached.
    #[error("{action}: cluster API unreachable: {reason}")]
    Unreachable {
        /// What was being done.
        action: String,
        /// Cause.
        reason: String,
    },
    /// A CRD did not become established in time.
    #[error("CRD {0} did not become Established within 60 s")]
    CrdNotEstablished(String),
}

/// Result of applying a set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied {
    /// Health right after apply.
    pub health: HealthSummary,
}

/// Applies objects to one cluster for one site.
pub struct Applier {
    client: Client,
    site: String,
    groups: HashMap<String, Vec<(ApiResource, ApiCapabilities)>>,
}

impl Applier {
    /// An applier for `site` using `client`.
    pub fn new(client: Client, site: &str) -> Applier {
        Applier {
            client,
            site: site.to_string(),
            groups: HashMap::new(),
        }
    }

    /// Applies all objects in phase order and returns their health.
    pub async fn apply_all(&mut self, objects: &[Value]) -> Result<Applied, ApplyError> {
        let mut health = HealthSummary::default();
        for phase in [Phase::Namespaces, Phase::Crds, Phase::Rest] {
            let mut crds = Vec::new();
            for object in objects {
                let Ok(oref) = ObjectRef::of(object) else {
                    continue;
                };
                if plan::phase(&oref) != phase {
                    continue;
                }
                let live = self.apply_one(&oref, object).await?;
                plan::count(&mut health, plan::health(&live));
                if phase == Phase::Crds {
                    crds.push(oref.name.clone());
                }
            }
            for name in &crds {
                self.wait_established(name).await?;
            }
            if !crds.is_empty() {
                self.groups.clear();
            }
        }
        Ok(Applied { health })
    }

    async fn apply_one(&mut self, oref: &ObjectRef, object: &Value) -> Result<Value, ApplyError> {
        let (api, namespace) = self.api_for(oref).await?;
        let mut body = plan::with_agent_labels(object, &self.site);
        if let (Some(ns), Some(meta)) = (namespace, body["metadata"].as_object_mut()) {
            meta.insert("namespace".into(), Value::String(ns));
        }
        let params = PatchParams::apply(FIELD_MANAGER).force();
        let live = api
            .patch(&oref.name, &params, &Patch::Apply(&body))
            .await
            .map_err(|e| classify(e, &format!("apply {oref}"), || oref.to_string()))?;
        Ok(serde_json::to_value(&live).unwrap_or(Value::Null))
    }

    /// Deletes recorded objects that left Git, if they still carry the agent's labels.
    /// Returns the references that are gone (deleted now, already absent, or no longer
    /// ours); objects whose deletion failed stay in the record for the next attempt.
    pub async fn prune(&mut self, candidates: &[ObjectRef]) -> Result<Vec<ObjectRef>, ApplyError> {
        let mut gone = Vec::new();
        for oref in candidates {
            let api = match self.api_for(oref).await {
                Ok((api, _)) => api,
                // The kind itself is gone (its CRD was pruned): so are its objects.
                Err(ApplyError::UnknownKind { .. }) => {
                    gone.push(oref.clone());
                    continue;
                }
                Err(e) => return Err(e),
            };
            let live = match api.get_opt(&oref.name).await {
                Ok(Some(live)) => serde_json::to_value(&live).unwrap_or(Value::Null),
                Ok(None) => {
                    gone.push(oref.clone());
                    continue;
                }
                Err(e) => {
                    return Err(classify(e, &format!("read {oref} before pruning"), || {
                        oref.to_string()
                    }))
                }
            };
            if !plan::is_ours(&live, &self.site) {
                tracing::warn!(object = %oref, "not pruning: the object no longer carries the agent's labels");
                gone.push(oref.clone());
                continue;
            }
            match api.delete(&oref.name, &DeleteParams::background()).await {
                Ok(_) => {
                    tracing::info!(object = %oref, "pruned: no longer in Git");
                    gone.push(oref.clone());
                }
                Err(kube::Error::Api(s)) if s.code == 404 => gone.push(oref.clone()),
                Err(e) => return Err(classify(e, &format!("prune {oref}"), || oref.to_string())),
            }
        }
        Ok(gone)
    }

    /// Re-reads objects whose health changes after apply (Deployments, Jobs) and counts
    /// everything else as present-and-healthy.
    pub async fn health(&mut self, refs: &[ObjectRef]) -> Result<HealthSummary, ApplyError> {
        let mut summary = HealthSummary::default();
        for oref in refs {
            if !plan::has_dynamic_health(oref) {
                plan::count(&mut summary, plan::Health::Healthy);
                continue;
            }
            let (api, _) = self.api_for(oref).await?;
            let h = match api.get_opt(&oref.name).await {
                Ok(Some(live)) => plan::health(&serde_json::to_value(&live).unwrap_or(Value::Null)),
                Ok(None) => plan::Health::Failed,
                Err(e) => return Err(classify(e, &format!("read {oref}"), || oref.to_string())),
            };
            plan::count(&mut summary, h);
        }
        Ok(summary)
    }

    /// The API handle for an object and the namespace to use (defaulted for namespaced
    /// kinds, `None` for cluster-scoped ones).
    async fn api_for(
        &mut self,
        oref: &ObjectRef,
    ) -> Result<(Api<DynamicObject>, Option<String>), ApplyError> {
        let (group, version) = match oref.api_version.rsplit_once('/') {
            Some((g, v)) => (g.to_string(), v.to_string()),
            None => (String::new(), oref.api_version.clone()),
        };
        let key = oref.api_version.clone();
        if !self.groups.contains_key(&key) {
            let gv = GroupVersion::gv(&group, &version);
            match kube::discovery::pinned_group(&self.client, &gv).await {
                Ok(g) => {
                    self.groups
                        .insert(key.clone(), g.versioned_resources(&version));
                }
                Err(kube::Error::Api(s)) if s.code == 404 => {
                    return Err(ApplyError::UnknownKind {
                        object: oref.to_string(),
                    })
                }
                Err(e) => {
                    return Err(classify(
                        e,
                        &format!("discover {}", oref.api_version),
                        || oref.to_string(),
                    ))
                }
            }
        }
        let (ar, caps) = self.groups[&key]
            .iter()
            .find(|(ar, _)| ar.kind == oref.kind)
            .cloned()
            .ok_or_else(|| ApplyError::UnknownKind {
                object: oref.to_string(),
            })?;
        Ok(match caps.scope {
            Scope::Namespaced => {
                let ns = oref.namespace.clone().unwrap_or_else(|| "default".into());
                (
                    Api::namespaced_with(self.client.clone(), &ns, &ar),
                    Some(ns),
                )
            }
            Scope::Cluster => (Api::all_with(self.client.clone(), &ar), None),
        })
    }

    async fn wait_established(&mut self, name: &str) -> Result<(), ApplyError> {
        let ar = ApiResource {
            group: "apiextensions.k8s.io".into(),
            version: "v1".into(),
            api_version: "apiextensions.k8s.io/v1".into(),
            kind: "CustomResourceDefinition".into(),
            plural: "customresourcedefinitions".into(),
        };
        let api: Api<DynamicObject> = Api::all_with(self.client.clone(), &ar);
        let deadline = Instant::now() + CRD_TIMEOUT;
        loop {
            if let Ok(Some(crd)) = api.get_opt(name).await {
                let established = crd.data["status"]["conditions"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|c| c["type"] == "Established" && c["status"] == "True");
                if established {
                    return Ok(());
                }
            }
            if Instant::now() >= deadline {
                return Err(ApplyError::CrdNotEstablished(name.to_string()));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

fn classify(e: kube::Error, action: &str, object: impl Fn() -> String) -> ApplyError {
    match e {
        kube::Error::Api(s) if s.code != 0 && s.code < 500 => ApplyError::Rejected {
            object: object(),
            reason: if s.message.is_empty() {
                format!("HTTP {}", s.code)
            } else {
                s.message.clone()
            },
        },
        other => ApplyError::Unreachable {
            action: action.to_string(),
            reason: other.to_string(),
        },
    }
}
