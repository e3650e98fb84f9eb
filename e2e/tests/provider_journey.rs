//! Journey 1 (clusterctl-driven site creation) end to end, with real processes: the
//! `siteboot-provider` binary against the Kubernetes API emulator, and a real
//! `siteboot-registration` service over HTTPS. The test plays CAPI core: it installs the
//! CAPI and siteboot CRDs and creates a Cluster, a Machine and the Machine's
//! SiteBootstrapConfig. It then checks the data Secret, status and conditions, pulls the
//! one-time token out of the rendered cloud-config, redeems it once (201) and a second
//! time (401), and waits for the provider to show the device as registered.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use base64::Engine as _;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ApiResource, DynamicObject, PostParams};
use kube::ResourceExt;
use serde_json::{json, Value};
use siteboot_e2e::emulator::Emulator;
use siteboot_e2e::process::{binaries, Spec, TestRun};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const NS: &str = "stores";
const SITE: &str = "store-0107";
const DEADLINE: Duration = Duration::from_secs(90);

fn ar(group: &str, version: &str, kind: &str, plural: &str) -> ApiResource {
    let api_version = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    ApiResource {
        group: group.into(),
        version: version.into(),
        api_version,
        kind: kind.into(),
        plural: plural.into(),
    }
}

fn capi_crd(kind: &str, plural: &str) -> Value {
    let schema = json!({"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}});
    json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("{plural}.cluster.x-k8s.io")},
        "spec": {"group": "cluster.x-k8s.io", "scope": "Namespaced",
            "names": {"kind": kind, "plural": plural, "singular": kind.to_lowercase(), "listKind": format!("{kind}List")},
            "versions": [
                {"name": "v1beta2", "served": true, "storage": true, "schema": schema, "subresources": {"status": {}}},
                {"name": "v1beta1", "served": true, "storage": false, "schema": schema, "subresources": {"status": {}}}
            ]}
    })
}

async fn create(client: &kube::Client, ar: &ApiResource, body: Value) -> Result<DynamicObject> {
    let obj: DynamicObject = serde_json::from_value(body)?;
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), NS, ar);
    Ok(api.create(&PostParams::default(), &obj).await?)
}

async fn wait_file(path: &Path) -> Result<String> {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        if let Ok(text) = std::fs::read_to_string(path) {
            if !text.trim().is_empty() {
                return Ok(text.trim().to_string());
            }
        }
        if tokio::time::Instant::now() > deadline {
            bail!("{} did not appear within {DEADLINE:?}", path.display());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `POST path` over HTTPS trusting only `ca_pem`; returns the status code.
async fn post_json(base: &str, ca_pem: &str, path: &str, body: &Value) -> Result<u16> {
    let authority = base.trim_start_matches("https://").trim_end_matches('/');
    let mut roots = rustls::RootCertStore::empty();
    use rustls::pki_types::pem::PemObject;
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert?)?;
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let host = authority
        .rsplit_once(':')
        .map(|(h, _)| h)
        .unwrap_or(authority);
    let tcp = tokio::net::TcpStream::connect(authority).await?;
    let name = rustls::pki_types::ServerName::try_from(host.to_string())?;
    let mut tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await?;
    let body = serde_json::to_vec(body)?;
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {authority}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    tls.write_all(head.as_bytes()).await?;
    tls.write_all(&body).await?;
    let mut response = Vec::new();
    let _ = tls.read_to_end(&mut response).await;
    let text = String::from_utf8_lossy(&response);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .context("no HTTP status line")?;
    Ok(status)
}

/// The content of the cloud-config `write_files` entry at `path`.
fn written_file(cloud_config: &str, path: &str) -> Result<String> {
    let doc: serde_norway::Value = serde_norway::from_str(cloud_config)?;
    let files = doc
        .get("write_files")
        .and_then(|f| f.as_sequence())
        .context("no write_files")?;
    for f in files {
        if f.get("path").and_then(|p| p.as_str()) == Some(path) {
            let content = f
                .get("content")
                .and_then(|c| c.as_str())
                .unwrap_or_default();
            let encoding = f
                .get("encoding")
                .and_then(|e| e.as_str())
                .unwrap_or("text/plain");
            return Ok(match encoding {
                "b64" | "base64" => String::from_utf8(
                    base64::engine::general_purpose::STANDARD.decode(content.trim())?,
                )?,
                _ => content.to_string(),
            });
        }
    }
    bail!("no write_files entry for {path}")
}

fn register_body(token: &str, serial: &str) -> Result<Value> {
    let key = rcgen::KeyPair::generate()?;
    let csr = rcgen::CertificateParams::new(Vec::<String>::new())?
        .serialize_request(&key)?
        .pem()?;
    Ok(json!({
        "credential": {"type": "token", "token": token},
        "csr": csr,
        "facts": {"serial": serial, "macs": ["02:00:00:00:01:07"], "hostname": "edge-0107", "arch": "x86_64", "os": "Debian GNU/Linux 12 (bookworm)"}
    }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_binary_bootstraps_a_machine_whose_token_redeems_exactly_once() -> Result<()> {
    let run = TestRun::new("provider_journey");
    let _ = rustls::crypto::ring::default_provider().install_default();

    // The real registration service.
    let data_dir = run.subdir("registration-data");
    let ready = run.dir().join("registration.url");
    let inventory = binaries::workspace_root().join("config/samples/inventory.yaml");
    let registration = run.spawn(
        "registration",
        &Spec::new(binaries::binary("siteboot-registration")?)
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--data-dir")
            .arg(&data_dir)
            .arg("--inventory")
            .arg(&inventory)
            .arg("--ready-file")
            .arg(&ready)
            .cwd(run.dir()),
    )?;
    let reg_url = wait_file(&ready).await?;
    let ca_pem = std::fs::read_to_string(data_dir.join("ca.pem"))?;
    let operator_token = std::fs::read_to_string(data_dir.join("operator-token"))?
        .trim()
        .to_string();
    run.register_secret("operator credential", &operator_token);

    // The management cluster, as CAPI core would leave it.
    let emu = Emulator::start().await?;
    let client = emu.client().await?;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in [
        capi_crd("Cluster", "clusters"),
        capi_crd("Machine", "machines"),
    ] {
        crds.create(&PostParams::default(), &serde_json::from_value(crd)?)
            .await?;
    }
    for file in [
        "bootstrap.cluster.x-k8s.io_sitebootstrapconfigs.yaml",
        "bootstrap.cluster.x-k8s.io_sitebootstrapconfigtemplates.yaml",
    ] {
        let text = std::fs::read_to_string(
            binaries::workspace_root()
                .join("config/crd/bases")
                .join(file),
        )?;
        let crd: CustomResourceDefinition = serde_norway::from_str(&text)?;
        crds.create(&PostParams::default(), &crd).await?;
    }
    let namespaces = ar("", "v1", "Namespace", "namespaces");
    Api::<DynamicObject>::all_with(client.clone(), &namespaces)
        .create(
            &PostParams::default(),
            &serde_json::from_value(
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}),
            )?,
        )
        .await?;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    create(&client, &ar("", "v1", "Secret", "secrets"), json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "registration-operator", "namespace": NS}, "data": {"token": b64(&operator_token)}})).await?;
    create(
        &client,
        &ar("", "v1", "ConfigMap", "configmaps"),
        json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "registration-ca", "namespace": NS}, "data": {"ca.crt": ca_pem}}),
    )
    .await?;
    let cluster_ar = ar("cluster.x-k8s.io", "v1beta2", "Cluster", "clusters");
    create(&client, &cluster_ar, json!({"apiVersion": "cluster.x-k8s.io/v1beta2", "kind": "Cluster",
        "metadata": {"name": SITE, "namespace": NS, "labels": {"siteboot.io/site-id": SITE}}, "spec": {}})).await?;
    Api::<DynamicObject>::namespaced_with(client.clone(), NS, &cluster_ar)
        .patch_status(
            SITE,
            &Default::default(),
            &kube::api::Patch::Merge(
                json!({"status": {"initialization": {"infrastructureProvisioned": true}}}),
            ),
        )
        .await?;
    let machine = create(&client, &ar("cluster.x-k8s.io", "v1beta2", "Machine", "machines"), json!({"apiVersion": "cluster.x-k8s.io/v1beta2", "kind": "Machine",
        "metadata": {"name": "edge-0107", "namespace": NS, "labels": {"cluster.x-k8s.io/cluster-name": SITE}},
        "spec": {"clusterName": SITE, "bootstrap": {"configRef": {"apiGroup": "bootstrap.cluster.x-k8s.io", "kind": "SiteBootstrapConfig", "name": "edge-0107"}}}})).await?;
    let config_ar = ar(
        "bootstrap.cluster.x-k8s.io",
        "v1alpha1",
        "SiteBootstrapConfig",
        "sitebootstrapconfigs",
    );
    create(&client, &config_ar, json!({"apiVersion": "bootstrap.cluster.x-k8s.io/v1alpha1", "kind": "SiteBootstrapConfig",
        "metadata": {"name": "edge-0107", "namespace": NS, "labels": {"cluster.x-k8s.io/cluster-name": SITE},
            "ownerReferences": [{"apiVersion": "cluster.x-k8s.io/v1beta2", "kind": "Machine", "name": "edge-0107", "uid": machine.uid(), "controller": true, "blockOwnerDeletion": true}]},
        "spec": {
            "format": "cloud-config",
            "site": {"siteIdFrom": {"label": "siteboot.io/site-id"}},
            "registration": {"url": reg_url, "caBundleFrom": {"kind": "ConfigMap", "name": "registration-ca"}, "credentialsSecretRef": {"name": "registration-operator"}},
            "agent": {"url": "https://downloads.example.net/siteboot-agent", "sha256": "c".repeat(64)},
            "ntp": {"servers": ["time.example.net"]}
        }})).await?;

    // The provider binary, as clusterctl would run it (one namespace, probes on loopback).
    let mut provider = run.spawn(
        "provider",
        &Spec::new(binaries::binary("siteboot-provider")?)
            // As config/manager/manager.yaml passes an unset filter.
            .arg("--watch-filter=")
            .arg("--namespace")
            .arg(NS)
            .arg("--metrics-bind-address")
            .arg("127.0.0.1:0")
            .arg("--health-probe-bind-address")
            .arg("127.0.0.1:0")
            .arg("--token-check-interval-seconds")
            .arg("2")
            .env("KUBECONFIG", emu.kubeconfig_path())
            .env("RUST_LOG", "info,siteboot_provider=debug"),
    )?;

    let configs: Api<DynamicObject> = Api::namespaced_with(client.clone(), NS, &config_ar);
    let cond = |cfg: &DynamicObject, t: &str| -> Option<(String, String)> {
        let c = cfg.data["status"]["conditions"]
            .as_array()?
            .iter()
            .find(|c| c["type"] == t)?
            .clone();
        Some((
            c["status"].as_str()?.to_string(),
            c["reason"].as_str()?.to_string(),
        ))
    };
    let deadline = tokio::time::Instant::now() + DEADLINE;
    let cfg = loop {
        let cfg = configs.get("edge-0107").await?;
        if cfg.data["status"]["initialization"]["dataSecretCreated"] == json!(true) {
            break cfg;
        }
        if let Some(status) = provider.try_exit()? {
            bail!("provider exited early ({status}):\n{}", provider.log());
        }
        if tokio::time::Instant::now() > deadline {
            bail!(
                "config never reached dataSecretCreated; status: {}",
                cfg.data["status"]
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let st = &cfg.data["status"];
    assert_eq!(st["dataSecretName"], "edge-0107");
    assert_eq!(st["ready"], true);
    assert_eq!(st["siteId"], SITE);
    assert_eq!(st["observedGeneration"], json!(cfg.metadata.generation));
    assert_eq!(cond(&cfg, "Ready"), Some(("True".into(), "Ready".into())));
    assert_eq!(
        cond(&cfg, "DataSecretAvailable"),
        Some(("True".into(), "Available".into()))
    );
    assert_eq!(
        cond(&cfg, "Paused"),
        Some(("False".into(), "NotPaused".into()))
    );
    assert_eq!(
        cond(&cfg, "Registered"),
        Some(("False".into(), "WaitingForDevice".into()))
    );
    let token_id = st["tokenId"]
        .as_str()
        .context("status.tokenId")?
        .to_string();

    let secret = Api::<Secret>::namespaced(client.clone(), NS)
        .get("edge-0107")
        .await?;
    assert_eq!(secret.type_.as_deref(), Some("cluster.x-k8s.io/secret"));
    assert_eq!(
        secret
            .labels()
            .get("cluster.x-k8s.io/cluster-name")
            .map(String::as_str),
        Some(SITE)
    );
    let owner = secret
        .owner_references()
        .first()
        .context("owner reference")?;
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str(), owner.controller),
        ("SiteBootstrapConfig", "edge-0107", Some(true))
    );
    assert_eq!(Some(&owner.uid), cfg.metadata.uid.as_ref());
    let data = secret.data.clone().context("secret data")?;
    assert_eq!(data["format"].0, b"cloud-config");
    let value = String::from_utf8(data["value"].0.clone())?;
    assert!(value.starts_with("#cloud-config"));

    // The token the box would find on first boot.
    let token = written_file(&value, "/etc/siteboot/registration-token")?
        .trim()
        .to_string();
    run.register_secret("registration token", &token);
    assert!(
        token.starts_with(&format!("sbt1.{token_id}.")),
        "token in the data is the one in status"
    );
    assert!(
        !serde_json::to_string(&cfg)?.contains(&token),
        "the token never reaches the config"
    );

    let first = post_json(
        &reg_url,
        &ca_pem,
        "/v1/register",
        &register_body(&token, "SB0107A01X")?,
    )
    .await?;
    assert_eq!(first, 201, "first redemption registers the device");
    let second = post_json(
        &reg_url,
        &ca_pem,
        "/v1/register",
        &register_body(&token, "SB0107A01X")?,
    )
    .await?;
    assert_eq!(second, 401, "a one-time token does not work twice");

    // The provider notices on its own and shows the device.
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let cfg = configs.get("edge-0107").await?;
        if cond(&cfg, "Registered") == Some(("True".into(), "Registered".into())) {
            assert!(cfg.data["status"]["deviceId"]
                .as_str()
                .is_some_and(|d| !d.is_empty()));
            break;
        }
        if tokio::time::Instant::now() > deadline {
            bail!(
                "Registered never became True; status: {}",
                cfg.data["status"]
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    provider.terminate_async(Duration::from_secs(20)).await?;
    drop(registration);
    run.finish();
    Ok(())
}
