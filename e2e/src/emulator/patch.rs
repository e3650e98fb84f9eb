//! Patch bodies by content type: JSON merge patch (RFC 7386), JSON patch (RFC 6902, via the
//! `json-patch` crate kube itself uses), strategic merge patch (treated as a JSON merge
//! patch: lists are replaced, `$patch` directives are not understood) and server-side
//! apply (a YAML or JSON apply configuration, handled by `fields::apply`).

use serde_json::Value;

/// The patch flavour named by the request's `Content-Type`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PatchKind {
    Merge,
    Json,
    Strategic,
    Apply,
}

impl PatchKind {
    /// Maps a `Content-Type` header (parameters ignored) to a patch kind.
    pub fn from_content_type(ct: &str) -> Option<Self> {
        match ct.split(';').next().unwrap_or_default().trim() {
            "application/merge-patch+json" => Some(PatchKind::Merge),
            "application/json-patch+json" => Some(PatchKind::Json),
            "application/strategic-merge-patch+json" => Some(PatchKind::Strategic),
            "application/apply-patch+yaml" => Some(PatchKind::Apply),
            _ => None,
        }
    }
}

/// Parses a request body as JSON, or as YAML for apply configurations.
pub fn parse_body(body: &[u8], yaml_allowed: bool) -> Result<Value, String> {
    match serde_json::from_slice::<Value>(body) {
        Ok(v) => Ok(v),
        Err(json_err) if yaml_allowed => serde_norway::from_slice::<Value>(body)
            .map_err(|e| format!("unable to decode the body as json ({json_err}) or yaml ({e})")),
        Err(e) => Err(format!("unable to decode the body as json: {e}")),
    }
}

/// A strategic merge patch without its `$`-directives (`$patch`, `$retainKeys`,
/// `$setElementOrder/...`, `$deleteFromPrimitiveList/...`), so they are not stored as fields;
/// a map carrying `$patch: delete` becomes `null` (removal).
fn strip_directives(v: &Value) -> Value {
    match v {
        Value::Object(m) if m.get("$patch").and_then(Value::as_str) == Some("delete") => {
            Value::Null
        }
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| !k.starts_with('$'))
                .map(|(k, v)| (k.clone(), strip_directives(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(strip_directives).collect()),
        other => other.clone(),
    }
}

/// Applies a merge, strategic-merge or JSON patch to a copy of `target`.
pub fn patch(target: &Value, kind: PatchKind, body: &Value) -> Result<Value, String> {
    let mut out = target.clone();
    match kind {
        PatchKind::Merge | PatchKind::Strategic => {
            if !body.is_object() {
                return Err("a merge patch must be a JSON object".into());
            }
            if kind == PatchKind::Strategic {
                json_patch::merge(&mut out, &strip_directives(body));
            } else {
                json_patch::merge(&mut out, body);
            }
        }
        PatchKind::Json => {
            let ops: json_patch::Patch = serde_json::from_value(body.clone())
                .map_err(|e| format!("invalid json patch: {e}"))?;
            for op in ops.0 {
                // Like the API server's JSON patch library (and unlike the `json-patch` crate),
                // `test` of a missing path against `null` succeeds: kube-runtime's finalizer
                // helper relies on it to add the first finalizer.
                if let json_patch::PatchOperation::Test(t) = &op {
                    if t.value.is_null() && out.pointer(t.path.as_str()).is_none() {
                        continue;
                    }
                }
                json_patch::patch(&mut out, &[op])
                    .map_err(|e| format!("json patch failed: {e}"))?;
            }
        }
        PatchKind::Apply => return Err("apply patches are not plain patches".into()),
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn content_types() {
        let cases = [
            ("application/merge-patch+json", Some(PatchKind::Merge)),
            (
                "application/json-patch+json; charset=utf-8",
                Some(PatchKind::Json),
            ),
            (
                "application/strategic-merge-patch+json",
                Some(PatchKind::Strategic),
            ),
            ("application/apply-patch+yaml", Some(PatchKind::Apply)),
            ("application/json", None),
        ];
        for (ct, want) in cases {
            assert_eq!(PatchKind::from_content_type(ct), want, "{ct}");
        }
    }

    #[test]
    fn patch_table() {
        let base = json!({"spec": {"a": 1, "list": [1, 2]}, "metadata": {"labels": {"x": "1"}}});
        let cases = [
            (
                PatchKind::Merge,
                json!({"spec": {"a": null, "b": 2}}),
                Ok(json!({"spec": {"list": [1, 2], "b": 2}, "metadata": {"labels": {"x": "1"}}})),
            ),
            (
                PatchKind::Strategic,
                json!({"spec": {"list": [3]}}),
                Ok(json!({"spec": {"a": 1, "list": [3]}, "metadata": {"labels": {"x": "1"}}})),
            ),
            (
                PatchKind::Json,
                json!([{"op": "replace", "path": "/spec/a", "value": 7}, {"op": "add", "path": "/spec/list/-", "value": 3}]),
                Ok(
                    json!({"spec": {"a": 7, "list": [1, 2, 3]}, "metadata": {"labels": {"x": "1"}}}),
                ),
            ),
            (
                PatchKind::Json,
                json!([{"op": "test", "path": "/spec/a", "value": 2}]),
                Err(()),
            ),
            (
                PatchKind::Json,
                json!([{"op": "test", "path": "/metadata/finalizers", "value": null},
                       {"op": "add", "path": "/metadata/finalizers", "value": ["f"]}]),
                Ok(
                    json!({"spec": {"a": 1, "list": [1, 2]}, "metadata": {"labels": {"x": "1"}, "finalizers": ["f"]}}),
                ),
            ),
            (
                PatchKind::Json,
                json!([{"op": "replace", "path": "/spec/a", "value": 9}, {"op": "test", "path": "/spec/b", "value": 1}]),
                Err(()),
            ),
            (PatchKind::Json, json!({"op": "add"}), Err(())),
            (PatchKind::Merge, json!([1]), Err(())),
        ];
        let strategic = json!({"$setElementOrder/list": [1], "spec": {"$retainKeys": ["a"], "a": 2},
                               "metadata": {"labels": {"$patch": "delete"}}});
        let want = json!({"spec": {"a": 2, "list": [1, 2]}, "metadata": {}});
        assert_eq!(
            patch(&base, PatchKind::Strategic, &strategic).unwrap(),
            want
        );
        for (kind, body, want) in cases {
            let got = patch(&base, kind, &body).map_err(|_| ());
            assert_eq!(got, want, "{kind:?} {body}");
        }
    }

    #[test]
    fn bodies_parse_as_json_or_yaml() {
        assert_eq!(parse_body(b"{\"a\":1}", false).unwrap(), json!({"a": 1}));
        assert_eq!(
            parse_body(b"a: 1\nb: [x]\n", true).unwrap(),
            json!({"a": 1, "b": ["x"]})
        );
        assert!(parse_body(b"a: 1\n", false).is_err());
    }
}
