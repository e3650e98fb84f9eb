//! Journey 2, factory first boot, with real processes: `siteboot-registration` with an
//! enrollment batch (`--add-batch`), `sitebootctl`, `siteboot-agent` on three
//! factory-imaged boxes (only the batch's enrollment config baked in, see
//! `siteboot_e2e::journey::factory`), a real `git http-backend` and an emulator per box.
//!
//! - a box whose serial logistics pre-assigned to store-0200 registers and hydrates;
//! - a box with an unknown serial waits as pending (no site state) until an operator runs
//!   `sitebootctl pending approve ID --site store-0201`, then hydrates that site;
//! - a second box with a cloned serial (the first box's) is refused with 409, the attempt
//!   is in store-0200's history, and its agent says so once and exits 3, the status its
//!   systemd unit does not restart (no retry loop).

use std::time::{Duration, Instant};

use anyhow::{ensure, Result};
use siteboot_e2e::journey::factory::FactoryBox;
use siteboot_e2e::journey::{
    agent_status, eventually, inventory_yaml, report_wall_time, Fleet, RegistrationService,
    SiteSpec,
};
use siteboot_e2e::process::TestRun;

const BATCH: &str = "factory-2026-11";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn factory_boxes_register_by_serial_by_approval_and_clones_are_refused() -> Result<()> {
    let run = TestRun::new("journey_factory");
    let started = Instant::now();
    let sites = [
        SiteSpec {
            id: "store-0200",
            region: "eu-west",
            city: "lyon",
            expected_serials: vec!["SN-FAC-0001"],
        },
        SiteSpec {
            id: "store-0201",
            region: "eu-south",
            city: "turin",
            expected_serials: vec![],
        },
    ];
    let fleet = Fleet::serve(&run, &sites)?;
    let head = fleet.repo.head()?;
    let reg = RegistrationService::new(&run, &inventory_yaml(&fleet.url, &sites))?;
    let (_, batch_file) = reg.add_batch(&run, BATCH)?;
    let _service = reg.start(&run).await?;
    reg.operator_token(&run)?;

    let known =
        FactoryBox::image(&run, "box-known", "SN-FAC-0001", &reg, (BATCH, &batch_file)).await?;
    let unknown = FactoryBox::image(
        &run,
        "box-unknown",
        "SN-FAC-0900",
        &reg,
        (BATCH, &batch_file),
    )
    .await?;
    let clone =
        FactoryBox::image(&run, "box-clone", "SN-FAC-0001", &reg, (BATCH, &batch_file)).await?;
    let mut known_agent = known.power_on(&run, "agent-known", &[])?;
    let mut unknown_agent = unknown.power_on(&run, "agent-unknown", &[])?;

    // 1. The pre-assigned serial registers without a human and hydrates its site.
    known.cluster.wait_hydrated(&sites[0]).await?;
    let site0 = eventually("store-0200 reports the revision", || async {
        let s = reg.site("store-0200").await.ok()?;
        (s["appliedRevision"] == head.as_str()).then_some(s)
    })
    .await?;
    let device0 = site0["deviceId"].as_str().unwrap_or_default().to_string();
    ensure!(!device0.is_empty(), "store-0200 has a device: {site0}");
    let devices = reg
        .ctl_json(&["devices", "list", "--site", "store-0200"])
        .await?;
    assert!(
        devices.to_string().contains("\"enrollment\""),
        "registered via the batch enrollment: {devices}"
    );

    // 2. The unknown serial waits in the approval queue and touches nothing.
    let pending_id = eventually("the unknown box is pending", || async {
        let list = reg.ctl_json(&["pending", "list"]).await.ok()?;
        list.as_array()?
            .iter()
            .find(|p| p["facts"]["serial"] == "SN-FAC-0900")
            .and_then(|p| p["pendingId"].as_str().map(str::to_string))
    })
    .await?;
    assert!(
        unknown.data_dir().join("pending.json").exists(),
        "the agent keeps its pending state"
    );
    assert!(!unknown.data_dir().join("registered.json").exists());
    assert!(
        unknown.cluster.config("shop-config").await.is_none(),
        "nothing applied while pending"
    );
    assert!(
        unknown_agent.try_exit()?.is_none(),
        "the pending agent waits, it does not exit"
    );

    // 3. The clone of the known box: refused, recorded, reported once, no retry loop.
    let mut clone_agent = clone.power_on(&run, "agent-clone", &[])?;
    let status = clone_agent
        .wait_exit_async(Duration::from_secs(120))
        .await?;
    let log = clone_agent.log();
    assert_eq!(
        status.code(),
        Some(i32::from(siteboot_agent::cli::EXIT_REFUSED)),
        "the refused agent exits 3, which its unit does not restart (RestartPreventExitStatus=3):\n{log}"
    );
    assert!(
        log.contains("409")
            && log.contains("already held by an active device")
            && log.contains("restart siteboot-agent"),
        "the refusal is reported clearly, with what to do next:\n{log}"
    );
    assert_eq!(
        log.matches("registering").count(),
        1,
        "one attempt, no retry loop:\n{log}"
    );
    assert!(!clone.data_dir().join("registered.json").exists());
    let history = eventually("store-0200's history records the cloned serial", || async {
        let s = reg.site("store-0200").await.ok()?;
        let h = s["history"].as_array()?.clone();
        h.iter()
            .any(|e| e["kind"] == "serial-conflict")
            .then_some(h)
    })
    .await?;
    let conflict = history
        .iter()
        .find(|e| e["kind"] == "serial-conflict")
        .unwrap();
    assert!(
        conflict["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("SN-FAC-0001"),
        "{conflict}"
    );
    let site0_after = reg.site("store-0200").await?;
    assert_eq!(
        site0_after["deviceId"],
        device0.as_str(),
        "the original box keeps its site"
    );

    // 4. The operator approves the unknown box for store-0201 with the real CLI.
    let approved = reg
        .ctl(&["pending", "approve", &pending_id, "--site", "store-0201"])
        .await?;
    assert_eq!(
        approved.code,
        Some(0),
        "approve: {}{}",
        approved.stdout,
        approved.stderr
    );
    unknown.cluster.wait_hydrated(&sites[1]).await?;
    eventually("the approved box applied the revision", || {
        let s = agent_status(&unknown.data_dir());
        let h = head.as_str().to_string();
        async move { (s["appliedRevision"] == h.as_str() && s["siteId"] == "store-0201").then_some(()) }
    })
    .await?;
    assert!(!unknown.data_dir().join("pending.json").exists());
    let devices = reg
        .ctl_json(&["devices", "list", "--site", "store-0201"])
        .await?;
    assert!(devices.to_string().contains("SN-FAC-0900"), "{devices}");

    for agent in [&mut known_agent, &mut unknown_agent] {
        assert!(
            agent.try_exit()?.is_none(),
            "{} still running",
            agent.name()
        );
        agent.terminate_async(Duration::from_secs(20)).await?;
    }
    report_wall_time("journey_factory", started);
    run.finish();
    Ok(())
}
