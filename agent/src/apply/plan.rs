//! The pure half of applying: apply order, the labels the agent stamps on every object,
//! which recorded objects to prune, and object health.

use std::collections::BTreeSet;

use serde_json::Value;
use siteboot_wire::api::HealthSummary;

use crate::render::ObjectRef;

/// Field manager for server-side apply.
pub const FIELD_MANAGER: &str = "siteboot-agent";
/// Label key marking objects the agent manages.
pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
/// Its value.
pub const MANAGED_BY_VALUE: &str = "siteboot-agent";
/// Inventory label: the site whose agent applied the object.
pub const SITE_LABEL: &str = "siteboot.io/site";

/// Apply phases: Namespaces, then CRDs (then wait for them), then everything else.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    /// `Namespace`.
    Namespaces,
    /// `CustomResourceDefinition`.
    Crds,
    /// The rest.
    Rest,
}

/// The phase an object belongs to.
pub fn phase(oref: &ObjectRef) -> Phase {
    match (oref.group(), oref.kind.as_str()) {
        ("", "Namespace") => Phase::Namespaces,
        ("apiextensions.k8s.io", "CustomResourceDefinition") => Phase::Crds,
        _ => Phase::Rest,
    }
}

/// Adds the managed-by and site labels (overwriting what a manifest said for them).
pub fn with_agent_labels(object: &Value, site: &str) -> Value {
    let mut o = object.clone();
    if let Some(map) = o.as_object_mut() {
        let meta = map
            .entry("metadata")
            .or_insert_with(|| Value::Object(Default::default()));
        if let Some(meta) = meta.as_object_mut() {
            let labels = meta
                .entry("labels")
                .or_insert_with(|| Value::Object(Default::default()));
            if !labels.is_object() {
                *labels = Value::Object(Default::default());
            }
            if let Some(labels) = labels.as_object_mut() {
                labels.insert(MANAGED_BY.into(), MANAGED_BY_VALUE.into());
                labels.insert(SITE_LABEL.into(), site.into());
            }
        }
    }
    o
}

/// True when a live object carries both agent labels for `site`: only such objects are
/// ever deleted.
pub fn is_ours(live: &Value, site: &str) -> bool {
    let labels = &live["metadata"]["labels"];
    labels[MANAGED_BY] == MANAGED_BY_VALUE && labels[SITE_LABEL] == site
}

/// Identity for prune comparisons: group (not version), kind, namespace (`default` and
/// absent are the same), name.
fn prune_key(r: &ObjectRef) -> (String, String, Option<String>, String) {
    let ns = r.namespace.clone().filter(|n| n != "default");
    (r.group().to_string(), r.kind.clone(), ns, r.name.clone())
}

/// Recorded objects absent from `desired`, in reverse apply phase order (namespaces last).
pub fn prune_candidates(recorded: &[ObjectRef], desired: &[ObjectRef]) -> Vec<ObjectRef> {
    let keep: BTreeSet<_> = desired.iter().map(prune_key).collect();
    let mut seen = BTreeSet::new();
    let mut out: Vec<ObjectRef> = recorded
        .iter()
        .filter(|r| !keep.contains(&prune_key(r)) && seen.insert(prune_key(r)))
        .cloned()
        .collect();
    out.sort_by_key(|r| std::cmp::Reverse(phase(r)));
    out
}

/// Union of two reference lists, first occurrence kept.
pub fn union(a: &[ObjectRef], b: &[ObjectRef]) -> Vec<ObjectRef> {
    let mut seen = BTreeSet::new();
    a.iter()
        .chain(b)
        .filter(|r| seen.insert(prune_key(r)))
        .cloned()
        .collect()
}

/// Health of one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// Done / available / present.
    Healthy,
    /// Still rolling out or running.
    Progressing,
    /// Failed.
    Failed,
}

/// Deployments: available replicas >= desired at the current generation (failed on
/// `ProgressDeadlineExceeded`). Jobs: `Complete` (failed on `Failed`). Others: present.
pub fn health(live: &Value) -> Health {
    let kind = live["kind"].as_str().unwrap_or_default();
    let cond = |t: &str| {
        live["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["type"] == t)
            .cloned()
    };
    match kind {
        "Deployment" => {
            if cond("Progressing").is_some_and(|c| c["reason"] == "ProgressDeadlineExceeded") {
                return Health::Failed;
            }
            let want = live["spec"]["replicas"].as_i64().unwrap_or(1);
            let available = live["status"]["availableReplicas"].as_i64().unwrap_or(0);
            let generation = live["metadata"]["generation"].as_i64().unwrap_or(0);
            let observed = live["status"]["observedGeneration"].as_i64().unwrap_or(0);
            if observed >= generation && available >= want {
                Health::Healthy
            } else {
                Health::Progressing
            }
        }
        "Job" => {
            if cond("Complete").is_some_and(|c| c["status"] == "True") {
                Health::Healthy
            } else if cond("Failed").is_some_and(|c| c["status"] == "True") {
                Health::Failed
            } else {
                Health::Progressing
            }
        }
        _ => Health::Healthy,
    }
}

/// True for kinds whose health changes after apply (worth a re-read at check-in time).
pub fn has_dynamic_health(oref: &ObjectRef) -> bool {
    matches!(
        (oref.group(), oref.kind.as_str()),
        ("apps", "Deployment") | ("batch", "Job")
    )
}

/// Adds one object's health to a summary.
pub fn count(summary: &mut HealthSummary, h: Health) {
    summary.total += 1;
    match h {
        Health::Healthy => summary.healthy += 1,
        Health::Progressing => summary.progressing += 1,
        Health::Failed => summary.failed += 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn r(api: &str, kind: &str, ns: Option<&str>, name: &str) -> ObjectRef {
        ObjectRef {
            api_version: api.into(),
            kind: kind.into(),
            namespace: ns.map(Into::into),
            name: name.into(),
        }
    }

    #[test]
    fn phases_and_labels() {
        assert_eq!(phase(&r("v1", "Namespace", None, "a")), Phase::Namespaces);
        assert_eq!(
            phase(&r(
                "apiextensions.k8s.io/v1",
                "CustomResourceDefinition",
                None,
                "a"
            )),
            Phase::Crds
        );
        assert_eq!(
            phase(&r("example.io/v1", "Namespace", None, "a")),
            Phase::Rest
        );
        let o = with_agent_labels(
            &json!({"kind": "ConfigMap", "metadata": {"name": "a", "labels": {"x": "y", MANAGED_BY: "helm"}}}),
            "s1",
        );
        assert_eq!(
            o["metadata"]["labels"],
            json!({"x": "y", MANAGED_BY: MANAGED_BY_VALUE, SITE_LABEL: "s1"})
        );
        assert!(is_ours(&o, "s1"));
        assert!(!is_ours(&o, "s2"));
        assert!(!is_ours(
            &json!({"metadata": {"labels": {MANAGED_BY: "helm", SITE_LABEL: "s1"}}}),
            "s1"
        ));
        assert!(!is_ours(&json!({"metadata": {}}), "s1"));
        let bare = with_agent_labels(&json!({"kind": "X"}), "s1");
        assert!(is_ours(&bare, "s1"));
    }

    #[test]
    fn prune_candidates_table() {
        let ns = r("v1", "Namespace", None, "shop");
        let cm = r("v1", "ConfigMap", Some("shop"), "a");
        let cm_default = r("v1", "ConfigMap", Some("default"), "b");
        let cm_none = r("v1", "ConfigMap", None, "b");
        let dep_v1 = r("apps/v1", "Deployment", Some("shop"), "d");
        let dep_v2 = r("apps/v2", "Deployment", Some("shop"), "d");
        let cases: Vec<(Vec<ObjectRef>, Vec<ObjectRef>, Vec<ObjectRef>)> = vec![
            (
                vec![ns.clone(), cm.clone()],
                vec![ns.clone(), cm.clone()],
                vec![],
            ),
            (
                vec![ns.clone(), cm.clone()],
                vec![ns.clone()],
                vec![cm.clone()],
            ),
            // Namespaces are deleted after what lives in them.
            (
                vec![ns.clone(), cm.clone()],
                vec![],
                vec![cm.clone(), ns.clone()],
            ),
            // `default` and no namespace are the same object; a version change is not a removal.
            (
                vec![cm_default.clone(), dep_v1.clone()],
                vec![cm_none.clone(), dep_v2.clone()],
                vec![],
            ),
            (vec![cm.clone(), cm.clone()], vec![], vec![cm.clone()]),
            (vec![], vec![cm.clone()], vec![]),
        ];
        for (recorded, desired, want) in cases {
            assert_eq!(
                prune_candidates(&recorded, &desired),
                want,
                "{recorded:?} - {desired:?}"
            );
        }
        assert_eq!(
            union(&[ns.clone(), cm.clone()], &[cm.clone(), dep_v1.clone()]),
            vec![ns, cm, dep_v1]
        );
    }

    #[test]
    fn health_table() {
        let cases = [
            (json!({"kind": "ConfigMap"}), Health::Healthy),
            (
                json!({"kind": "Deployment", "spec": {"replicas": 2}, "metadata": {"generation": 3},
                    "status": {"observedGeneration": 3, "availableReplicas": 2}}),
                Health::Healthy,
            ),
            (
                json!({"kind": "Deployment", "spec": {"replicas": 2}, "metadata": {"generation": 3},
                    "status": {"observedGeneration": 2, "availableReplicas": 2}}),
                Health::Progressing,
            ),
            (
                json!({"kind": "Deployment", "spec": {}, "metadata": {"generation": 1}}),
                Health::Progressing,
            ),
            (
                json!({"kind": "Deployment", "spec": {"replicas": 0}, "metadata": {"generation": 1},
                    "status": {"observedGeneration": 1}}),
                Health::Healthy,
            ),
            (
                json!({"kind": "Deployment", "status": {"conditions": [
                    {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}]}}),
                Health::Failed,
            ),
            (
                json!({"kind": "Job", "status": {"conditions": [{"type": "Complete", "status": "True"}]}}),
                Health::Healthy,
            ),
            (
                json!({"kind": "Job", "status": {"conditions": [{"type": "Failed", "status": "True"}]}}),
                Health::Failed,
            ),
            (json!({"kind": "Job", "status": {}}), Health::Progressing),
        ];
        for (live, want) in cases {
            assert_eq!(health(&live), want, "{live}");
        }
        let mut s = HealthSummary::default();
        for h in [
            Health::Healthy,
            Health::Progressing,
            Health::Failed,
            Health::Healthy,
        ] {
            count(&mut s, h);
        }
        assert_eq!(
            s,
            HealthSummary {
                total: 4,
                healthy: 2,
                progressing: 1,
                failed: 1
            }
        );
    }
}
