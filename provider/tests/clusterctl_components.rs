//! clusterctl components: `kubectl kustomize config/default` builds
//! `bootstrap-components.yaml`; after clusterctl-style variable substitution every object
//! parses, carries the provider label, lives in the one Namespace, and every RBAC and
//! ServiceAccount reference resolves. Also `config/metadata.yaml` and the substitution
//! function's own table tests.

mod clusterctl_support;

use clusterctl_support::*;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

const PROVIDER_LABEL: &str = "cluster.x-k8s.io/provider";
const PROVIDER: &str = "bootstrap-siteboot";
const NAMESPACE: &str = "siteboot-system";

fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn envsubst_table() {
    let e = env(&[("SET", "v"), ("EMPTY", "")]);
    let cases: &[(&str, Result<&str, SubstError>)] = &[
        ("plain text", Ok("plain text")),
        ("${SET}", Ok("v")),
        ("a-${SET}-b", Ok("a-v-b")),
        ("${ SET }", Ok("v")),
        ("${EMPTY}", Ok("")),
        ("${UNSET:=d}", Ok("d")),
        ("${UNSET=d}", Ok("d")),
        ("${UNSET:-d}", Ok("d")),
        ("${UNSET-d}", Ok("d")),
        ("${EMPTY:=d}", Ok("d")),
        ("${EMPTY=d}", Ok("")),
        ("${EMPTY:-d}", Ok("d")),
        ("${EMPTY-d}", Ok("")),
        ("${SET:=d}", Ok("v")),
        ("${UNSET:=}", Ok("")),
        ("${UNSET:=a:b/c%2Bd}", Ok("a:b/c%2Bd")),
        ("${UNSET:=x} ${UNSET}", Ok("x x")),
        (
            "${A} ${B} ${A}",
            Err(SubstError::Missing(vec!["A".into(), "B".into()])),
        ),
        (
            "$SET",
            Err(SubstError::Syntax("bare '$' at ...$SET".into())),
        ),
        (
            "${1X}",
            Err(SubstError::Syntax("bad variable name in ${1X}".into())),
        ),
        (
            "${X:=${Y}}",
            Err(SubstError::Syntax(
                "nested variables are not supported: ${X:=${Y}".into(),
            )),
        ),
        ("${X", Err(SubstError::Syntax("unterminated ${".into()))),
        (
            "${X?err}",
            Err(SubstError::Syntax(
                "unsupported operator in ${X?err}".into(),
            )),
        ),
    ];
    for (input, want) in cases {
        let got = envsubst(input, &e);
        assert_eq!(
            got.as_deref().map_err(Clone::clone),
            want.clone(),
            "{input:?}"
        );
    }
}

#[test]
fn required_variables_ignore_defaulted_ones() {
    let text = "${A} ${B:=x} ${B} ${C=} ${D}";
    let want: BTreeSet<String> = ["A", "D"].into_iter().map(String::from).collect();
    assert_eq!(required_variables(text), want);
}

fn components(overrides: &[(&str, &str)]) -> Vec<Value> {
    let raw = kustomize("config/default");
    assert!(
        required_variables(&raw).is_empty(),
        "components need no variables: {:?}",
        required_variables(&raw)
    );
    documents(&envsubst(&raw, &env(overrides)).expect("substitute"))
}

fn is_cluster_scoped(kind: &str) -> bool {
    matches!(
        kind,
        "Namespace" | "CustomResourceDefinition" | "ClusterRole" | "ClusterRoleBinding"
    )
}

#[test]
fn components_have_one_namespace_and_the_provider_label() {
    let docs = components(&[]);
    assert!(docs.len() >= 8, "{} objects", docs.len());
    let namespaces: Vec<&Value> = docs.iter().filter(|d| kind(d) == "Namespace").collect();
    assert_eq!(namespaces.len(), 1, "exactly one Namespace");
    assert_eq!(name(namespaces[0]), NAMESPACE);
    for d in &docs {
        let what = format!("{} {}", kind(d), name(d));
        assert!(
            d["apiVersion"].is_string() && !kind(d).is_empty() && !name(d).is_empty(),
            "{what}"
        );
        assert_eq!(
            d["metadata"]["labels"][PROVIDER_LABEL], PROVIDER,
            "{what} lacks the provider label"
        );
        if is_cluster_scoped(kind(d)) {
            assert_eq!(namespace(d), None, "{what} is cluster-scoped");
        } else {
            assert_eq!(
                namespace(d),
                Some(NAMESPACE),
                "{what} is outside {NAMESPACE}"
            );
        }
    }
}

#[test]
fn components_contain_our_crds_with_the_contract_label() {
    let docs = components(&[]);
    let metadata = documents(
        &std::fs::read_to_string(repo_root().join("config/metadata.yaml")).expect("metadata.yaml"),
    );
    let contract = metadata[0]["releaseSeries"][0]["contract"]
        .as_str()
        .expect("contract");
    for (crd, kind_) in [
        (
            "sitebootstrapconfigs.bootstrap.cluster.x-k8s.io",
            "SiteBootstrapConfig",
        ),
        (
            "sitebootstrapconfigtemplates.bootstrap.cluster.x-k8s.io",
            "SiteBootstrapConfigTemplate",
        ),
    ] {
        let d = find(&docs, "CustomResourceDefinition", crd)
            .unwrap_or_else(|| panic!("CRD {crd} missing"));
        assert_eq!(d["spec"]["names"]["kind"], kind_);
        assert_eq!(d["spec"]["scope"], "Namespaced");
        let served: BTreeSet<&str> = d["spec"]["versions"]
            .as_array()
            .expect("versions")
            .iter()
            .filter(|v| v["served"] == true)
            .map(|v| v["name"].as_str().expect("version name"))
            .collect();
        let label = d["metadata"]["labels"][format!("cluster.x-k8s.io/{contract}")]
            .as_str()
            .unwrap_or_else(|| {
                panic!("{crd}: no cluster.x-k8s.io/{contract} label matching metadata.yaml")
            });
        for v in label.split('_') {
            assert!(
                served.contains(v),
                "{crd}: contract label names unserved version {v}"
            );
        }
    }
}

#[test]
fn metadata_yaml_maps_the_release_series_to_contract_v1beta2() {
    let text =
        std::fs::read_to_string(repo_root().join("config/metadata.yaml")).expect("metadata.yaml");
    let docs = documents(&text);
    assert_eq!(docs.len(), 1);
    let m = &docs[0];
    assert_eq!(m["apiVersion"], "clusterctl.cluster.x-k8s.io/v1alpha3");
    assert_eq!(m["kind"], "Metadata");
    let series = m["releaseSeries"].as_array().expect("releaseSeries");
    let version = env!("CARGO_PKG_VERSION");
    let mut parts = version
        .split('.')
        .map(|p| p.parse::<u64>().expect("numeric version"));
    let (major, minor) = (parts.next().unwrap(), parts.next().unwrap());
    let ours = series
        .iter()
        .find(|s| s["major"] == major && s["minor"] == minor)
        .unwrap_or_else(|| {
            panic!("no release series for {major}.{minor}: clusterctl init would fail")
        });
    assert_eq!(ours["contract"], "v1beta2");
}

#[test]
fn rbac_and_service_account_references_resolve() {
    let docs = components(&[]);
    let bindings: Vec<&Value> = docs
        .iter()
        .filter(|d| matches!(kind(d), "RoleBinding" | "ClusterRoleBinding"))
        .collect();
    assert!(bindings.len() >= 2);
    for b in bindings {
        let what = format!("{} {}", kind(b), name(b));
        let role_kind = b["roleRef"]["kind"].as_str().expect("roleRef.kind");
        let role_name = b["roleRef"]["name"].as_str().expect("roleRef.name");
        let role = find(&docs, role_kind, role_name)
            .unwrap_or_else(|| panic!("{what}: {role_kind} {role_name} missing"));
        if kind(b) == "RoleBinding" {
            assert_eq!(
                namespace(role),
                namespace(b),
                "{what}: Role in another namespace"
            );
        }
        for s in b["subjects"].as_array().expect("subjects") {
            assert_eq!(s["kind"], "ServiceAccount", "{what}");
            let sa = find(
                &docs,
                "ServiceAccount",
                s["name"].as_str().expect("subject name"),
            )
            .unwrap_or_else(|| panic!("{what}: subject {s} missing"));
            assert_eq!(
                namespace(sa),
                s["namespace"].as_str(),
                "{what}: subject namespace"
            );
        }
    }
    let deployments: Vec<&Value> = docs.iter().filter(|d| kind(d) == "Deployment").collect();
    assert_eq!(deployments.len(), 1);
    let pod = &deployments[0]["spec"]["template"]["spec"];
    let sa = pod["serviceAccountName"]
        .as_str()
        .expect("serviceAccountName");
    assert!(
        find(&docs, "ServiceAccount", sa).is_some(),
        "ServiceAccount {sa} missing"
    );
}

/// The ClusterRole bound to the manager grants what the controller uses and no wildcard.
#[test]
fn manager_role_is_least_privilege() {
    let docs = components(&[]);
    let binding =
        find(&docs, "ClusterRoleBinding", "siteboot-manager-rolebinding").expect("binding");
    let role = find(
        &docs,
        "ClusterRole",
        binding["roleRef"]["name"].as_str().unwrap(),
    )
    .expect("role");
    let mut grants: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    for rule in role["rules"].as_array().expect("rules") {
        let strs = |k: &str| -> Vec<String> {
            rule[k]
                .as_array()
                .expect(k)
                .iter()
                .map(|v| v.as_str().unwrap().to_owned())
                .collect()
        };
        for g in strs("apiGroups") {
            for r in strs("resources") {
                grants
                    .entry((g.clone(), r))
                    .or_default()
                    .extend(strs("verbs"));
            }
        }
    }
    for ((g, r), verbs) in &grants {
        assert!(
            g != "*" && r != "*" && !verbs.contains("*"),
            "wildcard grant on {g}/{r}"
        );
    }
    let expect = |g: &str, r: &str, verbs: &[&str]| {
        let got = grants
            .get(&(g.to_owned(), r.to_owned()))
            .unwrap_or_else(|| panic!("no grant on {g}/{r}"));
        let want: BTreeSet<String> = verbs.iter().map(|v| v.to_string()).collect();
        assert_eq!(got, &want, "verbs on {g}/{r}");
    };
    let b = "bootstrap.cluster.x-k8s.io";
    expect(
        b,
        "sitebootstrapconfigs",
        &["get", "list", "watch", "patch", "update"],
    );
    expect(
        b,
        "sitebootstrapconfigs/status",
        &["get", "patch", "update"],
    );
    expect(b, "sitebootstrapconfigs/finalizers", &["update"]);
    expect("cluster.x-k8s.io", "machines", &["get", "list", "watch"]);
    expect("cluster.x-k8s.io", "clusters", &["get", "list", "watch"]);
    expect(
        "",
        "secrets",
        &["create", "get", "list", "watch", "patch", "update"],
    );
    expect("", "configmaps", &["get"]);
    expect("", "events", &["create", "patch"]);
    expect("events.k8s.io", "events", &["create", "patch"]);
    assert_eq!(
        grants.len(),
        9,
        "unexpected extra grants: {:?}",
        grants.keys()
    );
}

#[test]
fn manager_deployment_follows_the_clusterctl_contract() {
    let docs = components(&[]);
    let d = docs
        .iter()
        .find(|d| kind(d) == "Deployment")
        .expect("Deployment");
    let selector = &d["spec"]["selector"]["matchLabels"];
    let labels = &d["spec"]["template"]["metadata"]["labels"];
    for (k, v) in selector.as_object().expect("matchLabels") {
        assert_eq!(
            &labels[k], v,
            "selector {k} does not match the pod template"
        );
    }
    let containers = d["spec"]["template"]["spec"]["containers"]
        .as_array()
        .expect("containers");
    let manager = containers
        .iter()
        .find(|c| c["name"] == "manager")
        .expect("container named manager");
    assert_eq!(
        manager["image"],
        "ghcr.io/siteboot/siteboot-provider:v0.1.0"
    );
    let args: Vec<&str> = manager["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert!(args.contains(&"--namespace="), "{args:?}");
    assert!(args.contains(&"--watch-filter="), "{args:?}");
    assert!(args.contains(&"--token-ttl=24h"), "{args:?}");

    // Variables reach the manifest the way clusterctl would substitute them.
    let docs = components(&[
        ("SITEBOOT_IMAGE", "registry.local/siteboot:dev"),
        ("SITEBOOT_WATCH_FILTER", "fleet-a"),
        ("SITEBOOT_TOKEN_TTL", ""),
    ]);
    let d = docs.iter().find(|d| kind(d) == "Deployment").unwrap();
    let manager = &d["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(manager["image"], "registry.local/siteboot:dev");
    let args: Vec<&str> = manager["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert!(args.contains(&"--watch-filter=fleet-a"), "{args:?}");
    assert!(
        args.contains(&"--token-ttl=24h"),
        "empty value falls back to the := default: {args:?}"
    );
}

/// `config/build-components.sh OUT` writes the release assets: the components equal the
/// kustomize build, and the local-repository copy clusterctl reads is identical.
#[test]
fn build_script_writes_the_release_assets() {
    let out = tempfile::tempdir().expect("tempdir");
    let run = std::process::Command::new("/bin/sh")
        .arg(repo_root().join("config/build-components.sh"))
        .arg(out.path())
        .env("SITEBOOT_VERSION", "v0.1.0")
        .output()
        .expect("run build-components.sh");
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let read = |p: &str| {
        std::fs::read_to_string(out.path().join(p)).unwrap_or_else(|e| panic!("{p}: {e}"))
    };
    assert_eq!(
        read("bootstrap-components.yaml"),
        kustomize("config/default")
    );
    for f in [
        "bootstrap-components.yaml",
        "metadata.yaml",
        "cluster-template.yaml",
        "cluster-template-edge.yaml",
    ] {
        assert_eq!(
            read(f),
            read(&format!("bootstrap-siteboot/v0.1.0/{f}")),
            "{f}"
        );
    }
    assert_eq!(
        read("metadata.yaml"),
        std::fs::read_to_string(repo_root().join("config/metadata.yaml")).unwrap()
    );
}

/// The optional in-cluster registration service: builds, the Service selects the pods
/// and targets a named container port, and it lives in the provider's namespace.
#[test]
fn registration_manifests_build_and_the_service_selects_the_pods() {
    let docs = documents(&kustomize("config/registration"));
    assert!(variables(&kustomize("config/registration"))
        .unwrap()
        .is_empty());
    let sts = docs
        .iter()
        .find(|d| kind(d) == "StatefulSet")
        .expect("StatefulSet");
    let svc = docs.iter().find(|d| kind(d) == "Service").expect("Service");
    for d in [sts, svc] {
        assert_eq!(namespace(d), Some(NAMESPACE));
    }
    assert_eq!(sts["spec"]["serviceName"], name(svc));
    let pod_labels = &sts["spec"]["template"]["metadata"]["labels"];
    for (k, v) in svc["spec"]["selector"].as_object().expect("selector") {
        assert_eq!(&pod_labels[k], v, "Service selector {k}");
    }
    let ports: BTreeSet<&str> = sts["spec"]["template"]["spec"]["containers"][0]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    for p in svc["spec"]["ports"].as_array().unwrap() {
        assert!(
            ports.contains(p["targetPort"].as_str().unwrap()),
            "targetPort {p}"
        );
    }
}
