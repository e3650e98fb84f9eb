//! Resource requests: get, list (selectors, `limit`/`continue`), watch, create, replace,
//! patch, delete and deletecollection, each turned into store operations under the store
//! lock and answered as JSON.

use std::sync::Arc;
use std::time::Duration;

use axum::http::{header, Method, StatusCode};
use axum::response::Response;
use chrono::Utc;
use serde_json::{json, Value};

use super::gc::{self, Outcome, Propagation};
use super::meta;
use super::ops::{self, serve, Target, WriteOpts};
use super::patch::PatchKind;
use super::selectors::{FieldSelector, LabelSelector};
use super::server::{json as respond, stream_body, Req, Shared};
use super::status::{self, ApiError};
use super::store::{key_of, Store};
use super::watch::{self, Start, WatchSpec};

/// Default `timeoutSeconds` of a watch that gives none.
const DEFAULT_WATCH_TIMEOUT: Duration = Duration::from_secs(1800);

/// Serves one resource request.
pub async fn resource(
    sh: &Arc<Shared>,
    t: Target,
    collection: bool,
    req: &Req,
) -> Result<Response, ApiError> {
    let now = Utc::now();
    let opts = write_opts(req);
    let ok = |v: Value| Ok(respond(StatusCode::OK, &v));
    match (&req.method, collection) {
        (&Method::GET, true) if req.flag("watch") => watch(sh, t, req),
        (&Method::GET, true) => ok(list(&sh.lock(), &t, req)?),
        (&Method::GET, false) => {
            let s = sh.lock();
            let obj = s
                .get(&t.def.gr(), &t.namespace, &t.name)
                .ok_or_else(|| ApiError::not_found(t.subject()))?;
            ok(serve(obj.clone(), &t.def, &t.version))
        }
        (&Method::POST, true) => {
            let body = super::patch::parse_body(&req.body, false).map_err(ApiError::bad_request)?;
            let obj = ops::create(&mut sh.lock(), &t, body, &opts, now)?;
            Ok(respond(StatusCode::CREATED, &obj))
        }
        (&Method::PUT, false) => {
            let body = super::patch::parse_body(&req.body, false).map_err(ApiError::bad_request)?;
            ok(ops::update(&mut sh.lock(), &t, body, &opts, now)?)
        }
        (&Method::PATCH, false) => {
            let ct = req.header(header::CONTENT_TYPE);
            let kind = PatchKind::from_content_type(ct)
                .ok_or_else(|| ApiError::unsupported_media_type(ct))?;
            let mut s = sh.lock();
            let existed = s.get(&t.def.gr(), &t.namespace, &t.name).is_some();
            let obj = ops::patch(&mut s, &t, kind, &req.body, &opts, now)?;
            Ok(respond(
                if existed {
                    StatusCode::OK
                } else {
                    StatusCode::CREATED
                },
                &obj,
            ))
        }
        (&Method::DELETE, false) if !t.status => delete(&mut sh.lock(), &t, req),
        (&Method::DELETE, true) => delete_collection(&mut sh.lock(), &t, req),
        (m, _) => Err(ApiError::method_not_allowed(format!(
            "{m} is not supported here"
        ))),
    }
}

fn write_opts(req: &Req) -> WriteOpts {
    let given = req.q("fieldManager").filter(|m| !m.is_empty());
    let agent = req
        .header(header::USER_AGENT)
        .split('/')
        .next()
        .unwrap_or_default();
    WriteOpts {
        manager: given.map(String::from).unwrap_or_else(|| {
            if agent.is_empty() {
                "unknown".into()
            } else {
                agent.to_string()
            }
        }),
        manager_given: given.is_some(),
        force: req.flag("force"),
        dry_run: req.q("dryRun") == Some("All"),
    }
}

fn selectors(t: &Target, req: &Req) -> Result<(LabelSelector, FieldSelector), ApiError> {
    let labels = LabelSelector::parse(req.q("labelSelector").unwrap_or_default())
        .map_err(ApiError::bad_request)?;
    let fields = FieldSelector::parse(
        req.q("fieldSelector").unwrap_or_default(),
        &t.def.field_selectors(),
    )
    .map_err(ApiError::bad_request)?;
    Ok((labels, fields))
}

fn namespace_filter(t: &Target) -> Option<&str> {
    (!t.namespace.is_empty()).then_some(t.namespace.as_str())
}

fn list(s: &Store, t: &Target, req: &Req) -> Result<Value, ApiError> {
    let (labels, fields) = selectors(t, req)?;
    // Continue tokens are "<resourceVersion>|<namespace>|<name>" of the last item served.
    let (list_rv, after) = match req.q("continue").filter(|c| !c.is_empty()) {
        Some(token) => {
            let mut parts = token.splitn(3, '|');
            match (
                parts.next().and_then(|rv| rv.parse::<u64>().ok()),
                parts.next(),
                parts.next(),
            ) {
                (Some(rv), Some(ns), Some(name)) => (rv, Some((ns.to_string(), name.to_string()))),
                _ => return Err(ApiError::bad_request("invalid continue token")),
            }
        }
        None => (s.rv(), None),
    };
    let limit = req
        .q("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .filter(|l| *l > 0);
    let mut matching = s
        .list(&t.def.gr(), namespace_filter(t))
        .filter(|o| after.as_ref().is_none_or(|a| key_of(o) > *a))
        .filter(|o| labels.matches(o) && fields.matches(o));
    let mut items: Vec<Value> = Vec::new();
    let mut more = false;
    for obj in matching.by_ref() {
        if limit.is_some_and(|l| items.len() == l) {
            more = true;
            break;
        }
        items.push(serve(obj.clone(), &t.def, &t.version));
    }
    let mut metadata = json!({"resourceVersion": list_rv.to_string()});
    if more {
        let (ns, name) = key_of(items.last().expect("a full page is not empty"));
        metadata["continue"] = json!(format!("{list_rv}|{ns}|{name}"));
        metadata["remainingItemCount"] = json!(matching.count() + 1);
    }
    Ok(
        json!({"kind": format!("{}List", t.def.kind), "apiVersion": t.def.api_version(&t.version), "metadata": metadata, "items": items}),
    )
}

fn watch(sh: &Arc<Shared>, t: Target, req: &Req) -> Result<Response, ApiError> {
    let (labels, fields) = selectors(&t, req)?;
    let start = match req
        .q("resourceVersion")
        .filter(|rv| !rv.is_empty() && *rv != "0")
    {
        _ if req.flag("sendInitialEvents") => Start::InitialEvents,
        None => Start::Current,
        Some(rv) => Start::After(
            rv.parse()
                .map_err(|_| ApiError::bad_request(format!("invalid resourceVersion {rv:?}")))?,
        ),
    };
    let timeout = req
        .q("timeoutSeconds")
        .and_then(|s| s.parse::<u64>().ok())
        .map(Duration::from_secs)
        .unwrap_or(DEFAULT_WATCH_TIMEOUT);
    let spec = WatchSpec {
        namespace: namespace_filter(&t).map(String::from),
        def: t.def,
        version: t.version,
        labels,
        fields,
        start,
        bookmarks: req.flag("allowWatchBookmarks"),
        timeout,
        bookmark_interval: sh.bookmark_interval,
    };
    let (tx, rx) = tokio::sync::mpsc::channel(256);
    tokio::spawn(watch::run(sh.store.clone(), spec, tx, sh.shutdown.clone()));
    let mut resp = Response::new(stream_body(rx));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    Ok(resp)
}

/// `DeleteOptions` from the body and query string.
struct DeleteOpts {
    propagation: Propagation,
    uid: Option<String>,
    rv: Option<String>,
    dry_run: bool,
}

fn delete_opts(req: &Req) -> Result<DeleteOpts, ApiError> {
    let body: Value = if req.body.is_empty() {
        json!({})
    } else {
        serde_json::from_slice(&req.body)
            .map_err(|e| ApiError::bad_request(format!("invalid DeleteOptions: {e}")))?
    };
    let policy = body["propagationPolicy"]
        .as_str()
        .or(req.q("propagationPolicy"));
    let mut propagation = match policy {
        None => Propagation::Background,
        Some(p) => Propagation::parse(p)
            .ok_or_else(|| ApiError::bad_request(format!("unknown propagationPolicy {p:?}")))?,
    };
    if body["orphanDependents"] == true || req.flag("orphanDependents") {
        propagation = Propagation::Orphan;
    }
    let dry_run = body["dryRun"]
        .as_array()
        .is_some_and(|a| a.iter().any(|d| d == "All"))
        || req.q("dryRun") == Some("All");
    let pre = &body["preconditions"];
    Ok(DeleteOpts {
        propagation,
        uid: pre["uid"].as_str().map(String::from),
        rv: pre["resourceVersion"].as_str().map(String::from),
        dry_run,
    })
}

fn delete(s: &mut Store, t: &Target, req: &Req) -> Result<Response, ApiError> {
    let o = delete_opts(req)?;
    let live = s
        .get(&t.def.gr(), &t.namespace, &t.name)
        .ok_or_else(|| ApiError::not_found(t.subject()))?;
    let uid = meta::meta_str(live, "uid").unwrap_or_default().to_string();
    if o.uid.as_ref().is_some_and(|u| *u != uid) {
        return Err(ApiError::conflict(t.subject()));
    }
    if o.rv
        .as_deref()
        .is_some_and(|rv| Some(rv) != meta::meta_str(live, "resourceVersion"))
    {
        return Err(ApiError::conflict(t.subject()));
    }
    if o.dry_run {
        return Ok(respond(
            StatusCode::OK,
            &serve(live.clone(), &t.def, &t.version),
        ));
    }
    match gc::delete(
        s,
        &t.def.gr(),
        &t.namespace,
        &t.name,
        o.propagation,
        Utc::now(),
    ) {
        Some(Outcome::Pending(obj)) => Ok(respond(StatusCode::OK, &serve(obj, &t.def, &t.version))),
        Some(Outcome::Removed(_)) | None => Ok(respond(
            StatusCode::OK,
            &status::success_status(t.subject(), &uid),
        )),
    }
}

fn delete_collection(s: &mut Store, t: &Target, req: &Req) -> Result<Response, ApiError> {
    let o = delete_opts(req)?;
    let (labels, fields) = selectors(t, req)?;
    let keys: Vec<(String, String)> = s
        .list(&t.def.gr(), namespace_filter(t))
        .filter(|v| labels.matches(v) && fields.matches(v))
        .map(key_of)
        .collect();
    let mut items = Vec::new();
    for (ns, name) in keys {
        let obj = if o.dry_run {
            s.get(&t.def.gr(), &ns, &name).cloned()
        } else {
            gc::delete(s, &t.def.gr(), &ns, &name, o.propagation, Utc::now()).map(|out| match out {
                Outcome::Pending(v) | Outcome::Removed(v) => v,
            })
        };
        items.extend(obj.map(|v| serve(v, &t.def, &t.version)));
    }
    let list = json!({"kind": format!("{}List", t.def.kind), "apiVersion": t.def.api_version(&t.version),
                      "metadata": {"resourceVersion": s.rv().to_string()}, "items": items});
    Ok(respond(StatusCode::OK, &list))
}
