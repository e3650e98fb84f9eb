//! Field ownership (`metadata.managedFields`) and server-side apply, as pure functions.
//!
//! Ownership is tracked at the granularity of *leaf paths*: objects are descended into;
//! scalars, lists (always atomic here) and empty objects are leaves. Sets are emitted as
//! `FieldsV1` (`{"f:spec": {"f:replicas": {}}}`) and read back from it. Under `metadata`
//! only `labels`, `annotations`, `finalizers` and `ownerReferences` are tracked, as the
//! API server does.

use std::collections::BTreeSet;

use serde_json::{json, Map, Value};

/// A field path from the object root, e.g. `["spec", "replicas"]`.
pub type Path = Vec<String>;

/// Which part of an object a write may touch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Scope {
    /// The main resource; `exclude_status` when the kind has a `status` subresource.
    Main { exclude_status: bool },
    /// The `status` subresource: only `.status`.
    Status,
}

/// One `managedFields` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub manager: String,
    /// `Apply` or `Update`.
    pub operation: String,
    pub api_version: String,
    pub time: String,
    /// `Some("status")` for writes through the status subresource.
    pub subresource: Option<String>,
    pub fields: BTreeSet<Path>,
}

const TRACKED_METADATA: &[&str] = &["labels", "annotations", "finalizers", "ownerReferences"];

fn collect(v: &Value, prefix: &mut Path, out: &mut BTreeSet<Path>) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, child) in m {
                prefix.push(k.clone());
                collect(child, prefix, out);
                prefix.pop();
            }
        }
        Value::Null => {}
        _ => {
            out.insert(prefix.clone());
        }
    }
}

/// The leaf paths of `obj` that a write in `scope` may own.
pub fn leaf_paths(obj: &Value, scope: Scope) -> BTreeSet<Path> {
    let mut out = BTreeSet::new();
    let Some(top) = obj.as_object() else {
        return out;
    };
    for (k, v) in top {
        let wanted = match (scope, k.as_str()) {
            (_, "apiVersion" | "kind") => false,
            (Scope::Status, key) => key == "status",
            (Scope::Main { exclude_status }, "status") => !exclude_status,
            (Scope::Main { .. }, _) => true,
        };
        if !wanted {
            continue;
        }
        if k == "metadata" {
            for key in TRACKED_METADATA {
                if let Some(child) = v.get(*key) {
                    collect(child, &mut vec!["metadata".into(), (*key).into()], &mut out);
                }
            }
        } else {
            collect(v, &mut vec![k.clone()], &mut out);
        }
    }
    out
}

/// Renders a path the way apply conflicts name it: `.spec.replicas`.
pub fn render(path: &[String]) -> String {
    path.iter().map(|p| format!(".{p}")).collect()
}

/// A set of paths as `FieldsV1`.
pub fn to_fields_v1(paths: &BTreeSet<Path>) -> Value {
    let mut root = Map::new();
    for path in paths {
        let mut node = &mut root;
        for seg in path {
            let child = node.entry(format!("f:{seg}")).or_insert_with(|| json!({}));
            node = child.as_object_mut().expect("fieldsV1 nodes are objects");
        }
    }
    Value::Object(root)
}

/// Reads `FieldsV1` back: `f:` keys are descended; a node with no `f:` children is a leaf.
pub fn from_fields_v1(v: &Value) -> BTreeSet<Path> {
    fn walk(v: &Value, prefix: &mut Path, out: &mut BTreeSet<Path>) {
        let children: Vec<(&String, &Value)> = v
            .as_object()
            .map(|m| m.iter().filter(|(k, _)| k.starts_with("f:")).collect())
            .unwrap_or_default();
        if children.is_empty() {
            if !prefix.is_empty() {
                out.insert(prefix.clone());
            }
            return;
        }
        for (k, child) in children {
            prefix.push(k[2..].to_string());
            walk(child, prefix, out);
            prefix.pop();
        }
    }
    let mut out = BTreeSet::new();
    walk(v, &mut Vec::new(), &mut out);
    out
}

/// The `managedFields` entries stored in an object.
pub fn read_entries(obj: &Value) -> Vec<Entry> {
    let Some(list) = obj["metadata"]["managedFields"].as_array() else {
        return Vec::new();
    };
    list.iter()
        .map(|e| Entry {
            manager: e["manager"].as_str().unwrap_or_default().to_string(),
            operation: e["operation"].as_str().unwrap_or("Update").to_string(),
            api_version: e["apiVersion"].as_str().unwrap_or_default().to_string(),
            time: e["time"].as_str().unwrap_or_default().to_string(),
            subresource: e["subresource"].as_str().map(String::from),
            fields: from_fields_v1(&e["fieldsV1"]),
        })
        .collect()
}

/// Stores `entries` (those owning something) into `obj.metadata.managedFields`.
pub fn write_entries(obj: &mut Value, entries: &[Entry]) {
    let list: Vec<Value> = entries
        .iter()
        .filter(|e| !e.fields.is_empty())
        .map(|e| {
            let mut v = json!({"manager": e.manager, "operation": e.operation, "apiVersion": e.api_version,
                               "time": e.time, "fieldsType": "FieldsV1", "fieldsV1": to_fields_v1(&e.fields)});
            if let Some(sub) = &e.subresource {
                v["subresource"] = Value::String(sub.clone());
            }
            v
        })
        .collect();
    let meta = crate::emulator::meta::metadata_mut(obj);
    if list.is_empty() {
        meta.remove("managedFields");
    } else {
        meta.insert("managedFields".into(), Value::Array(list));
    }
}

/// The value at `path`, if any.
pub fn get_path<'a>(v: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(v, |v, seg| v.get(seg.as_str()))
}

fn remove_path(v: &mut Value, path: &[String]) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut node = v;
    for seg in parents {
        match node.get_mut(seg.as_str()) {
            Some(child) => node = child,
            None => return,
        }
    }
    if let Some(m) = node.as_object_mut() {
        m.remove(last);
    }
}

fn overlaps(a: &[String], b: &[String]) -> bool {
    a.starts_with(b) || b.starts_with(a)
}

/// Who is writing: the field manager, the request's `apiVersion`, the time and subresource.
#[derive(Debug, Clone)]
pub struct Writer<'a> {
    pub manager: &'a str,
    pub api_version: &'a str,
    pub time: &'a str,
    pub scope: Scope,
}

impl Writer<'_> {
    fn subresource(&self) -> Option<String> {
        (self.scope == Scope::Status).then(|| "status".to_string())
    }

    fn entry<'e>(&self, entries: &'e mut Vec<Entry>, operation: &str) -> &'e mut Entry {
        let sub = self.subresource();
        let pos = entries.iter().position(|e| {
            e.manager == self.manager && e.operation == operation && e.subresource == sub
        });
        let idx = pos.unwrap_or_else(|| {
            entries.push(Entry {
                manager: self.manager.to_string(),
                operation: operation.to_string(),
                api_version: String::new(),
                time: String::new(),
                subresource: sub,
                fields: BTreeSet::new(),
            });
            entries.len() - 1
        });
        let e = &mut entries[idx];
        e.api_version = self.api_version.to_string();
        e.time = self.time.to_string();
        e
    }
}

/// Records an `Update` (create, replace, non-apply patch) of `old` into `new`: the writer
/// takes every leaf it changed or added away from other managers; removed leaves lose owners.
pub fn record_update(old: Option<&Value>, new: &mut Value, w: &Writer<'_>) {
    let mut entries = old.map(read_entries).unwrap_or_default();
    let new_leaves = leaf_paths(new, w.scope);
    let changed: BTreeSet<Path> = new_leaves
        .iter()
        .filter(|p| old.and_then(|o| get_path(o, p)) != get_path(new, p))
        .cloned()
        .collect();
    let old_leaves = old.map(|o| leaf_paths(o, w.scope)).unwrap_or_default();
    let removed: Vec<&Path> = old_leaves.difference(&new_leaves).collect();
    for e in entries.iter_mut() {
        e.fields
            .retain(|q| !changed.iter().any(|p| overlaps(p, q)) && !removed.contains(&q));
    }
    if !changed.is_empty() {
        w.entry(&mut entries, "Update").fields.extend(changed);
    }
    entries.retain(|e| !e.fields.is_empty());
    write_entries(new, &entries);
}

/// Deep merge of an apply configuration: objects merge key by key, everything else
/// (scalars, lists) replaces, `null` removes.
fn merge_applied(target: &mut Value, cfg: &Value) {
    match (target.as_object_mut(), cfg.as_object()) {
        (Some(t), Some(c)) => {
            for (k, v) in c {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge_applied(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        _ => *target = cfg.clone(),
    }
}

/// Server-side apply of `cfg` over `live` by `w`. Returns the merged object (managed fields
/// updated) or the `(manager, .field)` conflicts when another manager owns a field that
/// `cfg` sets to a different value and `force` is false. With `force` the writer takes those
/// fields. Fields the writer applied before and no longer applies are removed unless someone
/// else also owns them.
pub fn apply(
    live: Option<&Value>,
    cfg: &Value,
    w: &Writer<'_>,
    force: bool,
) -> Result<Value, Vec<(String, String)>> {
    let mut entries = live.map(read_entries).unwrap_or_default();
    let applied = leaf_paths(cfg, w.scope);
    let empty = Value::Null;
    let live_v = live.unwrap_or(&empty);
    let mut conflicts: Vec<(String, String)> = Vec::new();
    let mut taken: Vec<(usize, Path)> = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        if e.manager == w.manager {
            continue;
        }
        for q in &e.fields {
            for p in applied.iter().filter(|p| overlaps(p, q)) {
                let short = if p.len() <= q.len() { p } else { q };
                if get_path(live_v, short) != get_path(cfg, short) {
                    let c = (e.manager.clone(), render(short));
                    if !conflicts.contains(&c) {
                        conflicts.push(c);
                    }
                    taken.push((i, q.clone()));
                }
            }
        }
    }
    if !conflicts.is_empty() && !force {
        return Err(conflicts);
    }
    for (i, q) in taken {
        entries[i].fields.remove(&q);
    }
    let previous = entries
        .iter()
        .find(|e| {
            e.manager == w.manager && e.operation == "Apply" && e.subresource == w.subresource()
        })
        .map(|e| e.fields.clone())
        .unwrap_or_default();
    let mut merged = live.cloned().unwrap_or_else(|| json!({}));
    merge_applied(&mut merged, cfg);
    for p in previous.difference(&applied) {
        if applied.iter().any(|a| overlaps(a, p)) {
            continue;
        }
        let others_own = entries
            .iter()
            .filter(|e| !(e.manager == w.manager && e.operation == "Apply"))
            .any(|e| e.fields.iter().any(|q| overlaps(p, q)));
        if !others_own {
            remove_path(&mut merged, p);
        }
    }
    w.entry(&mut entries, "Apply").fields = applied;
    entries.retain(|e| !e.fields.is_empty());
    write_entries(&mut merged, &entries);
    Ok(merged)
}

#[cfg(test)]
mod tests;
