//! Deletion: finalizers and `deletionTimestamp`, `DeleteOptions` preconditions and
//! propagation (background, foreground, orphan), garbage collection of dependents through
//! `ownerReferences`, namespace termination, and removal of a CRD's objects with the CRD.
//! Unlike the real garbage collector and namespace controller (asynchronous), all of this
//! runs synchronously inside the write that triggers it.

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::meta;
use super::ops::{crd_gr, namespace_gr};
use super::registry::GroupResource;
use super::store::{EventKind, Store};

/// `DeleteOptions.propagationPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum Propagation {
    #[default]
    Background,
    Foreground,
    Orphan,
}

impl Propagation {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "Background" => Some(Propagation::Background),
            "Foreground" => Some(Propagation::Foreground),
            "Orphan" => Some(Propagation::Orphan),
            _ => None,
        }
    }
}

/// The finalizer foreground deletion holds an owner with.
pub const FOREGROUND: &str = "foregroundDeletion";
/// The finalizer orphan deletion holds an owner with (released at once here).
pub const ORPHAN: &str = "orphan";

/// What a delete did.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// The object is gone; its last state.
    Removed(Value),
    /// The object waits for finalizers; its current state (with `deletionTimestamp`).
    Pending(Value),
}

type Ref = (GroupResource, String, String);

fn dependents(store: &Store, uid: &str) -> Vec<(Ref, Value)> {
    store
        .all()
        .filter(|(_, v)| meta::owner_uids(v).iter().any(|u| u == uid))
        .map(|(gr, v)| {
            let (ns, name) = super::store::key_of(v);
            ((gr.clone(), ns, name), v.clone())
        })
        .collect()
}

fn uid_exists(store: &Store, uid: &str) -> bool {
    store
        .all()
        .any(|(_, v)| meta::meta_str(v, "uid") == Some(uid))
}

/// Deletes one object as `DELETE` does: marks it when finalizers hold it, otherwise removes
/// it and collects what depended on it.
pub fn delete(
    store: &mut Store,
    gr: &GroupResource,
    ns: &str,
    name: &str,
    policy: Propagation,
    now: DateTime<Utc>,
) -> Option<Outcome> {
    let mut obj = store.get(gr, ns, name)?.clone();
    let uid = meta::meta_str(&obj, "uid").unwrap_or_default().to_string();
    if policy == Propagation::Orphan {
        for ((dgr, _, _), mut dep) in dependents(store, &uid) {
            if let Some(refs) = dep["metadata"]["ownerReferences"].as_array_mut() {
                refs.retain(|r| r["uid"] != uid.as_str());
            }
            store.put(&dgr, dep, EventKind::Modified);
        }
    }
    let mut finalizers = meta::finalizers(&obj);
    if policy == Propagation::Foreground
        && !finalizers.iter().any(|f| f == FOREGROUND)
        && !dependents(store, &uid).is_empty()
    {
        finalizers.push(FOREGROUND.to_string());
    }
    let is_namespace = *gr == namespace_gr();
    if finalizers.is_empty() && !is_namespace {
        return remove_now(store, gr, ns, name, now).map(Outcome::Removed);
    }
    if meta::meta_str(&obj, "deletionTimestamp").is_none() || meta::finalizers(&obj) != finalizers {
        let m = meta::metadata_mut(&mut obj);
        m.entry("deletionTimestamp")
            .or_insert_with(|| json!(meta::timestamp(now)));
        m.insert("deletionGracePeriodSeconds".into(), json!(0));
        m.insert("finalizers".into(), json!(finalizers));
        if is_namespace {
            obj["status"] = json!({"phase": "Terminating"});
        }
        obj = store.put(gr, obj, EventKind::Modified);
    }
    if is_namespace {
        terminate_namespace(store, name, now);
    } else if finalizers.iter().any(|f| f == FOREGROUND) {
        for ((dgr, dns, dname), _) in dependents(store, &uid) {
            delete(store, &dgr, &dns, &dname, Propagation::Foreground, now);
        }
    }
    settle(store, now);
    match store.get(gr, ns, name) {
        Some(v) => Some(Outcome::Pending(v.clone())),
        None => Some(Outcome::Removed(obj)),
    }
}

fn terminate_namespace(store: &mut Store, ns: &str, now: DateTime<Utc>) {
    let contents: Vec<Ref> = store
        .all()
        .filter(|(gr, v)| **gr != namespace_gr() && meta::meta_str(v, "namespace") == Some(ns))
        .filter(|(_, v)| meta::meta_str(v, "deletionTimestamp").is_none())
        .map(|(gr, v)| {
            let (ns, name) = super::store::key_of(v);
            (gr.clone(), ns, name)
        })
        .collect();
    for (gr, ns, name) in contents {
        delete(store, &gr, &ns, &name, Propagation::Background, now);
    }
}

/// Removes an object now, then everything that no longer has a living owner, then finishes
/// foreground deletions and namespace terminations this unblocked.
pub fn remove_now(
    store: &mut Store,
    gr: &GroupResource,
    ns: &str,
    name: &str,
    now: DateTime<Utc>,
) -> Option<Value> {
    let removed = store.remove(gr, ns, name)?;
    if *gr == crd_gr() {
        if let Some(def) = store.registry.remove_crd(name) {
            let objs: Vec<Ref> = store
                .list(&def.gr(), None)
                .map(|v| {
                    let (ns, name) = super::store::key_of(v);
                    (def.gr(), ns, name)
                })
                .collect();
            for (gr, ns, name) in objs {
                store.remove(&gr, &ns, &name);
            }
        }
    }
    let uid = meta::meta_str(&removed, "uid")
        .unwrap_or_default()
        .to_string();
    for ((dgr, dns, dname), dep) in dependents(store, &uid) {
        if meta::owner_uids(&dep).iter().all(|u| !uid_exists(store, u)) {
            delete(store, &dgr, &dns, &dname, Propagation::Background, now);
        }
    }
    settle(store, now);
    Some(removed)
}

/// Completes what finished elsewhere: foreground owners whose dependents are gone lose
/// `foregroundDeletion`; deleting objects without finalizers go; terminating namespaces
/// with no content go.
fn settle(store: &mut Store, now: DateTime<Utc>) {
    for _ in 0..64 {
        let mut work: Vec<(Ref, Option<Value>)> = Vec::new();
        for (gr, v) in store.all() {
            if meta::meta_str(v, "deletionTimestamp").is_none() {
                continue;
            }
            let (ns, name) = super::store::key_of(v);
            let uid = meta::meta_str(v, "uid").unwrap_or_default();
            let fins = meta::finalizers(v);
            if *gr == namespace_gr() {
                let empty = !store.all().any(|(g, o)| {
                    *g != namespace_gr() && meta::meta_str(o, "namespace") == Some(name.as_str())
                });
                if empty && fins.is_empty() {
                    work.push(((gr.clone(), ns, name), None));
                }
            } else if fins.iter().any(|f| f == FOREGROUND || f == ORPHAN)
                && dependents(store, uid).is_empty()
            {
                let mut next = v.clone();
                next["metadata"]["finalizers"] = json!(fins
                    .iter()
                    .filter(|f| *f != FOREGROUND && *f != ORPHAN)
                    .collect::<Vec<_>>());
                work.push(((gr.clone(), ns, name), Some(next)));
            } else if fins.is_empty() {
                work.push(((gr.clone(), ns, name), None));
            }
        }
        if work.is_empty() {
            return;
        }
        for ((gr, ns, name), next) in work {
            match next {
                Some(next) if !meta::finalizers(&next).is_empty() => {
                    store.put(&gr, next, EventKind::Modified);
                }
                Some(next) => {
                    store.replace_quiet(&gr, next);
                    remove_now(store, &gr, &ns, &name, now);
                }
                None => {
                    remove_now(store, &gr, &ns, &name, now);
                }
            }
        }
    }
}
