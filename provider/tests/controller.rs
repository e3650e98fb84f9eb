//! The real kube-runtime `Controller` (watches and mappers included) against the API
//! emulator and the fake operator API: Cluster and Secret events must wake the right
//! config, and token checks must run on their own.

mod support;

use kube::api::DeleteParams;
use kube::ResourceExt;
use siteboot_provider::api::ConditionStatus;
use siteboot_wire::operator::TokenState;
use support::{eventually, Env};

#[tokio::test]
async fn controller_reacts_to_cluster_secret_and_registration_changes() -> anyhow::Result<()> {
    let env = Env::start().await?;
    let ctx = env.context().await;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(siteboot_provider::controller::run(ctx, async move {
        let _ = stop_rx.await;
    }));

    env.cluster("c1", false, false).await?;
    let m = env.machine("m1", "c1", "cfg1").await?;
    env.config("cfg1", "c1", Some(&m), env.config_spec())
        .await?;
    eventually(60, "WaitingForClusterInfrastructure", || async {
        let cfg = env.get_config("cfg1").await.ok()?;
        (cfg.status?.condition("DataSecretAvailable")?.reason == "WaitingForClusterInfrastructure")
            .then_some(())
    })
    .await?;

    // Only the Cluster changes: the Cluster watch must map it to the config.
    env.set_infrastructure("c1", true).await?;
    let first = eventually(60, "dataSecretCreated", || async {
        let st = env.get_config("cfg1").await.ok()?.status?;
        st.data_secret_created().then_some(st.token_id?)
    })
    .await?;

    // The owned Secret disappears: the Secret watch wakes the config, which writes a new
    // one with a new token and revokes the old.
    env.secrets()
        .delete("cfg1", &DeleteParams::default())
        .await?;
    let second = eventually(60, "a recreated Secret", || async {
        let s = env.secrets().get_opt("cfg1").await.ok()??;
        let id = s
            .metadata
            .annotations?
            .get("bootstrap.cluster.x-k8s.io/siteboot-token-id")?
            .clone();
        (id != first).then_some(id)
    })
    .await?;
    assert_eq!(env.fake.token(&first).unwrap().state, TokenState::Revoked);

    // Redemption is noticed by the periodic check (2 s in tests) without any watch event.
    env.fake.redeem(&second, "dev-42");
    eventually(60, "Registered=True", || async {
        let cfg = env.get_config("cfg1").await.ok()?;
        (cfg.status?.condition("Registered")?.status == ConditionStatus::True).then_some(())
    })
    .await?;

    let _ = stop_tx.send(());
    tokio::time::timeout(std::time::Duration::from_secs(30), running).await??;
    Ok(())
}

#[tokio::test]
async fn watch_filter_limits_the_controller_to_labelled_objects() -> anyhow::Result<()> {
    let env = Env::start().await?;
    let mut settings = env.context().await.settings.clone();
    settings.watch_filter = Some("shard-a".into());
    let ctx = std::sync::Arc::new(
        siteboot_provider::controller::Context::new(
            env.client.clone(),
            settings,
            Default::default(),
        )
        .await,
    );
    env.cluster("c1", true, false).await?;
    let mb = env.machine("mb", "c1", "cfg-b").await?;
    env.config("cfg-b", "c1", Some(&mb), env.config_spec())
        .await?;
    let ma = env.machine("ma", "c1", "cfg-a").await?;
    env.config_labelled(
        "cfg-a",
        "c1",
        Some(&ma),
        env.config_spec(),
        &[("cluster.x-k8s.io/watch-filter", "shard-a")],
    )
    .await?;

    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(siteboot_provider::controller::run(ctx, async move {
        let _ = stop_rx.await;
    }));
    eventually(60, "cfg-a dataSecretCreated", || async {
        env.get_config("cfg-a")
            .await
            .ok()?
            .status?
            .data_secret_created()
            .then_some(())
    })
    .await?;
    // cfg-b was created first; had the filter let it through it would be done as well.
    let b = env.get_config("cfg-b").await?;
    assert!(
        b.status.is_none() && b.finalizers().is_empty(),
        "unlabelled config untouched"
    );
    assert_eq!(env.fake.mint_bodies().len(), 1);
    let _ = stop_tx.send(());
    tokio::time::timeout(std::time::Duration::from_secs(30), running).await??;
    Ok(())
}
