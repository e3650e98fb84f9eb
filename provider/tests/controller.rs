//! The real kube-runtime `Controller` (watches and mappers included) against the API
//! emulator and the fake operator API: Cluster and Secret events must wake the right
//! config, and token checks must run on their own.

mod support;

use kube::api::DeleteParams;
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
    env.config("cfg1", "c1", Some(&m), env.config_spec()).await?;
    eventually(60, "WaitingForClusterInfrastructure", || async {
        let cfg = env.get_config("cfg1").await.ok()?;
        (cfg.status?.condition("DataSecretAvailable")?.reason == "WaitingForClusterInfrastructure").then_some(())
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
    env.secrets().delete("cfg1", &DeleteParams::default()).await?;
    let second = eventually(60, "a recreated Secret", || async {
        let s = env.secrets().get_opt("cfg1").await.ok()??;
        let id = s.metadata.annotations?.get("bootstrap.cluster.x-k8s.io/siteboot-token-id")?.clone();
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
