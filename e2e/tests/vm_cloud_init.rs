//! Issue 7, test 1: **CAPI bootstrap data really executes.** The provider renders
//! cloud-config into the data Secret for a Machine (CAPI core played on the management
//! emulator); a plain Debian cloud-init image boots in QEMU (TCG) with a NoCloud seed
//! made by `sitebootctl seed --from-secret` from exactly that Secret. Real cloud-init runs
//! the bootstrap: it downloads the agent from a loopback HTTP server through `guestfwd`,
//! verifies its sha256, installs and starts it; the agent redeems the token and the site
//! hydrates into the site cluster. After a clean power-off the disk is inspected: the
//! token file is gone and no copy of the token remains anywhere on the disk (the agent
//! redacts cloud-init's instance cache in place).
//!
//! The plain image stands in for an infrastructure image that already runs a local
//! cluster: its kubeconfig (`/root/.kube/config`, naming `http://10.0.2.100:6443`, the
//! site emulator through `guestfwd`) is part of the image, so the agent finds it the way
//! kube clients do by default.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use base64::Engine as _;
use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use serde_json::json;
use siteboot_e2e::journey::capi::Management;
use siteboot_e2e::journey::{
    bootdata, inventory_yaml, Fleet, RegistrationService, SiteCluster, SiteSpec,
};
use siteboot_e2e::ports;
use siteboot_e2e::process::{binaries, Spec, TestRun};
use siteboot_e2e::vm::disk::DiskView;
use siteboot_e2e::vm::image::{self, ImageInputs, ImageKind};
use siteboot_e2e::vm::qemu::{Vm, VmSpec};
use siteboot_e2e::vm::serve::FileServer;
use siteboot_e2e::vm::services::{self, Service};
use siteboot_e2e::vm::{self as vmh, guest_url, guest_view};

const NS: &str = "stores";
const SITE: &str = "store-0301";
const MACHINE: &str = "edge-0301";
/// Boot, cloud-init, download and registration under TCG on a loaded 2-core machine.
const BOOT_DEADLINE: Duration = Duration::from_secs(600);

fn site() -> SiteSpec {
    SiteSpec {
        id: SITE,
        region: "eu-central",
        city: "vienna",
        expected_serials: vec![],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capi_bootstrap_data_runs_under_real_cloud_init_and_the_site_hydrates() -> Result<()> {
    let run = TestRun::new("vm_cloud_init");
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

    // The plain cloud-init image (cached after the first build).
    let kubeconfig = image::cached_input("site-kubeconfig.yaml", &vmh::guest_kubeconfig())?;
    let build_log = run.log_path("image-build");
    let plain = tokio::task::spawn_blocking(move || {
        image::build(
            ImageKind::Plain,
            &ImageInputs {
                site_kubeconfig: Some(kubeconfig),
                ..Default::default()
            },
            &build_log,
        )
    })
    .await??;
    let (apparent, allocated) = plain.disk_sizes()?;
    println!(
        "plain image: build {:.1} s, disk {} MiB apparent / {} MiB allocated",
        plain.build_time.as_secs_f64(),
        apparent >> 20,
        allocated >> 20
    );

    // Services on loopback, each reachable by the guest at 10.0.2.100:<guest port>.
    let fleet = Fleet::serve(run, &[site()])?;
    let guest_git = guest_view(&fleet.url, vmh::GIT_PORT)?;
    let reg = RegistrationService::new(run, &inventory_yaml(&guest_git, &[site()]))?;
    let _registration = services::start_registration(run, &reg).await?;
    let operator_token = reg.operator_token(run)?;
    let ca_pem = std::fs::read_to_string(reg.ca_file())?;
    let site_cluster = SiteCluster::start().await?;
    let agent = image::stripped_agent()?;
    let agent_sha = services::sha256_file(&agent)?;
    let downloads = FileServer::start(&agent, "siteboot-agent", ports::free_port()?).await?;
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
            guest_port: vmh::DOWNLOAD_PORT,
            host_port: downloads.port(),
        },
        Service {
            guest_port: vmh::GIT_PORT,
            host_port: fleet.server.port(),
        },
    ];
    let proxy = services::host_proxy(&table).await?;
    let registration_url = guest_url("https", vmh::REGISTRATION_PORT);

    // The management cluster, CAPI core's objects and the provider.
    let mgmt = Management::start().await?;
    mgmt.namespace(NS).await?;
    mgmt.secret(NS, "registration-operator", "token", &operator_token)
        .await?;
    mgmt.apply(&json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "registration-ca", "namespace": NS}, "data": {"ca.crt": ca_pem}}))
        .await?;
    mgmt.apply(&json!({"apiVersion": "cluster.x-k8s.io/v1beta2", "kind": "Cluster",
        "metadata": {"name": SITE, "namespace": NS, "labels": {"siteboot.io/site-id": SITE}}, "spec": {}}))
        .await?;
    let machine = mgmt.apply(&json!({"apiVersion": "cluster.x-k8s.io/v1beta2", "kind": "Machine",
        "metadata": {"name": MACHINE, "namespace": NS, "labels": {"cluster.x-k8s.io/cluster-name": SITE}},
        "spec": {"clusterName": SITE, "bootstrap": {"configRef": {"apiGroup": "bootstrap.cluster.x-k8s.io", "kind": "SiteBootstrapConfig", "name": MACHINE}}}}))
        .await?;
    let uid = machine.metadata.uid.clone().context("machine uid")?;
    mgmt.apply(&json!({"apiVersion": "bootstrap.cluster.x-k8s.io/v1alpha1", "kind": "SiteBootstrapConfig",
        "metadata": {"name": MACHINE, "namespace": NS, "labels": {"cluster.x-k8s.io/cluster-name": SITE},
            "ownerReferences": [{"apiVersion": "cluster.x-k8s.io/v1beta2", "kind": "Machine", "name": MACHINE, "uid": uid, "controller": true, "blockOwnerDeletion": true}]},
        "spec": {
            "format": "cloud-config",
            "site": {"siteIdFrom": {"label": "siteboot.io/site-id"}},
            "registration": {"url": registration_url, "caBundleFrom": {"kind": "ConfigMap", "name": "registration-ca"}, "credentialsSecretRef": {"name": "registration-operator"}},
            "agent": {"url": format!("{}/siteboot-agent", guest_url("http", vmh::DOWNLOAD_PORT)), "sha256": agent_sha}
        }}))
        .await?;
    let cluster_api: Api<kube::api::DynamicObject> = Api::namespaced_with(
        mgmt.client.clone(),
        NS,
        &kube::api::ApiResource {
            group: "cluster.x-k8s.io".into(),
            version: "v1beta2".into(),
            api_version: "cluster.x-k8s.io/v1beta2".into(),
            kind: "Cluster".into(),
            plural: "clusters".into(),
        },
    );
    cluster_api
        .patch_status(
            SITE,
            &Default::default(),
            &kube::api::Patch::Merge(
                json!({"status": {"initialization": {"infrastructureProvisioned": true}}}),
            ),
        )
        .await?;
    let mut provider_spec = Spec::new(binaries::binary("siteboot-provider")?)
        .arg("--watch-filter=")
        .arg("--namespace")
        .arg(NS)
        .arg("--metrics-bind-address")
        .arg("127.0.0.1:0")
        .arg("--health-probe-bind-address")
        .arg("127.0.0.1:0")
        .arg("--token-check-interval-seconds")
        .arg("2")
        .env("KUBECONFIG", mgmt.emu.kubeconfig_path())
        .env("RUST_LOG", "info");
    for (k, v) in services::proxy_env(&proxy) {
        provider_spec = provider_spec.env(k, v);
    }
    let mut provider = run.spawn("provider", &provider_spec)?;
    let secret_name = match mgmt.copy_data_secret_name(NS, MACHINE).await {
        Ok(name) => name,
        Err(e) => {
            // A dead provider explains the timeout better than the timeout does.
            siteboot_e2e::journey::capi::provider_alive(&mut provider)?;
            return Err(e);
        }
    };
    let (format, user_data) = mgmt.bootstrap_data(NS, MACHINE).await?;
    assert_eq!(format, "cloud-config");
    let files = bootdata::files(&format, &user_data)?;
    let token_file = bootdata::find(&files, "/etc/siteboot/registration-token")
        .context("no token file in the bootstrap data")?
        .content
        .clone();
    let token = String::from_utf8(token_file.clone())?.trim().to_string();
    run.register_secret("registration token", &token);
    // The forms the token takes on a disk: as is, and base64 as in the user-data.
    let needles = [
        token.clone().into_bytes(),
        base64::engine::general_purpose::STANDARD
            .encode(&token_file)
            .into_bytes(),
    ];

    // The NoCloud seed, from exactly the data Secret, as a tech or an infra provider would.
    let secret = Api::<Secret>::namespaced(mgmt.client.clone(), NS)
        .get(&secret_name)
        .await?;
    let secret_file = run.dir().join("data-secret.json");
    std::fs::write(&secret_file, serde_json::to_vec(&secret)?)?;
    let iso = run.dir().join("seed.iso");
    let seeded = reg
        .ctl(&[
            "seed",
            "--iso",
            &iso.display().to_string(),
            "--from-secret",
            &secret_file.display().to_string(),
        ])
        .await?;
    std::fs::remove_file(&secret_file)?;
    anyhow::ensure!(
        seeded.code == Some(0),
        "sitebootctl seed: {}",
        seeded.stderr
    );

    // Boot.
    let spec = VmSpec::new("vm-cloud-init", &plain, "SBVM0301A", relay.as_ref()).seed(&iso);
    let spec = table
        .iter()
        .fold(spec, |s, t| s.forward(t.guest_port, t.host_port));
    let mut vm = Vm::start(run, &spec)?;
    let booted = Instant::now();
    let deadline = booted + BOOT_DEADLINE;
    let device = loop {
        vm.check_running()?;
        siteboot_e2e::journey::capi::provider_alive(&mut provider)?;
        let s = reg.site(SITE).await?;
        if let Some(d) = s["deviceId"].as_str().filter(|d| !d.is_empty()) {
            break d.to_string();
        }
        if Instant::now() > deadline {
            bail!("the box did not register within {BOOT_DEADLINE:?}; site: {s}");
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    let registered = booted.elapsed();
    site_cluster.wait_hydrated(&site()).await?;
    let hydrated = booted.elapsed();
    println!(
        "vm_cloud_init: boot-to-registered {:.1} s, boot-to-hydrated {:.1} s (TCG), device {device}",
        registered.as_secs_f64(),
        hydrated.as_secs_f64()
    );
    assert_eq!(
        downloads.downloads(),
        1,
        "cloud-init downloaded the agent once"
    );
    siteboot_e2e::journey::eventually("the provider shows the device registered", || async {
        (mgmt.condition(NS, MACHINE, "Registered").await.ok()?
            == Some(("True".into(), "Registered".into())))
        .then_some(())
    })
    .await?;

    // Clean power-off, then the disk.
    let clean = vm.power_off(Duration::from_secs(180)).await?;
    println!("vm_cloud_init: clean shutdown: {clean}");
    let disk = DiskView::open(vm.overlay(), run.dir())?;
    assert!(
        !disk.exists("/etc/siteboot/registration-token")?,
        "the one-time token file is deleted after registration"
    );
    assert_eq!(
        disk.mode("/usr/local/bin/siteboot-agent")?,
        Some(0o755),
        "bootstrap.sh installed the verified agent"
    );
    assert!(disk.exists("/var/lib/siteboot/registered.json")?);
    let mut leftovers = Vec::new();
    for dir in [
        "/etc",
        "/root",
        "/usr/local",
        "/var/lib/siteboot",
        "/var/log",
        "/tmp",
        "/run",
    ] {
        for needle in &needles {
            leftovers.extend(disk.files_containing(dir, needle, run.dir())?);
        }
    }
    assert!(
        leftovers.is_empty(),
        "token copies left on the disk: {leftovers:?}"
    );
    // cloud-init keeps the user-data it ran in its instance cache; once the token is
    // spent the agent redacts it there in place (agent/src/scrub.rs), so no copy is left.
    let mut cache = Vec::new();
    for needle in &needles {
        cache.extend(disk.files_containing("/var/lib/cloud", needle, run.dir())?);
    }
    assert!(
        cache.is_empty(),
        "cloud-init's instance cache still holds the spent token in: {cache:?}"
    );

    provider.terminate_async(Duration::from_secs(20)).await?;
    drop(vm);
    Ok(())
}
