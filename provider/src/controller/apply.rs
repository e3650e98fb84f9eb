//! Apply stage: the only writes the controller makes: the data Secret (server-side apply),
//! the finalizer (merge patch guarded by resourceVersion) and the status subresource
//! (merge patch, only when the computed status differs from the stored one).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::ByteString;
use kube::api::{Api, Patch, PatchParams};
use kube::{Resource, ResourceExt};
use serde_json::json;

use super::ReconcileError;
use crate::api::{Format, SiteBootstrapConfig, SiteBootstrapConfigStatus};
use crate::consts;

/// The data Secret exactly as the contract wants it: named like the config, keys `value`
/// and `format`, type `cluster.x-k8s.io/secret`, the cluster-name label, a controller
/// owner reference to the config, plus our annotation with the token's public id.
pub fn data_secret(
    cfg: &SiteBootstrapConfig,
    cluster_name: &str,
    format: Format,
    value: String,
    token_id: &str,
) -> Secret {
    let owner = OwnerReference {
        api_version: format!("{}/{}", consts::GROUP, consts::VERSION),
        kind: consts::KIND.to_string(),
        name: cfg.name_any(),
        uid: cfg.meta().uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    };
    Secret {
        metadata: ObjectMeta {
            name: Some(cfg.name_any()),
            namespace: cfg.namespace(),
            labels: Some(BTreeMap::from([(
                consts::CLUSTER_NAME_LABEL.to_string(),
                cluster_name.to_string(),
            )])),
            annotations: Some(BTreeMap::from([(
                consts::TOKEN_ID_ANNOTATION.to_string(),
                token_id.to_string(),
            )])),
            owner_references: Some(vec![owner]),
            ..Default::default()
        },
        type_: Some(consts::DATA_SECRET_TYPE.to_string()),
        data: Some(BTreeMap::from([
            (
                consts::DATA_SECRET_VALUE_KEY.to_string(),
                ByteString(value.into_bytes()),
            ),
            (
                consts::DATA_SECRET_FORMAT_KEY.to_string(),
                ByteString(format.as_str().as_bytes().to_vec()),
            ),
        ])),
        ..Default::default()
    }
}

/// Writes the data Secret (server-side apply, forced: we own every field we set).
pub async fn write_secret(client: &kube::Client, secret: &Secret) -> Result<(), ReconcileError> {
    let ns = secret.metadata.namespace.clone().unwrap_or_default();
    let name = secret.metadata.name.clone().unwrap_or_default();
    let api: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let mut body = serde_json::to_value(secret).map_err(|e| ReconcileError::Apply {
        what: "data Secret",
        source: kube::Error::SerdeError(e),
    })?;
    body["apiVersion"] = json!("v1");
    body["kind"] = json!("Secret");
    api.patch(
        &name,
        &PatchParams::apply(consts::FIELD_MANAGER).force(),
        &Patch::Apply(body),
    )
    .await
    .map(|_| ())
    .map_err(|source| ReconcileError::Apply {
        what: "data Secret",
        source,
    })
}

/// Adds or removes our finalizer; fails with a conflict if the object changed meanwhile.
pub async fn set_finalizer(
    api: &Api<SiteBootstrapConfig>,
    cfg: &SiteBootstrapConfig,
    present: bool,
) -> Result<SiteBootstrapConfig, ReconcileError> {
    let mut finalizers: Vec<String> = cfg
        .finalizers()
        .iter()
        .filter(|f| *f != consts::FINALIZER)
        .cloned()
        .collect();
    if present {
        finalizers.push(consts::FINALIZER.to_string());
    }
    let patch =
        json!({"metadata": {"finalizers": finalizers, "resourceVersion": cfg.resource_version()}});
    api.patch(
        &cfg.name_any(),
        &PatchParams::default(),
        &Patch::Merge(patch),
    )
    .await
    .map_err(|source| ReconcileError::Apply {
        what: "finalizer",
        source,
    })
}

/// Patches the status when it differs from `stored`; returns whether it wrote.
pub async fn patch_status(
    api: &Api<SiteBootstrapConfig>,
    name: &str,
    stored: &SiteBootstrapConfigStatus,
    desired: &SiteBootstrapConfigStatus,
) -> Result<bool, ReconcileError> {
    if stored == desired {
        return Ok(false);
    }
    let mut value = serde_json::to_value(desired)
        .map_err(|e| ReconcileError::Status(kube::Error::SerdeError(e)))?;
    // Merge patch cannot drop keys by omission: null out the ones that went away.
    let before = serde_json::to_value(stored).unwrap_or_default();
    if let (Some(obj), Some(old)) = (value.as_object_mut(), before.as_object()) {
        for key in old.keys() {
            obj.entry(key.clone()).or_insert(serde_json::Value::Null);
        }
    }
    api.patch_status(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({ "status": value })),
    )
    .await
    .map(|_| true)
    .map_err(ReconcileError::Status)
}
