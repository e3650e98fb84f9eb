//! The resource types the emulator serves: a fixed list of built-in kinds plus the ones
//! `CustomResourceDefinition`s register at run time (pure parsing of a CRD into a
//! [`ResourceDef`], with the CRD validation the API server performs on names).

use serde_json::Value;

/// A group and plural resource name, the storage identity of a resource type.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupResource {
    pub group: String,
    pub resource: String,
}

/// One served resource type.
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceDef {
    pub group: String,
    /// Served versions, preferred first. Objects are stored once and served at every version
    /// with only `apiVersion` rewritten (no conversion).
    pub versions: Vec<String>,
    pub kind: String,
    pub plural: String,
    pub singular: String,
    pub namespaced: bool,
    /// Whether the type has a `status` subresource.
    pub status: bool,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
    /// Field selector paths beyond `metadata.name` and `metadata.namespace`.
    pub extra_fields: Vec<String>,
    /// The CRD that registered this type, for custom resources.
    pub crd: Option<String>,
}

impl ResourceDef {
    pub fn gr(&self) -> GroupResource {
        GroupResource {
            group: self.group.clone(),
            resource: self.plural.clone(),
        }
    }

    pub fn api_version(&self, version: &str) -> String {
        if self.group.is_empty() {
            version.to_string()
        } else {
            format!("{}/{version}", self.group)
        }
    }

    /// Every field selector path this type accepts.
    pub fn field_selectors(&self) -> Vec<&str> {
        let mut out = vec!["metadata.name", "metadata.namespace"];
        out.extend(self.extra_fields.iter().map(String::as_str));
        out
    }
}

/// (group, version, kind, plural, namespaced, status subresource, short names, extra fields)
type Builtin = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    bool,
    bool,
    &'static [&'static str],
    &'static [&'static str],
);

const INVOLVED: &[&str] = &[
    "involvedObject.kind",
    "involvedObject.name",
    "involvedObject.namespace",
    "involvedObject.uid",
    "reason",
    "type",
];

#[rustfmt::skip]
const BUILTINS: &[Builtin] = &[
    ("", "v1", "Namespace", "namespaces", false, true, &["ns"], &["status.phase"]),
    ("", "v1", "ConfigMap", "configmaps", true, false, &["cm"], &[]),
    ("", "v1", "Secret", "secrets", true, false, &[], &["type"]),
    ("", "v1", "ServiceAccount", "serviceaccounts", true, false, &["sa"], &[]),
    ("", "v1", "Event", "events", true, false, &["ev"], INVOLVED),
    ("", "v1", "Service", "services", true, true, &["svc"], &[]),
    ("", "v1", "Pod", "pods", true, true, &["po"], &["spec.nodeName", "status.phase"]),
    ("", "v1", "Node", "nodes", false, true, &["no"], &[]),
    ("", "v1", "PersistentVolumeClaim", "persistentvolumeclaims", true, true, &["pvc"], &[]),
    ("", "v1", "Endpoints", "endpoints", true, false, &["ep"], &[]),
    ("events.k8s.io", "v1", "Event", "events", true, false, &["ev"], &["reason", "type"]),
    ("coordination.k8s.io", "v1", "Lease", "leases", true, false, &[], &[]),
    ("apps", "v1", "Deployment", "deployments", true, true, &["deploy"], &[]),
    ("apps", "v1", "StatefulSet", "statefulsets", true, true, &["sts"], &[]),
    ("apps", "v1", "DaemonSet", "daemonsets", true, true, &["ds"], &[]),
    ("apps", "v1", "ReplicaSet", "replicasets", true, true, &["rs"], &[]),
    ("batch", "v1", "Job", "jobs", true, true, &[], &[]),
    ("batch", "v1", "CronJob", "cronjobs", true, true, &["cj"], &[]),
    ("apiextensions.k8s.io", "v1", "CustomResourceDefinition", "customresourcedefinitions", false, true, &["crd", "crds"], &[]),
    ("rbac.authorization.k8s.io", "v1", "Role", "roles", true, false, &[], &[]),
    ("rbac.authorization.k8s.io", "v1", "RoleBinding", "rolebindings", true, false, &[], &[]),
    ("rbac.authorization.k8s.io", "v1", "ClusterRole", "clusterroles", false, false, &[], &[]),
    ("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding", "clusterrolebindings", false, false, &[], &[]),
    ("networking.k8s.io", "v1", "NetworkPolicy", "networkpolicies", true, false, &["netpol"], &[]),
    ("networking.k8s.io", "v1", "Ingress", "ingresses", true, true, &["ing"], &[]),
    ("policy", "v1", "PodDisruptionBudget", "poddisruptionbudgets", true, true, &["pdb"], &[]),
];

/// All served resource types, built-ins first, in registration order.
#[derive(Debug, Clone)]
pub struct Registry {
    defs: Vec<ResourceDef>,
}

impl Registry {
    /// The built-in kinds.
    pub fn builtin() -> Self {
        let defs = BUILTINS
            .iter()
            .map(
                |(group, version, kind, plural, namespaced, status, short, extra)| ResourceDef {
                    group: group.to_string(),
                    versions: vec![version.to_string()],
                    kind: kind.to_string(),
                    plural: plural.to_string(),
                    singular: kind.to_lowercase(),
                    namespaced: *namespaced,
                    status: *status,
                    short_names: short.iter().map(|s| s.to_string()).collect(),
                    categories: Vec::new(),
                    extra_fields: extra.iter().map(|s| s.to_string()).collect(),
                    crd: None,
                },
            )
            .collect();
        Registry { defs }
    }

    /// The type served at `group/version` under `plural`.
    pub fn find(&self, group: &str, version: &str, plural: &str) -> Option<&ResourceDef> {
        self.defs.iter().find(|d| {
            d.group == group && d.plural == plural && d.versions.iter().any(|v| v == version)
        })
    }

    pub fn defs(&self) -> &[ResourceDef] {
        &self.defs
    }

    /// Groups in first-registration order with their versions, preferred first.
    pub fn groups(&self) -> Vec<(String, Vec<String>)> {
        let mut out: Vec<(String, Vec<String>)> = Vec::new();
        for d in &self.defs {
            let idx = match out.iter().position(|(g, _)| *g == d.group) {
                Some(i) => i,
                None => {
                    out.push((d.group.clone(), Vec::new()));
                    out.len() - 1
                }
            };
            for v in &d.versions {
                if !out[idx].1.contains(v) {
                    out[idx].1.push(v.clone());
                }
            }
        }
        for (_, versions) in out.iter_mut() {
            versions.sort_by_key(|v| std::cmp::Reverse(version_priority(v)));
        }
        out
    }

    /// Registers (or re-registers) the type a CRD defines. Built-in types cannot be shadowed.
    pub fn upsert_crd(&mut self, def: ResourceDef) -> Result<(), String> {
        if let Some(existing) = self.defs.iter_mut().find(|d| d.gr() == def.gr()) {
            if existing.crd != def.crd {
                return Err(format!("{}.{} is already served", def.plural, def.group));
            }
            *existing = def;
        } else {
            self.defs.push(def);
        }
        Ok(())
    }

    /// Removes the type registered by the CRD named `crd_name`, returning it.
    pub fn remove_crd(&mut self, crd_name: &str) -> Option<ResourceDef> {
        let idx = self
            .defs
            .iter()
            .position(|d| d.crd.as_deref() == Some(crd_name))?;
        Some(self.defs.remove(idx))
    }
}

/// Kubernetes version priority: GA over beta over alpha, higher numbers first; others last.
pub fn version_priority(v: &str) -> (u8, u32, u32) {
    let Some(rest) = v.strip_prefix('v') else {
        return (0, 0, 0);
    };
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    let Ok(major) = digits.parse::<u32>() else {
        return (0, 0, 0);
    };
    let tail = &rest[digits.len()..];
    let (level, tail) = if tail.is_empty() {
        return (3, major, 0);
    } else if let Some(t) = tail.strip_prefix("beta") {
        (2, t)
    } else if let Some(t) = tail.strip_prefix("alpha") {
        (1, t)
    } else {
        return (0, 0, 0);
    };
    match tail.parse::<u32>() {
        Ok(minor) => (level, major, minor),
        Err(_) => (0, 0, 0),
    }
}

/// Reads the served type out of a `CustomResourceDefinition`, or names the invalid field.
pub fn crd_to_def(crd: &Value) -> Result<ResourceDef, (String, String)> {
    let bad = |field: &str, why: &str| Err((field.to_string(), why.to_string()));
    let spec = &crd["spec"];
    let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
    let (group, plural, kind) = (
        s(&spec["group"]),
        s(&spec["names"]["plural"]),
        s(&spec["names"]["kind"]),
    );
    if group.is_empty() || !group.contains('.') {
        return bad("spec.group", "should be a domain with at least one dot");
    }
    if plural.is_empty()
        || plural
            .chars()
            .any(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'))
    {
        return bad("spec.names.plural", "must be a lowercase DNS-1035 label");
    }
    if kind.is_empty() {
        return bad("spec.names.kind", "Required value");
    }
    let name = s(&crd["metadata"]["name"]);
    if name != format!("{plural}.{group}") {
        return bad(
            "metadata.name",
            "must be spec.names.plural+\".\"+spec.group",
        );
    }
    let namespaced = match spec["scope"].as_str() {
        Some("Namespaced") => true,
        Some("Cluster") => false,
        _ => {
            return bad(
                "spec.scope",
                "supported values: \"Cluster\", \"Namespaced\"",
            )
        }
    };
    let versions = spec["versions"].as_array().cloned().unwrap_or_default();
    if versions.is_empty() {
        return bad("spec.versions", "must have at least one version");
    }
    if versions
        .iter()
        .filter(|v| v["storage"].as_bool() == Some(true))
        .count()
        != 1
    {
        return bad(
            "spec.versions",
            "must have exactly one version marked as storage version",
        );
    }
    let mut served: Vec<String> = versions
        .iter()
        .filter(|v| v["served"].as_bool() == Some(true))
        .map(|v| s(&v["name"]))
        .collect();
    served.sort_by_key(|v| std::cmp::Reverse(version_priority(v)));
    let status = versions
        .iter()
        .any(|v| v["subresources"]["status"].is_object());
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    let singular = match s(&spec["names"]["singular"]) {
        x if x.is_empty() => kind.to_lowercase(),
        x => x,
    };
    Ok(ResourceDef {
        group,
        versions: served,
        kind,
        plural,
        singular,
        namespaced,
        status,
        short_names: strings(&spec["names"]["shortNames"]),
        categories: strings(&spec["names"]["categories"]),
        extra_fields: Vec::new(),
        crd: Some(name),
    })
}

#[cfg(test)]
mod tests;
