//! Journey 3, field replacement, with real processes: `siteboot-registration`,
//! `sitebootctl`, two factory-imaged boxes running `siteboot-agent` (see
//! `siteboot_e2e::journey::factory`), a real `git http-backend`, an emulator per box.
//!
//! Box A runs store-0300 at revision R and dies (SIGKILL). The operator mints a claim code
//! with `sitebootctl claim create` (the test reads it off the human output as a tech
//! would); box B, a spare with another serial and a fresh disk, is powered on with the
//! code typed in and hydrates to R. Box A comes back with its old disk: its certificate is
//! refused, it says so and parks (no further changes to its cluster, while B follows the
//! next revision), and the site's history shows the replacement.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;
use siteboot_e2e::git::Change;
use siteboot_e2e::journey::factory::FactoryBox;
use siteboot_e2e::journey::{
    agent_status, eventually, fleet_files, inventory_yaml, report_wall_time, Fleet,
    RegistrationService, SiteSpec,
};
use siteboot_e2e::process::TestRun;

const BATCH: &str = "spares-2026-11";
const SITE: &str = "store-0300";

async fn applied(b: &FactoryBox, revision: &str) -> Result<()> {
    eventually(&format!("{} applied {revision}", b.root.display()), || {
        let s = agent_status(&b.data_dir());
        let r = revision.to_string();
        async move { (s["appliedRevision"] == r.as_str()).then_some(()) }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spare_takes_over_with_a_claim_code_and_the_old_box_is_refused() -> Result<()> {
    let run = TestRun::new("journey_replacement");
    let started = Instant::now();
    let site = SiteSpec {
        id: SITE,
        region: "eu-west",
        city: "nantes",
        expected_serials: vec!["SN-A-0300"],
    };
    let sites = [site.clone()];
    let mut fleet = Fleet::serve(&run, &sites)?;
    let r1 = fleet.repo.head()?;
    let reg = RegistrationService::new(&run, &inventory_yaml(&fleet.url, &sites))?;
    let (_, batch_file) = reg.add_batch(&run, BATCH)?;
    let _service = reg.start(&run).await?;
    reg.operator_token(&run)?;

    // Box A runs the site at R.
    let box_a = FactoryBox::image(&run, "box-a", "SN-A-0300", &reg, (BATCH, &batch_file)).await?;
    let mut agent_a = box_a.power_on(&run, "agent-a", &[])?;
    box_a.cluster.wait_hydrated(&site).await?;
    applied(&box_a, r1.as_str()).await?;
    let before = eventually("the service sees box A at R", || async {
        let s = reg.site(SITE).await.ok()?;
        (s["appliedRevision"] == r1.as_str()).then_some(s)
    })
    .await?;
    let device_a = before["deviceId"].as_str().context("device A")?.to_string();
    // Box A's apply of R was timed on the box and reported with a check-in.
    eventually(
        "the hub exports box A's render and apply durations",
        || async {
            let applied = "{outcome=\"applied\"}";
            let render = reg
                .metric(&format!(
                    "siteboot_site_render_duration_seconds_count{applied}"
                ))
                .await
                .ok()??;
            let apply = reg
                .metric(&format!(
                    "siteboot_site_apply_duration_seconds_count{applied}"
                ))
                .await
                .ok()??;
            (render >= 1.0 && apply >= 1.0).then_some(())
        },
    )
    .await?;

    // Box A dies.
    agent_a.kill()?;

    // The operator mints a claim code; the tech reads it off the screen.
    let minted = reg.ctl(&["claim", "create", "--site", SITE]).await?;
    assert_eq!(minted.code, Some(0), "claim create: {}", minted.stderr);
    let code = minted
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("claim code: "))
        .context("claim create prints `claim code: ...`")?
        .trim()
        .to_string();
    run.register_secret("claim code", &code);

    // Box B: another serial, a fresh disk, the code typed in on first boot.
    let box_b = FactoryBox::image(&run, "box-b", "SN-B-0777", &reg, (BATCH, &batch_file)).await?;
    let mut agent_b = box_b.power_on(&run, "agent-b", &[("SITEBOOT_CLAIM_CODE", &code)])?;
    box_b.cluster.wait_hydrated(&site).await?;
    applied(&box_b, r1.as_str()).await?;
    let after = eventually("the service sees box B at R", || async {
        let s = reg.site(SITE).await.ok()?;
        (s["appliedRevision"] == r1.as_str() && s["deviceId"] != device_a.as_str()).then_some(s)
    })
    .await?;
    let device_b = after["deviceId"].as_str().context("device B")?.to_string();
    let a = reg.ctl_json(&["devices", "show", &device_a]).await?;
    assert_eq!(a["status"], "revoked", "box A's identity is revoked: {a}");

    // Box A comes back with its old disk: refused, parked.
    let mut agent_a = box_a.power_on(&run, "agent-a-restarted", &[])?;
    eventually("box A is refused and parks", || {
        let s = agent_status(&box_a.data_dir());
        let log = agent_a.log();
        async move {
            (s["registration"] == "revoked"
                && log.contains("revoked this device")
                && log.contains("parked"))
            .then_some(())
        }
    })
    .await?;
    assert!(
        !agent_a.log().contains("registering"),
        "box A does not try to take the site back"
    );

    // The site moves on with B; A makes no further changes to its cluster.
    let cms_a: Api<ConfigMap> = Api::namespaced(box_a.cluster.client.clone(), "shop");
    cms_a
        .patch(
            "shop-config",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"tier": "left-alone"}})),
        )
        .await?;
    let baseline = fleet_files(&sites)
        .into_iter()
        .find(|(p, _)| p == "baseline/config.yaml")
        .map(|(_, c)| c)
        .context("baseline")?;
    let r2 = fleet.repo.commit(
        "r2",
        &[Change::write(
            "baseline/config.yaml",
            baseline.replace("tier: baseline", "tier: baseline\n  release: r2"),
        )],
    )?;
    applied(&box_b, r2.as_str()).await?;
    eventually("box B's cluster follows R2", || async {
        (box_b
            .cluster
            .config("shop-config")
            .await?
            .get("release")
            .map(String::as_str)
            == Some("r2"))
        .then_some(())
    })
    .await?;
    let status_a = agent_status(&box_a.data_dir());
    assert_eq!(
        status_a["appliedRevision"],
        r1.as_str(),
        "box A stays where it was: {status_a}"
    );
    let shop_a = box_a
        .cluster
        .config("shop-config")
        .await
        .context("A's shop-config")?;
    assert_eq!(
        shop_a.get("tier").map(String::as_str),
        Some("left-alone"),
        "a parked box repairs nothing"
    );
    assert!(
        agent_a.try_exit()?.is_none(),
        "a parked agent stays up (no restart loop)"
    );

    // The site's history shows the replacement.
    eventually("history shows box B replacing box A", || async {
        let s = reg.site(SITE).await.ok()?;
        let h = s["history"].as_array()?.clone();
        h.iter()
            .any(|e| {
                e["kind"] == "replaced"
                    && e["deviceId"] == device_a.as_str()
                    && e["detail"].as_str().is_some_and(|d| d.contains(&device_b))
            })
            .then_some(())
    })
    .await?;

    for agent in [&mut agent_a, &mut agent_b] {
        agent.terminate_async(Duration::from_secs(20)).await?;
    }
    report_wall_time("journey_replacement", started);
    run.finish();
    Ok(())
}
