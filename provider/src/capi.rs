//! Read-only views of the CAPI core objects we depend on (Machine, Cluster), parsed from
//! `DynamicObject`s of either `cluster.x-k8s.io/v1beta2` or `v1beta1`. Only the fields the
//! contract gives us are read; everything else in those objects is ignored.

use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
use kube::ResourceExt;
use serde_json::Value;

use crate::consts;

/// `ApiResource` of a CAPI kind at `version`.
pub fn api_resource(kind: &str, version: &str) -> ApiResource {
    ApiResource::from_gvk(&GroupVersionKind::gvk(consts::CAPI_GROUP, version, kind))
}

/// What we need to know about a Machine.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MachineFacts {
    pub name: String,
    pub namespace: String,
    pub uid: Option<String>,
    pub cluster_name: Option<String>,
    pub labels: std::collections::BTreeMap<String, String>,
    /// Kind and name of `spec.bootstrap.configRef`.
    pub config_ref: Option<(String, String)>,
    /// `spec.bootstrap.dataSecretName` (set by CAPI once bootstrap data was reported).
    pub data_secret_name: Option<String>,
    /// `status.nodeRef` is set: the node joined.
    pub has_node_ref: bool,
    /// The Machine is being deleted.
    pub deleting: bool,
}

/// What we need to know about a Cluster.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClusterFacts {
    pub name: String,
    pub labels: std::collections::BTreeMap<String, String>,
    /// `spec.paused` or the paused annotation.
    pub paused: bool,
    /// v1beta2 `status.initialization.infrastructureProvisioned` or v1beta1 `status.infrastructureReady`.
    pub infrastructure_provisioned: bool,
}

fn path<'a>(v: &'a Value, keys: &[&str]) -> Option<&'a Value> {
    keys.iter().try_fold(v, |v, k| v.get(k))
}

fn string(v: &Value, keys: &[&str]) -> Option<String> {
    path(v, keys)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

impl MachineFacts {
    /// Reads a Machine of either API version.
    pub fn from_dynamic(m: &DynamicObject) -> Self {
        let d = &m.data;
        let config_ref = path(d, &["spec", "bootstrap", "configRef"]).and_then(|r| {
            Some((
                r.get("kind")?.as_str()?.to_string(),
                r.get("name")?.as_str()?.to_string(),
            ))
        });
        MachineFacts {
            name: m.name_any(),
            namespace: m.namespace().unwrap_or_default(),
            uid: m.uid(),
            cluster_name: string(d, &["spec", "clusterName"]),
            labels: m.labels().clone(),
            config_ref,
            data_secret_name: string(d, &["spec", "bootstrap", "dataSecretName"]),
            has_node_ref: path(d, &["status", "nodeRef", "name"])
                .and_then(Value::as_str)
                .is_some_and(|s| !s.is_empty()),
            deleting: m.metadata.deletion_timestamp.is_some(),
        }
    }
}

impl ClusterFacts {
    /// Reads a Cluster of either API version.
    pub fn from_dynamic(c: &DynamicObject) -> Self {
        let d = &c.data;
        let flag = |keys: &[&str]| path(d, keys).and_then(Value::as_bool).unwrap_or(false);
        ClusterFacts {
            name: c.name_any(),
            labels: c.labels().clone(),
            paused: flag(&["spec", "paused"])
                || c.annotations().contains_key(consts::PAUSED_ANNOTATION),
            infrastructure_provisioned: flag(&[
                "status",
                "initialization",
                "infrastructureProvisioned",
            ]) || flag(&["status", "infrastructureReady"]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn dynamic(v: Value) -> DynamicObject {
        serde_json::from_value(v).expect("valid object")
    }

    #[test]
    fn reads_v1beta2_and_v1beta1_machines() {
        let v2 = dynamic(
            json!({"apiVersion": "cluster.x-k8s.io/v1beta2", "kind": "Machine",
            "metadata": {"name": "m", "namespace": "ns", "uid": "u1"},
            "spec": {"clusterName": "c", "bootstrap": {"configRef": {"apiGroup": "bootstrap.cluster.x-k8s.io", "kind": "SiteBootstrapConfig", "name": "cfg"}}},
            "status": {"nodeRef": {"name": "node-1"}}}),
        );
        let f = MachineFacts::from_dynamic(&v2);
        assert_eq!(f.cluster_name.as_deref(), Some("c"));
        assert_eq!(
            f.config_ref,
            Some(("SiteBootstrapConfig".into(), "cfg".into()))
        );
        assert!(f.has_node_ref);
        let v1 = dynamic(
            json!({"apiVersion": "cluster.x-k8s.io/v1beta1", "kind": "Machine",
            "metadata": {"name": "m", "namespace": "ns"},
            "spec": {"clusterName": "c", "bootstrap": {"dataSecretName": "cfg", "configRef": {"apiVersion": "bootstrap.cluster.x-k8s.io/v1alpha1", "kind": "SiteBootstrapConfig", "name": "cfg"}}}}),
        );
        let f = MachineFacts::from_dynamic(&v1);
        assert_eq!(f.data_secret_name.as_deref(), Some("cfg"));
        assert!(!f.has_node_ref);
    }

    #[test]
    fn reads_cluster_infrastructure_and_pause_in_both_versions() {
        let table = [
            (
                json!({"spec": {}, "status": {"initialization": {"infrastructureProvisioned": true}}}),
                json!({}),
                false,
                true,
            ),
            (
                json!({"spec": {"paused": true}, "status": {"infrastructureReady": true}}),
                json!({}),
                true,
                true,
            ),
            (
                json!({"spec": {}}),
                json!({"cluster.x-k8s.io/paused": ""}),
                true,
                false,
            ),
            (json!({}), json!({}), false, false),
        ];
        for (body, annotations, paused, infra) in table {
            let mut obj = json!({"apiVersion": "cluster.x-k8s.io/v1beta2", "kind": "Cluster",
                "metadata": {"name": "c", "namespace": "ns", "annotations": annotations}});
            for (k, v) in body.as_object().unwrap() {
                obj[k] = v.clone();
            }
            let f = ClusterFacts::from_dynamic(&dynamic(obj));
            assert_eq!(
                (f.paused, f.infrastructure_provisioned),
                (paused, infra),
                "{body}"
            );
        }
    }
}
