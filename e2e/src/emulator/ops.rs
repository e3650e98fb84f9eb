//! Write operations with the API server's rules: create (with `generateName`), replace
//! (with `resourceVersion` preconditions), patches and server-side apply, the `status`
//! subresource split, `generation`, managed fields, no-op detection, and the
//! `CustomResourceDefinition` side effects (registering and unregistering types).
//! Deletion lives in [`super::gc`].

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::crd::{crd_status, register_crd};
use super::fields::{self, Scope, Writer};
use super::gc;
use super::meta;
use super::patch::{self, PatchKind};
use super::registry::{GroupResource, ResourceDef};
use super::status::{ApiError, Subject};
use super::store::{EventKind, Store};

/// The `GroupResource` of CustomResourceDefinitions.
pub fn crd_gr() -> GroupResource {
    GroupResource {
        group: "apiextensions.k8s.io".into(),
        resource: "customresourcedefinitions".into(),
    }
}

/// The `GroupResource` of Namespaces.
pub fn namespace_gr() -> GroupResource {
    GroupResource {
        group: String::new(),
        resource: "namespaces".into(),
    }
}

/// What a request addresses.
#[derive(Debug, Clone)]
pub struct Target {
    pub def: ResourceDef,
    /// The version in the request path.
    pub version: String,
    /// Empty for cluster-scoped types and cluster-wide collections.
    pub namespace: String,
    /// Empty for collections.
    pub name: String,
    /// The request goes to the `status` subresource.
    pub status: bool,
}

impl Target {
    pub fn subject(&self) -> Subject<'_> {
        Subject {
            group: &self.def.group,
            resource: &self.def.plural,
            name: &self.name,
        }
    }

    fn scope(&self) -> Scope {
        if self.status {
            Scope::Status
        } else {
            Scope::Main {
                exclude_status: self.def.status,
            }
        }
    }

    fn api_version(&self) -> String {
        self.def.api_version(&self.version)
    }
}

/// Per-request write options from the query string and headers.
#[derive(Debug, Clone, Default)]
pub struct WriteOpts {
    /// `fieldManager`, or the default derived from the User-Agent.
    pub manager: String,
    /// Whether `fieldManager` was given explicitly (apply requires it).
    pub manager_given: bool,
    pub force: bool,
    pub dry_run: bool,
}

/// An object as served at `version`: `apiVersion` and `kind` set.
pub fn serve(mut obj: Value, def: &ResourceDef, version: &str) -> Value {
    if let Some(o) = obj.as_object_mut() {
        o.insert("apiVersion".into(), Value::String(def.api_version(version)));
        o.insert("kind".into(), Value::String(def.kind.clone()));
    }
    obj
}

fn check_type(t: &Target, body: &Value) -> Result<(), ApiError> {
    let want = t.api_version();
    if let Some(av) = body.get("apiVersion").and_then(Value::as_str) {
        if av != want {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({av}) does not match the expected API version ({want})"
            )));
        }
    }
    if let Some(kind) = body.get("kind").and_then(Value::as_str) {
        if kind != t.def.kind {
            return Err(ApiError::bad_request(format!(
                "the kind in the data ({kind}) does not match the expected kind ({})",
                t.def.kind
            )));
        }
    }
    Ok(())
}

fn check_namespace(store: &Store, t: &Target, body: &Value) -> Result<(), ApiError> {
    if let Some(ns) = meta::meta_str(body, "namespace").filter(|ns| !ns.is_empty()) {
        if t.def.namespaced && ns != t.namespace {
            return Err(ApiError::bad_request("the namespace of the provided object does not match the namespace sent on the request"));
        }
    }
    if !t.def.namespaced {
        return Ok(());
    }
    let subject = Subject {
        group: "",
        resource: "namespaces",
        name: &t.namespace,
    };
    match store.get(&namespace_gr(), "", &t.namespace) {
        None => Err(ApiError::not_found(subject)),
        Some(ns) if meta::meta_str(ns, "deletionTimestamp").is_some() => Err(ApiError::forbidden(format!(
            "{} \"{}\" is forbidden: unable to create new content in namespace {} because it is being terminated",
            t.def.plural, t.name, t.namespace
        ))),
        Some(_) => Ok(()),
    }
}

/// `POST` to a collection.
pub fn create(
    store: &mut Store,
    t: &Target,
    body: Value,
    opts: &WriteOpts,
    now: DateTime<Utc>,
) -> Result<Value, ApiError> {
    if t.status {
        return Err(ApiError::method_not_allowed(
            "create is not supported on the status subresource",
        ));
    }
    check_type(t, &body)?;
    let mut obj = body;
    if !obj.is_object() {
        return Err(ApiError::bad_request("the body must be a JSON object"));
    }
    let generated = meta::meta_str(&obj, "name")
        .filter(|n| !n.is_empty())
        .is_none();
    let name = match meta::meta_str(&obj, "name").filter(|n| !n.is_empty()) {
        Some(n) => n.to_string(),
        None => match meta::meta_str(&obj, "generateName").filter(|n| !n.is_empty()) {
            Some(prefix) => {
                let b = uuid::Uuid::new_v4().into_bytes();
                format!(
                    "{prefix}{}",
                    meta::name_suffix([b[0], b[1], b[2], b[3], b[4]])
                )
            }
            None => String::new(),
        },
    };
    let t = Target {
        name: name.clone(),
        ..t.clone()
    };
    meta::validate_name(&name, t.def.gr() == namespace_gr()).map_err(|why| {
        ApiError::invalid(
            t.subject(),
            &t.def.kind,
            if generated {
                "metadata.generateName"
            } else {
                "metadata.name"
            },
            &why,
        )
    })?;
    check_namespace(store, &t, &obj)?;
    if store.get(&t.def.gr(), &t.namespace, &name).is_some() {
        return Err(ApiError::already_exists(t.subject()));
    }
    let ts = meta::timestamp(now);
    obj = serve(obj, &t.def, &t.version);
    meta::normalize(&t.def.group, &t.def.plural, &mut obj);
    let m = meta::metadata_mut(&mut obj);
    m.insert("name".into(), json!(name));
    if t.def.namespaced {
        m.insert("namespace".into(), json!(t.namespace));
    } else {
        m.remove("namespace");
    }
    for key in meta::SERVER_OWNED_METADATA
        .iter()
        .chain(&["resourceVersion", "managedFields"])
    {
        m.remove(*key);
    }
    m.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
    m.insert("creationTimestamp".into(), json!(ts));
    m.insert("generation".into(), json!(1));
    if t.def.status {
        obj = meta::keep_status(obj, None);
    }
    let w = Writer {
        manager: &opts.manager,
        api_version: &t.api_version(),
        time: &ts,
        scope: t.scope(),
    };
    fields::record_update(None, &mut obj, &w);
    created(store, &t, obj, opts.dry_run, &ts)
}

/// Commits a new object (after apply or create built it).
fn created(
    store: &mut Store,
    t: &Target,
    mut obj: Value,
    dry_run: bool,
    ts: &str,
) -> Result<Value, ApiError> {
    if t.def.gr() == namespace_gr() {
        obj["status"] = json!({"phase": "Active"});
    }
    if t.def.gr() == crd_gr() {
        register_crd(store, t, &mut obj, ts, dry_run)?;
    }
    if dry_run {
        return Ok(obj);
    }
    Ok(serve(
        store.put(&t.def.gr(), obj, EventKind::Added),
        &t.def,
        &t.version,
    ))
}

fn live<'a>(store: &'a Store, t: &Target) -> Result<&'a Value, ApiError> {
    store
        .get(&t.def.gr(), &t.namespace, &t.name)
        .ok_or_else(|| ApiError::not_found(t.subject()))
}

fn check_rv(t: &Target, live: &Value, new: &Value) -> Result<(), ApiError> {
    match meta::meta_str(new, "resourceVersion").filter(|rv| !rv.is_empty()) {
        Some(rv) if Some(rv) != meta::meta_str(live, "resourceVersion") => {
            Err(ApiError::conflict(t.subject()))
        }
        _ => Ok(()),
    }
}

/// `PUT` of an object or its status.
pub fn update(
    store: &mut Store,
    t: &Target,
    body: Value,
    opts: &WriteOpts,
    now: DateTime<Utc>,
) -> Result<Value, ApiError> {
    check_type(t, &body)?;
    let live = live(store, t)?.clone();
    match meta::meta_str(&body, "name") {
        Some(n) if n != t.name => {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({n}) does not match the name on the URL ({})",
                t.name
            )));
        }
        _ => {}
    }
    check_rv(t, &live, &body)?;
    // Custom resources do not allow unconditional updates (built-in kinds mostly do).
    if t.def.crd.is_some() && meta::meta_str(&body, "resourceVersion").is_none_or(str::is_empty) {
        let why = "must be specified for an update";
        return Err(ApiError::invalid(
            t.subject(),
            &t.def.kind,
            "metadata.resourceVersion",
            why,
        ));
    }
    let ts = meta::timestamp(now);
    let new = split_status(t, &live, meta::carry_server_metadata(body, &live));
    let mut new = serve(new, &t.def, &t.version);
    let w = Writer {
        manager: &opts.manager,
        api_version: &t.api_version(),
        time: &ts,
        scope: t.scope(),
    };
    fields::record_update(Some(&live), &mut new, &w);
    commit(store, t, &live, new, opts.dry_run, now)
}

fn split_status(t: &Target, live: &Value, new: Value) -> Value {
    if t.status {
        let mut out = meta::take_status(live, &new);
        if let Some(mf) = new["metadata"].get("managedFields") {
            meta::metadata_mut(&mut out).insert("managedFields".into(), mf.clone());
        }
        out
    } else if t.def.status {
        meta::keep_status(new, Some(live))
    } else {
        new
    }
}

/// `PATCH` of an object or its status, including server-side apply.
pub fn patch(
    store: &mut Store,
    t: &Target,
    kind: PatchKind,
    body: &[u8],
    opts: &WriteOpts,
    now: DateTime<Utc>,
) -> Result<Value, ApiError> {
    let parsed =
        patch::parse_body(body, kind == PatchKind::Apply).map_err(ApiError::bad_request)?;
    if kind == PatchKind::Apply {
        return apply(store, t, parsed, opts, now);
    }
    let live = live(store, t)?.clone();
    let served = serve(live.clone(), &t.def, &t.version);
    let patched = patch::patch(&served, kind, &parsed)
        .map_err(|e| ApiError::invalid(t.subject(), &t.def.kind, "patch", &e))?;
    check_type(t, &patched)?;
    if meta::meta_str(&patched, "name") != Some(t.name.as_str()) {
        return Err(ApiError::bad_request(
            "metadata.name cannot be changed by a patch",
        ));
    }
    check_rv(t, &live, &patched)?;
    let ts = meta::timestamp(now);
    let mut new = split_status(t, &live, meta::carry_server_metadata(patched, &live));
    let w = Writer {
        manager: &opts.manager,
        api_version: &t.api_version(),
        time: &ts,
        scope: t.scope(),
    };
    fields::record_update(Some(&live), &mut new, &w);
    commit(store, t, &live, new, opts.dry_run, now)
}

fn apply(
    store: &mut Store,
    t: &Target,
    mut cfg: Value,
    opts: &WriteOpts,
    now: DateTime<Utc>,
) -> Result<Value, ApiError> {
    if !opts.manager_given {
        return Err(ApiError::bad_request(
            "PATCH, application/apply-patch+yaml: fieldManager is required for apply requests",
        ));
    }
    if cfg.get("apiVersion").is_none() || cfg.get("kind").is_none() {
        return Err(ApiError::bad_request(
            "apiVersion and kind must be set in an apply configuration",
        ));
    }
    check_type(t, &cfg)?;
    if meta::meta_str(&cfg, "name").is_some_and(|n| n != t.name) {
        return Err(ApiError::bad_request(
            "the name in the apply configuration does not match the name on the URL",
        ));
    }
    if cfg["metadata"]
        .get("managedFields")
        .is_some_and(|m| !m.is_null())
    {
        return Err(ApiError::bad_request(
            "metadata.managedFields must be nil in an apply configuration",
        ));
    }
    let ts = meta::timestamp(now);
    let api_version = t.api_version();
    let w = Writer {
        manager: &opts.manager,
        api_version: &api_version,
        time: &ts,
        scope: t.scope(),
    };
    let current = store.get(&t.def.gr(), &t.namespace, &t.name).cloned();
    if let Some(live) = &current {
        check_rv(t, live, &cfg)?;
    } else if t.status {
        return Err(ApiError::not_found(t.subject()));
    }
    meta::metadata_mut(&mut cfg).remove("resourceVersion");
    let merged = fields::apply(current.as_ref(), &cfg, &w, opts.force)
        .map_err(|conflicts| ApiError::apply_conflict(t.subject(), &api_version, &conflicts))?;
    let Some(live) = current else {
        // Apply creates: run the create rules on the merged object, keeping its ownership.
        let managed = merged["metadata"]["managedFields"].clone();
        let mut created_obj = create(
            store,
            t,
            meta::strip_managed(merged),
            &WriteOpts {
                dry_run: true,
                ..opts.clone()
            },
            now,
        )?;
        meta::metadata_mut(&mut created_obj).insert("managedFields".into(), managed);
        return created(store, t, created_obj, opts.dry_run, &ts);
    };
    let new = split_status(t, &live, meta::carry_server_metadata(merged, &live));
    commit(
        store,
        t,
        &live,
        serve(new, &t.def, &t.version),
        opts.dry_run,
        now,
    )
}

/// Finishes a write of an existing object: finalizer rules, `generation`, no-op detection,
/// CRD side effects, and completion of a pending deletion when the last finalizer goes.
fn commit(
    store: &mut Store,
    t: &Target,
    live: &Value,
    mut new: Value,
    dry_run: bool,
    now: DateTime<Utc>,
) -> Result<Value, ApiError> {
    meta::normalize(&t.def.group, &t.def.plural, &mut new);
    let m = meta::metadata_mut(&mut new);
    m.insert("name".into(), json!(t.name));
    if t.def.namespaced {
        m.insert("namespace".into(), json!(t.namespace));
    }
    m.insert(
        "resourceVersion".into(),
        live["metadata"]["resourceVersion"].clone(),
    );
    if meta::meta_str(live, "deletionTimestamp").is_some() {
        let before = meta::finalizers(live);
        if meta::finalizers(&new).iter().any(|f| !before.contains(f)) {
            return Err(ApiError::invalid(
                t.subject(),
                &t.def.kind,
                "metadata.finalizers",
                "no new finalizers can be added if the object is being deleted",
            ));
        }
    }
    if meta::generation_changed(live, &new) {
        let g = live["metadata"]["generation"].as_i64().unwrap_or(1) + 1;
        meta::metadata_mut(&mut new).insert("generation".into(), json!(g));
    }
    let served_live = serve(live.clone(), &t.def, &t.version);
    if meta::strip_managed(new.clone()) == meta::strip_managed(served_live.clone()) {
        return Ok(served_live);
    }
    if t.def.gr() == crd_gr() && !t.status {
        let ts = meta::timestamp(now);
        register_crd(store, t, &mut new, &ts, dry_run)?;
        new["status"] = live
            .get("status")
            .cloned()
            .unwrap_or_else(|| crd_status(&new, &ts));
    }
    if dry_run {
        return Ok(new);
    }
    if meta::meta_str(&new, "deletionTimestamp").is_some() && meta::finalizers(&new).is_empty() {
        // Removing the last finalizer of a deleting object deletes it: one DELETED event.
        store.replace_quiet(&t.def.gr(), new.clone());
        let removed = gc::remove_now(store, &t.def.gr(), &t.namespace, &t.name, now).unwrap_or(new);
        return Ok(serve(removed, &t.def, &t.version));
    }
    Ok(serve(
        store.put(&t.def.gr(), new, EventKind::Modified),
        &t.def,
        &t.version,
    ))
}
