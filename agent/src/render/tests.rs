//! Table tests for rendering, merging and substitution.

use super::*;
use serde_json::json;

fn labels() -> Labels {
    [
        ("site-id", "store-0142"),
        ("region", "eu-west"),
        ("replicas", "3"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

fn layer(path: &str, files: &[(&str, &str)]) -> Layer {
    Layer {
        path: path.into(),
        files: files
            .iter()
            .map(|(p, t)| SourceFile {
                path: format!("{path}{p}"),
                text: t.to_string(),
            })
            .collect(),
    }
}

#[test]
fn merge_patch_table() {
    let cases = [
        (json!({"a": 1}), json!({"a": 2}), json!({"a": 2})),
        (json!({"a": 1}), json!({"b": 2}), json!({"a": 1, "b": 2})),
        (json!({"a": 1, "b": 2}), json!({"a": null}), json!({"b": 2})),
        (
            json!({"a": {"x": 1, "y": 2}}),
            json!({"a": {"y": 3}}),
            json!({"a": {"x": 1, "y": 3}}),
        ),
        (json!({"a": [1, 2]}), json!({"a": [3]}), json!({"a": [3]})),
        (
            json!({"a": 1}),
            json!({"a": {"b": 1}}),
            json!({"a": {"b": 1}}),
        ),
        (json!({"a": {"b": 1}}), json!({"a": 5}), json!({"a": 5})),
        (json!([1]), json!({"a": 1}), json!({"a": 1})),
        (json!({"a": 1}), json!("s"), json!("s")),
        (json!({}), json!({"a": {"b": null}}), json!({"a": {}})),
    ];
    for (mut target, patch, want) in cases {
        let before = target.clone();
        merge_patch(&mut target, &patch);
        assert_eq!(target, want, "{before} + {patch}");
    }
}

#[test]
fn substitution_table() {
    let ok = [
        ("plain", "plain"),
        ("site: ${site-id}", "site: store-0142"),
        ("${region}/${site-id}", "eu-west/store-0142"),
        ("cost: $5", "cost: $5"),
        ("lit: $${site-id}", "lit: ${site-id}"),
        ("end $", "end $"),
        ("n: ${replicas}", "n: 3"),
    ];
    for (input, want) in ok {
        assert_eq!(substitute(input, &labels()).unwrap(), want, "{input}");
    }
    let bad = [
        (
            "a\nb: ${nope}",
            SubstError::Unknown {
                name: "nope".into(),
                line: 2,
            },
        ),
        ("x: ${site-id", SubstError::Malformed { line: 1 }),
        ("x: ${}", SubstError::Malformed { line: 1 }),
        ("x: ${a b}", SubstError::Malformed { line: 1 }),
        ("\n\nx: ${1x}", SubstError::Malformed { line: 3 }),
    ];
    for (input, want) in bad {
        assert_eq!(substitute(input, &labels()).unwrap_err(), want, "{input}");
    }
}

#[test]
fn documents_split_table() {
    let cases: &[(&str, usize)] = &[
        ("a: 1\n", 1),
        ("---\na: 1\n", 1),
        ("# c\n---\na: 1\n---\nb: 2\n", 2),
        ("a: 1\n---\nb: 2\n---\n", 3),
        ("a: |\n  ---\n  x\n", 1),
    ];
    for (text, n) in cases {
        assert_eq!(split_documents(text).len(), *n, "{text:?}");
    }
}

const CM_BASE: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg\n  namespace: shop\ndata:\n  site: ${site-id}\n  tier: base\n";

#[test]
fn later_layers_merge_over_earlier_ones() {
    let layers = [
        layer(
            "baseline/",
            &[
                ("ns.yaml", "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n"),
                ("cm.yaml", CM_BASE),
            ],
        ),
        layer(
            "clusters/store-0142/",
            &[(
                "cm.yaml",
                "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg\n  namespace: shop\ndata:\n  tier: null\n  extra: \"${region}\"\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: local\n  namespace: shop\n",
            )],
        ),
    ];
    let out = render(&layers, &labels()).unwrap();
    assert_eq!(
        out.objects,
        vec![
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}),
            json!({"apiVersion": "v1", "kind": "ConfigMap",
                   "metadata": {"name": "cfg", "namespace": "shop"},
                   "data": {"site": "store-0142", "extra": "eu-west"}}),
            json!({"apiVersion": "v1", "kind": "ConfigMap",
                   "metadata": {"name": "local", "namespace": "shop"}}),
        ]
    );
    // Same group/kind/name but another namespace is another object.
    let two_ns = [layer(
        "b/",
        &[(
            "a.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, namespace: x}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, namespace: y}\n",
        )],
    )];
    assert_eq!(render(&two_ns, &labels()).unwrap().objects.len(), 2);
    // A version bump in an overlay still merges (the key is the group, not the version).
    let versions = [
        layer(
            "a/",
            &[(
                "x.yaml",
                "apiVersion: example.io/v1\nkind: W\nmetadata: {name: w}\nspec: {a: 1}\n",
            )],
        ),
        layer(
            "b/",
            &[(
                "x.yaml",
                "apiVersion: example.io/v2\nkind: W\nmetadata: {name: w}\nspec: {b: 2}\n",
            )],
        ),
    ];
    assert_eq!(
        render(&versions, &labels()).unwrap().objects,
        vec![
            json!({"apiVersion": "example.io/v2", "kind": "W", "metadata": {"name": "w"}, "spec": {"a": 1, "b": 2}})
        ]
    );
}

#[test]
fn errors_name_file_document_and_reason() {
    let cases: Vec<(Vec<Layer>, &str, usize, &str)> = vec![
        (
            vec![layer(
                "baseline/",
                &[(
                    "a.yaml",
                    "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\nkey: [unclosed\n",
                )],
            )],
            "baseline/a.yaml",
            2,
            "invalid YAML",
        ),
        (
            vec![layer(
                "baseline/",
                &[(
                    "a.yaml",
                    "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ${nope}\n",
                )],
            )],
            "baseline/a.yaml",
            1,
            "unknown variable ${nope}",
        ),
        (
            vec![layer(
                "baseline/",
                &[("a.yaml", "---\n---\nkind: ConfigMap\nmetadata: {name: a}\n")],
            )],
            "baseline/a.yaml",
            2,
            "apiVersion is missing",
        ),
        (
            vec![layer(
                "baseline/",
                &[("a.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {}\n")],
            )],
            "baseline/a.yaml",
            1,
            "metadata.name is missing",
        ),
        (
            vec![layer("baseline/", &[("a.yaml", "- 1\n- 2\n")])],
            "baseline/a.yaml",
            1,
            "not a mapping",
        ),
        (
            vec![layer(
                "baseline/",
                &[
                    (
                        "a.yaml",
                        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n",
                    ),
                    (
                        "b.yaml",
                        "# dup\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n",
                    ),
                ],
            )],
            "baseline/b.yaml",
            1,
            "defined twice in layer baseline/",
        ),
    ];
    for (layers, file, document, reason) in cases {
        let err = render(&layers, &labels()).unwrap_err();
        assert_eq!((err.file.as_str(), err.document), (file, document), "{err}");
        assert!(err.reason.contains(reason), "{err}");
        assert!(err
            .to_string()
            .starts_with(&format!("render {file} document {document}: ")));
    }
}

#[test]
fn empty_documents_and_comments_are_skipped() {
    let layers = [layer("b/", &[("a.yaml", "# only a comment\n---\n\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n...\n")])];
    assert_eq!(render(&layers, &labels()).unwrap().objects.len(), 1);
    assert!(render(&[], &labels()).unwrap().objects.is_empty());
}

#[test]
fn yaml_output_round_trips() {
    let layers = [layer("b/", &[("a.yaml", CM_BASE)])];
    let out = render(&layers, &labels()).unwrap();
    let back: Vec<Value> = out
        .to_yaml()
        .split("---\n")
        .filter(|d| !d.is_empty())
        .map(|d| serde_norway::from_str(d).unwrap())
        .collect();
    assert_eq!(back, out.objects);
}
