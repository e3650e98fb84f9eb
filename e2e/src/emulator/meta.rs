//! Object metadata rules the API server enforces on every write, as pure functions:
//! names, `generateName` suffixes, timestamps, the `generation` rule, which metadata the
//! server owns, and how the `status` subresource splits an object.

use serde_json::{Map, Value};

/// Metadata fields only the server sets; client values are replaced by the stored ones.
pub const SERVER_OWNED_METADATA: &[&str] = &[
    "uid",
    "creationTimestamp",
    "generation",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "selfLink",
];

/// The characters the API server draws `generateName` suffixes from (no vowels, no 0/1/3).
const SUFFIX_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// The 5-character random suffix appended to `generateName`, from 5 random bytes.
pub fn name_suffix(random: [u8; 5]) -> String {
    random
        .iter()
        .map(|b| SUFFIX_ALPHABET[*b as usize % SUFFIX_ALPHABET.len()] as char)
        .collect()
}

/// RFC 3339 with second precision and `Z`, as `metav1.Time` serialises.
pub fn timestamp(now: chrono::DateTime<chrono::Utc>) -> String {
    now.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Checks an object name. Namespaces must be DNS-1123 labels; other names must be non-empty,
/// at most 253 characters, and usable as a path segment (RBAC names such as
/// `system:controller` are legal, so the check is no stricter than that).
pub fn validate_name(name: &str, is_namespace: bool) -> Result<(), String> {
    if name.is_empty() {
        return Err("name or generateName is required".into());
    }
    if is_namespace {
        let ok = name.len() <= 63
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && !name.starts_with('-')
            && !name.ends_with('-');
        return if ok {
            Ok(())
        } else {
            Err(format!("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', got {name:?}"))
        };
    }
    if name.len() > 253 || name == "." || name == ".." || name.contains(['/', '%']) {
        return Err(format!(
            "may not contain '/' or '%', be '.' or '..', or exceed 253 characters: {name:?}"
        ));
    }
    Ok(())
}

/// A copy of `v` without `metadata` and `status`: what `generation` tracks.
fn spec_part(v: &Value) -> Value {
    let mut v = v.clone();
    if let Some(o) = v.as_object_mut() {
        o.remove("metadata");
        o.remove("status");
    }
    v
}

/// `generation` is bumped when anything outside `metadata` and `status` changes.
/// (Finalizer-only or label-only writes leave it alone; so do status writes.)
pub fn generation_changed(old: &Value, new: &Value) -> bool {
    spec_part(old) != spec_part(new)
}

/// `new` with its `status` replaced by `old`'s: a main-resource write of a kind that has a
/// `status` subresource cannot change status.
pub fn keep_status(mut new: Value, old: Option<&Value>) -> Value {
    if let Some(o) = new.as_object_mut() {
        match old.and_then(|old| old.get("status")) {
            Some(status) => {
                o.insert("status".into(), status.clone());
            }
            None => {
                o.remove("status");
            }
        }
    }
    new
}

/// `old` with only its `status` taken from `new`: a `status` subresource write.
pub fn take_status(old: &Value, new: &Value) -> Value {
    let mut out = old.clone();
    if let Some(o) = out.as_object_mut() {
        match new.get("status") {
            Some(status) if !status.is_null() => {
                o.insert("status".into(), status.clone());
            }
            _ => {
                o.remove("status");
            }
        }
    }
    out
}

/// `new` with server-owned metadata copied from `old` (and `managedFields` carried over when
/// the client sent none), as an update or patch stores it.
pub fn carry_server_metadata(mut new: Value, old: &Value) -> Value {
    let old_meta = old
        .get("metadata")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let meta = metadata_mut(&mut new);
    for key in SERVER_OWNED_METADATA {
        match old_meta.get(*key) {
            Some(v) => {
                meta.insert((*key).into(), v.clone());
            }
            None => {
                meta.remove(*key);
            }
        }
    }
    if meta.get("managedFields").is_none_or(Value::is_null) {
        if let Some(mf) = old_meta.get("managedFields") {
            meta.insert("managedFields".into(), mf.clone());
        }
    }
    new
}

/// The `metadata` map of an object, created when missing.
pub fn metadata_mut(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj.is_object() {
        *obj = Value::Object(Map::new());
    }
    let o = obj.as_object_mut().expect("object ensured above");
    let meta = o
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    if !meta.is_object() {
        *meta = Value::Object(Map::new());
    }
    meta.as_object_mut().expect("object ensured above")
}

/// A string field of `metadata`.
pub fn meta_str<'a>(obj: &'a Value, key: &str) -> Option<&'a str> {
    obj.get("metadata")?.get(key)?.as_str()
}

/// `metadata.finalizers` as strings.
pub fn finalizers(obj: &Value) -> Vec<String> {
    obj["metadata"]["finalizers"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|f| f.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// The uids named by `metadata.ownerReferences`.
pub fn owner_uids(obj: &Value) -> Vec<String> {
    obj["metadata"]["ownerReferences"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|r| r["uid"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// An object without `metadata.managedFields` (for no-op detection and apply-create).
pub fn strip_managed(mut obj: Value) -> Value {
    metadata_mut(&mut obj).remove("managedFields");
    obj
}

/// Kind-specific write normalisation the API server does (core Secrets' `stringData`).
pub fn normalize(group: &str, plural: &str, obj: &mut Value) {
    if group.is_empty() && plural == "secrets" {
        normalize_secret(obj);
    }
}

/// What the API server does to a core `Secret` on every write: `stringData` entries are
/// base64-encoded into `data` (winning over `data` keys of the same name) and dropped, and a
/// missing `type` becomes `Opaque`.
pub fn normalize_secret(obj: &mut Value) {
    use base64::Engine as _;
    let Some(o) = obj.as_object_mut() else { return };
    if let Some(Value::Object(strings)) = o.remove("stringData") {
        let data = o.entry("data").or_insert_with(|| Value::Object(Map::new()));
        if !data.is_object() {
            *data = Value::Object(Map::new());
        }
        let data = data.as_object_mut().expect("object ensured above");
        for (k, v) in strings {
            let text = v
                .as_str()
                .map(String::from)
                .unwrap_or_else(|| v.to_string());
            data.insert(
                k,
                Value::String(base64::engine::general_purpose::STANDARD.encode(text)),
            );
        }
    }
    if o.get("type")
        .is_none_or(|t| t.as_str().is_none_or(str::is_empty))
    {
        o.insert("type".into(), Value::String("Opaque".into()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn generation_rule_table() {
        let base = json!({"metadata": {"name": "a", "labels": {"x": "1"}}, "spec": {"r": 1}, "status": {"s": 1}});
        let cases = [
            (
                json!({"metadata": {"name": "a", "labels": {"x": "2"}}, "spec": {"r": 1}, "status": {"s": 1}}),
                false,
            ),
            (
                json!({"metadata": {"name": "a"}, "spec": {"r": 1}, "status": {"s": 2}}),
                false,
            ),
            (json!({"metadata": {"name": "a"}, "spec": {"r": 2}}), true),
            (
                json!({"metadata": {"name": "a"}, "spec": {"r": 1}, "data": {"k": "v"}}),
                true,
            ),
            (json!({"metadata": {"name": "a"}, "spec": {"r": 1}}), false),
        ];
        for (new, want) in cases {
            assert_eq!(generation_changed(&base, &new), want, "{new}");
        }
    }

    #[test]
    fn names_table() {
        let cases = [
            ("web", false, true),
            ("system:controller:x", false, true),
            ("a/b", false, false),
            ("..", false, false),
            ("", false, false),
            ("team-a", true, true),
            ("Team", true, false),
            ("a.b", true, false),
            ("-a", true, false),
        ];
        for (name, ns, ok) in cases {
            assert_eq!(validate_name(name, ns).is_ok(), ok, "{name:?} ns={ns}");
        }
    }

    #[test]
    fn secret_normalization_table() {
        let cases = [
            (
                json!({"stringData": {"a": "hi"}}),
                json!({"data": {"a": "aGk="}, "type": "Opaque"}),
            ),
            (
                json!({"data": {"a": "eA==", "b": "eQ=="}, "stringData": {"a": "hi"}, "type": "kubernetes.io/tls"}),
                json!({"data": {"a": "aGk=", "b": "eQ=="}, "type": "kubernetes.io/tls"}),
            ),
            (json!({"type": ""}), json!({"type": "Opaque"})),
        ];
        for (mut input, want) in cases {
            normalize_secret(&mut input);
            assert_eq!(input, want);
        }
    }

    #[test]
    fn status_splitting() {
        let old = json!({"spec": {"a": 1}, "status": {"ok": false}});
        let new = json!({"spec": {"a": 2}, "status": {"ok": true}});
        assert_eq!(
            keep_status(new.clone(), Some(&old)),
            json!({"spec": {"a": 2}, "status": {"ok": false}})
        );
        assert_eq!(keep_status(new.clone(), None), json!({"spec": {"a": 2}}));
        assert_eq!(
            take_status(&old, &new),
            json!({"spec": {"a": 1}, "status": {"ok": true}})
        );
    }

    #[test]
    fn server_metadata_is_carried() {
        let old = json!({"metadata": {"uid": "u1", "generation": 3, "managedFields": [1], "creationTimestamp": "t"}});
        let new = json!({"metadata": {"uid": "forged", "labels": {"a": "b"}}});
        let out = carry_server_metadata(new, &old);
        assert_eq!(out["metadata"]["uid"], "u1");
        assert_eq!(out["metadata"]["generation"], 3);
        assert_eq!(out["metadata"]["managedFields"], json!([1]));
        assert_eq!(out["metadata"]["labels"]["a"], "b");
        assert_eq!(name_suffix([0, 1, 2, 26, 27]).len(), 5);
        assert_eq!(
            timestamp(chrono::DateTime::from_timestamp(0, 0).unwrap()),
            "1970-01-01T00:00:00Z"
        );
    }
}
