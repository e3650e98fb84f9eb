//! Discovery (legacy and aggregated), CRDs registered at run time, the kubeconfig.

use super::*;

fn widget_crd(scope: &str) -> CustomResourceDefinition {
    serde_json::from_value(json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {"group": "example.com", "scope": scope,
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "shortNames": ["wd"]},
            "versions": [{"name": "v1", "served": true, "storage": true, "subresources": {"status": {}},
                          "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}
    }))
    .unwrap()
}

#[tokio::test]
async fn discovery_serves_builtins_and_runtime_crds() -> Result<()> {
    let (_emu, client) = start().await?;
    let d = Discovery::new(client.clone()).run().await?;
    for (group, kind) in [
        ("apps", "Deployment"),
        ("coordination.k8s.io", "Lease"),
        ("", "Secret"),
        ("batch", "Job"),
        ("rbac.authorization.k8s.io", "ClusterRole"),
        ("events.k8s.io", "Event"),
    ] {
        let g = d
            .get(group)
            .with_context(|| format!("group {group:?} missing"))?;
        g.recommended_kind(kind)
            .with_context(|| format!("{kind} missing"))?;
    }
    assert!(!d.has_group("example.com"));

    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let created = crds
        .create(&PostParams::default(), &widget_crd("Namespaced"))
        .await?;
    let conditions = created
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    for ty in ["Established", "NamesAccepted"] {
        assert!(
            conditions
                .iter()
                .any(|c| c.type_ == ty && c.status == "True"),
            "{ty} not True: {conditions:?}"
        );
    }

    for aggregated in [false, true] {
        let d = if aggregated {
            Discovery::new(client.clone()).run_aggregated().await?
        } else {
            Discovery::new(client.clone()).run().await?
        };
        let (ar, caps) = d
            .get("example.com")
            .context("crd group not discovered")?
            .recommended_kind("Widget")
            .context("Widget")?;
        assert_eq!(ar.plural, "widgets");
        assert_eq!(caps.scope, Scope::Namespaced);
        assert!(
            caps.subresources
                .iter()
                .any(|(sub, _)| sub.plural == "widgets/status" || sub.plural == "status"),
            "{:?}",
            caps.subresources
        );
    }

    let ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("example.com", "v1", "Widget"),
        "widgets",
    );
    let widgets: Api<DynamicObject> = Api::namespaced_with(client.clone(), "default", &ar);
    let mut w = DynamicObject::new("w1", &ar);
    w.data = json!({"spec": {"size": 3}, "status": {"ignored": true}});
    let w = widgets.create(&PostParams::default(), &w).await?;
    assert_eq!(w.data["spec"]["size"], 3);
    assert!(
        w.data.get("status").is_none(),
        "status is dropped on create when a status subresource exists"
    );
    assert_eq!(widgets.list(&ListParams::default()).await?.items.len(), 1);
    // Custom resources refuse unconditional replaces.
    let mut unconditional = w.clone();
    unconditional.metadata.resource_version = None;
    let (code, _, msg) = api_code(
        widgets
            .replace("w1", &PostParams::default(), &unconditional)
            .await,
    );
    assert_eq!(code, 422, "{msg}");
    widgets.replace("w1", &PostParams::default(), &w).await?;

    // Deleting the CRD removes its objects and its discovery entry.
    crds.delete("widgets.example.com", &DeleteParams::default())
        .await?;
    assert!(!Discovery::new(client.clone())
        .run()
        .await?
        .has_group("example.com"));
    Ok(())
}

#[tokio::test]
async fn invalid_crd_is_rejected() -> Result<()> {
    let (_emu, client) = start().await?;
    let mut crd = widget_crd("Namespaced");
    crd.metadata.name = Some("wrong.example.com".into());
    let (code, reason, msg) = api_code(
        Api::<CustomResourceDefinition>::all(client)
            .create(&PostParams::default(), &crd)
            .await,
    );
    assert_eq!((code, reason.as_str()), (422, "Invalid"), "{msg}");
    Ok(())
}

#[tokio::test]
async fn kubeconfig_file_builds_a_working_client() -> Result<()> {
    let emu = Emulator::start().await?;
    let text = std::fs::read_to_string(emu.kubeconfig_path())?;
    assert!(text.contains(emu.url()) && emu.url().starts_with("http://127.0.0.1:"));
    let kc = kube::config::Kubeconfig::read_from(emu.kubeconfig_path())?;
    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default()).await?;
    let client = kube::Client::try_from(config)?;
    let names: Vec<String> = Api::<Namespace>::all(client.clone())
        .list(&ListParams::default())
        .await?
        .items
        .iter()
        .map(|n| n.name_any())
        .collect();
    assert_eq!(
        names,
        ["default", "kube-node-lease", "kube-public", "kube-system"]
    );
    let v = client.apiserver_version().await?;
    assert_eq!(v.minor, "34");
    emu.shutdown().await;
    assert!(
        Api::<Namespace>::all(client)
            .list(&ListParams::default())
            .await
            .is_err(),
        "the server is gone after shutdown"
    );
    Ok(())
}

/// A separate process (kubectl, the machine's client-only 1.32) reaches the emulator through
/// the generated kubeconfig, as the real binaries do through `KUBECONFIG`.
#[tokio::test]
async fn separate_process_uses_the_kubeconfig() -> Result<()> {
    let (emu, client) = start().await?;
    let kubeconfig = emu.kubeconfig_path().to_path_buf();
    let manifest =
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: from-kubectl\ndata:\n  a: b\n";
    let out = tokio::task::spawn_blocking(move || -> Result<std::process::Output> {
        use std::io::Write;
        let mut child = std::process::Command::new("kubectl")
            .env("KUBECONFIG", &kubeconfig)
            .args(["apply", "--server-side", "--validate=false", "-f", "-"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .context("run kubectl")?;
        child
            .stdin
            .take()
            .context("stdin")?
            .write_all(manifest.as_bytes())?;
        Ok(child.wait_with_output()?)
    })
    .await??;
    assert!(
        out.status.success(),
        "kubectl failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cm = Api::<ConfigMap>::default_namespaced(client)
        .get("from-kubectl")
        .await?;
    assert_eq!(cm.data.as_ref().unwrap()["a"], "b");
    let managers: Vec<String> = cm
        .managed_fields()
        .iter()
        .filter_map(|m| m.manager.clone())
        .collect();
    assert_eq!(managers, ["kubectl"]);
    Ok(())
}
