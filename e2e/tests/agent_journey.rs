//! The on-site agent's journey with the real binaries: `siteboot-registration` (HTTPS,
//! SQLite), `siteboot-agent`, a real `git http-backend` serving the fleet repository and
//! the Kubernetes API emulator as the site cluster.
//!
//! One scenario, in order: register with a one-time token (the token file is deleted),
//! hydrate the three layers with `${var}` substitution, push a commit and converge, delete
//! a file and see its object pruned, push broken YAML and see the site stay on the last
//! good revision (reported failed to the service), stop Git and the service and see the
//! last good revision kept (drift repaired while offline) and the offline periods reported
//! after reconnect, then kill -9 the agent in the middle of a 300-object apply and see the
//! restarted agent finish it without registering again; finally the service revokes the
//! device and the agent parks (journey 3 checks a replaced box the same way).

use std::path::Path;
use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams, Patch, PatchParams};
use serde_json::json;
use siteboot_e2e::emulator::Emulator;
use siteboot_e2e::git::{Change, CommitId, GitHttpConfig, GitHttpServer, GitRepo};
use siteboot_e2e::journey::{agent_status, eventually, RegistrationService};
use siteboot_e2e::ports;
use siteboot_e2e::process::{Process, TestRun};

const SITE: &str = "store-e2e";

const NAMESPACE: &str = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n";

fn base_config(version: &str) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: shop-config\n  namespace: shop\ndata:\n  version: \"{version}\"\n  region: ${{region}}\n  site: ${{site-id}}\n  literal: $${{not-a-var}}\n"
    )
}

const REGION: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: shop-config\n  namespace: shop\ndata:\n  tier: region-${region}\n";

const SITE_EXTRA: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: site-extra\n  namespace: shop\ndata:\n  city: ${city}\n";

fn many(n: usize) -> String {
    (0..n)
        .map(|i| format!("---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: bulk-{i:03}\n  namespace: shop\ndata:\n  i: \"{i}\"\n"))
        .collect()
}

fn inventory_yaml(git_url: &str) -> String {
    format!(
        "apiVersion: siteboot.io/v1alpha1\nkind: Inventory\ngit:\n  url: {git_url}\n  rings:\n    broad:\n      branch: main\nsites:\n  - id: {SITE}\n    region: eu-west\n    country: DE\n    ring: broad\n    networkTier: fiber\n    hardwareClass: nuc\n    maintenanceWindow: always\n    registryZone: eu-west-mirror\n    labels:\n      city: berlin\n"
    )
}

async fn cm(api: &Api<ConfigMap>, name: &str) -> Option<ConfigMap> {
    api.get_opt(name).await.ok().flatten()
}

fn data(c: &ConfigMap, key: &str) -> Option<String> {
    c.data.as_ref().and_then(|d| d.get(key).cloned())
}

fn start_agent(run: &TestRun, config: &Path) -> anyhow::Result<Process> {
    Ok(run.spawn_binary(
        "siteboot-agent",
        [
            "run".to_string(),
            "--config".into(),
            config.display().to_string(),
        ],
        &[
            ("SITEBOOT_SERIAL", "SN-E2E-0001"),
            ("SITEBOOT_LOG", "info,kube=warn"),
        ],
    )?)
}

async fn applied(data: &Path, commit: &CommitId) -> anyhow::Result<()> {
    let want = commit.as_str().to_string();
    eventually(&format!("agent applied {want}"), || {
        let s = agent_status(data);
        let w = want.clone();
        async move { (s["appliedRevision"] == w.as_str()).then_some(()) }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_registers_hydrates_converges_prunes_survives_bad_revisions_outages_and_kill9(
) -> anyhow::Result<()> {
    let run = TestRun::new("agent_journey");
    let _ = rustls::crypto::ring::default_provider().install_default();

    // Fleet repository on a restartable HTTP git server.
    let mut repo = GitRepo::create(
        "fleet",
        &[
            ("baseline/namespace.yaml", NAMESPACE),
            ("baseline/config.yaml", &base_config("1")),
            ("regions/eu-west/config.yaml", REGION),
            ("clusters/store-e2e/extra.yaml", SITE_EXTRA),
        ],
    )?;
    let git_port = ports::free_port()?;
    let git_log = run.log_path("git-http");
    let mut git = Some(GitHttpServer::start(
        &repo,
        GitHttpConfig::http().port(git_port),
        &git_log,
    )?);
    let git_url = git.as_ref().unwrap().url(&repo);

    // Registration service with an inventory naming the site and the repository.
    let mut reg = RegistrationService::new(&run, &inventory_yaml(&git_url))?;
    // Short-lived client certificates: the agent renews them during the run.
    reg.extra_args = vec!["--cert-ttl".into(), "45s".into()];
    let reg_dir = reg.data.clone();
    let mut service = Some(reg.start(&run).await?);
    let minted = reg.ctl_json(&["token", "create", "--site", SITE]).await?;
    let token = minted["token"]
        .as_str()
        .expect("token in mint response")
        .to_string();
    run.register_secret("registration token", &token);

    // The site cluster.
    let emu = Emulator::start().await?;
    let client = emu.client().await?;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "shop");

    // The agent.
    let agent_dir = run.subdir("agent");
    let agent_data = agent_dir.join("data");
    let token_file = agent_dir.join("registration-token");
    std::fs::write(&token_file, &token)?;
    let config = agent_dir.join("agent.yaml");
    std::fs::write(
        &config,
        format!(
            "registrationUrl: {}\ncaFile: {}\ntokenFile: {}\ndataDir: {}\nkubeconfig: {}\nsiteId: {SITE}\npollIntervalSeconds: 1\nresyncIntervalSeconds: 2\n",
            reg.url(),
            reg_dir.join("ca.pem").display(),
            token_file.display(),
            agent_data.display(),
            emu.kubeconfig_path().display(),
        ),
    )?;
    let mut agent = start_agent(&run, &config)?;

    // 1. Register and hydrate: three layers merged, variables substituted.
    let head1 = repo.head()?;
    applied(&agent_data, &head1).await?;
    let c = cm(&cms, "shop-config").await.expect("shop-config applied");
    assert_eq!(data(&c, "version").as_deref(), Some("1"));
    assert_eq!(data(&c, "region").as_deref(), Some("eu-west"));
    assert_eq!(data(&c, "site").as_deref(), Some(SITE));
    assert_eq!(data(&c, "literal").as_deref(), Some("${not-a-var}"));
    assert_eq!(
        data(&c, "tier").as_deref(),
        Some("region-eu-west"),
        "the region layer is merged over the baseline"
    );
    let labels = c.metadata.labels.clone().unwrap_or_default();
    assert_eq!(
        labels
            .get("app.kubernetes.io/managed-by")
            .map(String::as_str),
        Some("siteboot-agent")
    );
    assert_eq!(
        labels.get("siteboot.io/site").map(String::as_str),
        Some(SITE)
    );
    assert_eq!(
        data(&cm(&cms, "site-extra").await.expect("site layer"), "city").as_deref(),
        Some("berlin")
    );
    assert!(
        !token_file.exists(),
        "the one-time token file is deleted after registration"
    );
    let site = eventually("service sees the applied revision", || async {
        let s = reg.site(SITE).await.ok()?;
        (s["appliedRevision"] == head1.as_str()).then_some(s)
    })
    .await?;
    assert!(site["deviceId"].is_string(), "{site}");

    // The client certificate lives 45 s: the agent renews it over mTLS after 2/3 of
    // that, and every later step's check-ins use the renewed certificate.
    eventually("agent renews its client certificate", || {
        let log = agent.log();
        async move { log.contains("client certificate renewed").then_some(()) }
    })
    .await?;

    // 2. A new commit converges.
    let head2 = repo.commit(
        "bump version",
        &[Change::write("baseline/config.yaml", base_config("2"))],
    )?;
    applied(&agent_data, &head2).await?;
    assert_eq!(
        data(&cm(&cms, "shop-config").await.unwrap(), "version").as_deref(),
        Some("2")
    );

    // 3. A deleted file's object is pruned; objects the agent did not create stay.
    let foreign: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "hand-made", "namespace": "shop"}}))?;
    cms.create(&Default::default(), &foreign).await?;
    let head3 = repo.commit(
        "drop extra",
        &[Change::delete("clusters/store-e2e/extra.yaml")],
    )?;
    applied(&agent_data, &head3).await?;
    eventually("site-extra pruned", || async {
        cm(&cms, "site-extra").await.is_none().then_some(())
    })
    .await?;
    assert!(
        cm(&cms, "hand-made").await.is_some(),
        "never prune objects the agent did not create"
    );

    // 4. Broken YAML: the site stays on the last good revision, reported failed.
    let head4 = repo.commit(
        "broken",
        &[
            Change::write("baseline/config.yaml", base_config("3")),
            Change::write(
                "baseline/zz-broken.yaml",
                "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x\n",
            ),
        ],
    )?;
    let failed = eventually("revision reported failed", || {
        let s = agent_status(&agent_data);
        let h = head4.as_str().to_string();
        async move { (s["state"] == "failed" && s["attemptedRevision"] == h.as_str()).then_some(s) }
    })
    .await?;
    assert_eq!(failed["appliedRevision"], head3.as_str());
    let error = failed["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("baseline/zz-broken.yaml document 1"),
        "{error}"
    );
    assert_eq!(
        data(&cm(&cms, "shop-config").await.unwrap(), "version").as_deref(),
        Some("2"),
        "cluster stays on the last good revision"
    );
    eventually("service sees the failed attempt", || async {
        let s = reg.site(SITE).await.ok()?;
        (s["attemptedRevision"] == head4.as_str()
            && s["appliedRevision"] == head3.as_str()
            && s["state"] == "failed")
            .then_some(())
    })
    .await?;
    let head5 = repo.commit("fix", &[Change::delete("baseline/zz-broken.yaml")])?;
    applied(&agent_data, &head5).await?;
    assert_eq!(
        data(&cm(&cms, "shop-config").await.unwrap(), "version").as_deref(),
        Some("3")
    );

    // 5. Git and the service go away: the last good revision is kept and drift repaired.
    drop(git.take());
    service
        .take()
        .unwrap()
        .terminate_async(Duration::from_secs(20))
        .await?;
    eventually("agent notices both outages", || {
        let s = agent_status(&agent_data);
        async move {
            (s["offline"]["open"]["git"].is_string() && s["offline"]["open"]["service"].is_string())
                .then_some(())
        }
    })
    .await?;
    cms.patch(
        "shop-config",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"version": "tampered"}})),
    )
    .await?;
    eventually("drift repaired while offline", || async {
        (data(&cm(&cms, "shop-config").await?, "version").as_deref() == Some("3")).then_some(())
    })
    .await?;
    let offline = agent_status(&agent_data);
    assert_eq!(offline["appliedRevision"], head5.as_str());
    assert_ne!(
        offline["state"], "failed",
        "offline is not failed: {offline}"
    );

    // Back online: offline periods are reported, then cleared locally.
    git = Some(GitHttpServer::start(
        &repo,
        GitHttpConfig::http().port(git_port),
        &git_log,
    )?);
    service = Some(reg.start(&run).await?);
    eventually("offline periods reported after reconnect", || {
        let s = agent_status(&agent_data);
        let log = agent.log();
        async move {
            let clear = s["offline"]["open"]
                .as_object()
                .is_some_and(|o| o.is_empty())
                && s["offline"]["closed"]
                    .as_array()
                    .is_some_and(|c| c.is_empty());
            (clear && log.contains("reported offline periods")).then_some(())
        }
    })
    .await?;

    // 6. kill -9 in the middle of a 300-object apply; the restart finishes it.
    let head6 = repo.commit(
        "bulk",
        &[Change::write("clusters/store-e2e/bulk.yaml", many(300))],
    )?;
    eventually("agent starts applying the bulk revision", || {
        let s = agent_status(&agent_data);
        let h = head6.as_str().to_string();
        async move { (s["attemptedRevision"] == h.as_str()).then_some(()) }
    })
    .await?;
    agent.kill()?;
    let partial = cms.list(&ListParams::default()).await?.items.len();
    agent = start_agent(&run, &config)?;
    applied(&agent_data, &head6).await?;
    let names: Vec<String> = cms
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter_map(|c| c.metadata.name)
        .collect();
    assert_eq!(
        names.iter().filter(|n| n.starts_with("bulk-")).count(),
        300,
        "{partial} objects existed at the kill"
    );
    assert!(
        !agent.log().contains("registering"),
        "the restarted agent does not register again"
    );

    // 7. The service revokes the device (its box was replaced): the agent parks. It stays
    // up (no restart loop) and makes no further changes to the cluster.
    let device = site["deviceId"].as_str().unwrap().to_string();
    reg.ctl_json(&["devices", "revoke", &device, "--reason", "box replaced"])
        .await?;
    eventually("agent records the revocation and parks", || {
        let s = agent_status(&agent_data);
        let log = agent.log();
        async move {
            (s["revoked"] == true && s["registration"] == "revoked" && log.contains("parked"))
                .then_some(())
        }
    })
    .await?;
    assert!(
        agent.log().contains("revoked this device"),
        "the log says so"
    );
    let revoked = agent_status(&agent_data);
    assert_eq!(
        revoked["appliedRevision"],
        head6.as_str(),
        "a revoked device applies no new revision: {revoked}"
    );
    assert!(agent.try_exit()?.is_none(), "a parked agent stays up");

    agent.terminate_async(Duration::from_secs(20)).await?;
    drop(service);
    drop(git);
    run.finish();
    Ok(())
}
