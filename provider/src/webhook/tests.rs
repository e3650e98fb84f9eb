//! Table tests for the pure admission decision.

use super::*;
use serde_json::json;

fn spec() -> Value {
    json!({
        "site": {"siteId": "store-0142"},
        "registration": {
            "url": "https://registration.example.com",
            "caBundleFrom": {"kind": "Secret", "name": "registration-ca"},
            "credentialsSecretRef": {"name": "registration-operator"}
        },
        "agent": {"preinstalled": true}
    })
}

fn template(spec: Value) -> Value {
    json!({"spec": {"template": {"spec": spec}}})
}

fn with(mut v: Value, pointer: &str, value: Value) -> Value {
    *v.pointer_mut(pointer).expect("pointer exists") = value;
    v
}

/// (name, kind, op, old, new, dry_run, annotations, want: None = allowed, Some(substring))
type Row<'a> = (
    &'a str,
    Kind,
    Op,
    Option<Value>,
    Option<Value>,
    bool,
    &'a BTreeMap<String, String>,
    Option<&'a str>,
);

#[test]
fn decision_table() {
    let dry_run_ann: BTreeMap<String, String> =
        [(TOPOLOGY_DRY_RUN_ANNOTATION.to_string(), String::new())].into();
    let none = BTreeMap::new();
    let valid = template(spec());
    let changed = template(with(spec(), "/site/siteId", json!("store-0143")));
    let bad_site = template(with(spec(), "/site/siteId", json!("Not_A_Label")));
    let bad_agent = template(with(spec(), "/agent", json!({})));
    let bad_ttl = {
        let mut s = spec();
        s["tokenTTL"] = json!("soon");
        template(s)
    };
    let no_ca = template(with(spec(), "/registration/caBundleFrom", Value::Null));
    let bad_ca = {
        let mut s = spec();
        s["registration"]["caBundle"] = json!("not pem");
        template(s)
    };
    let from_label = template(with(
        spec(),
        "/site",
        json!({"siteIdFrom": {"label": "siteboot.io/site-id"}}),
    ));
    let explicit_default = template(with(spec(), "/site", json!({"siteId": "store-0142"})));
    let explicit_format = {
        let mut s = spec();
        s["format"] = json!("cloud-config");
        template(s)
    };
    use Kind::*;
    use Op::*;
    let rows: Vec<Row<'_>> = vec![
        ("create valid", Template, Create, None, s(&valid), false, &none, None),
        ("create from label", Template, Create, None, s(&from_label), false, &none, None),
        ("create bad site", Template, Create, None, s(&bad_site), false, &none, Some("spec.template.spec.site.siteId: invalid value: site id \"Not_A_Label\"")),
        ("create bad agent", Template, Create, None, s(&bad_agent), false, &none, Some("spec.template.spec: invalid value: spec.agent needs url and sha256")),
        ("create bad ttl", Template, Create, None, s(&bad_ttl), false, &none, Some("spec.template.spec.tokenTTL: invalid value")),
        ("create no ca", Template, Create, None, s(&no_ca), false, &none, Some("spec.template.spec.registration: invalid value: needs caBundle or caBundleFrom")),
        ("create bad inline ca", Template, Create, None, s(&bad_ca), false, &none, Some("registrationCaPem")),
        ("create missing spec", Template, Create, None, s(&json!({"spec": {}})), false, &none, Some("spec.template.spec: invalid value: required")),
        ("create wrong type", Template, Create, None, s(&template(json!({"site": 1}))), false, &none, Some("spec.template.spec: invalid value:")),
        ("update unchanged", Template, Update, s(&valid), s(&valid), false, &none, None),
        ("update defaulted field only", Template, Update, s(&valid), s(&explicit_format), false, &none, None),
        ("update same values", Template, Update, s(&valid), s(&explicit_default), false, &none, None),
        ("update changed", Template, Update, s(&valid), s(&changed), false, &none, Some("spec.template.spec: forbidden: SiteBootstrapConfigTemplate spec.template.spec is immutable")),
        ("update changed, dry run without annotation", Template, Update, s(&valid), s(&changed), true, &none, Some("is immutable")),
        ("update changed, annotation without dry run", Template, Update, s(&valid), s(&changed), false, &dry_run_ann, Some("is immutable")),
        ("update changed, topology dry run", Template, Update, s(&valid), s(&changed), true, &dry_run_ann, None),
        ("update changed to invalid, topology dry run", Template, Update, s(&valid), s(&bad_agent), true, &dry_run_ann, Some("spec.agent needs url")),
        ("update unchanged invalid (metadata only)", Template, Update, s(&bad_agent), s(&bad_agent), false, &none, None),
        ("delete", Template, Delete, s(&valid), None, false, &none, None),
        ("create without object", Template, Create, None, None, false, &none, Some("CREATE request carries no object")),
        ("config create valid", Config, Create, None, s(&spec_obj(spec())), false, &none, None),
        ("config create invalid", Config, Create, None, s(&spec_obj(with(spec(), "/agent", json!({})))), false, &none, Some("spec: invalid value: spec.agent")),
        ("config update changed valid", Config, Update, s(&spec_obj(spec())), s(&spec_obj(with(spec(), "/site/siteId", json!("x1")))), false, &none, None),
        ("config update changed invalid", Config, Update, s(&spec_obj(spec())), s(&spec_obj(with(spec(), "/site/siteId", json!("X")))), false, &none, Some("spec.site.siteId: invalid value")),
        ("config delete", Config, Delete, s(&spec_obj(spec())), None, false, &none, None),
    ];
    for (name, kind, operation, old, new, dry_run, annotations, want) in rows {
        let got = decide(&Review {
            kind,
            operation,
            old: old.as_ref(),
            new: new.as_ref(),
            dry_run,
            annotations,
        });
        match (want, got) {
            (None, Ok(())) => {}
            (Some(sub), Err(d)) => {
                let msg = d.to_string();
                assert!(msg.contains(sub), "{name}: {msg:?} lacks {sub:?}");
            }
            (want, got) => panic!("{name}: want {want:?}, got {got:?}"),
        }
    }
}

fn s(v: &Value) -> Option<Value> {
    Some(v.clone())
}

fn spec_obj(spec: Value) -> Value {
    json!({ "spec": spec })
}

#[test]
fn denial_status_is_invalid_422_with_message() {
    let d = Denial::Immutable {
        kind: "SiteBootstrapConfigTemplate",
        field: "spec.template.spec",
    };
    let s = d.status();
    assert_eq!((s.code, s.reason.as_str()), (422, "Invalid"));
    assert_eq!(s.message, d.to_string());
}

#[test]
fn review_body_echoes_uid_and_denies_unknown_kinds() {
    let body = json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {
            "uid": "u-1",
            "kind": {"group": "", "version": "v1", "kind": "ConfigMap"},
            "resource": {"group": "", "version": "v1", "resource": "configmaps"},
            "operation": "CREATE", "userInfo": {},
            "object": {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}},
            "oldObject": null
        }
    });
    let out = serde_json::to_value(review_body(body.to_string().as_bytes())).unwrap();
    assert_eq!(out["apiVersion"], "admission.k8s.io/v1");
    assert_eq!(out["response"]["uid"], "u-1");
    assert_eq!(out["response"]["allowed"], false);
    assert_eq!(out["response"]["status"]["code"], 400);

    let out = serde_json::to_value(review_body(b"{not json")).unwrap();
    assert_eq!(out["response"]["allowed"], false);
    assert!(out["response"]["status"]["message"]
        .as_str()
        .unwrap()
        .contains("not valid JSON"));
}
