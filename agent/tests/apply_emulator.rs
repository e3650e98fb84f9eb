//! Server-side apply, prune and health against the e2e crate's Kubernetes API emulator
//! (served over HTTP on loopback, reached through an unmodified `kube::Client`).

use std::time::{Duration, Instant};

use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::discovery::ApiResource;
use serde_json::{json, Value};
use siteboot_agent::apply::plan::{self, MANAGED_BY, SITE_LABEL};
use siteboot_agent::apply::{Applier, ApplyError};
use siteboot_agent::render::ObjectRef;
use siteboot_e2e::emulator::Emulator;

fn ar(group: &str, version: &str, kind: &str, plural: &str) -> ApiResource {
    ApiResource {
        group: group.into(),
        version: version.into(),
        api_version: if group.is_empty() {
            version.into()
        } else {
            format!("{group}/{version}")
        },
        kind: kind.into(),
        plural: plural.into(),
    }
}

fn namespace() -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}})
}

fn config_map(name: &str, value: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap",
           "metadata": {"name": name, "namespace": "shop"}, "data": {"k": value}})
}

fn crd() -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.io"},
        "spec": {"group": "example.io", "scope": "Namespaced",
                 "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList"},
                 "versions": [{"name": "v1", "served": true, "storage": true,
                               "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}
    })
}

fn widget() -> Value {
    json!({"apiVersion": "example.io/v1", "kind": "Widget",
           "metadata": {"name": "w1", "namespace": "shop"}, "spec": {"size": 3}})
}

fn deployment() -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment",
           "metadata": {"name": "web", "namespace": "shop"},
           "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                    "template": {"metadata": {"labels": {"app": "web"}},
                                 "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}}}})
}

fn refs(objects: &[Value]) -> Vec<ObjectRef> {
    objects.iter().map(|o| ObjectRef::of(o).unwrap()).collect()
}

#[tokio::test]
async fn applies_in_order_labels_prunes_only_its_own_objects_and_reports_health(
) -> anyhow::Result<()> {
    siteboot_agent::run::install_crypto();
    let emu = Emulator::start().await?;
    let client = emu.client().await?;
    let mut applier = Applier::new(client.clone(), "store-0142");

    // The CRD's instance comes first in the list: phases still apply the CRD first.
    let first = vec![
        widget(),
        config_map("a", "1"),
        config_map("b", "1"),
        crd(),
        namespace(),
        deployment(),
    ];
    let applied = applier.apply_all(&first).await?;
    assert_eq!(applied.health.total, 6);
    assert_eq!(
        applied.health.progressing, 1,
        "the Deployment is not available yet"
    );

    let cms: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        "shop",
        &ar("", "v1", "ConfigMap", "configmaps"),
    );
    let a = cms.get("a").await?;
    assert_eq!(
        a.metadata.labels.as_ref().unwrap()[MANAGED_BY],
        "siteboot-agent"
    );
    assert_eq!(
        a.metadata.labels.as_ref().unwrap()[SITE_LABEL],
        "store-0142"
    );
    assert!(a
        .metadata
        .managed_fields
        .unwrap_or_default()
        .iter()
        .any(|m| m.manager.as_deref() == Some(plan::FIELD_MANAGER)));
    let widgets: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        "shop",
        &ar("example.io", "v1", "Widget", "widgets"),
    );
    assert_eq!(widgets.get("w1").await?.data["spec"]["size"], 3);

    // Drift: someone edits an applied field; re-applying restores it.
    cms.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"k": "edited"}})),
    )
    .await?;
    applier.apply_all(&first).await?;
    assert_eq!(cms.get("a").await?.data["data"]["k"], "1");

    // An object the agent did not create, with a name that is in the record.
    cms.create(
        &PostParams::default(),
        &serde_json::from_value(config_map("foreign", "x"))?,
    )
    .await?;
    let mut recorded = refs(&first);
    recorded.push(ObjectRef::of(&config_map("foreign", "x")).unwrap());

    // `b` and the widget left Git.
    let second = vec![namespace(), crd(), config_map("a", "2"), deployment()];
    applier.apply_all(&second).await?;
    let stale = plan::prune_candidates(&recorded, &refs(&second));
    let gone = applier.prune(&stale).await?;
    assert_eq!(
        gone.len(),
        3,
        "b, w1 and foreign leave the record: {gone:?}"
    );
    assert!(cms.get_opt("b").await?.is_none(), "b was pruned");
    assert!(widgets.get_opt("w1").await?.is_none(), "w1 was pruned");
    assert!(
        cms.get_opt("foreign").await?.is_some(),
        "never touch objects the agent did not create"
    );
    assert_eq!(cms.get("a").await?.data["data"]["k"], "2");

    // Health: the Deployment becomes available once its status says so.
    let deps: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        "shop",
        &ar("apps", "v1", "Deployment", "deployments"),
    );
    let generation = deps.get("web").await?.metadata.generation.unwrap_or(1);
    let status = json!({"status": {"observedGeneration": generation, "availableReplicas": 1, "replicas": 1}});
    deps.patch_status("web", &PatchParams::default(), &Patch::Merge(status))
        .await?;
    let health = applier.health(&refs(&second)).await?;
    assert_eq!(
        (health.total, health.healthy, health.progressing),
        (4, 4, 0)
    );
    Ok(())
}

#[tokio::test]
async fn a_rejected_object_names_itself_and_unknown_kinds_are_reported() -> anyhow::Result<()> {
    siteboot_agent::run::install_crypto();
    let emu = Emulator::start().await?;
    let mut applier = Applier::new(emu.client().await?, "s1");
    let unknown =
        json!({"apiVersion": "nothing.example.io/v1", "kind": "Ghost", "metadata": {"name": "g"}});
    let err = applier.apply_all(&[unknown]).await.unwrap_err();
    assert!(matches!(err, ApplyError::UnknownKind { .. }), "{err}");
    assert!(err.to_string().contains("Ghost g"), "{err}");
    // A namespaced object in a namespace that does not exist is refused by the API.
    let start = Instant::now();
    let orphan = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "missing"}});
    let err = applier.apply_all(&[orphan]).await.unwrap_err();
    assert!(start.elapsed() < Duration::from_secs(60));
    assert!(err.to_string().contains("ConfigMap missing/c"), "{err}");
    Ok(())
}
