//! Dependency direction is the architecture (style habit 3), checked on the resolved
//! dependency graph from `cargo metadata`:
//!
//! - `siteboot-agent` must not link `siteboot-provider` or `siteboot-registration`
//!   (the agent stays small and never carries the server or the controller);
//! - `siteboot-wire` must not link `tokio`, `kube`, `hyper`, `reqwest` or `axum`
//!   (wire types are I/O-free).
//!
//! The closure follows `resolve.nodes[].deps[]` edges whose `dep_kinds` include a normal
//! dependency (`kind: null`, any target), transitively: what ends up linked into the
//! crate. Dev- and build-dependencies are not followed. The checker is a pure function
//! of the metadata JSON and is tested on synthetic metadata that breaks each rule.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

use serde_json::{json, Value};

/// (package, packages its normal-dependency closure must not contain)
const RULES: &[(&str, &[&str])] = &[
    (
        "siteboot-agent",
        &["siteboot-provider", "siteboot-registration"],
    ),
    (
        "siteboot-wire",
        &["tokio", "kube", "hyper", "reqwest", "axum"],
    ),
];

/// Names of every package in `root`'s normal-dependency closure (excluding `root`).
fn normal_closure(metadata: &Value, root: &str) -> Result<BTreeSet<String>, String> {
    let packages = metadata["packages"]
        .as_array()
        .ok_or("metadata has no packages")?;
    let name_of: BTreeMap<&str, &str> = packages
        .iter()
        .filter_map(|p| Some((p["id"].as_str()?, p["name"].as_str()?)))
        .collect();
    let root_id = packages
        .iter()
        .find(|p| p["name"] == root && p["source"].is_null())
        .and_then(|p| p["id"].as_str())
        .ok_or_else(|| format!("workspace package `{root}` not found in metadata"))?;
    let nodes: BTreeMap<&str, &Value> = metadata["resolve"]["nodes"]
        .as_array()
        .ok_or("metadata has no resolve graph")?
        .iter()
        .filter_map(|n| Some((n["id"].as_str()?, n)))
        .collect();
    let mut seen: BTreeSet<&str> = BTreeSet::new();
    let mut stack = vec![root_id];
    while let Some(id) = stack.pop() {
        let Some(node) = nodes.get(id) else { continue };
        for dep in node["deps"].as_array().into_iter().flatten() {
            let normal = dep["dep_kinds"]
                .as_array()
                .is_some_and(|kinds| kinds.iter().any(|k| k["kind"].is_null()));
            let Some(pkg) = dep["pkg"].as_str() else {
                continue;
            };
            if normal && seen.insert(pkg) {
                stack.push(pkg);
            }
        }
    }
    Ok(seen
        .into_iter()
        .filter_map(|id| name_of.get(id).map(|n| (*n).to_owned()))
        .collect())
}

/// Every rule violation in `metadata`, as readable sentences. A package a rule names
/// that is missing from the workspace is a violation too, so the check cannot pass
/// vacuously.
fn violations(metadata: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for (package, forbidden) in RULES {
        match normal_closure(metadata, package) {
            Err(e) => out.push(e),
            Ok(closure) => {
                for f in *forbidden {
                    if closure.contains(*f) {
                        out.push(format!("`{package}` depends (transitively) on `{f}`"));
                    }
                }
            }
        }
    }
    out
}

#[test]
fn workspace_dependency_directions_hold() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--manifest-path"])
        .arg(root.join("Cargo.toml"))
        .output()
        .expect("run cargo metadata");
    assert!(
        out.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let metadata: Value = serde_json::from_slice(&out.stdout).expect("cargo metadata json");
    // The real graph is non-trivial: the agent does link something.
    let agent = normal_closure(&metadata, "siteboot-agent").unwrap();
    assert!(agent.contains("siteboot-wire"), "{agent:?}");
    let found = violations(&metadata);
    assert!(
        found.is_empty(),
        "dependency rules broken:\n{}",
        found.join("\n")
    );
}

/// Synthetic metadata: `edges` are (from, to, kind) with kind `None` = normal.
fn synthetic(edges: &[(&str, &str, Option<&str>)]) -> Value {
    let mut names: BTreeSet<&str> = BTreeSet::new();
    for (a, b, _) in edges {
        names.insert(*a);
        names.insert(*b);
    }
    names.extend(["siteboot-agent", "siteboot-wire"]);
    let id = |n: &str| format!("path+file:///ws/{n}#0.1.0");
    let packages: Vec<Value> = names
        .iter()
        .map(|n| json!({"name": n, "id": id(n), "source": null}))
        .collect();
    let nodes: Vec<Value> = names
        .iter()
        .map(|n| {
            let deps: Vec<Value> = edges
                .iter()
                .filter(|(a, _, _)| a == n)
                .map(|(_, b, kind)| {
                    json!({"name": b, "pkg": id(b), "dep_kinds": [{"kind": kind, "target": null}]})
                })
                .collect();
            json!({"id": id(n), "deps": deps})
        })
        .collect();
    json!({"packages": packages, "resolve": {"nodes": nodes}})
}

/// (case name, dependency edges, expected violations)
type RuleCase<'a> = (
    &'a str,
    &'a [(&'a str, &'a str, Option<&'a str>)],
    &'a [&'a str],
);

#[test]
fn checker_reports_each_broken_rule() {
    let cases: &[RuleCase] = &[
        (
            "clean",
            &[
                ("siteboot-agent", "siteboot-wire", None),
                ("siteboot-wire", "serde", None),
            ],
            &[],
        ),
        (
            "agent links registration directly",
            &[("siteboot-agent", "siteboot-registration", None)],
            &["`siteboot-agent` depends (transitively) on `siteboot-registration`"],
        ),
        (
            "agent links provider transitively",
            &[
                ("siteboot-agent", "helper", None),
                ("helper", "siteboot-provider", None),
            ],
            &["`siteboot-agent` depends (transitively) on `siteboot-provider`"],
        ),
        (
            "wire links tokio through another crate",
            &[("siteboot-wire", "util", None), ("util", "tokio", None)],
            &["`siteboot-wire` depends (transitively) on `tokio`"],
        ),
        (
            "dev- and build-dependencies are not linked",
            &[
                ("siteboot-agent", "siteboot-registration", Some("dev")),
                ("siteboot-wire", "tokio", Some("build")),
            ],
            &[],
        ),
    ];
    for (name, edges, want) in cases {
        assert_eq!(violations(&synthetic(edges)), want.to_vec(), "{name}");
    }
}

#[test]
fn checker_refuses_metadata_without_the_packages() {
    let found = violations(&json!({"packages": [], "resolve": {"nodes": []}}));
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(found[0].contains("`siteboot-agent` not found"), "{found:?}");
}
