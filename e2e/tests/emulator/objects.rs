//! Writes: metadata, resourceVersion conflicts, patches, server-side apply, the status subresource, generation, selectors and pagination.

use super::*;

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

    // Metadata-only lists (kube asks with `as=PartialObjectMetadataList`) carry the names.
    let meta = cms
        .list_metadata(&ListParams::default().labels("app"))
        .await?;
    let names: Vec<String> = meta.items.iter().map(|m| m.name_any()).collect();
    assert_eq!(names, ["a", "b"]);

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

#[tokio::test]
async fn secret_string_data_is_encoded() -> Result<()> {
    let (_emu, client) = start().await?;
    let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::default_namespaced(client);
    let s =
        serde_json::from_value(json!({"metadata": {"name": "s"}, "stringData": {"token": "abc"}}))?;
    let created = secrets.create(&PostParams::default(), &s).await?;
    assert!(created.string_data.is_none());
    assert_eq!(created.type_.as_deref(), Some("Opaque"));
    assert_eq!(created.data.unwrap()["token"].0, b"abc");
    let patch = json!({"stringData": {"token": "xyz"}});
    let patched = secrets
        .patch("s", &PatchParams::default(), &Patch::Merge(patch))
        .await?;
    assert_eq!(patched.data.unwrap()["token"].0, b"xyz");
    Ok(())
}
