//! The Kubernetes API emulator driven by real `kube::Api` calls over HTTP: discovery and
//! CRDs, optimistic concurrency, server-side apply conflicts, the status subresource,
//! generation, selectors, watches (resume, bookmarks, 410), finalizers, cascading and
//! namespace deletion.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{
    Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams, WatchEvent,
    WatchParams,
};
use kube::core::{ApiResource, GroupVersionKind};
use kube::discovery::{Discovery, Scope};
use kube::ResourceExt;
use serde_json::{json, Value};
use siteboot_e2e::emulator::{Emulator, EmulatorHandle};

const DEADLINE: Duration = Duration::from_secs(30);

fn cm(name: &str, data: Value) -> ConfigMap {
    serde_json::from_value(
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data}),
    )
    .unwrap()
}

fn api_code<T: std::fmt::Debug>(r: kube::Result<T>) -> (u16, String, String) {
    match r {
        Err(kube::Error::Api(s)) => (s.code, s.reason.clone(), s.message.clone()),
        other => panic!("expected an API error, got {other:?}"),
    }
}

async fn start() -> Result<(EmulatorHandle, kube::Client)> {
    let emu = Emulator::start().await?;
    let client = emu.client().await?;
    Ok((emu, client))
}

fn widget_crd(scope: &str) -> CustomResourceDefinition {
    serde_json::from_value(json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {"group": "example.com", "scope": scope,
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "shortNames": ["wd"]},
            "versions": [{"name": "v1", "served": true, "storage": true, "subresources": {"status": {}},
                          "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}
    }))
    .unwrap()
}

#[tokio::test]
async fn discovery_serves_builtins_and_runtime_crds() -> Result<()> {
    let (_emu, client) = start().await?;
    let d = Discovery::new(client.clone()).run().await?;
    for (group, kind) in [
        ("apps", "Deployment"),
        ("coordination.k8s.io", "Lease"),
        ("", "Secret"),
        ("batch", "Job"),
        ("rbac.authorization.k8s.io", "ClusterRole"),
        ("events.k8s.io", "Event"),
    ] {
        let g = d
            .get(group)
            .with_context(|| format!("group {group:?} missing"))?;
        g.recommended_kind(kind)
            .with_context(|| format!("{kind} missing"))?;
    }
    assert!(!d.has_group("example.com"));

    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let created = crds
        .create(&PostParams::default(), &widget_crd("Namespaced"))
        .await?;
    let conditions = created
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    for ty in ["Established", "NamesAccepted"] {
        assert!(
            conditions
                .iter()
                .any(|c| c.type_ == ty && c.status == "True"),
            "{ty} not True: {conditions:?}"
        );
    }

    for aggregated in [false, true] {
        let d = if aggregated {
            Discovery::new(client.clone()).run_aggregated().await?
        } else {
            Discovery::new(client.clone()).run().await?
        };
        let (ar, caps) = d
            .get("example.com")
            .context("crd group not discovered")?
            .recommended_kind("Widget")
            .context("Widget")?;
        assert_eq!(ar.plural, "widgets");
        assert_eq!(caps.scope, Scope::Namespaced);
        assert!(
            caps.subresources
                .iter()
                .any(|(sub, _)| sub.plural == "widgets/status" || sub.plural == "status"),
            "{:?}",
            caps.subresources
        );
    }

    let ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("example.com", "v1", "Widget"),
        "widgets",
    );
    let widgets: Api<DynamicObject> = Api::namespaced_with(client.clone(), "default", &ar);
    let mut w = DynamicObject::new("w1", &ar);
    w.data = json!({"spec": {"size": 3}, "status": {"ignored": true}});
    let w = widgets.create(&PostParams::default(), &w).await?;
    assert_eq!(w.data["spec"]["size"], 3);
    assert!(
        w.data.get("status").is_none(),
        "status is dropped on create when a status subresource exists"
    );
    assert_eq!(widgets.list(&ListParams::default()).await?.items.len(), 1);

    // Deleting the CRD removes its objects and its discovery entry.
    crds.delete("widgets.example.com", &DeleteParams::default())
        .await?;
    assert!(!Discovery::new(client.clone())
        .run()
        .await?
        .has_group("example.com"));
    Ok(())
}

#[tokio::test]
async fn invalid_crd_is_rejected() -> Result<()> {
    let (_emu, client) = start().await?;
    let mut crd = widget_crd("Namespaced");
    crd.metadata.name = Some("wrong.example.com".into());
    let (code, reason, msg) = api_code(
        Api::<CustomResourceDefinition>::all(client)
            .create(&PostParams::default(), &crd)
            .await,
    );
    assert_eq!((code, reason.as_str()), (422, "Invalid"), "{msg}");
    Ok(())
}

#[tokio::test]
async fn writes_carry_metadata_and_stale_versions_conflict() -> Result<()> {
    let (_emu, client) = start().await?;
    let cms: Api<ConfigMap> = Api::default_namespaced(client.clone());
    let a = cms
        .create(&PostParams::default(), &cm("a", json!({"k": "1"})))
        .await?;
    assert!(a.metadata.uid.is_some() && a.metadata.creation_timestamp.is_some());
    let rv1: u64 = a.resource_version().unwrap().parse()?;
    let (code, reason, _) = api_code(
        cms.create(&PostParams::default(), &cm("a", json!({})))
            .await,
    );
    assert_eq!((code, reason.as_str()), (409, "AlreadyExists"));

    let mut fresh = a.clone();
    fresh.data = Some([("k".to_string(), "2".to_string())].into());
    let b = cms.replace("a", &PostParams::default(), &fresh).await?;
    assert!(b.resource_version().unwrap().parse::<u64>()? > rv1);
    // `fresh` still carries the old resourceVersion.
    let (code, reason, _) = api_code(cms.replace("a", &PostParams::default(), &fresh).await);
    assert_eq!((code, reason.as_str()), (409, "Conflict"));
    let (code, _, _) = api_code(cms.get("missing").await);
    assert_eq!(code, 404);

    let mut gen = cm("", json!({}));
    gen.metadata.name = None;
    gen.metadata.generate_name = Some("gen-".into());
    let g = cms.create(&PostParams::default(), &gen).await?;
    assert!(
        g.name_any().starts_with("gen-") && g.name_any().len() == 9,
        "{}",
        g.name_any()
    );

    // Merge and JSON patches; a stale resourceVersion inside a patch conflicts too.
    let merged = cms
        .patch(
            "a",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"m": "x"}})),
        )
        .await?;
    assert_eq!(merged.data.unwrap()["m"], "x");
    let jp: json_patch::Patch =
        serde_json::from_value(json!([{"op": "add", "path": "/data/j", "value": "y"}]))?;
    let patched = cms
        .patch("a", &PatchParams::default(), &Patch::<()>::Json(jp))
        .await?;
    assert_eq!(patched.data.unwrap()["j"], "y");
    let stale = json!({"metadata": {"resourceVersion": rv1.to_string()}, "data": {"z": "1"}});
    assert_eq!(
        api_code(
            cms.patch("a", &PatchParams::default(), &Patch::Merge(stale))
                .await
        )
        .0,
        409
    );

    // Objects need an existing namespace.
    let (code, _, _) = api_code(
        Api::<ConfigMap>::namespaced(client, "nowhere")
            .create(&PostParams::default(), &cm("x", json!({})))
            .await,
    );
    assert_eq!(code, 404);
    Ok(())
}

#[tokio::test]
async fn server_side_apply_tracks_owners_and_conflicts() -> Result<()> {
    let (_emu, client) = start().await?;
    let cms: Api<ConfigMap> = Api::default_namespaced(client.clone());
    let cfg = |v: &str| json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ssa"}, "data": {"key": v}});
    let created = cms
        .patch("ssa", &PatchParams::apply("alice"), &Patch::Apply(cfg("a")))
        .await?;
    let managers: Vec<String> = created
        .managed_fields()
        .iter()
        .filter_map(|m| m.manager.clone())
        .collect();
    assert_eq!(managers, ["alice"]);

    let (code, reason, message) = api_code(
        cms.patch("ssa", &PatchParams::apply("bob"), &Patch::Apply(cfg("b")))
            .await,
    );
    assert_eq!((code, reason.as_str()), (409, "Conflict"));
    assert!(
        message.contains("\"alice\"") && message.contains(".data.key"),
        "{message}"
    );

    // Same value: shared ownership, no conflict.
    cms.patch("ssa", &PatchParams::apply("carol"), &Patch::Apply(cfg("a")))
        .await?;
    let forced = cms
        .patch(
            "ssa",
            &PatchParams::apply("bob").force(),
            &Patch::Apply(cfg("b")),
        )
        .await?;
    assert_eq!(forced.data.as_ref().unwrap()["key"], "b");
    let owners: Vec<String> = forced
        .managed_fields()
        .iter()
        .filter_map(|m| m.manager.clone())
        .collect();
    assert_eq!(
        owners,
        ["bob"],
        "forcing takes the field from alice and carol"
    );

    // Without fieldManager the server refuses an apply (kube checks this client-side, so send raw).
    let req = hyper::http::Request::patch("/api/v1/namespaces/default/configmaps/ssa")
        .header("content-type", "application/apply-patch+yaml")
        .body(serde_json::to_vec(&cfg("c"))?)?;
    let (code, _, _) = api_code(client.request::<Value>(req).await);
    assert_eq!(code, 400);

    // Dropping a field from a later apply removes it.
    let two = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ssa"}, "data": {"key": "b", "extra": "e"}});
    cms.patch("ssa", &PatchParams::apply("bob"), &Patch::Apply(two))
        .await?;
    let one = cms
        .patch("ssa", &PatchParams::apply("bob"), &Patch::Apply(cfg("b")))
        .await?;
    assert!(!one.data.unwrap().contains_key("extra"));
    Ok(())
}

fn deployment(name: &str, replicas: i32) -> Deployment {
    serde_json::from_value(json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}},
        "status": {"replicas": 99}}))
    .unwrap()
}

#[tokio::test]
async fn status_subresource_and_generation() -> Result<()> {
    let (_emu, client) = start().await?;
    let deps: Api<Deployment> = Api::default_namespaced(client);
    let d = deps
        .create(&PostParams::default(), &deployment("web", 1))
        .await?;
    assert_eq!(d.metadata.generation, Some(1));
    assert!(d.status.is_none(), "status is not writable through create");

    // Main-resource writes ignore status; label changes keep the generation.
    let p = deps
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"x": "y"}}, "status": {"replicas": 5}})),
        )
        .await?;
    assert!(p.status.is_none());
    assert_eq!(p.metadata.generation, Some(1));
    // Status writes ignore spec and do not bump the generation.
    let s = deps
        .patch_status(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 7}, "status": {"replicas": 1}})),
        )
        .await?;
    assert_eq!(s.status.unwrap().replicas, Some(1));
    assert_eq!(s.spec.unwrap().replicas, Some(1));
    assert_eq!(s.metadata.generation, Some(1));
    // Spec changes bump it.
    let g = deps
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 3}})),
        )
        .await?;
    assert_eq!(g.metadata.generation, Some(2));
    assert_eq!(
        g.status.as_ref().unwrap().replicas,
        Some(1),
        "status survives main-resource writes"
    );
    let rv = g.resource_version();
    // A no-op write does not create a new version.
    let same = deps
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 3}})),
        )
        .await?;
    assert_eq!(same.resource_version(), rv);
    Ok(())
}

#[tokio::test]
async fn label_and_field_selectors() -> Result<()> {
    let (_emu, client) = start().await?;
    let cms: Api<ConfigMap> = Api::default_namespaced(client.clone());
    for (name, labels) in [
        ("a", json!({"app": "web", "tier": "front"})),
        ("b", json!({"app": "db"})),
        ("c", json!({})),
    ] {
        let mut c = cm(name, json!({}));
        c.metadata.labels = Some(serde_json::from_value(labels)?);
        cms.create(&PostParams::default(), &c).await?;
    }
    let cases = [
        ("app=web", "", vec!["a"]),
        ("app==db", "", vec!["b"]),
        ("app!=web", "", vec!["b", "c"]),
        ("app in (web,db)", "", vec!["a", "b"]),
        ("app notin (web)", "", vec!["b", "c"]),
        ("app", "", vec!["a", "b"]),
        ("!app", "", vec!["c"]),
        ("", "metadata.name=b", vec!["b"]),
        ("", "metadata.name!=b", vec!["a", "c"]),
        (
            "app",
            "metadata.namespace=default,metadata.name!=a",
            vec!["b"],
        ),
    ];
    for (labels, fields, want) in cases {
        let list = cms
            .list(&ListParams::default().labels(labels).fields(fields))
            .await?;
        let names: Vec<String> = list.items.iter().map(|c| c.name_any()).collect();
        assert_eq!(names, want, "labels {labels:?} fields {fields:?}");
    }
    let (code, _, msg) = api_code(cms.list(&ListParams::default().fields("data.x=1")).await);
    assert_eq!(code, 400, "{msg}");

    // Pagination through limit/continue.
    let page = cms.list(&ListParams::default().limit(2)).await?;
    assert_eq!(page.items.len(), 2);
    let token = page.metadata.continue_.clone().context("continue token")?;
    let rest = cms
        .list(&ListParams::default().limit(2).continue_token(&token))
        .await?;
    assert_eq!(
        rest.items.iter().map(|c| c.name_any()).collect::<Vec<_>>(),
        ["c"]
    );
    assert!(rest.metadata.continue_.is_none_or(|c| c.is_empty()));
    // Cluster-wide list of a namespaced type.
    assert_eq!(
        Api::<ConfigMap>::all(client)
            .list(&ListParams::default())
            .await?
            .items
            .len(),
        3
    );
    Ok(())
}

async fn next_event<S>(stream: &mut S) -> Result<WatchEvent<ConfigMap>>
where
    S: futures::Stream<Item = kube::Result<WatchEvent<ConfigMap>>> + Unpin,
{
    match tokio::time::timeout(DEADLINE, stream.try_next()).await {
        Ok(Ok(Some(ev))) => Ok(ev),
        Ok(Ok(None)) => bail!("watch ended"),
        Ok(Err(e)) => Err(e.into()),
        Err(_) => bail!("no watch event within {DEADLINE:?}"),
    }
}

#[tokio::test]
async fn watch_resumes_sends_bookmarks_and_expires() -> Result<()> {
    let emu = Emulator::builder()
        .history_limit(50)
        .bookmark_interval(Duration::from_millis(200))
        .start()
        .await?;
    let client = emu.client().await?;
    let cms: Api<ConfigMap> = Api::default_namespaced(client.clone());
    let a = cms
        .create(&PostParams::default(), &cm("a", json!({"v": "0"})))
        .await?;
    let from = a.resource_version().unwrap();
    for v in ["1", "2"] {
        cms.patch(
            "a",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"v": v}})),
        )
        .await?;
    }
    cms.create(&PostParams::default(), &cm("b", json!({})))
        .await?;
    cms.delete("b", &DeleteParams::default()).await?;

    let mut stream = cms
        .watch(&WatchParams::default().disable_bookmarks(), &from)
        .await?
        .boxed();
    let mut seen = Vec::new();
    for _ in 0..4 {
        seen.push(match next_event(&mut stream).await? {
            WatchEvent::Added(c) => format!("ADDED {}", c.name_any()),
            WatchEvent::Modified(c) => {
                format!("MODIFIED {} {}", c.name_any(), c.data.unwrap()["v"])
            }
            WatchEvent::Deleted(c) => format!("DELETED {}", c.name_any()),
            other => bail!("unexpected {other:?}"),
        });
    }
    assert_eq!(
        seen,
        ["MODIFIED a 1", "MODIFIED a 2", "ADDED b", "DELETED b"]
    );

    // Bookmarks arrive on a quiet watch and carry the current version.
    let current = emu.resource_version().to_string();
    let mut quiet = cms.watch(&WatchParams::default(), &current).await?.boxed();
    match next_event(&mut quiet).await? {
        WatchEvent::Bookmark(b) => {
            assert!(b.metadata.resource_version.parse::<u64>()? >= current.parse::<u64>()?)
        }
        other => bail!("expected a bookmark, got {other:?}"),
    }

    // After compaction the old version is gone: an ERROR event with a 410 Status.
    emu.compact_history();
    let mut gone = cms.watch(&WatchParams::default(), &from).await?.boxed();
    match next_event(&mut gone).await? {
        WatchEvent::Error(status) => assert_eq!(status.code, 410, "{status:?}"),
        other => bail!("expected 410, got {other:?}"),
    }
    // History pushed out by many writes expires the same way.
    let mid = emu.resource_version().to_string();
    for i in 0..60 {
        cms.patch(
            "a",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"v": format!("n{i}")}})),
        )
        .await?;
    }
    let mut gone = cms.watch(&WatchParams::default(), &mid).await?.boxed();
    assert!(matches!(next_event(&mut gone).await?, WatchEvent::Error(s) if s.code == 410));
    Ok(())
}

#[tokio::test]
async fn watch_timeout_and_selector_transitions() -> Result<()> {
    let (emu, client) = start().await?;
    let cms: Api<ConfigMap> = Api::default_namespaced(client);
    let rv = emu.resource_version().to_string();
    let mut stream = cms
        .watch(
            &WatchParams::default()
                .labels("app=web")
                .timeout(2)
                .disable_bookmarks(),
            &rv,
        )
        .await?
        .boxed();
    cms.create(&PostParams::default(), &cm("s", json!({})))
        .await?;
    cms.patch(
        "s",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"app": "web"}}})),
    )
    .await?;
    cms.patch(
        "s",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"app": "db"}}})),
    )
    .await?;
    assert!(matches!(next_event(&mut stream).await?, WatchEvent::Added(c) if c.name_any() == "s"));
    assert!(
        matches!(next_event(&mut stream).await?, WatchEvent::Deleted(c) if c.name_any() == "s")
    );
    // timeoutSeconds=2 ends the stream.
    let end = tokio::time::timeout(DEADLINE, stream.next())
        .await
        .context("watch did not time out")?;
    assert!(end.is_none(), "{end:?}");
    Ok(())
}

#[tokio::test]
async fn finalizers_hold_deletion() -> Result<()> {
    let (_emu, client) = start().await?;
    let cms: Api<ConfigMap> = Api::default_namespaced(client);
    let mut c = cm("held", json!({}));
    c.metadata.finalizers = Some(vec!["example.com/hold".into()]);
    cms.create(&PostParams::default(), &c).await?;
    let pending = cms
        .delete("held", &DeleteParams::default())
        .await?
        .left()
        .context("delete should be pending")?;
    assert!(pending.metadata.deletion_timestamp.is_some());
    assert!(cms.get("held").await?.metadata.deletion_timestamp.is_some());
    // New finalizers cannot be added while deleting.
    let add = json!({"metadata": {"finalizers": ["example.com/hold", "example.com/more"]}});
    assert_eq!(
        api_code(
            cms.patch("held", &PatchParams::default(), &Patch::Merge(add))
                .await
        )
        .0,
        422
    );
    cms.patch(
        "held",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await?;
    assert_eq!(api_code(cms.get("held").await).0, 404);
    Ok(())
}

fn owned(name: &str, owner: &ConfigMap, finalizer: bool) -> ConfigMap {
    let mut c = cm(name, json!({}));
    c.metadata.owner_references = Some(vec![serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "ConfigMap", "name": owner.name_any(), "uid": owner.uid().unwrap()}))
    .unwrap()]);
    if finalizer {
        c.metadata.finalizers = Some(vec!["example.com/hold".into()]);
    }
    c
}

#[tokio::test]
async fn owner_references_cascade() -> Result<()> {
    let (_emu, client) = start().await?;
    let cms: Api<ConfigMap> = Api::default_namespaced(client);
    let pp = PostParams::default();

    // Background: dependents (and their dependents) go with the owner.
    let owner = cms.create(&pp, &cm("owner", json!({}))).await?;
    let child = cms.create(&pp, &owned("child", &owner, false)).await?;
    cms.create(&pp, &owned("grandchild", &child, false)).await?;
    cms.delete("owner", &DeleteParams::background()).await?;
    for name in ["owner", "child", "grandchild"] {
        assert_eq!(
            api_code(cms.get(name).await).0,
            404,
            "{name} should be gone"
        );
    }

    // Foreground: the owner waits for a dependent held by a finalizer.
    let owner = cms.create(&pp, &cm("fg", json!({}))).await?;
    cms.create(&pp, &owned("fg-child", &owner, true)).await?;
    let waiting = cms
        .delete("fg", &DeleteParams::foreground())
        .await?
        .left()
        .context("foreground delete waits")?;
    assert!(waiting
        .finalizers()
        .iter()
        .any(|f| f == "foregroundDeletion"));
    assert!(cms
        .get("fg-child")
        .await?
        .metadata
        .deletion_timestamp
        .is_some());
    cms.patch(
        "fg-child",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await?;
    assert_eq!(api_code(cms.get("fg").await).0, 404);

    // Orphan: the dependent stays and loses its owner reference.
    let owner = cms.create(&pp, &cm("orph", json!({}))).await?;
    cms.create(&pp, &owned("orph-child", &owner, false)).await?;
    cms.delete("orph", &DeleteParams::orphan()).await?;
    assert!(cms.get("orph-child").await?.owner_references().is_empty());
    Ok(())
}

#[tokio::test]
async fn namespace_deletion_removes_contents() -> Result<()> {
    let (_emu, client) = start().await?;
    let nss: Api<Namespace> = Api::all(client.clone());
    nss.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "team"}}))?,
    )
    .await?;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "team");
    cms.create(&PostParams::default(), &cm("plain", json!({})))
        .await?;
    let mut held = cm("held", json!({}));
    held.metadata.finalizers = Some(vec!["example.com/hold".into()]);
    cms.create(&PostParams::default(), &held).await?;

    nss.delete("team", &DeleteParams::default()).await?;
    let ns = nss.get("team").await?;
    assert_eq!(
        ns.status.and_then(|s| s.phase).as_deref(),
        Some("Terminating")
    );
    assert_eq!(api_code(cms.get("plain").await).0, 404);
    let (code, reason, _) = api_code(
        cms.create(&PostParams::default(), &cm("late", json!({})))
            .await,
    );
    assert_eq!((code, reason.as_str()), (403, "Forbidden"));
    cms.patch(
        "held",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await?;
    assert_eq!(api_code(nss.get("team").await).0, 404);
    Ok(())
}

#[tokio::test]
async fn kubeconfig_file_builds_a_working_client() -> Result<()> {
    let emu = Emulator::start().await?;
    let text = std::fs::read_to_string(emu.kubeconfig_path())?;
    assert!(text.contains(emu.url()) && emu.url().starts_with("http://127.0.0.1:"));
    let kc = kube::config::Kubeconfig::read_from(emu.kubeconfig_path())?;
    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default()).await?;
    let client = kube::Client::try_from(config)?;
    let names: Vec<String> = Api::<Namespace>::all(client.clone())
        .list(&ListParams::default())
        .await?
        .items
        .iter()
        .map(|n| n.name_any())
        .collect();
    assert_eq!(
        names,
        ["default", "kube-node-lease", "kube-public", "kube-system"]
    );
    let v = client.apiserver_version().await?;
    assert_eq!(v.minor, "34");
    emu.shutdown().await;
    assert!(
        Api::<Namespace>::all(client)
            .list(&ListParams::default())
            .await
            .is_err(),
        "the server is gone after shutdown"
    );
    Ok(())
}
