//! clusterctl cluster templates (`config/clusterctl/cluster-template*.yaml`): with every
//! variable substituted the way clusterctl does, each object parses, sits in the target
//! namespace, every reference (infrastructureRef, bootstrap.configRef, caBundleFrom)
//! resolves to an object in the same template, our kinds match the CRDs, each bootstrap
//! spec deserialises into `SiteBootstrapConfigSpec`, and rendering it passes the
//! cloud-init and Ignition validators.

mod clusterctl_support;
mod render_support;

use base64::Engine as _;
use clusterctl_support::*;
use serde_json::Value;
use siteboot_provider::api::SiteBootstrapConfigSpec;
use siteboot_provider::bootstrap_input::render_input;
use siteboot_provider::render::{render_cloud_init, render_ignition};
use std::collections::{BTreeMap, BTreeSet};

const NS: &str = "fleet-eu";
/// The operator credential Secret is created once per namespace by the platform team
/// (documented in config/clusterctl/README.md); it is the one reference a template leaves
/// outside itself, apart from nothing else.
const EXTERNAL_CREDENTIALS_SECRET: &str = "siteboot-operator-credentials";

fn read(file: &str) -> String {
    std::fs::read_to_string(repo_root().join("config/clusterctl").join(file)).expect("template")
}

fn full_env() -> BTreeMap<String, String> {
    [
        ("CLUSTER_NAME", "store-0142".to_string()),
        ("NAMESPACE", NS.to_string()),
        ("SITE_ID", "store-0142".to_string()),
        (
            "SITEBOOT_REGISTRATION_URL",
            "https://register.fleet.example:8443".to_string(),
        ),
        (
            "SITEBOOT_REGISTRATION_CA_B64",
            base64::engine::general_purpose::STANDARD.encode(render_support::CA_PEM),
        ),
        (
            "SITEBOOT_AGENT_URL",
            "https://downloads.fleet.example/siteboot-agent".to_string(),
        ),
        // All digits: must still reach the spec as a string (the templates quote it).
        ("SITEBOOT_AGENT_SHA256", "1".repeat(64)),
        ("K3S_SHA256", "2e".repeat(32)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

fn crd_kinds() -> BTreeMap<String, (String, BTreeSet<String>)> {
    let mut out = BTreeMap::new();
    for f in [
        "bootstrap.cluster.x-k8s.io_sitebootstrapconfigs.yaml",
        "bootstrap.cluster.x-k8s.io_sitebootstrapconfigtemplates.yaml",
    ] {
        let text = std::fs::read_to_string(repo_root().join("config/crd/bases").join(f))
            .expect("CRD (written by crdgen)");
        let crd = documents(&text).remove(0);
        let served = crd["spec"]["versions"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|v| v["served"] == true)
            .map(|v| v["name"].as_str().unwrap().to_owned())
            .collect();
        out.insert(
            crd["spec"]["names"]["kind"].as_str().unwrap().to_owned(),
            (crd["spec"]["group"].as_str().unwrap().to_owned(), served),
        );
    }
    out
}

/// `ref_` must name an object in `docs` with matching kind, name and API group.
fn resolve<'a>(docs: &'a [Value], ref_: &Value, what: &str) -> &'a Value {
    let (k, n, g) = (
        ref_["kind"].as_str(),
        ref_["name"].as_str(),
        ref_["apiGroup"].as_str(),
    );
    let (Some(k), Some(n), Some(g)) = (k, n, g) else {
        panic!("{what}: needs apiGroup, kind and name: {ref_}")
    };
    let target =
        find(docs, k, n).unwrap_or_else(|| panic!("{what}: {k} {n} is not in the template"));
    assert_eq!(
        group_of(target["apiVersion"].as_str().unwrap()),
        g,
        "{what}: apiGroup"
    );
    target
}

fn check_template(file: &str, required: &[&str]) -> Vec<Value> {
    let raw = read(file);
    let want: BTreeSet<String> = required.iter().map(|s| s.to_string()).collect();
    assert_eq!(
        required_variables(&raw),
        want,
        "{file}: required variables (keep README in sync)"
    );
    assert_eq!(
        envsubst(&raw, &BTreeMap::new()),
        Err(SubstError::Missing(want.into_iter().collect())),
        "{file}"
    );

    let env = full_env();
    let docs = documents(&envsubst(&raw, &env).expect("substitute"));
    let clusters: Vec<&Value> = docs.iter().filter(|d| kind(d) == "Cluster").collect();
    assert_eq!(clusters.len(), 1, "{file}: one Cluster");
    let cluster = clusters[0];
    assert_eq!(name(cluster), "store-0142");
    for d in &docs {
        assert_eq!(
            namespace(d),
            Some(NS),
            "{file}: {} {} namespace",
            kind(d),
            name(d)
        );
    }
    resolve(
        &docs,
        &cluster["spec"]["infrastructureRef"],
        &format!("{file}: Cluster.infrastructureRef"),
    );

    let crds = crd_kinds();
    let mut machine_specs: Vec<&Value> = docs
        .iter()
        .filter(|d| kind(d) == "Machine")
        .map(|d| &d["spec"])
        .collect();
    machine_specs.extend(
        docs.iter()
            .filter(|d| kind(d) == "MachineDeployment")
            .map(|d| &d["spec"]["template"]["spec"]),
    );
    assert!(!machine_specs.is_empty(), "{file}: no machines");
    for spec in machine_specs {
        assert_eq!(spec["clusterName"], name(cluster), "{file}: clusterName");
        resolve(
            &docs,
            &spec["infrastructureRef"],
            &format!("{file}: infrastructureRef"),
        );
        let config = resolve(
            &docs,
            &spec["bootstrap"]["configRef"],
            &format!("{file}: bootstrap.configRef"),
        );
        let (group, served) = crds
            .get(kind(config))
            .unwrap_or_else(|| panic!("{file}: {} is not one of our CRD kinds", kind(config)));
        let api_version = config["apiVersion"].as_str().unwrap();
        assert_eq!(group_of(api_version), group, "{file}");
        assert!(
            served.contains(api_version.rsplit('/').next().unwrap()),
            "{file}: {api_version} not served"
        );
        let bootstrap_spec = if kind(config).ends_with("Template") {
            &config["spec"]["template"]["spec"]
        } else {
            &config["spec"]
        };
        check_bootstrap_spec(&docs, file, bootstrap_spec, &env);
    }
    docs
}

fn check_bootstrap_spec(docs: &[Value], file: &str, spec: &Value, env: &BTreeMap<String, String>) {
    let typed: SiteBootstrapConfigSpec = serde_json::from_value(spec.clone())
        .unwrap_or_else(|e| panic!("{file}: spec does not match SiteBootstrapConfigSpec: {e}"));
    assert_eq!(typed.site.site_id.as_deref(), Some("store-0142"));
    let ca_ref = &spec["registration"]["caBundleFrom"];
    assert_eq!(ca_ref["kind"], "Secret", "{file}");
    let secret = find(docs, "Secret", ca_ref["name"].as_str().unwrap())
        .unwrap_or_else(|| panic!("{file}: caBundleFrom Secret missing"));
    let b64 = secret["data"][ca_ref["key"].as_str().unwrap()]
        .as_str()
        .unwrap_or_else(|| panic!("{file}: CA key missing"));
    let pem = String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(b64)
            .expect("base64"),
    )
    .unwrap();
    assert_eq!(pem, render_support::CA_PEM, "{file}: CA bundle round-trip");
    assert_eq!(
        typed.registration.credentials_secret_ref.name, EXTERNAL_CREDENTIALS_SECRET,
        "{file}: documented prerequisite"
    );
    assert_eq!(
        typed.agent.sha256.as_deref(),
        Some(env["SITEBOOT_AGENT_SHA256"].as_str()),
        "{file}: digest stays a string"
    );

    let input = render_input(&typed, "store-0142", &pem, render_support::token())
        .unwrap_or_else(|e| panic!("{file}: {e}"));
    let cloud = render_cloud_init(&input).unwrap_or_else(|e| panic!("{file}: {e}"));
    render_support::assert_cloud_init_valid(file, &cloud);
    let ign = render_ignition(&input).unwrap_or_else(|e| panic!("{file}: {e}"));
    render_support::assert_ignition_valid(file, &ign);
}

const COMMON_REQUIRED: [&str; 7] = [
    "CLUSTER_NAME",
    "NAMESPACE",
    "SITEBOOT_AGENT_SHA256",
    "SITEBOOT_AGENT_URL",
    "SITEBOOT_REGISTRATION_CA_B64",
    "SITEBOOT_REGISTRATION_URL",
    "SITE_ID",
];

#[test]
fn default_template_resolves_and_renders() {
    let docs = check_template("cluster-template.yaml", &COMMON_REQUIRED);
    let md = docs
        .iter()
        .find(|d| kind(d) == "MachineDeployment")
        .expect("MachineDeployment");
    assert_eq!(
        md["spec"]["replicas"], 1,
        "WORKER_MACHINE_COUNT default is a number"
    );
    let selector = md["spec"]["selector"]["matchLabels"].as_object().unwrap();
    for (k, v) in selector {
        assert_eq!(
            &md["spec"]["template"]["metadata"]["labels"][k], v,
            "selector {k}"
        );
    }
}

#[test]
fn edge_template_resolves_and_renders() {
    let mut required = COMMON_REQUIRED.to_vec();
    required.push("K3S_SHA256");
    let docs = check_template("cluster-template-edge.yaml", &required);
    let config = docs
        .iter()
        .find(|d| kind(d) == "SiteBootstrapConfig")
        .expect("SiteBootstrapConfig");
    assert_eq!(
        config["spec"]["kubernetes"]["k3s"]["version"],
        "v1.31.4+k3s1"
    );
    assert_eq!(
        config["metadata"]["labels"]["cluster.x-k8s.io/cluster-name"],
        "store-0142"
    );
}

#[test]
fn templates_contain_no_bare_dollar_and_no_unknown_operator() {
    for f in ["cluster-template.yaml", "cluster-template-edge.yaml"] {
        variables(&read(f)).unwrap_or_else(|e| panic!("{f}: {e:?}"));
    }
}
