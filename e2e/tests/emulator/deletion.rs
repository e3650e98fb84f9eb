//! Deletion: finalizers, ownerReference cascading (background, foreground, orphan), namespace termination.

use super::*;

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
