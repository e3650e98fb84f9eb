//! Issue 7, tests 2 and 3, in one scenario with real QEMU VMs (TCG):
//!
//! 2. **Factory first boot.** The factory image (agent, first-boot unit; no per-device
//!    state, checked on the image) gets one batch's enrollment config injected into a
//!    copy (`inject-enrollment.sh`, debugfs, no mount) and boots with no seed at all.
//!    The agent enrolls with the batch credential and its SMBIOS serial, which logistics
//!    pre-assigned to the site in the inventory, and the site hydrates.
//! 3. **Replacement with a seed.** A second box from the same batch image (a serial the
//!    inventory does not know) boots with a claim seed made by
//!    `sitebootctl seed --site ... --claim`, takes the site over, and the first box, still
//!    running, is refused at its next check-in (the service answers 403 to its
//!    certificate; its agent says so on the console and parks).

use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use siteboot_e2e::journey::{inventory_yaml, Fleet, RegistrationService, SiteCluster, SiteSpec};
use siteboot_e2e::process::{binaries, TestRun};
use siteboot_e2e::vm::disk::DiskView;
use siteboot_e2e::vm::image::{self, Image, ImageInputs, ImageKind};
use siteboot_e2e::vm::qemu::{Vm, VmSpec};
use siteboot_e2e::vm::services::{self, Service};
use siteboot_e2e::vm::{self as vmh, guest_url, guest_view};

const SITE: &str = "store-0302";
const SERIAL_A: &str = "SBVM0302A";
const SERIAL_B: &str = "SBVM0302B";
const BATCH: &str = "factory-2026-11";
/// Boot and enrollment under TCG on a loaded 2-core machine.
const BOOT_DEADLINE: Duration = Duration::from_secs(600);

fn site() -> SiteSpec {
    SiteSpec {
        id: SITE,
        region: "eu-north",
        city: "oslo",
        expected_serials: vec![SERIAL_A],
    }
}

/// SHA-256 (hex) of the DER of the first certificate in `pem_file` (the agent's CA pin).
fn ca_pin(pem_file: &std::path::Path) -> Result<String> {
    let der = std::process::Command::new("openssl")
        .args(["x509", "-outform", "DER", "-in"])
        .arg(pem_file)
        .output()?;
    ensure!(
        der.status.success(),
        "openssl x509: {}",
        String::from_utf8_lossy(&der.stderr)
    );
    let file = pem_file.with_extension("der");
    std::fs::write(&file, &der.stdout)?;
    services::sha256_file(&file)
}

/// Polls the service until `check` accepts the site view, failing if a VM died.
async fn until_site<T>(
    reg: &RegistrationService,
    vms: &mut [&mut Vm],
    what: &str,
    check: impl Fn(&serde_json::Value) -> Option<T>,
) -> Result<T> {
    let deadline = Instant::now() + BOOT_DEADLINE;
    loop {
        for vm in vms.iter_mut() {
            vm.check_running()?;
        }
        let s = reg.site(SITE).await?;
        if let Some(v) = check(&s) {
            return Ok(v);
        }
        if Instant::now() > deadline {
            bail!("{what}: not within {BOOT_DEADLINE:?}; site: {s}");
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn factory_box_enrolls_by_serial_then_a_claim_seeded_replacement_takes_over() -> Result<()> {
    let run = TestRun::new("vm_factory");
    let result = scenario(&run).await;
    if result.is_err() {
        // An `Err` is not a panic: show the logs (serial consoles included) here.
        run.dump_logs_to(&mut std::io::stderr());
    }
    result?;
    run.finish();
    Ok(())
}

async fn scenario(run: &TestRun) -> Result<()> {
    let _one_vm_at_a_time = tokio::task::spawn_blocking(vmh::exclusive).await??;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let relay = env!("CARGO_BIN_EXE_siteboot-vm-relay");

    // The factory image: agent and the box's local cluster kubeconfig, no enrollment.
    let agent = image::stripped_agent()?;
    let kubeconfig = image::cached_input("site-kubeconfig.yaml", &vmh::guest_kubeconfig())?;
    let build_log = run.log_path("image-build");
    let factory = tokio::task::spawn_blocking(move || {
        image::build(
            ImageKind::Factory,
            &ImageInputs {
                agent: Some(agent),
                site_kubeconfig: Some(kubeconfig),
                ..Default::default()
            },
            &build_log,
        )
    })
    .await??;
    let (apparent, allocated) = factory.disk_sizes()?;
    println!(
        "factory image: build {:.1} s, disk {} MiB apparent / {} MiB allocated",
        factory.build_time.as_secs_f64(),
        apparent >> 20,
        allocated >> 20
    );
    // Nothing per-device in the image every box of a batch is cloned from.
    let img = DiskView::raw(&factory.disk);
    assert_eq!(
        img.read("/etc/machine-id")?,
        Some(Vec::new()),
        "machine-id is empty"
    );
    for absent in [
        "/var/lib/siteboot",
        "/var/lib/dbus/machine-id",
        "/var/lib/systemd/random-seed",
        "/etc/siteboot/enrollment.secret",
        "/etc/siteboot/agent.yaml",
        "/var/lib/siteboot-firstboot.done",
    ] {
        assert!(
            !img.exists(absent)?,
            "{absent} must not be in the factory image"
        );
    }
    let host_keys: Vec<String> = img
        .list("/etc/ssh")?
        .into_iter()
        .filter(|n| n.starts_with("ssh_host_"))
        .collect();
    assert!(
        host_keys.is_empty(),
        "SSH host keys in the image: {host_keys:?}"
    );
    assert_eq!(img.mode("/usr/local/bin/siteboot-agent")?, Some(0o755));

    // Services, as the guest sees them.
    let fleet = Fleet::serve(run, &[site()])?;
    let reg = RegistrationService::new(
        run,
        &inventory_yaml(&guest_view(&fleet.url, vmh::GIT_PORT)?, &[site()]),
    )?;
    let (_batch_secret, batch_file) = reg.add_batch(run, BATCH)?;
    let _registration = services::start_registration(run, &reg).await?;
    reg.operator_token(run)?;
    let site_cluster = SiteCluster::start().await?;
    let table = [
        Service {
            guest_port: vmh::REGISTRATION_PORT,
            host_port: reg.port,
        },
        Service {
            guest_port: vmh::SITE_API_PORT,
            host_port: site_cluster.emu.addr().port(),
        },
        Service {
            guest_port: vmh::GIT_PORT,
            host_port: fleet.server.port(),
        },
    ];
    let proxy = services::host_proxy(&table).await?;

    // This batch's enrollment config, injected into a copy of the image.
    let enrollment = run.subdir("enrollment");
    std::fs::copy(reg.ca_file(), enrollment.join("ca.pem"))?;
    std::fs::copy(&batch_file, enrollment.join("enrollment.secret"))?;
    std::fs::write(
        enrollment.join("agent.yaml"),
        format!(
            "registrationUrl: {}\ncaFile: /etc/siteboot/ca.pem\ncaSha256: {}\nenrollment:\n  batch: {BATCH}\n  secretFile: /etc/siteboot/enrollment.secret\ndataDir: /var/lib/siteboot\nkubeconfig: /etc/kubernetes/admin.conf\npollIntervalSeconds: 5\nresyncIntervalSeconds: 30\n",
            guest_url("https", vmh::REGISTRATION_PORT),
            ca_pin(&reg.ca_file())?
        ),
    )?;
    let batch_disk = run.dir().join("batch.img");
    let started = Instant::now();
    image::batch_copy(&factory, &enrollment, &batch_disk, &run.log_path("inject"))?;
    println!(
        "batch image: copy + inject {:.1} s",
        started.elapsed().as_secs_f64()
    );
    std::fs::remove_dir_all(&enrollment)?;
    assert_eq!(
        DiskView::raw(&batch_disk).mode("/etc/siteboot/enrollment.secret")?,
        Some(0o600)
    );
    let batch = Image {
        disk: batch_disk,
        ..factory.clone()
    };
    let forwards = |spec: VmSpec| {
        table
            .iter()
            .fold(spec, |s, t| s.forward(t.guest_port, t.host_port))
    };

    // Test 2: the first box boots with no seed.
    let mut vm_a = Vm::start(
        run,
        &forwards(VmSpec::new(
            "vm-factory-a",
            &batch,
            SERIAL_A,
            relay.as_ref(),
        )),
    )?;
    let device_a = until_site(&reg, &mut [&mut vm_a], "box A registered", |s| {
        s["deviceId"]
            .as_str()
            .filter(|d| !d.is_empty())
            .map(str::to_string)
    })
    .await?;
    let registered = vm_a.started().elapsed();
    site_cluster.wait_hydrated(&site()).await?;
    let hydrated = vm_a.started().elapsed();
    println!(
        "vm_factory box A: boot-to-registered {:.1} s, boot-to-hydrated {:.1} s (TCG)",
        registered.as_secs_f64(),
        hydrated.as_secs_f64()
    );
    assert!(
        vm_a.console()
            .contains(&format!("siteboot first boot: serial {SERIAL_A}")),
        "the first-boot unit read the SMBIOS serial"
    );

    // Test 3: the replacement box brings a claim seed minted by the operator.
    let iso = run.dir().join("claim-seed.iso");
    let mut ctl = tokio::process::Command::new(binaries::binary("sitebootctl")?);
    ctl.arg("--server")
        .arg(guest_url("https", vmh::REGISTRATION_PORT))
        .arg("--data-dir")
        .arg(&reg.data)
        .args(["-o", "json", "seed", "--site", SITE, "--claim", "--iso"])
        .arg(&iso)
        .env("NO_COLOR", "1");
    for (k, v) in services::proxy_env(&proxy) {
        ctl.env(k, v);
    }
    let out = ctl.output().await?;
    ensure!(
        out.status.success(),
        "sitebootctl seed --claim: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut vm_b = Vm::start(
        run,
        &forwards(VmSpec::new(
            "vm-factory-b",
            &batch,
            SERIAL_B,
            relay.as_ref(),
        ))
        .seed(&iso),
    )?;
    let device_b = until_site(
        &reg,
        &mut [&mut vm_a, &mut vm_b],
        "box B took the site over",
        |s| {
            s["deviceId"]
                .as_str()
                .filter(|d| !d.is_empty() && *d != device_a)
                .map(str::to_string)
        },
    )
    .await?;
    let b_registered = vm_b.started().elapsed();
    let head = fleet.repo.head()?;
    until_site(
        &reg,
        &mut [&mut vm_a, &mut vm_b],
        "box B applied the site's revision",
        |s| {
            (s["deviceId"] == device_b.as_str() && s["appliedRevision"] == head.as_str())
                .then_some(())
        },
    )
    .await?;
    let b_hydrated = vm_b.started().elapsed();
    println!(
        "vm_factory box B (claim seed): boot-to-registered {:.1} s, boot-to-hydrated {:.1} s (TCG)",
        b_registered.as_secs_f64(),
        b_hydrated.as_secs_f64()
    );
    // The old box's certificate is refused at its next check-in.
    vm_a.wait_console("revoked this device", Duration::from_secs(180))
        .await
        .context("box A never learned it was revoked")?;

    // Power off; the disks tell the rest.
    vm_a.power_off(Duration::from_secs(180)).await?;
    vm_b.power_off(Duration::from_secs(180)).await?;
    let disk_a = DiskView::open(vm_a.overlay(), run.dir())?;
    assert!(
        disk_a.exists("/var/lib/siteboot/revoked.json")?,
        "box A recorded the revocation"
    );
    let disk_b = DiskView::open(vm_b.overlay(), run.dir())?;
    assert!(disk_b.exists("/var/lib/siteboot/registered.json")?);
    let machine_ids: Vec<Option<Vec<u8>>> = vec![
        disk_a.read("/etc/machine-id")?,
        disk_b.read("/etc/machine-id")?,
    ];
    assert!(
        machine_ids
            .iter()
            .all(|m| m.as_ref().is_some_and(|m| m.len() == 33))
            && machine_ids[0] != machine_ids[1],
        "each box generated its own machine-id on first boot"
    );
    let key_a = disk_a.read("/var/lib/siteboot/identity.pem")?;
    let key_b = disk_b.read("/var/lib/siteboot/identity.pem")?;
    assert!(
        key_a.is_some() && key_b.is_some() && key_a != key_b,
        "each box has its own key"
    );
    drop((vm_a, vm_b));
    Ok(())
}
