//! Table tests for CRD parsing and version ordering.

use super::*;
use serde_json::json;

fn crd() -> Value {
    json!({"metadata": {"name": "widgets.example.com"}, "spec": {"group": "example.com", "scope": "Namespaced",
    "names": {"plural": "widgets", "kind": "Widget", "shortNames": ["wd"]},
    "versions": [
        {"name": "v1alpha1", "served": true, "storage": false},
        {"name": "v1", "served": true, "storage": true, "subresources": {"status": {}}},
        {"name": "v0", "served": false, "storage": false}
    ]}})
}

#[test]
fn crd_parses() {
    let d = crd_to_def(&crd()).unwrap();
    assert_eq!(d.versions, ["v1", "v1alpha1"]);
    assert!(d.namespaced && d.status);
    assert_eq!(d.singular, "widget");
    assert_eq!(d.short_names, ["wd"]);
    assert_eq!(d.crd.as_deref(), Some("widgets.example.com"));
}

#[test]
fn invalid_crds_name_the_field() {
    let cases: [(&str, Value, &str); 5] = [
        (
            "/metadata/name",
            json!("widgets.other.com"),
            "metadata.name",
        ),
        ("/spec/scope", json!("Global"), "spec.scope"),
        ("/spec/group", json!("nodots"), "spec.group"),
        ("/spec/names/plural", json!("Widgets"), "spec.names.plural"),
        ("/spec/versions/1/storage", json!(false), "spec.versions"),
    ];
    for (ptr, value, field) in cases {
        let mut c = crd();
        *c.pointer_mut(ptr).unwrap() = value;
        assert_eq!(crd_to_def(&c).unwrap_err().0, field, "{ptr}");
    }
}

#[test]
fn version_priority_table() {
    let mut vs = vec!["v1alpha1", "v2", "v1beta2", "v1", "foo", "v1beta1", "v10"];
    vs.sort_by_key(|v| std::cmp::Reverse(version_priority(v)));
    assert_eq!(
        vs,
        ["v10", "v2", "v1", "v1beta2", "v1beta1", "v1alpha1", "foo"]
    );
}

#[test]
fn registry_lookups_and_crd_lifecycle() {
    let mut r = Registry::builtin();
    assert!(r
        .find("apps", "v1", "deployments")
        .is_some_and(|d| d.status && d.namespaced));
    assert!(r
        .find("", "v1", "namespaces")
        .is_some_and(|d| !d.namespaced));
    assert!(r.find("example.com", "v1", "widgets").is_none());
    r.upsert_crd(crd_to_def(&crd()).unwrap()).unwrap();
    assert!(r.find("example.com", "v1alpha1", "widgets").is_some());
    assert!(r
        .groups()
        .iter()
        .any(|(g, v)| g == "example.com" && v == &["v1", "v1alpha1"]));
    let mut shadow = crd_to_def(&crd()).unwrap();
    shadow.group = "apps".into();
    shadow.plural = "deployments".into();
    assert!(r.upsert_crd(shadow).is_err());
    assert!(r.remove_crd("widgets.example.com").is_some());
    assert!(r.find("example.com", "v1", "widgets").is_none());
}
