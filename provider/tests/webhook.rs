//! The admission webhook over real HTTPS: a server on 127.0.0.1:0 with a certificate from
//! a test CA in a cert dir (tls.crt/tls.key), AdmissionReview bodies shaped like the API
//! server's, a client that trusts only the test CA.

use std::time::Duration;

use serde_json::{json, Value};
use siteboot_e2e::git::TestCa;
use siteboot_provider::webhook::{self, server};

fn spec(site: &str) -> Value {
    json!({
        "site": {"siteId": site},
        "registration": {
            "url": "https://registration.example.com",
            "caBundleFrom": {"kind": "Secret", "name": "registration-ca"},
            "credentialsSecretRef": {"name": "registration-operator"}
        },
        "agent": {"preinstalled": true}
    })
}

fn template(site: &str, annotations: Value) -> Value {
    json!({
        "apiVersion": "bootstrap.cluster.x-k8s.io/v1alpha1",
        "kind": "SiteBootstrapConfigTemplate",
        "metadata": {"name": "edge", "namespace": "default", "annotations": annotations},
        "spec": {"template": {"spec": spec(site)}}
    })
}

fn admission_review(uid: &str, operation: &str, object: Value, old: Value, dry_run: bool) -> Value {
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": "bootstrap.cluster.x-k8s.io", "version": "v1alpha1", "kind": "SiteBootstrapConfigTemplate"},
            "resource": {"group": "bootstrap.cluster.x-k8s.io", "version": "v1alpha1", "resource": "sitebootstrapconfigtemplates"},
            "requestKind": {"group": "bootstrap.cluster.x-k8s.io", "version": "v1alpha1", "kind": "SiteBootstrapConfigTemplate"},
            "requestResource": {"group": "bootstrap.cluster.x-k8s.io", "version": "v1alpha1", "resource": "sitebootstrapconfigtemplates"},
            "name": "edge",
            "namespace": "default",
            "operation": operation,
            "userInfo": {"username": "system:serviceaccount:capi-system:capi-manager", "groups": ["system:serviceaccounts"]},
            "object": object,
            "oldObject": old,
            "dryRun": dry_run,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": "UpdateOptions"}
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_webhook_answers_admission_reviews() -> anyhow::Result<()> {
    let ca = TestCa::new("webhook test ca")?;
    let cert = ca.issue_server(&["127.0.0.1", "localhost"])?;
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("tls.crt"), &cert.cert_pem)?;
    std::fs::write(dir.path().join("tls.key"), &cert.key_pem)?;
    let srv = server::serve("127.0.0.1:0".parse()?, dir.path()).await?;

    let mut roots = rustls::RootCertStore::empty();
    {
        use rustls_pki_types::pem::PemObject as _;
        roots.add(rustls_pki_types::CertificateDer::from_pem_slice(
            ca.cert_pem().as_bytes(),
        )?)?;
    }
    let tls = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let client = reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .timeout(Duration::from_secs(60))
        .build()?;
    let url = format!(
        "https://localhost:{}{}",
        srv.addr.port(),
        webhook::TEMPLATE_PATH
    );

    let ann = json!({webhook::TOPOLOGY_DRY_RUN_ANNOTATION: ""});
    let rows = [
        ("create-ok", "CREATE", template("store-1", json!({})), Value::Null, false, true, None),
        ("create-bad", "CREATE", template("Bad_Site", json!({})), Value::Null, false, false,
            Some("spec.template.spec.site.siteId: invalid value")),
        ("update-same", "UPDATE", template("store-1", json!({})), template("store-1", json!({})), false, true, None),
        ("update-changed", "UPDATE", template("store-2", json!({})), template("store-1", json!({})), false, false,
            Some("spec.template.spec: forbidden: SiteBootstrapConfigTemplate spec.template.spec is immutable")),
        ("update-topology-dry-run", "UPDATE", template("store-2", ann.clone()), template("store-1", json!({})), true, true, None),
        ("delete", "DELETE", Value::Null, template("store-1", json!({})), false, true, None),
    ];
    for (uid, op, object, old, dry_run, allowed, message) in rows {
        let body = admission_review(uid, op, object, old, dry_run);
        let resp = client.post(&url).json(&body).send().await?;
        assert_eq!(resp.status(), 200, "{uid}");
        let out: Value = resp.json().await?;
        assert_eq!(out["apiVersion"], "admission.k8s.io/v1", "{uid}: {out}");
        assert_eq!(out["kind"], "AdmissionReview", "{uid}: {out}");
        assert_eq!(out["response"]["uid"], uid, "{uid}: {out}");
        assert_eq!(out["response"]["allowed"], allowed, "{uid}: {out}");
        if let Some(m) = message {
            let got = out["response"]["status"]["message"]
                .as_str()
                .unwrap_or_default();
            assert!(got.contains(m), "{uid}: {got:?} lacks {m:?}");
            assert_eq!(out["response"]["status"]["code"], 422, "{uid}: {out}");
        }
    }

    // The client trusts only the test CA: a client with no roots fails the handshake.
    let stranger = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(rustls::RootCertStore::empty())
    .with_no_client_auth();
    let stranger = reqwest::Client::builder()
        .use_preconfigured_tls(stranger)
        .timeout(Duration::from_secs(60))
        .build()?;
    assert!(stranger.post(&url).json(&json!({})).send().await.is_err());
    Ok(())
}

#[test]
fn missing_cert_dir_is_an_actionable_error() {
    let dir = tempfile::tempdir().unwrap();
    let err = server::tls_config(dir.path()).unwrap_err().to_string();
    assert!(err.contains("tls.crt"), "{err}");
    std::fs::write(dir.path().join("tls.crt"), "").unwrap();
    std::fs::write(dir.path().join("tls.key"), "").unwrap();
    let err = server::tls_config(dir.path()).unwrap_err().to_string();
    assert!(err.contains("holds no PEM"), "{err}");
}

/// The manager binary serves the webhook when --webhook-cert-dir is given.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manager_binary_serves_the_webhook_with_cert_dir_flag() -> anyhow::Result<()> {
    let emu = siteboot_e2e::emulator::Emulator::start().await?;
    let ca = TestCa::new("webhook test ca")?;
    let cert = ca.issue_server(&["127.0.0.1", "localhost"])?;
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("tls.crt"), &cert.cert_pem)?;
    std::fs::write(dir.path().join("tls.key"), &cert.key_pem)?;
    let port = siteboot_e2e::ports::free_port()?;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_siteboot-provider"))
        .arg("--metrics-bind-address=127.0.0.1:0")
        .arg("--health-probe-bind-address=127.0.0.1:0")
        .arg(format!("--webhook-bind-address=127.0.0.1:{port}"))
        .arg("--webhook-cert-dir")
        .arg(dir.path())
        .env("KUBECONFIG", emu.kubeconfig_path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()?;

    let mut roots = rustls::RootCertStore::empty();
    {
        use rustls_pki_types::pem::PemObject as _;
        roots.add(rustls_pki_types::CertificateDer::from_pem_slice(
            ca.cert_pem().as_bytes(),
        )?)?;
    }
    let tls = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let client = reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .timeout(Duration::from_secs(10))
        .build()?;
    let url = format!("https://localhost:{port}{}", webhook::TEMPLATE_PATH);
    let body = admission_review(
        "bin-1",
        "UPDATE",
        template("store-2", json!({})),
        template("store-1", json!({})),
        false,
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let out: Value = loop {
        if let Some(status) = child.try_wait()? {
            anyhow::bail!("siteboot-provider exited early: {status}");
        }
        match client.post(&url).json(&body).send().await {
            Ok(resp) => break resp.json().await?,
            Err(e) if tokio::time::Instant::now() > deadline => {
                anyhow::bail!("webhook never answered: {e}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    };
    assert_eq!(out["response"]["uid"], "bin-1", "{out}");
    assert_eq!(out["response"]["allowed"], false, "{out}");
    child.kill().await?;
    Ok(())
}

/// `config/webhook` (a kustomize Component) on top of `config/default` wires a Service, a
/// cert-manager Certificate and a ValidatingWebhookConfiguration that fit the manager.
#[test]
fn config_webhook_component_fits_the_manager() {
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .canonicalize()
        .unwrap();
    let overlay = tempfile::tempdir().unwrap();
    // kustomize wants relative paths to other kustomizations.
    let up = "../".repeat(overlay.path().canonicalize().unwrap().components().count() - 1);
    let rel = format!("{up}{}", repo.strip_prefix("/").unwrap().display());
    std::fs::write(
        overlay.path().join("kustomization.yaml"),
        format!("apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: [{rel}/config/default]\ncomponents: [{rel}/config/webhook]\n"),
    )
    .unwrap();
    let build = |dir: &std::path::Path| -> Vec<Value> {
        let out = std::process::Command::new("kubectl")
            .arg("kustomize")
            .arg(dir)
            .output()
            .expect("run kubectl kustomize");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).unwrap();
        serde_norway::Deserializer::from_str(&text)
            .map(|d| <Value as serde::Deserialize>::deserialize(d).unwrap())
            .filter(|v| !v.is_null())
            .collect()
    };
    let default = build(&repo.join("config/default"));
    assert!(!default
        .iter()
        .any(|d| d["kind"] == "ValidatingWebhookConfiguration"));
    let docs = build(overlay.path());
    let one = |kind: &str| -> &Value {
        let found: Vec<_> = docs.iter().filter(|d| d["kind"] == kind).collect();
        assert_eq!(found.len(), 1, "{kind}");
        found[0]
    };
    let vwc = one("ValidatingWebhookConfiguration");
    let svc = one("Service");
    let certificate = one("Certificate");
    let deploy = one("Deployment");
    let ns = svc["metadata"]["namespace"].as_str().unwrap();
    assert_eq!(ns, deploy["metadata"]["namespace"]);
    assert_eq!(
        vwc["metadata"]["annotations"]["cert-manager.io/inject-ca-from"],
        format!("{ns}/{}", certificate["metadata"]["name"].as_str().unwrap())
    );
    let hooks = vwc["webhooks"].as_array().unwrap();
    let mut paths: Vec<&str> = hooks
        .iter()
        .map(|h| {
            assert_eq!(
                h["clientConfig"]["service"]["name"],
                svc["metadata"]["name"]
            );
            assert_eq!(h["clientConfig"]["service"]["namespace"], ns);
            // Dry-run requests reach only side-effect-free webhooks.
            assert_eq!(h["sideEffects"], "None");
            assert_eq!(h["admissionReviewVersions"], json!(["v1"]));
            h["clientConfig"]["service"]["path"].as_str().unwrap()
        })
        .collect();
    paths.sort_unstable();
    assert_eq!(paths, [webhook::CONFIG_PATH, webhook::TEMPLATE_PATH]);
    let pod = &deploy["spec"]["template"];
    for (k, v) in svc["spec"]["selector"].as_object().unwrap() {
        assert_eq!(&pod["metadata"]["labels"][k], v, "selector {k}");
    }
    let container = &pod["spec"]["containers"][0];
    assert!(container["ports"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["name"] == svc["spec"]["ports"][0]["targetPort"] && p["containerPort"] == 9443));
    let args: Vec<&str> = container["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert!(
        args.contains(&"--webhook-bind-address=0.0.0.0:9443"),
        "{args:?}"
    );
    let mount = container["volumeMounts"][0]["mountPath"].as_str().unwrap();
    assert!(
        args.contains(&format!("--webhook-cert-dir={mount}").as_str()),
        "{args:?}"
    );
    assert!(
        args.iter().any(|a| a.starts_with("--token-ttl=")),
        "manager args kept"
    );
    assert_eq!(
        pod["spec"]["volumes"][0]["secret"]["secretName"],
        certificate["spec"]["secretName"]
    );
    let service_dns = format!("{}.{ns}.svc", svc["metadata"]["name"].as_str().unwrap());
    assert!(certificate["spec"]["dnsNames"]
        .as_array()
        .unwrap()
        .contains(&json!(service_dns)));
}
