//! Fetch stage: reads the config (fresh, not from the cache, so a status written by the
//! previous reconcile is always seen), its owning Machine, the Cluster, the data Secret,
//! and lazily the registration inputs (CA bundle, operator credential).

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, DynamicObject};
use kube::{Resource, ResourceExt};

use super::{Context, ReconcileError};
use crate::api::{SiteBootstrapConfig, SourceKind};
use crate::capi::{ClusterFacts, MachineFacts};
use crate::consts;
use crate::plan::SecretObservation;

/// What the fetch stage found.
pub struct Fetched {
    pub machine: Option<MachineFacts>,
    pub cluster_name: Option<String>,
    pub cluster: Option<ClusterFacts>,
    pub secret: SecretObservation,
}

fn fetch_err(what: impl Into<String>) -> impl FnOnce(kube::Error) -> ReconcileError {
    let what = what.into();
    move |source| ReconcileError::Fetch { what, source }
}

/// Reads Machine, Cluster and Secret for `cfg`.
pub async fn related(ctx: &Context, cfg: &SiteBootstrapConfig) -> Result<Fetched, ReconcileError> {
    let ns = cfg.namespace().unwrap_or_default();
    let owner = cfg
        .owner_references()
        .iter()
        .find(|o| o.kind == "Machine" && o.api_version.starts_with(consts::CAPI_GROUP))
        .map(|o| o.name.clone());
    let machine = match owner {
        Some(name) => {
            let api: Api<DynamicObject> =
                Api::namespaced_with(ctx.client.clone(), &ns, &ctx.machine_ar);
            api.get_opt(&name)
                .await
                .map_err(fetch_err(format!("Machine {ns}/{name}")))?
                .map(|m| MachineFacts::from_dynamic(&m))
        }
        None => None,
    };
    let cluster_name = cfg
        .labels()
        .get(consts::CLUSTER_NAME_LABEL)
        .cloned()
        .or_else(|| machine.as_ref().and_then(|m| m.cluster_name.clone()));
    let cluster = match &cluster_name {
        Some(name) => {
            let api: Api<DynamicObject> =
                Api::namespaced_with(ctx.client.clone(), &ns, &ctx.cluster_ar);
            api.get_opt(name)
                .await
                .map_err(fetch_err(format!("Cluster {ns}/{name}")))?
                .map(|c| ClusterFacts::from_dynamic(&c))
        }
        None => None,
    };
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
    let name = cfg.name_any();
    let secret = match secrets
        .get_opt(&name)
        .await
        .map_err(fetch_err(format!("Secret {ns}/{name}")))?
    {
        None => SecretObservation::Missing,
        Some(s) => {
            // Only a Secret we control may tell us its token id.
            let ours = s
                .owner_references()
                .iter()
                .any(|o| o.controller == Some(true) && Some(&o.uid) == cfg.meta().uid.as_ref());
            let token_id = if ours {
                s.annotations().get(consts::TOKEN_ID_ANNOTATION).cloned()
            } else {
                None
            };
            SecretObservation::Present { token_id }
        }
    };
    Ok(Fetched {
        machine,
        cluster_name,
        cluster,
        secret,
    })
}

/// The registration CA bundle (inline or from a Secret/ConfigMap).
pub async fn ca_bundle(ctx: &Context, cfg: &SiteBootstrapConfig) -> Result<String, ReconcileError> {
    let reg = &cfg.spec.registration;
    if let Some(pem) = reg.ca_bundle.as_deref().filter(|p| !p.trim().is_empty()) {
        return Ok(pem.to_string());
    }
    let Some(from) = &reg.ca_bundle_from else {
        return Err(ReconcileError::Input {
            what: "spec.registration".into(),
            reason: "needs caBundle or caBundleFrom".into(),
        });
    };
    let ns = cfg.namespace().unwrap_or_default();
    let key = from
        .key
        .clone()
        .unwrap_or_else(|| consts::DEFAULT_CA_KEY.to_string());
    let what = format!("{:?} {ns}/{} key {key}", from.kind, from.name);
    let value = match from.kind {
        SourceKind::Secret => {
            let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
            let s = api
                .get_opt(&from.name)
                .await
                .map_err(fetch_err(what.clone()))?;
            s.and_then(|s| s.data).and_then(|d| {
                d.get(&key)
                    .map(|b| String::from_utf8_lossy(&b.0).into_owned())
            })
        }
        SourceKind::ConfigMap => {
            let api: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &ns);
            let c = api
                .get_opt(&from.name)
                .await
                .map_err(fetch_err(what.clone()))?;
            c.and_then(|c| c.data).and_then(|d| d.get(&key).cloned())
        }
    };
    value
        .filter(|v| !v.trim().is_empty())
        .ok_or(ReconcileError::Input {
            what,
            reason: "is missing or empty".into(),
        })
}

/// The operator credential from `spec.registration.credentialsSecretRef`.
pub async fn credential(
    ctx: &Context,
    cfg: &SiteBootstrapConfig,
) -> Result<siteboot_wire::SecretString, ReconcileError> {
    let r = &cfg.spec.registration.credentials_secret_ref;
    let ns = cfg.namespace().unwrap_or_default();
    let key = r
        .key
        .clone()
        .unwrap_or_else(|| consts::DEFAULT_CREDENTIALS_KEY.to_string());
    let what = format!("credentials Secret {ns}/{} key {key}", r.name);
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
    let s = api
        .get_opt(&r.name)
        .await
        .map_err(fetch_err(what.clone()))?;
    let value = s.and_then(|s| s.data).and_then(|d| {
        d.get(&key)
            .map(|b| String::from_utf8_lossy(&b.0).trim().to_string())
    });
    value
        .filter(|v| !v.is_empty())
        .map(siteboot_wire::SecretString::new)
        .ok_or(ReconcileError::Input {
            what,
            reason: "is missing or empty".into(),
        })
}
