//! Table tests for field ownership and server-side apply.

use super::*;
use serde_json::json;

fn p(s: &str) -> Path {
    s.split('.').map(String::from).collect()
}

fn w<'a>(manager: &'a str) -> Writer<'a> {
    Writer {
        manager,
        api_version: "v1",
        time: "t",
        scope: Scope::Main {
            exclude_status: true,
        },
    }
}

fn owners(obj: &Value) -> Vec<(String, String, Vec<String>)> {
    read_entries(obj)
        .into_iter()
        .map(|e| {
            (
                e.manager,
                e.operation,
                e.fields.iter().map(|f| render(f)).collect(),
            )
        })
        .collect()
}

#[test]
fn leaf_paths_follow_scope() {
    let obj = json!({"apiVersion": "v1", "kind": "X",
        "metadata": {"name": "a", "labels": {"l": "1"}, "uid": "u"},
        "spec": {"list": [1, 2], "n": {"m": 1}, "empty": {}}, "status": {"ok": true}});
    let main: Vec<String> = leaf_paths(
        &obj,
        Scope::Main {
            exclude_status: true,
        },
    )
    .iter()
    .map(|x| render(x))
    .collect();
    assert_eq!(
        main,
        [
            ".metadata.labels.l",
            ".spec.empty",
            ".spec.list",
            ".spec.n.m"
        ]
    );
    let all = leaf_paths(
        &obj,
        Scope::Main {
            exclude_status: false,
        },
    );
    assert!(all.contains(&p("status.ok")));
    let status: Vec<Path> = leaf_paths(&obj, Scope::Status).into_iter().collect();
    assert_eq!(status, [p("status.ok")]);
}

#[test]
fn fields_v1_round_trips() {
    let set: BTreeSet<Path> = [p("spec.a"), p("spec.b.c"), p("metadata.labels.x")]
        .into_iter()
        .collect();
    let v = to_fields_v1(&set);
    assert_eq!(
        v,
        json!({"f:spec": {"f:a": {}, "f:b": {"f:c": {}}}, "f:metadata": {"f:labels": {"f:x": {}}}})
    );
    assert_eq!(from_fields_v1(&v), set);
    // Real servers also emit "." and "k:" keys; a node with only those is a leaf.
    let real = json!({"f:spec": {"f:containers": {"k:{\"name\":\"c\"}": {".": {}}}, ".": {}}});
    assert_eq!(
        from_fields_v1(&real),
        [p("spec.containers")].into_iter().collect()
    );
}

#[test]
fn apply_creates_and_owns() {
    let cfg = json!({"metadata": {"name": "a", "labels": {"x": "1"}}, "spec": {"r": 1}});
    let out = apply(None, &cfg, &w("m1"), false).unwrap();
    assert_eq!(out["spec"]["r"], 1);
    assert_eq!(
        owners(&out),
        [(
            "m1".into(),
            "Apply".into(),
            vec![".metadata.labels.x".into(), ".spec.r".into()]
        )]
    );
}

#[test]
fn apply_conflict_table() {
    let live = apply(None, &json!({"spec": {"r": 1, "s": "x"}}), &w("m1"), false).unwrap();
    // (config by m2, force, expected conflicts or resulting spec)
    let cases: Vec<(Value, bool, Result<Value, Vec<&str>>)> = vec![
        (json!({"spec": {"r": 2}}), false, Err(vec![".spec.r"])),
        (
            json!({"spec": {"r": 2, "s": "y"}}),
            false,
            Err(vec![".spec.r", ".spec.s"]),
        ),
        (
            json!({"spec": {"r": 1}}),
            false,
            Ok(json!({"r": 1, "s": "x"})),
        ),
        (
            json!({"spec": {"t": true}}),
            false,
            Ok(json!({"r": 1, "s": "x", "t": true})),
        ),
        (
            json!({"spec": {"r": 2}}),
            true,
            Ok(json!({"r": 2, "s": "x"})),
        ),
        (json!({"spec": 5}), false, Err(vec![".spec"])),
    ];
    for (cfg, force, want) in cases {
        let got = apply(Some(&live), &cfg, &w("m2"), force);
        match (got, want) {
            (Err(c), Err(fields)) => {
                let got: Vec<&str> = c
                    .iter()
                    .map(|(m, f)| {
                        assert_eq!(m, "m1");
                        f.as_str()
                    })
                    .collect();
                assert_eq!(got, fields, "{cfg}");
            }
            (Ok(obj), Ok(spec)) => assert_eq!(obj["spec"], spec, "{cfg}"),
            (got, want) => panic!("{cfg}: got {got:?}, want {want:?}"),
        }
    }
}

#[test]
fn forced_apply_moves_ownership_and_shared_fields_stay_shared() {
    let live = apply(None, &json!({"spec": {"r": 1, "s": "x"}}), &w("m1"), false).unwrap();
    let forced = apply(
        Some(&live),
        &json!({"spec": {"r": 2, "s": "x"}}),
        &w("m2"),
        true,
    )
    .unwrap();
    assert_eq!(
        owners(&forced),
        [
            ("m1".into(), "Apply".into(), vec![".spec.s".into()]),
            (
                "m2".into(),
                "Apply".into(),
                vec![".spec.r".into(), ".spec.s".into()]
            )
        ]
    );
}

#[test]
fn dropping_a_field_from_the_config_removes_it_unless_shared() {
    let live = apply(
        None,
        &json!({"spec": {"r": 1, "s": "x", "u": 0}}),
        &w("m1"),
        false,
    )
    .unwrap();
    let live = apply(Some(&live), &json!({"spec": {"u": 0}}), &w("m2"), false).unwrap();
    let out = apply(Some(&live), &json!({"spec": {"r": 1}}), &w("m1"), false).unwrap();
    assert_eq!(out["spec"], json!({"r": 1, "u": 0}));
}

#[test]
fn updates_take_ownership_of_changed_fields() {
    let live = apply(None, &json!({"spec": {"r": 1, "s": "x"}}), &w("m1"), false).unwrap();
    let mut new = live.clone();
    new["spec"]["r"] = json!(5);
    new["spec"]["v"] = json!("new");
    record_update(Some(&live), &mut new, &w("editor"));
    assert_eq!(
        owners(&new),
        [
            ("m1".into(), "Apply".into(), vec![".spec.s".into()]),
            (
                "editor".into(),
                "Update".into(),
                vec![".spec.r".into(), ".spec.v".into()]
            )
        ]
    );
    // The applier now conflicts with the editor on .spec.r.
    let err = apply(
        Some(&new),
        &json!({"spec": {"r": 1, "s": "x"}}),
        &w("m1"),
        false,
    )
    .unwrap_err();
    assert_eq!(err, [("editor".to_string(), ".spec.r".to_string())]);
}

#[test]
fn status_writes_own_only_status() {
    let sw = Writer {
        manager: "ctl",
        api_version: "v1",
        time: "t",
        scope: Scope::Status,
    };
    let live = json!({"spec": {"r": 1}});
    let mut new = json!({"spec": {"r": 1}, "status": {"ready": true}});
    record_update(Some(&live), &mut new, &sw);
    let e = read_entries(&new);
    assert_eq!(e.len(), 1);
    assert_eq!(e[0].subresource.as_deref(), Some("status"));
    assert_eq!(e[0].fields, [p("status.ready")].into_iter().collect());
}
