//! Journey 1, clusterctl-driven site creation, with real processes: the edge cluster
//! template (`config/clusterctl/cluster-template-edge.yaml`) rendered with clusterctl's
//! variable rules and applied to the management emulator; CAPI core played by the test;
//! the real `siteboot-provider` rendering bootstrap data with a one-time token; the real
//! `siteboot-registration` over HTTPS; a real `git http-backend` serving the fleet.
//!
//! Two boxes: store-0142 gets `#cloud-config`, store-0143 gets Ignition. Each box is a
//! directory standing in for `/`: the test writes exactly the files the bootstrap data
//! carries (`write_files` / `storage.files`), plays k3s by writing the site cluster's
//! kubeconfig where k3s writes it, and starts the agent with the command line of the
//! rendered `siteboot-agent.service` plus `--root` (the chroot remap). Nothing of the
//! agent's configuration is built by the test.

#[path = "../../provider/tests/clusterctl_support/mod.rs"]
mod clusterctl_support;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use base64::Engine as _;
use clusterctl_support::{documents, envsubst};
use serde_json::Value;
use siteboot_e2e::journey::bootdata::{self, BootFile};
use siteboot_e2e::journey::capi::{provider_alive, provider_spec, Management};
use siteboot_e2e::journey::factory::sha256_file;
use siteboot_e2e::journey::{
    agent_status, eventually, inventory_yaml, report_wall_time, spawn_agent, Fleet,
    RegistrationService, SiteCluster, SiteSpec,
};
use siteboot_e2e::process::{binaries, Process, TestRun};

const NS: &str = "fleet-eu";
const AGENT_BINARY: &str = "/usr/local/bin/siteboot-agent";
const AGENT_UNIT: &str = "/etc/systemd/system/siteboot-agent.service";
const TOKEN_FILE: &str = "/etc/siteboot/registration-token";

/// `clusterctl generate cluster SITE --flavor edge` with these variables.
fn generate(
    site: &str,
    format: &str,
    reg: &RegistrationService,
    agent_sha: &str,
) -> Result<Vec<Value>> {
    let ca = std::fs::read(reg.ca_file())?;
    let env: BTreeMap<String, String> = [
        ("CLUSTER_NAME", site.to_string()),
        ("NAMESPACE", NS.to_string()),
        ("SITE_ID", site.to_string()),
        ("SITEBOOT_REGISTRATION_URL", reg.url()),
        (
            "SITEBOOT_REGISTRATION_CA_B64",
            base64::engine::general_purpose::STANDARD.encode(ca),
        ),
        (
            "SITEBOOT_AGENT_URL",
            "https://downloads.fleet.example/siteboot-agent/v0.1.0/siteboot-agent-linux-amd64"
                .to_string(),
        ),
        ("SITEBOOT_AGENT_SHA256", agent_sha.to_string()),
        ("K3S_SHA256", "2e".repeat(32)),
        ("SITEBOOT_FORMAT", format.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let template = std::fs::read_to_string(
        binaries::workspace_root().join("config/clusterctl/cluster-template-edge.yaml"),
    )?;
    let text = envsubst(&template, &env).map_err(|e| anyhow::anyhow!("envsubst: {e:?}"))?;
    Ok(documents(&text))
}

fn file<'a>(files: &'a [BootFile], path: &str) -> Result<&'a BootFile> {
    bootdata::find(files, path).with_context(|| format!("the bootstrap data writes no {path}"))
}

/// One box booted from its bootstrap data.
struct BootedBox {
    site: SiteSpec,
    root: std::path::PathBuf,
    cluster: SiteCluster,
    agent: Process,
    /// The files of its bootstrap data, and the agent's command line (without `--root`).
    files: Vec<BootFile>,
    exec: Vec<String>,
}

/// Reads the Machine's bootstrap data as the infrastructure provider would, lays its files
/// out under a fresh root, plays k3s and starts the agent the way its unit does.
async fn boot(
    run: &TestRun,
    mgmt: &Management,
    site: SiteSpec,
    want_format: &str,
    agent_sha: &str,
) -> Result<BootedBox> {
    let machine = format!("{}-node-0", site.id);
    mgmt.copy_data_secret_name(NS, &machine).await?;
    let (format, value) = mgmt.bootstrap_data(NS, &machine).await?;
    assert_eq!(format, want_format, "{}: Secret format", site.id);
    let files = bootdata::files(&format, &value)?;
    let token = String::from_utf8(file(&files, TOKEN_FILE)?.content.clone())?;
    run.register_secret(&format!("{} registration token", site.id), token.trim());
    assert_eq!(
        file(&files, TOKEN_FILE)?.mode,
        Some(0o600),
        "token file mode"
    );

    // bootstrap.sh installs exactly the agent binary the test runs (sha256-verified).
    let script = String::from_utf8(
        file(&files, "/usr/local/lib/siteboot/bootstrap.sh")?
            .content
            .clone(),
    )?;
    assert!(
        script.contains(&format!("'{agent_sha}' '{AGENT_BINARY}'")),
        "bootstrap.sh verifies the agent binary's sha256:\n{script}"
    );

    let root = run.subdir(&format!("box-{}", site.id));
    bootdata::write_tree(&root, &files)?;

    // k3s writes its kubeconfig where the agent config says to look.
    let exec = {
        let unit = String::from_utf8(file(&files, AGENT_UNIT)?.content.clone())?;
        let words = bootdata::exec_start(&unit).context("ExecStart")?;
        assert_eq!(words[0], AGENT_BINARY, "the unit runs the installed agent");
        words
    };
    let agent_yaml: Value =
        serde_norway::from_slice(&file(&files, "/etc/siteboot/agent.yaml")?.content)?;
    let kubeconfig = agent_yaml["kubeconfig"]
        .as_str()
        .context("agent.yaml names no kubeconfig (k3s flavor)")?;
    let cluster = SiteCluster::start().await?;
    let dest = siteboot_agent_root(&root, kubeconfig);
    std::fs::create_dir_all(dest.parent().unwrap())?;
    std::fs::copy(cluster.emu.kubeconfig_path(), &dest)?;

    let mut args: Vec<String> = exec[1..].to_vec();
    let exec_args = args.clone();
    args.extend(["--root".to_string(), root.display().to_string()]);
    let serial = format!("SN-{}", site.id.to_uppercase());
    let agent = spawn_agent(
        run,
        &format!("agent-{}", site.id),
        &args,
        &[("SITEBOOT_SERIAL", &serial)],
    )?;
    Ok(BootedBox {
        site,
        root,
        cluster,
        agent,
        files,
        exec: exec_args,
    })
}

/// `/etc/x` under `root` (what `--root` does in the agent).
fn siteboot_agent_root(root: &Path, path: &str) -> std::path::PathBuf {
    root.join(path.trim_start_matches('/'))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clusterctl_generated_sites_boot_from_their_bootstrap_data_and_hydrate() -> Result<()> {
    let run = TestRun::new("journey_clusterctl");
    let started = Instant::now();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let sites = [
        SiteSpec {
            id: "store-0142",
            region: "eu-west",
            city: "berlin",
            expected_serials: vec![],
        },
        SiteSpec {
            id: "store-0143",
            region: "eu-north",
            city: "oslo",
            expected_serials: vec![],
        },
    ];

    let fleet = Fleet::serve(&run, &sites)?;
    let head = fleet.repo.head()?;
    let reg = RegistrationService::new(&run, &inventory_yaml(&fleet.url, &sites))?;
    let _service = reg.start(&run).await?;
    let operator = reg.operator_token(&run)?;
    let agent_sha = sha256_file(&binaries::binary("siteboot-agent")?)?;

    // The management cluster after `clusterctl init`, plus the per-namespace operator
    // credential the templates reference (config/clusterctl/README.md).
    let mgmt = Management::start().await?;
    mgmt.namespace(NS).await?;
    mgmt.secret(NS, "siteboot-operator-credentials", "token", &operator)
        .await?;

    // `clusterctl generate cluster ... | kubectl apply -f -`, one site per format.
    let mut generated = Vec::new();
    for (site, format) in [(&sites[0], "cloud-config"), (&sites[1], "ignition")] {
        let docs = generate(site.id, format, &reg, &agent_sha)?;
        for d in &docs {
            mgmt.apply(d).await?;
        }
        generated.push(docs);
    }

    let mut provider = run.spawn("provider", &provider_spec(mgmt.emu.kubeconfig_path(), NS)?)?;

    // CAPI core's controllers.
    for (site, docs) in sites.iter().zip(&generated) {
        mgmt.play_capi(docs, NS, site.id).await?;
    }

    let mut boxes = Vec::new();
    for (site, format) in [
        (sites[0].clone(), "cloud-config"),
        (sites[1].clone(), "ignition"),
    ] {
        provider_alive(&mut provider)?;
        boxes.push(boot(&run, &mgmt, site, format, &agent_sha).await?);
    }

    for b in &mut boxes {
        b.cluster.wait_hydrated(&b.site).await?;
        let data = siteboot_agent_root(&b.root, "/var/lib/siteboot");
        let status = eventually(&format!("{} applied {head}", b.site.id), || {
            let s = agent_status(&data);
            let h = head.as_str().to_string();
            async move { (s["appliedRevision"] == h.as_str()).then_some(s) }
        })
        .await?;
        assert_eq!(status["siteId"], b.site.id, "{status}");
        assert!(
            !siteboot_agent_root(&b.root, TOKEN_FILE).exists(),
            "{}: the one-time token file is deleted after registration",
            b.site.id
        );
        let config = format!("{}-node-0", b.site.id);
        eventually(&format!("{config} shows Registered"), || async {
            let c = mgmt.condition(NS, &config, "Registered").await.ok()??;
            (c == ("True".to_string(), "Registered".to_string())).then_some(())
        })
        .await?;
        let site = eventually(&format!("service sees {} at {head}", b.site.id), || async {
            let s = reg.site(b.site.id).await.ok()?;
            (s["appliedRevision"] == head.as_str()).then_some(s)
        })
        .await?;
        let cfg = mgmt
            .get(
                "bootstrap.cluster.x-k8s.io/v1alpha1",
                "SiteBootstrapConfig",
                NS,
                &config,
            )
            .await?;
        assert_eq!(
            cfg.data["status"]["deviceId"], site["deviceId"],
            "the config names the device the service registered"
        );
        assert!(
            b.agent.try_exit()?.is_none(),
            "{} agent still running",
            b.site.id
        );
    }

    // The same bootstrap data booted again (a re-imaged or cloned disk): the one-time
    // token it carries was spent, so the service refuses it and the agent says so.
    let first = &boxes[0];
    let replay = run.subdir("box-replay");
    bootdata::write_tree(&replay, &first.files)?;
    let mut args = first.exec.clone();
    args.extend(["--root".to_string(), replay.display().to_string()]);
    let mut again = spawn_agent(
        &run,
        "agent-replay",
        &args,
        &[("SITEBOOT_SERIAL", "SN-REPLAY")],
    )?;
    let status = again.wait_exit_async(Duration::from_secs(120)).await?;
    assert!(
        !status.success(),
        "a spent token does not register a second box"
    );
    assert!(
        again
            .log()
            .contains("not valid (unknown, expired or already used)"),
        "{}",
        again.log()
    );

    for mut b in boxes {
        b.agent.terminate_async(Duration::from_secs(20)).await?;
    }
    provider.terminate_async(Duration::from_secs(20)).await?;
    report_wall_time("journey_clusterctl", started);
    run.finish();
    Ok(())
}
