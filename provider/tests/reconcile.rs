//! The reconcile pipeline against an in-process Kubernetes API emulator and a fake
//! registration operator API: each test calls `reconcile` directly (deterministic) and
//! asserts the resulting objects, status, conditions and registration calls.

mod support;

use std::sync::Arc;

use kube::api::{DeleteParams, Patch, PatchParams};
use kube::ResourceExt;
use serde_json::json;
use siteboot_provider::api::{ConditionStatus, SiteBootstrapConfig};
use siteboot_provider::controller::reconcile;
use siteboot_wire::operator::TokenState;
use support::{Env, CA_PEM, OPERATOR_CREDENTIAL};

async fn run(
    env: &Env,
    ctx: &Arc<siteboot_provider::controller::Context>,
    name: &str,
) -> Result<kube::runtime::controller::Action, siteboot_provider::controller::ReconcileError> {
    let cfg = env.get_config(name).await.expect("config exists");
    reconcile(Arc::new(cfg), ctx.clone()).await
}

fn cond(cfg: &SiteBootstrapConfig, t: &str) -> (ConditionStatus, String, String) {
    let c = cfg
        .status
        .as_ref()
        .and_then(|s| s.condition(t))
        .unwrap_or_else(|| panic!("condition {t} missing"));
    (c.status, c.reason.clone(), c.message.clone())
}

fn secret_value(s: &k8s_openapi::api::core::v1::Secret, key: &str) -> String {
    String::from_utf8(s.data.as_ref().unwrap()[key].0.clone()).unwrap()
}

#[tokio::test]
async fn fresh_config_gets_contract_secret_status_and_conditions() -> anyhow::Result<()> {
    let env = Env::start().await?;
    let ctx = env.context().await;
    let created = env.standard().await?;
    run(&env, &ctx, "cfg1").await?;

    let cfg = env.get_config("cfg1").await?;
    let st = cfg.status.clone().unwrap();
    assert_eq!(st.data_secret_name.as_deref(), Some("cfg1"));
    assert!(st.data_secret_created());
    assert!(st.ready);
    assert_eq!(st.observed_generation, cfg.metadata.generation);
    assert_eq!(st.site_id.as_deref(), Some("store-0142"));
    assert_eq!(cond(&cfg, "Ready").0, ConditionStatus::True);
    assert_eq!(cond(&cfg, "DataSecretAvailable").0, ConditionStatus::True);
    assert_eq!(
        cond(&cfg, "Paused"),
        (ConditionStatus::False, "NotPaused".into(), String::new())
    );
    assert_eq!(cond(&cfg, "Registered").1, "WaitingForDevice");
    assert!(cfg
        .finalizers()
        .contains(&"bootstrap.cluster.x-k8s.io/siteboot".to_string()));

    let token_id = st.token_id.clone().expect("token id in status");
    let token_text = env.fake.token_text(&token_id).unwrap();
    let minted = env.fake.mint_bodies();
    assert_eq!(minted.len(), 1);
    assert_eq!(minted[0].site_id, "store-0142");
    let mref = minted[0].machine.clone().unwrap();
    assert_eq!(
        (mref.namespace.as_str(), mref.name.as_str()),
        ("stores", "m1")
    );
    assert!(mref.uid.is_some());
    assert_eq!(minted[0].ttl_seconds, Some(86_400));

    let secret = env.secrets().get("cfg1").await?;
    assert_eq!(secret.type_.as_deref(), Some("cluster.x-k8s.io/secret"));
    assert_eq!(
        secret
            .labels()
            .get("cluster.x-k8s.io/cluster-name")
            .map(String::as_str),
        Some("c1")
    );
    let owner = &secret.owner_references()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str(), owner.controller),
        ("SiteBootstrapConfig", "cfg1", Some(true))
    );
    assert_eq!(Some(&owner.uid), created.metadata.uid.as_ref());
    assert_eq!(secret_value(&secret, "format"), "cloud-config");
    let value = secret_value(&secret, "value");
    assert!(value.starts_with("#cloud-config"));
    let _: serde_norway::Value = serde_norway::from_str(&value)?;
    assert!(
        value.contains(&token_text)
            || value.contains(&base64::Engine::encode(
                &base64::engine::general_purpose::STANDARD,
                &token_text
            ))
    );
    assert_eq!(
        secret
            .annotations()
            .get("bootstrap.cluster.x-k8s.io/siteboot-token-id"),
        Some(&token_id)
    );

    // The token text and the operator credential appear nowhere but the Secret.
    let status_json = serde_json::to_string(&cfg)?;
    assert!(!status_json.contains(&token_text) && !status_json.contains(OPERATOR_CREDENTIAL));

    // An event tells operators what happened, naming only the token id.
    let events: kube::Api<k8s_openapi::api::events::v1::Event> =
        kube::Api::namespaced(env.client.clone(), "stores");
    let events = events.list(&Default::default()).await?.items;
    let created_event = events
        .iter()
        .find(|e| e.reason.as_deref() == Some("DataSecretCreated"))
        .expect("DataSecretCreated event");
    assert_eq!(
        created_event
            .regarding
            .as_ref()
            .and_then(|r| r.name.as_deref()),
        Some("cfg1")
    );
    assert!(created_event
        .note
        .as_deref()
        .unwrap_or_default()
        .contains(&token_id));
    assert!(!serde_json::to_string(&events)?.contains(&token_text));
    Ok(())
}

#[tokio::test]
async fn a_reconcile_with_nothing_changed_writes_nothing() -> anyhow::Result<()> {
    let env = Env::start().await?;
    let ctx = env.context().await;
    env.standard().await?;
    run(&env, &ctx, "cfg1").await?;
    let rv = env.emu.resource_version();
    let before = env.fake.requests().len();
    for _ in 0..3 {
        run(&env, &ctx, "cfg1").await?;
    }
    assert_eq!(env.emu.resource_version(), rv, "no object was written");
    // Only token checks went to the registration service.
    assert!(env.fake.requests()[before..]
        .iter()
        .all(|r| r.starts_with("GET ")));
    Ok(())
}

#[tokio::test]
async fn pause_sets_only_the_paused_condition() -> anyhow::Result<()> {
    let env = Env::start().await?;
    let ctx = env.context().await;
    env.cluster("c1", true, true).await?;
    let m = env.machine("m1", "c1", "cfg1").await?;
    env.config("cfg1", "c1", Some(&m), env.config_spec())
        .await?;
    run(&env, &ctx, "cfg1").await?;
    let cfg = env.get_config("cfg1").await?;
    assert_eq!(
        cond(&cfg, "Paused"),
        (
            ConditionStatus::True,
            "Paused".into(),
            "Cluster is paused".into()
        )
    );
    let st = cfg.status.clone().unwrap();
    assert_eq!(st.conditions.len(), 1, "only Paused is written");
    assert!(st.observed_generation.is_none() && cfg.finalizers().is_empty());
    assert!(env.secrets().get_opt("cfg1").await?.is_none());
    assert!(env.fake.requests().is_empty());

    // Unpause the Cluster but annotate the config: still paused, by the config.
    env.dyn_api("Cluster")
        .patch(
            "c1",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"paused": false}})),
        )
        .await?;
    env.configs()
        .patch(
            "cfg1",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {"cluster.x-k8s.io/paused": ""}}})),
        )
        .await?;
    run(&env, &ctx, "cfg1").await?;
    assert_eq!(
        cond(&env.get_config("cfg1").await?, "Paused").2,
        "SiteBootstrapConfig is paused"
    );
    assert!(env.fake.requests().is_empty());

    env.configs()
        .patch(
            "cfg1",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {"cluster.x-k8s.io/paused": null}}})),
        )
        .await?;
    run(&env, &ctx, "cfg1").await?;
    let cfg = env.get_config("cfg1").await?;
    assert_eq!(cond(&cfg, "Paused").0, ConditionStatus::False);
    assert!(cfg.status.unwrap().data_secret_created());
    Ok(())
}

#[tokio::test]
async fn waits_for_owner_and_for_cluster_infrastructure() -> anyhow::Result<()> {
    let env = Env::start().await?;
    let ctx = env.context().await;
    env.cluster("c1", false, false).await?;
    env.config("cfg1", "c1", None, env.config_spec()).await?;
    run(&env, &ctx, "cfg1").await?;
    assert_eq!(
        cond(&env.get_config("cfg1").await?, "DataSecretAvailable").1,
        "WaitingForOwner"
    );

    let m = env.machine("m1", "c1", "cfg1").await?;
    let owner = json!([{"apiVersion": "cluster.x-k8s.io/v1beta2", "kind": "Machine", "name": "m1", "uid": m.uid(), "controller": true}]);
    env.configs()
        .patch(
            "cfg1",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"ownerReferences": owner}})),
        )
        .await?;
    run(&env, &ctx, "cfg1").await?;
    let cfg = env.get_config("cfg1").await?;
    assert_eq!(
        cond(&cfg, "DataSecretAvailable").1,
        "WaitingForClusterInfrastructure"
    );
    assert_eq!(cond(&cfg, "Ready").0, ConditionStatus::False);
    assert!(env.secrets().get_opt("cfg1").await?.is_none());
    assert!(env.fake.mint_bodies().is_empty());

    // v1beta1 spelling of the same fact also counts.
    let patch = json!({"status": {"infrastructureReady": true}});
    env.dyn_api("Cluster")
        .patch_status("c1", &PatchParams::default(), &Patch::Merge(patch))
        .await?;
    run(&env, &ctx, "cfg1").await?;
    assert!(env.secrets().get_opt("cfg1").await?.is_some());
    Ok(())
}

#[tokio::test]
async fn keeps_the_token_alive_then_shows_registration_and_stops() -> anyhow::Result<()> {
    let env = Env::start().await?;
    let ctx = env.context().await;
    env.cluster("c1", true, false).await?;
    let m = env.machine("m1", "c1", "cfg1").await?;
    let mut spec = env.config_spec();
    spec["tokenTTL"] = json!("10m");
    env.config("cfg1", "c1", Some(&m), spec).await?;
    run(&env, &ctx, "cfg1").await?;
    let token_id = env
        .get_config("cfg1")
        .await?
        .status
        .unwrap()
        .token_id
        .unwrap();
    assert_eq!(env.fake.mint_bodies()[0].ttl_seconds, Some(600));

    // 1 minute left of 10: less than 5/6 remains, so the reconcile extends it.
    env.fake
        .set_expiry(&token_id, chrono::Utc::now() + chrono::Duration::minutes(1));
    run(&env, &ctx, "cfg1").await?;
    assert!(env
        .fake
        .requests()
        .contains(&format!("POST /v1/operator/tokens/{token_id}/extend")));
    let left = env.fake.token(&token_id).unwrap().expires_at - chrono::Utc::now();
    assert!(left > chrono::Duration::minutes(9), "extended to now + ttl");
    let st = env.get_config("cfg1").await?.status.unwrap();
    assert_eq!(
        st.token_expires_at,
        Some(siteboot_provider::conditions::timestamp(
            env.fake.token(&token_id).unwrap().expires_at
        ))
    );

    env.fake.redeem(&token_id, "dev-7f3a");
    run(&env, &ctx, "cfg1").await?;
    let cfg = env.get_config("cfg1").await?;
    assert_eq!(
        cfg.status.clone().unwrap().device_id.as_deref(),
        Some("dev-7f3a")
    );
    assert_eq!(
        cond(&cfg, "Registered"),
        (
            ConditionStatus::True,
            "Registered".into(),
            "device dev-7f3a registered".into()
        )
    );

    // Registered: no more calls, no more writes.
    let (calls, rv) = (env.fake.requests().len(), env.emu.resource_version());
    env.fake.set_expiry(&token_id, chrono::Utc::now());
    run(&env, &ctx, "cfg1").await?;
    assert_eq!(
        (env.fake.requests().len(), env.emu.resource_version()),
        (calls, rv)
    );
    Ok(())
}

#[tokio::test]
async fn deleting_the_config_revokes_its_unused_token() -> anyhow::Result<()> {
    let env = Env::start().await?;
    let ctx = env.context().await;
    env.standard().await?;
    run(&env, &ctx, "cfg1").await?;
    let token_id = env
        .get_config("cfg1")
        .await?
        .status
        .unwrap()
        .token_id
        .unwrap();
    env.configs()
        .delete("cfg1", &DeleteParams::default())
        .await?;
    assert!(
        env.get_config("cfg1")
            .await?
            .metadata
            .deletion_timestamp
            .is_some(),
        "finalizer holds the object"
    );
    run(&env, &ctx, "cfg1").await?;
    assert_eq!(
        env.fake.token(&token_id).unwrap().state,
        TokenState::Revoked
    );
    assert!(
        env.configs().get_opt("cfg1").await?.is_none(),
        "finalizer removed, object gone"
    );
    Ok(())
}

#[tokio::test]
async fn a_lost_registration_service_degrades_and_never_writes_a_secret() -> anyhow::Result<()> {
    let env = Env::start().await?;
    let ctx = env.context().await;
    env.standard().await?;
    env.fake.set_down(true);
    let err = run(&env, &ctx, "cfg1").await.expect_err("mint fails");
    assert_eq!(err.category(), "registration_unavailable");
    assert!(!err.to_string().contains(OPERATOR_CREDENTIAL));
    let cfg = env.get_config("cfg1").await?;
    let (status, reason, message) = cond(&cfg, "DataSecretAvailable");
    assert_eq!(
        (status, reason.as_str()),
        (ConditionStatus::False, "RegistrationServiceUnavailable")
    );
    assert!(message.contains("503") && !message.contains(OPERATOR_CREDENTIAL));
    assert_eq!(cond(&cfg, "Ready").0, ConditionStatus::False);
    assert!(env.secrets().get_opt("cfg1").await?.is_none());
    assert!(cfg.status.unwrap().token_id.is_none());

    env.fake.set_down(false);
    run(&env, &ctx, "cfg1").await?;
    let cfg = env.get_config("cfg1").await?;
    assert_eq!(cond(&cfg, "DataSecretAvailable").0, ConditionStatus::True);
    assert!(env.secrets().get_opt("cfg1").await?.is_some());
    Ok(())
}

#[tokio::test]
async fn a_token_recorded_without_a_secret_is_revoked_and_replaced() -> anyhow::Result<()> {
    let env = Env::start().await?;
    let ctx = env.context().await;
    env.standard().await?;
    // State left by a reconcile that crashed between recording the token and writing the Secret.
    let orphan = env.fake.mint_direct("store-0142");
    let cfg = env.get_config("cfg1").await?;
    let cfg = env
        .configs()
        .patch(
            "cfg1",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"metadata": {"finalizers": ["bootstrap.cluster.x-k8s.io/siteboot"]}}),
            ),
        )
        .await
        .map(|_| cfg)?;
    env.configs()
        .patch_status(
            &cfg.name_any(),
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"tokenId": orphan}})),
        )
        .await?;
    run(&env, &ctx, "cfg1").await?;
    assert_eq!(env.fake.token(&orphan).unwrap().state, TokenState::Revoked);
    let st = env.get_config("cfg1").await?.status.unwrap();
    let new_id = st.token_id.unwrap();
    assert_ne!(new_id, orphan);
    let secret = env.secrets().get("cfg1").await?;
    assert_eq!(
        secret
            .annotations()
            .get("bootstrap.cluster.x-k8s.io/siteboot-token-id"),
        Some(&new_id)
    );
    Ok(())
}

#[tokio::test]
async fn status_lost_after_the_secret_was_written_is_rebuilt_from_the_secret() -> anyhow::Result<()>
{
    let env = Env::start().await?;
    let ctx = env.context().await;
    env.standard().await?;
    run(&env, &ctx, "cfg1").await?;
    let token_id = env
        .get_config("cfg1")
        .await?
        .status
        .unwrap()
        .token_id
        .unwrap();
    env.configs()
        .patch_status(
            "cfg1",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": null})),
        )
        .await?;
    run(&env, &ctx, "cfg1").await?;
    let st = env.get_config("cfg1").await?.status.unwrap();
    assert_eq!(st.token_id.as_deref(), Some(token_id.as_str()));
    assert!(st.data_secret_created() && st.ready);
    assert_eq!(env.fake.mint_bodies().len(), 1, "no second token");
    Ok(())
}

#[tokio::test]
async fn a_bad_spec_is_reported_and_mints_nothing() -> anyhow::Result<()> {
    let env = Env::start().await?;
    let ctx = env.context().await;
    env.cluster("c1", true, false).await?;
    let m = env.machine("m1", "c1", "cfg1").await?;
    let mut spec = env.config_spec();
    spec["agent"] =
        json!({"preinstalled": true, "url": "https://x/agent", "sha256": "b".repeat(64)});
    env.config("cfg1", "c1", Some(&m), spec).await?;
    run(&env, &ctx, "cfg1").await?;
    let cfg = env.get_config("cfg1").await?;
    let (status, reason, message) = cond(&cfg, "DataSecretAvailable");
    assert_eq!(
        (status, reason.as_str()),
        (ConditionStatus::False, "InvalidSpec")
    );
    assert!(message.contains("spec.agent"), "{message}");
    assert!(env.fake.requests().is_empty());
    assert!(CA_PEM.contains("BEGIN CERTIFICATE"));
    Ok(())
}

#[tokio::test]
async fn ignition_format_writes_an_ignition_document() -> anyhow::Result<()> {
    let env = Env::start().await?;
    let ctx = env.context().await;
    env.cluster("c1", true, false).await?;
    let m = env.machine("m1", "c1", "cfg1").await?;
    let mut spec = env.config_spec();
    spec["format"] = json!("ignition");
    env.config("cfg1", "c1", Some(&m), spec).await?;
    run(&env, &ctx, "cfg1").await?;
    let secret = env.secrets().get("cfg1").await?;
    assert_eq!(secret_value(&secret, "format"), "ignition");
    let doc: serde_json::Value = serde_json::from_str(&secret_value(&secret, "value"))?;
    assert_eq!(doc["ignition"]["version"], "3.3.0");
    Ok(())
}
