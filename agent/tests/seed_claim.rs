//! A replacement box picks its claim code off a seed medium, with the real binaries:
//! `siteboot-registration`, `sitebootctl seed --site S --claim` writing the `cidata` ISO,
//! and `siteboot-agent` on factory-imaged boxes (`siteboot_e2e::journey::factory`: the
//! agent runs as the image's unit starts it, with `--root`, so its default seed path
//! `/dev/disk/by-label/cidata` is `<root>/dev/disk/by-label/cidata`, where the test puts
//! the ISO as udev would link the device).
//!
//! 1. A spare whose serial logistics never saw (enrollment alone would park it for
//!    approval) boots with the seed: it registers with the seed's claim, not the batch
//!    credential, and hydrates the site.
//! 2. A second spare boots with the same, now used, seed: the service refuses the claim,
//!    the agent stops with that error and records the claim id; started again it skips
//!    the seed with a warning (no loop on a spent seed) and falls back to enrollment,
//!    which parks it for approval. While it waits, a fresh seed appears (the tech plugs
//!    in a new stick): it registers with that at once, takes the site over, and the first
//!    spare's identity is revoked.
//! 3. A third spare gets an expired seed: no claim is sent, the warning says how to make
//!    a new one, and enrollment takes over.
//!
//! Every process log is scanned for the claim codes, the batch secret and the operator
//! credential (`TestRun`).

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use chrono::Utc;
use siteboot_e2e::journey::factory::FactoryBox;
use siteboot_e2e::journey::{
    eventually, inventory_yaml, report_wall_time, Fleet, RegistrationService, SiteSpec,
};
use siteboot_e2e::process::TestRun;
use siteboot_wire::iso9660::{write_image, IsoFile, IsoReader};
use siteboot_wire::seed::{self, SeedClaim, CLAIM_FILE};
use siteboot_wire::ClaimCode;

const BATCH: &str = "spares-2026-11";
const SITE: &str = "store-0400";

/// Puts `iso` where udev links a `cidata` volume, inside the box's root.
fn insert_seed(b: &FactoryBox, iso: &Path) -> Result<()> {
    let by_label = b.root.join("dev/disk/by-label");
    std::fs::create_dir_all(&by_label)?;
    std::fs::copy(iso, by_label.join("cidata"))?;
    Ok(())
}

fn claim_on(iso: &Path) -> Result<SeedClaim> {
    let mut r = IsoReader::open(std::fs::File::open(iso)?)?;
    ensure!(r.volume_id() == "cidata", "volume id {}", r.volume_id());
    Ok(serde_norway::from_slice(
        &r.read_file(CLAIM_FILE, seed::MAX_CLAIM_FILE)?,
    )?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spare_registers_with_the_claim_on_its_seed_and_spent_or_expired_seeds_do_not_loop(
) -> Result<()> {
    let run = TestRun::new("agent_seed_claim");
    let started = Instant::now();
    let site = SiteSpec {
        id: SITE,
        region: "eu-west",
        city: "lyon",
        expected_serials: vec!["SN-DEAD-0400"],
    };
    let sites = [site.clone()];
    let fleet = Fleet::serve(&run, &sites)?;
    let reg = RegistrationService::new(&run, &inventory_yaml(&fleet.url, &sites))?;
    let (_, batch_file) = reg.add_batch(&run, BATCH)?;
    let _service = reg.start(&run).await?;
    reg.operator_token(&run)?;

    // The operator writes the seed; it prints the claim id, never the code.
    let iso = run.dir().join("store-0400-seed.iso");
    let iso_arg = iso.display().to_string();
    let out = reg
        .ctl(&["seed", "--site", SITE, "--claim", "--iso", &iso_arg])
        .await?;
    ensure!(out.code == Some(0), "sitebootctl seed: {}", out.stderr);
    let claim = claim_on(&iso)?;
    run.register_secret("seed claim code", claim.claim_code.expose());
    ensure!(
        out.stdout.contains(&format!("claimId: {}", claim.claim_id)),
        "{}",
        out.stdout
    );
    ensure!(!out.stdout.contains(claim.claim_code.expose()));

    // 1. The spare registers with the seed's claim and hydrates.
    let spare =
        FactoryBox::image(&run, "spare-1", "SN-SPARE-0001", &reg, (BATCH, &batch_file)).await?;
    insert_seed(&spare, &iso)?;
    let powered_on = Instant::now();
    let mut agent = spare.power_on(&run, "agent-spare-1", &[])?;
    spare.cluster.wait_hydrated(&site).await?;
    let log = agent.log();
    ensure!(
        log.contains("registering with the claim code from a seed"),
        "agent log:\n{log}"
    );
    let devices = reg.ctl_json(&["devices", "list", "--site", SITE]).await?;
    let ours = devices
        .as_array()
        .and_then(|a| a.iter().find(|d| d["facts"]["serial"] == "SN-SPARE-0001"))
        .context("spare-1 in the device list")?;
    ensure!(ours["registeredVia"] == "claim", "{ours}");
    agent.terminate(Duration::from_secs(10))?;
    let seeded_in = powered_on.elapsed();

    // 2. The same seed in another spare: refused once, then skipped for enrollment.
    let spare2 =
        FactoryBox::image(&run, "spare-2", "SN-SPARE-0002", &reg, (BATCH, &batch_file)).await?;
    insert_seed(&spare2, &iso)?;
    let mut first = spare2.power_on(&run, "agent-spare-2", &[])?;
    let status = first.wait_exit_async(Duration::from_secs(120)).await?;
    ensure!(!status.success(), "a spent claim must not register");
    let refused = std::fs::read_to_string(spare2.data_dir().join("seed-refused.json"))
        .context("the refused claim is recorded")?;
    ensure!(refused.contains(&claim.claim_id), "{refused}");
    let mut again = spare2.power_on(&run, "agent-spare-2-again", &[])?;
    eventually(
        "spare-2 skips the spent seed and waits for approval",
        || {
            let log = again.log();
            async move {
                (log.contains("was refused by the service before")
                    && log.contains("registration pending operator approval"))
                .then_some(())
            }
        },
    )
    .await?;
    ensure!(
        !again
            .log()
            .contains("registering with the claim code from a seed"),
        "the spent seed is not presented again"
    );

    // The tech brings a fresh seed while spare-2 waits: it registers with it at once,
    // takes the site over, and spare-1's identity is revoked.
    let fresh = run.dir().join("fresh-seed.iso");
    let fresh_arg = fresh.display().to_string();
    let out = reg
        .ctl(&["seed", "--site", SITE, "--claim", "--iso", &fresh_arg])
        .await?;
    ensure!(out.code == Some(0), "sitebootctl seed: {}", out.stderr);
    run.register_secret(
        "fresh seed claim code",
        claim_on(&fresh)?.claim_code.expose(),
    );
    let waiting_since = Instant::now();
    insert_seed(&spare2, &fresh)?;
    spare2.cluster.wait_hydrated(&site).await?;
    let picked_up_in = waiting_since.elapsed();
    ensure!(
        again
            .log()
            .contains("a claim seed appeared while waiting for approval"),
        "agent log:\n{}",
        again.log()
    );
    again.terminate(Duration::from_secs(10))?;
    let devices = reg.ctl_json(&["devices", "list", "--site", SITE]).await?;
    let status_of = |serial: &str| {
        devices.as_array().and_then(|a| {
            a.iter()
                .find(|d| d["facts"]["serial"] == serial)
                .map(|d| d["status"].clone())
        })
    };
    ensure!(
        status_of("SN-SPARE-0001") == Some("revoked".into()),
        "spare-1 is replaced: {devices}"
    );
    ensure!(
        status_of("SN-SPARE-0002").is_some_and(|s| s != "revoked"),
        "{devices}"
    );

    // 3. An expired seed: nothing is sent with it, enrollment takes over.
    let code = ClaimCode::from_random(&[7, 7, 7, 7, 7]);
    run.register_secret("expired claim code", code.to_secret_string().expose());
    let expired = SeedClaim::new(
        &reg.url(),
        None,
        None,
        SITE,
        &code,
        Utc::now() - chrono::Duration::hours(1),
    );
    let old_iso = run.dir().join("expired.iso");
    std::fs::write(
        &old_iso,
        write_image(
            "cidata",
            &[
                IsoFile::new("user-data", seed::CLAIM_USER_DATA),
                IsoFile::new("meta-data", seed::meta_data("expired")),
                IsoFile::new(CLAIM_FILE, serde_norway::to_string(&expired)?),
            ],
            Utc::now(),
        )?,
    )?;
    let spare3 =
        FactoryBox::image(&run, "spare-3", "SN-SPARE-0003", &reg, (BATCH, &batch_file)).await?;
    insert_seed(&spare3, &old_iso)?;
    let mut third = spare3.power_on(&run, "agent-spare-3", &[])?;
    eventually("spare-3 ignores the expired seed and enrolls", || {
        let log = third.log();
        async move {
            (log.contains("expired at")
                && log.contains("sitebootctl seed --site store-0400 --claim")
                && log.contains("registration pending operator approval"))
            .then_some(())
        }
    })
    .await?;
    third.terminate(Duration::from_secs(10))?;
    let pending = reg.ctl_json(&["pending", "list"]).await?.to_string();
    ensure!(pending.contains("SN-SPARE-0003"), "{pending}");
    ensure!(!pending.contains("SN-SPARE-0001"), "{pending}");

    println!(
        "seed: spare-1 registered with its seed and hydrated {:.1} s after power-on",
        seeded_in.as_secs_f64()
    );
    println!(
        "seed: pending spare-2 picked up a fresh seed and hydrated {:.1} s after it appeared",
        picked_up_in.as_secs_f64()
    );
    report_wall_time("agent_seed_claim", started);
    Ok(())
}
