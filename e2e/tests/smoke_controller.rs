//! A kube-runtime `Controller` reconciling a custom resource through the emulator over
//! real HTTP: the CRD is created at run time, a watch event triggers the reconcile, the
//! reconcile applies status through the status subresource, and the test sees it land.
//! Also kube-runtime's finalizer helper (JSON patches with `test`, `deletionTimestamp`) and a
//! reflector on a streaming-list (`sendInitialEvents`) watcher.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::finalizer::{finalizer, Event as FinalizerEvent};
use kube::runtime::{reflector, watcher, WatchStreamExt};
use kube::{CustomResource, CustomResourceExt, ResourceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;
use siteboot_e2e::emulator::Emulator;

const DEADLINE: Duration = Duration::from_secs(30);
const MANAGER: &str = "smoke-controller";

#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, JsonSchema)]
#[kube(
    group = "smoke.siteboot.dev",
    version = "v1",
    kind = "Gadget",
    namespaced,
    status = "GadgetStatus"
)]
pub struct GadgetSpec {
    value: String,
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, JsonSchema)]
pub struct GadgetStatus {
    observed: String,
    generation: i64,
}

#[derive(Debug, thiserror::Error)]
#[error("reconcile gadget: {0}")]
struct ReconcileError(#[from] kube::Error);

async fn reconcile(g: Arc<Gadget>, client: Arc<kube::Client>) -> Result<Action, ReconcileError> {
    let api: Api<Gadget> = Api::namespaced((*client).clone(), &g.namespace().unwrap_or_default());
    let status = json!({"apiVersion": "smoke.siteboot.dev/v1", "kind": "Gadget",
        "status": {"observed": g.spec.value, "generation": g.metadata.generation.unwrap_or_default()}});
    api.patch_status(
        &g.name_any(),
        &PatchParams::apply(MANAGER).force(),
        &Patch::Apply(status),
    )
    .await?;
    Ok(Action::await_change())
}

fn error_policy(_: Arc<Gadget>, _: &ReconcileError, _: Arc<kube::Client>) -> Action {
    Action::requeue(Duration::from_millis(200))
}

async fn poll<T, F, Fut>(what: &str, mut probe: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = probe().await {
            return Ok(v);
        }
        if start.elapsed() > DEADLINE {
            bail!("{what} did not happen within {DEADLINE:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn controller_reconciles_a_custom_resource_over_http() -> Result<()> {
    let emu = Emulator::builder()
        .bookmark_interval(Duration::from_millis(500))
        .start()
        .await?;
    let client = emu.client().await?;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.create(&PostParams::default(), &Gadget::crd()).await?;
    poll("CRD established", || {
        let crds = crds.clone();
        async move {
            let crd = crds.get("gadgets.smoke.siteboot.dev").await.ok()?;
            let conds = crd.status?.conditions?;
            conds
                .iter()
                .any(|c| c.type_ == "Established" && c.status == "True")
                .then_some(())
        }
    })
    .await?;

    let gadgets: Api<Gadget> = Api::default_namespaced(client.clone());
    let controller = Controller::new(gadgets.clone(), watcher::Config::default())
        .run(reconcile, error_policy, Arc::new(client.clone()))
        .for_each(|_| async {});
    let controller = tokio::spawn(controller);

    gadgets
        .create(
            &PostParams::default(),
            &Gadget::new(
                "g1",
                GadgetSpec {
                    value: "one".into(),
                },
            ),
        )
        .await?;
    let observed = |want: &'static str, generation: i64| {
        let gadgets = gadgets.clone();
        move || {
            let gadgets = gadgets.clone();
            async move {
                let st = gadgets.get_status("g1").await.ok()?.status?;
                (st.observed == want && st.generation == generation).then_some(())
            }
        }
    };
    poll("status for the created gadget", observed("one", 1)).await?;

    // A spec change is a new generation: the watch delivers it and the status follows.
    gadgets
        .patch(
            "g1",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"value": "two"}})),
        )
        .await?;
    poll("status for the changed gadget", observed("two", 2)).await?;

    let g = gadgets.get("g1").await?;
    let owners: Vec<String> = g
        .managed_fields()
        .iter()
        .filter_map(|m| m.manager.clone())
        .collect();
    assert!(owners.iter().any(|m| m == MANAGER), "{owners:?}");
    controller.abort();
    Ok(())
}

const FINALIZER: &str = "smoke.siteboot.dev/cleanup";

#[derive(Clone)]
struct FinalizerCtx {
    client: kube::Client,
    cleaned: Arc<std::sync::Mutex<Vec<String>>>,
}

async fn reconcile_with_finalizer(
    g: Arc<Gadget>,
    ctx: Arc<FinalizerCtx>,
) -> Result<Action, FinalizerError> {
    let api: Api<Gadget> = Api::namespaced(ctx.client.clone(), &g.namespace().unwrap_or_default());
    finalizer(&api, FINALIZER, g, |event| async move {
        if let FinalizerEvent::Cleanup(g) = event {
            ctx.cleaned.lock().unwrap().push(g.name_any());
        }
        Ok::<_, ReconcileError>(Action::await_change())
    })
    .await
    .map_err(|e| FinalizerError(e.to_string()))
}

#[derive(Debug, thiserror::Error)]
#[error("finalizer reconcile: {0}")]
struct FinalizerError(String);

#[tokio::test]
async fn finalizer_helper_holds_deletion_until_cleanup() -> Result<()> {
    let emu = Emulator::start().await?;
    let client = emu.client().await?;
    Api::<CustomResourceDefinition>::all(client.clone())
        .create(&PostParams::default(), &Gadget::crd())
        .await?;
    let gadgets: Api<Gadget> = Api::default_namespaced(client.clone());
    let ctx = Arc::new(FinalizerCtx {
        client: client.clone(),
        cleaned: Arc::default(),
    });
    let controller = Controller::new(gadgets.clone(), watcher::Config::default())
        .run(
            reconcile_with_finalizer,
            |_, _, _| Action::requeue(Duration::from_millis(200)),
            ctx.clone(),
        )
        .for_each(|_| async {});
    let controller = tokio::spawn(controller);

    gadgets
        .create(
            &PostParams::default(),
            &Gadget::new("held", GadgetSpec { value: "x".into() }),
        )
        .await?;
    poll("finalizer added", || {
        let gadgets = gadgets.clone();
        async move {
            gadgets
                .get("held")
                .await
                .ok()?
                .finalizers()
                .iter()
                .any(|f| f == FINALIZER)
                .then_some(())
        }
    })
    .await?;
    gadgets.delete("held", &Default::default()).await?;
    poll("object deleted after cleanup", || {
        let gadgets = gadgets.clone();
        async move { gadgets.get_opt("held").await.ok()?.is_none().then_some(()) }
    })
    .await?;
    assert_eq!(*ctx.cleaned.lock().unwrap(), ["held"]);
    controller.abort();
    Ok(())
}

/// A watcher whose resourceVersion fell out of the emulator's history gets 410 on its next
/// watch and starts over with a fresh list, as against a compacted etcd.
#[tokio::test]
async fn watcher_relists_after_history_expiry() -> Result<()> {
    let emu = Emulator::start().await?;
    let client = emu.client().await?;
    let cms: Api<ConfigMap> = Api::default_namespaced(client.clone());
    let cm = |name: &str| -> ConfigMap {
        serde_json::from_value(json!({"metadata": {"name": name}})).unwrap()
    };
    cms.create(&PostParams::default(), &cm("first")).await?;
    // Short watches without bookmarks: the watcher's version only moves with ConfigMap events.
    let config = watcher::Config::default().disable_bookmarks().timeout(1);
    let mut events = watcher(cms.clone(), config).boxed();
    let mut inits = 0;
    let mut saw_gone = false;
    let mut compacted = false;
    let deadline = Instant::now() + DEADLINE;
    while !(saw_gone && inits >= 2) {
        let remaining = deadline.saturating_duration_since(Instant::now());
        let next = tokio::time::timeout(remaining, events.next()).await;
        match next {
            Ok(Some(Ok(watcher::Event::Init))) => inits += 1,
            Ok(Some(Ok(watcher::Event::InitDone))) if !compacted => {
                // Writes to another type move the global version past the watcher's, then the
                // history holding them is dropped.
                let secrets: Api<k8s_openapi::api::core::v1::Secret> =
                    Api::default_namespaced(client.clone());
                secrets
                    .create(
                        &PostParams::default(),
                        &serde_json::from_value(json!({"metadata": {"name": "s"}}))?,
                    )
                    .await?;
                emu.compact_history();
                compacted = true;
            }
            Ok(Some(Err(watcher::Error::WatchError(status)))) => {
                assert_eq!(status.code, 410, "{status:?}");
                saw_gone = true;
            }
            Ok(Some(_)) => {}
            Ok(None) => bail!("watcher ended"),
            Err(_) => {
                bail!("no 410 and relist within {DEADLINE:?} (inits {inits}, gone {saw_gone})")
            }
        }
    }
    Ok(())
}

#[tokio::test]
async fn reflector_on_streaming_list_sees_current_and_new_objects() -> Result<()> {
    let emu = Emulator::start().await?;
    let client = emu.client().await?;
    let cms: Api<ConfigMap> = Api::default_namespaced(client);
    let cm = |name: &str| -> ConfigMap {
        serde_json::from_value(json!({"metadata": {"name": name}})).unwrap()
    };
    cms.create(&PostParams::default(), &cm("before")).await?;
    let (reader, writer) = reflector::store::<ConfigMap>();
    let stream = reflector::reflector(
        writer,
        watcher(cms.clone(), watcher::Config::default().streaming_lists()),
    )
    .applied_objects()
    .for_each(|_| async {});
    let task = tokio::spawn(stream);
    cms.create(&PostParams::default(), &cm("after")).await?;
    poll("reflector holds both objects", || {
        let reader = reader.clone();
        async move {
            let mut names: Vec<String> = reader.state().iter().map(|c| c.name_any()).collect();
            names.sort();
            (names == ["after", "before"]).then_some(())
        }
    })
    .await?;
    task.abort();
    Ok(())
}
