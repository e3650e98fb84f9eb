//! The management cluster of journey 1 on the API emulator, and Cluster API core's part in
//! it played by the test: the CRDs `clusterctl init` would install, `kubectl apply` of the
//! generated objects, the owner references and labels CAPI's controllers set, the
//! infrastructure provider reporting ready, and the Machine controller copying
//! `status.dataSecretName` of the bootstrap config into `spec.bootstrap.dataSecretName`.

use anyhow::{bail, Context, Result};
use base64::Engine as _;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{
    Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams,
};
use kube::discovery::{pinned_kind, Scope};
use kube::ResourceExt;
use serde_json::{json, Value};

use super::eventually;
use crate::emulator::{Emulator, EmulatorHandle};
use crate::process::binaries;

/// CAPI core's group.
pub const CAPI_GROUP: &str = "cluster.x-k8s.io";
/// The bootstrap group (ours).
pub const BOOTSTRAP_GROUP: &str = "bootstrap.cluster.x-k8s.io";

/// A CRD with an open schema and a status subresource, served at `versions` (the first
/// is the storage version).
pub fn open_crd(group: &str, kind: &str, plural: &str, versions: &[&str]) -> Value {
    let schema = json!({"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}});
    let versions: Vec<Value> = versions
        .iter()
        .enumerate()
        .map(|(i, v)| json!({"name": v, "served": true, "storage": i == 0, "schema": schema, "subresources": {"status": {}}}))
        .collect();
    json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("{plural}.{group}")},
        "spec": {"group": group, "scope": "Namespaced",
            "names": {"kind": kind, "plural": plural, "singular": kind.to_lowercase(), "listKind": format!("{kind}List")},
            "versions": versions}
    })
}

/// The management cluster.
pub struct Management {
    /// The emulator (its kubeconfig goes to the provider).
    pub emu: EmulatorHandle,
    /// Client for the test's own calls.
    pub client: kube::Client,
}

impl Management {
    /// Starts the emulator with CAPI core's Cluster and Machine, the default
    /// infrastructure kinds of the templates (CAPD's DockerCluster and DockerMachine) and
    /// siteboot's CRDs from `config/crd/bases`.
    pub async fn start() -> Result<Management> {
        let emu = Emulator::start().await?;
        let client = emu.client().await?;
        let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
        let mut all = vec![
            open_crd(CAPI_GROUP, "Cluster", "clusters", &["v1beta2", "v1beta1"]),
            open_crd(CAPI_GROUP, "Machine", "machines", &["v1beta2", "v1beta1"]),
            open_crd(
                "infrastructure.cluster.x-k8s.io",
                "DockerCluster",
                "dockerclusters",
                &["v1beta1"],
            ),
            open_crd(
                "infrastructure.cluster.x-k8s.io",
                "DockerMachine",
                "dockermachines",
                &["v1beta1"],
            ),
        ];
        for file in [
            "bootstrap.cluster.x-k8s.io_sitebootstrapconfigs.yaml",
            "bootstrap.cluster.x-k8s.io_sitebootstrapconfigtemplates.yaml",
        ] {
            let path = binaries::workspace_root()
                .join("config/crd/bases")
                .join(file);
            let text =
                std::fs::read_to_string(&path).with_context(|| path.display().to_string())?;
            all.push(serde_norway::from_str(&text)?);
        }
        for crd in all {
            crds.create(&PostParams::default(), &serde_json::from_value(crd)?)
                .await?;
        }
        Ok(Management { emu, client })
    }

    /// Creates a namespace.
    pub async fn namespace(&self, name: &str) -> Result<()> {
        self.apply(&json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}))
            .await
            .map(|_| ())
    }

    async fn resource(&self, api_version: &str, kind: &str) -> Result<(ApiResource, Scope)> {
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        let (ar, caps) = pinned_kind(&self.client, &GroupVersionKind::gvk(group, version, kind))
            .await
            .with_context(|| format!("discover {api_version} {kind}"))?;
        Ok((ar, caps.scope))
    }

    fn api(&self, ar: &ApiResource, scope: &Scope, ns: Option<&str>) -> Api<DynamicObject> {
        match (scope, ns) {
            (Scope::Namespaced, Some(ns)) => Api::namespaced_with(self.client.clone(), ns, ar),
            (Scope::Namespaced, None) => Api::default_namespaced_with(self.client.clone(), ar),
            (Scope::Cluster, _) => Api::all_with(self.client.clone(), ar),
        }
    }

    /// `kubectl apply --server-side` of one object.
    pub async fn apply(&self, obj: &Value) -> Result<DynamicObject> {
        let api_version = obj["apiVersion"].as_str().context("apiVersion")?;
        let kind = obj["kind"].as_str().context("kind")?;
        let name = obj["metadata"]["name"].as_str().context("metadata.name")?;
        let (ar, scope) = self.resource(api_version, kind).await?;
        let api = self.api(&ar, &scope, obj["metadata"]["namespace"].as_str());
        api.patch(
            name,
            &PatchParams::apply("kubectl").force(),
            &Patch::Apply(obj),
        )
        .await
        .with_context(|| format!("apply {kind} {name}"))
    }

    /// Gets an object.
    pub async fn get(
        &self,
        api_version: &str,
        kind: &str,
        ns: &str,
        name: &str,
    ) -> Result<DynamicObject> {
        let (ar, scope) = self.resource(api_version, kind).await?;
        Ok(self.api(&ar, &scope, Some(ns)).get(name).await?)
    }

    async fn merge(&self, obj: &DynamicObject, patch: Value, status: bool) -> Result<()> {
        let tm = obj
            .types
            .as_ref()
            .context("object without apiVersion/kind")?;
        let (ar, scope) = self.resource(&tm.api_version, &tm.kind).await?;
        let api = self.api(&ar, &scope, obj.namespace().as_deref());
        let name = obj.name_any();
        if status {
            api.patch_status(&name, &PatchParams::default(), &Patch::Merge(patch))
                .await?;
        } else {
            api.patch(&name, &PatchParams::default(), &Patch::Merge(patch))
                .await?;
        }
        Ok(())
    }

    /// What CAPI core and the infrastructure provider do once the generated objects are
    /// applied, for the Cluster `cluster` and its Machines: infrastructure ready; owner
    /// references Cluster -> infra cluster, Cluster -> Machine, Machine -> infra machine and
    /// Machine -> bootstrap config (controller), with the `cluster-name` label on each.
    pub async fn play_capi(&self, docs: &[Value], ns: &str, cluster: &str) -> Result<()> {
        let find =
            |kind: &str| -> Vec<&Value> { docs.iter().filter(|d| d["kind"] == kind).collect() };
        let cluster_doc = find("Cluster")
            .into_iter()
            .find(|d| d["metadata"]["name"] == cluster)
            .context("the template has no Cluster")?;
        let cluster_obj = self
            .get(
                cluster_doc["apiVersion"].as_str().unwrap_or_default(),
                "Cluster",
                ns,
                cluster,
            )
            .await?;
        let owner = |o: &DynamicObject, controller: bool| {
            let tm = o.types.clone().unwrap_or_default();
            json!({"apiVersion": tm.api_version, "kind": tm.kind, "name": o.name_any(),
                "uid": o.uid(), "controller": controller, "blockOwnerDeletion": true})
        };
        let label = json!({"cluster.x-k8s.io/cluster-name": cluster});
        // The infrastructure provider reports its cluster ready; CAPI mirrors it.
        let infra_ref = &cluster_doc["spec"]["infrastructureRef"];
        let infra = self.referenced(infra_ref, ns).await?;
        self.merge(
            &infra,
            json!({"metadata": {"labels": label, "ownerReferences": [owner(&cluster_obj, true)]}}),
            false,
        )
        .await?;
        self.merge(
            &infra,
            json!({"status": {"ready": true, "initialization": {"provisioned": true}}}),
            true,
        )
        .await?;
        self.merge(
            &cluster_obj,
            json!({"status": {"initialization": {"infrastructureProvisioned": true}}}),
            true,
        )
        .await?;
        for m in find("Machine") {
            if m["spec"]["clusterName"] != cluster {
                continue;
            }
            let name = m["metadata"]["name"].as_str().unwrap_or_default();
            let machine = self
                .get(
                    m["apiVersion"].as_str().unwrap_or_default(),
                    "Machine",
                    ns,
                    name,
                )
                .await?;
            self.merge(&machine, json!({"metadata": {"labels": label, "ownerReferences": [owner(&cluster_obj, false)]}}), false).await?;
            for r in [
                &m["spec"]["infrastructureRef"],
                &m["spec"]["bootstrap"]["configRef"],
            ] {
                let dependent = self.referenced(r, ns).await?;
                self.merge(&dependent, json!({"metadata": {"labels": label, "ownerReferences": [owner(&machine, true)]}}), false).await?;
            }
        }
        Ok(())
    }

    /// Resolves a v1beta2 contract reference (`apiGroup`, `kind`, `name`) by discovery.
    async fn referenced(&self, r: &Value, ns: &str) -> Result<DynamicObject> {
        let group = r["apiGroup"]
            .as_str()
            .context("reference without apiGroup")?;
        let kind = r["kind"].as_str().context("reference without kind")?;
        let name = r["name"].as_str().context("reference without name")?;
        let discovery = kube::Discovery::new(self.client.clone())
            .filter(&[group])
            .run()
            .await?;
        let (ar, caps) = discovery
            .groups()
            .flat_map(|g| g.recommended_resources())
            .find(|(ar, _)| ar.kind == kind)
            .with_context(|| format!("{group} {kind} is not served"))?;
        Ok(self.api(&ar, &caps.scope, Some(ns)).get(name).await?)
    }

    /// The Machine controller's copy: once the bootstrap config reports
    /// `status.initialization.dataSecretCreated` and `status.dataSecretName`, the name goes
    /// to `Machine.spec.bootstrap.dataSecretName` (and `bootstrapDataSecretCreated`).
    /// Returns the Secret name.
    pub async fn copy_data_secret_name(&self, ns: &str, machine: &str) -> Result<String> {
        let m = self
            .get(&format!("{CAPI_GROUP}/v1beta2"), "Machine", ns, machine)
            .await?;
        let config = m.data["spec"]["bootstrap"]["configRef"]["name"]
            .as_str()
            .context("Machine without bootstrap.configRef")?
            .to_string();
        let api_version = format!("{BOOTSTRAP_GROUP}/v1alpha1");
        let secret = eventually(&format!("{config} reports its data Secret"), || async {
            let c = self
                .get(&api_version, "SiteBootstrapConfig", ns, &config)
                .await
                .ok()?;
            let st = &c.data["status"];
            (st["initialization"]["dataSecretCreated"] == true)
                .then(|| st["dataSecretName"].as_str().map(str::to_string))
                .flatten()
        })
        .await?;
        self.merge(
            &m,
            json!({"spec": {"bootstrap": {"dataSecretName": secret}}}),
            false,
        )
        .await?;
        self.merge(
            &m,
            json!({"status": {"initialization": {"bootstrapDataSecretCreated": true}}}),
            true,
        )
        .await?;
        Ok(secret)
    }

    /// What the infrastructure provider reads: the Secret named by
    /// `Machine.spec.bootstrap.dataSecretName`, as (`format`, `value`).
    pub async fn bootstrap_data(&self, ns: &str, machine: &str) -> Result<(String, Vec<u8>)> {
        let m = self
            .get(&format!("{CAPI_GROUP}/v1beta2"), "Machine", ns, machine)
            .await?;
        let name = m.data["spec"]["bootstrap"]["dataSecretName"]
            .as_str()
            .context("Machine has no spec.bootstrap.dataSecretName yet")?;
        let secret = Api::<Secret>::namespaced(self.client.clone(), ns)
            .get(name)
            .await?;
        let data = secret.data.unwrap_or_default();
        let format = data
            .get("format")
            .map(|b| String::from_utf8_lossy(&b.0).into_owned())
            .unwrap_or_else(|| "cloud-config".into());
        let value = data
            .get("value")
            .context("data Secret without value")?
            .0
            .clone();
        Ok((format, value))
    }

    /// A condition of a SiteBootstrapConfig as (`status`, `reason`).
    pub async fn condition(
        &self,
        ns: &str,
        config: &str,
        type_: &str,
    ) -> Result<Option<(String, String)>> {
        let c = self
            .get(
                &format!("{BOOTSTRAP_GROUP}/v1alpha1"),
                "SiteBootstrapConfig",
                ns,
                config,
            )
            .await?;
        Ok(c.data["status"]["conditions"].as_array().and_then(|cs| {
            let c = cs.iter().find(|c| c["type"] == type_)?;
            Some((
                c["status"].as_str()?.to_string(),
                c["reason"].as_str()?.to_string(),
            ))
        }))
    }

    /// A Secret with one `key`, as `kubectl create secret generic` makes it.
    pub async fn secret(&self, ns: &str, name: &str, key: &str, value: &str) -> Result<()> {
        let b64 = base64::engine::general_purpose::STANDARD.encode(value);
        self.apply(&json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": ns},
            "type": "Opaque", "data": {key: b64}}))
            .await
            .map(|_| ())
    }
}

/// The `siteboot-provider` command line as `config/manager/manager.yaml` runs it (empty
/// watch filter, one namespace, probes on loopback), with a 2 s token check interval,
/// against the cluster of `kubeconfig`.
pub fn provider_spec(
    kubeconfig: &std::path::Path,
    namespace: &str,
) -> Result<crate::process::Spec> {
    Ok(
        crate::process::Spec::new(binaries::binary("siteboot-provider")?)
            .arg("--watch-filter=")
            .arg("--namespace")
            .arg(namespace)
            .arg("--metrics-bind-address")
            .arg("127.0.0.1:0")
            .arg("--health-probe-bind-address")
            .arg("127.0.0.1:0")
            .arg("--token-check-interval-seconds")
            .arg("2")
            .env("KUBECONFIG", kubeconfig)
            .env("RUST_LOG", "info,siteboot_provider=debug"),
    )
}

/// Fails with the provider's log tail when it died.
pub fn provider_alive(provider: &mut crate::process::Process) -> Result<()> {
    if let Some(status) = provider.try_exit()? {
        bail!("provider exited ({status}):\n{}", provider.log());
    }
    Ok(())
}
