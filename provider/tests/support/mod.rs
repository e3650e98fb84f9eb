//! Shared fixtures for the provider's reconcile tests: an emulated Kubernetes API with the
//! CAPI and siteboot CRDs installed, a fake registration operator API, and builders for
//! the Cluster / Machine / SiteBootstrapConfig objects CAPI core would create.
#![allow(dead_code)]

pub mod fake_registration;

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DynamicObject, PostParams};
use kube::{CustomResourceExt, ResourceExt};
use serde_json::{json, Value};
use siteboot_e2e::emulator::{Emulator, EmulatorHandle};
use siteboot_provider::api::{SiteBootstrapConfig, SiteBootstrapConfigTemplate};
use siteboot_provider::capi;
use siteboot_provider::controller::{Context, Settings};
use siteboot_provider::metrics::Metrics;

pub use fake_registration::FakeRegistration;

/// Operator credential the fake accepts.
pub const OPERATOR_CREDENTIAL: &str = "op-credential-4f1d2c9a7e";
/// A self-signed CA certificate (made with openssl), only ever parsed, never used for TLS here.
pub const CA_PEM: &str = include_str!("ca.pem");

/// A CAPI CRD shaped like the real one (served at v1beta2 and v1beta1), schema-less.
pub fn capi_crd(kind: &str, plural: &str) -> Value {
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

/// Installs the CAPI Cluster/Machine CRDs and ours.
pub async fn install_crds(client: &kube::Client) -> anyhow::Result<()> {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in [
        capi_crd("Cluster", "clusters"),
        capi_crd("Machine", "machines"),
    ] {
        let crd: CustomResourceDefinition = serde_json::from_value(crd)?;
        crds.create(&PostParams::default(), &crd).await?;
    }
    crds.create(&PostParams::default(), &SiteBootstrapConfig::crd())
        .await?;
    crds.create(&PostParams::default(), &SiteBootstrapConfigTemplate::crd())
        .await?;
    Ok(())
}

/// A running test environment.
pub struct Env {
    pub emu: EmulatorHandle,
    pub client: kube::Client,
    pub fake: FakeRegistration,
    pub ns: String,
}

impl Env {
    pub async fn start() -> anyhow::Result<Env> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let emu = Emulator::start().await?;
        let client = emu.client().await?;
        install_crds(&client).await?;
        let fake = FakeRegistration::start(OPERATOR_CREDENTIAL).await?;
        let ns = "stores".to_string();
        let nss: Api<Namespace> = Api::all(client.clone());
        nss.create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": ns}}))?,
        )
        .await?;
        let env = Env {
            emu,
            client,
            fake,
            ns,
        };
        env.create_json("v1", "Secret", json!({
            "metadata": {"name": "registration-operator", "namespace": env.ns},
            "data": {"token": base64::Engine::encode(&base64::engine::general_purpose::STANDARD, OPERATOR_CREDENTIAL)}
        })).await?;
        Ok(env)
    }

    /// A controller context with test settings (short check interval).
    pub async fn context(&self) -> Arc<Context> {
        let settings = Settings {
            namespace: Some(self.ns.clone()),
            check_interval: chrono::Duration::seconds(2),
            ..Settings::default()
        };
        Arc::new(Context::new(self.client.clone(), settings, Arc::new(Metrics::default())).await)
    }

    pub fn dyn_api(&self, kind: &str) -> Api<DynamicObject> {
        Api::namespaced_with(
            self.client.clone(),
            &self.ns,
            &capi::api_resource(kind, "v1beta2"),
        )
    }

    pub async fn create_json(
        &self,
        api_version: &str,
        kind: &str,
        mut body: Value,
    ) -> anyhow::Result<DynamicObject> {
        body["apiVersion"] = json!(api_version);
        body["kind"] = json!(kind);
        let obj: DynamicObject = serde_json::from_value(body)?;
        let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
        let plural = match kind {
            "Secret" => "secrets".to_string(),
            other => format!("{}s", other.to_lowercase()),
        };
        let ar = kube::api::ApiResource {
            group: group.into(),
            version: version.into(),
            api_version: api_version.into(),
            kind: kind.into(),
            plural,
        };
        let api: Api<DynamicObject> = Api::namespaced_with(self.client.clone(), &self.ns, &ar);
        Ok(api.create(&PostParams::default(), &obj).await?)
    }

    /// A v1beta2 Cluster; `provisioned` sets `status.initialization.infrastructureProvisioned`.
    pub async fn cluster(
        &self,
        name: &str,
        provisioned: bool,
        paused: bool,
    ) -> anyhow::Result<DynamicObject> {
        let created = self
            .create_json("cluster.x-k8s.io/v1beta2", "Cluster", json!({
                "metadata": {"name": name, "namespace": self.ns, "labels": {"siteboot.io/site-id": "store-0142"}},
                "spec": {"paused": paused}
            }))
            .await?;
        if provisioned {
            self.set_infrastructure(name, true).await?;
        }
        Ok(created)
    }

    pub async fn set_infrastructure(&self, cluster: &str, provisioned: bool) -> anyhow::Result<()> {
        let patch =
            json!({"status": {"initialization": {"infrastructureProvisioned": provisioned}}});
        self.dyn_api("Cluster")
            .patch_status(
                cluster,
                &Default::default(),
                &kube::api::Patch::Merge(patch),
            )
            .await?;
        Ok(())
    }

    /// A Machine pointing at config `config` (v1beta2 `configRef`).
    pub async fn machine(
        &self,
        name: &str,
        cluster: &str,
        config: &str,
    ) -> anyhow::Result<DynamicObject> {
        self.create_json("cluster.x-k8s.io/v1beta2", "Machine", json!({
            "metadata": {"name": name, "namespace": self.ns, "labels": {"cluster.x-k8s.io/cluster-name": cluster}},
            "spec": {"clusterName": cluster, "bootstrap": {"configRef": {"apiGroup": "bootstrap.cluster.x-k8s.io", "kind": "SiteBootstrapConfig", "name": config}}}
        }))
        .await
    }

    /// The spec every test config starts from.
    pub fn config_spec(&self) -> Value {
        json!({
            "format": "cloud-config",
            "site": {"siteIdFrom": {"label": "siteboot.io/site-id"}},
            "registration": {
                "url": "https://registration.example.net:8443",
                "operatorUrl": self.fake.url(),
                "caBundle": CA_PEM,
                "credentialsSecretRef": {"name": "registration-operator"}
            },
            "agent": {"url": "https://downloads.example.net/siteboot-agent", "sha256": "a".repeat(64)},
            "users": [{"name": "ops", "sshAuthorizedKeys": ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJq5 ops@example"], "sudo": true}],
            "ntp": {"servers": ["time.example.net"]}
        })
    }

    /// A config owned (controller reference) by `machine`, labelled with the cluster name,
    /// as CAPI core leaves it.
    pub async fn config(
        &self,
        name: &str,
        cluster: &str,
        machine: Option<&DynamicObject>,
        spec: Value,
    ) -> anyhow::Result<SiteBootstrapConfig> {
        self.config_labelled(name, cluster, machine, spec, &[])
            .await
    }

    /// [`Env::config`] with extra labels.
    pub async fn config_labelled(
        &self,
        name: &str,
        cluster: &str,
        machine: Option<&DynamicObject>,
        spec: Value,
        labels: &[(&str, &str)],
    ) -> anyhow::Result<SiteBootstrapConfig> {
        let mut all = serde_json::Map::new();
        all.insert("cluster.x-k8s.io/cluster-name".into(), json!(cluster));
        for (k, v) in labels {
            all.insert((*k).into(), json!(v));
        }
        let owners: Vec<Value> = machine
            .map(|m| vec![json!({"apiVersion": "cluster.x-k8s.io/v1beta2", "kind": "Machine", "name": m.name_any(), "uid": m.uid(), "controller": true, "blockOwnerDeletion": true})])
            .unwrap_or_default();
        let body = json!({
            "apiVersion": "bootstrap.cluster.x-k8s.io/v1alpha1", "kind": "SiteBootstrapConfig",
            "metadata": {"name": name, "namespace": self.ns, "labels": all, "ownerReferences": owners},
            "spec": spec
        });
        let cfg: SiteBootstrapConfig = serde_json::from_value(body)?;
        Ok(self.configs().create(&PostParams::default(), &cfg).await?)
    }

    pub fn configs(&self) -> Api<SiteBootstrapConfig> {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    pub fn secrets(&self) -> Api<Secret> {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    pub async fn get_config(&self, name: &str) -> anyhow::Result<SiteBootstrapConfig> {
        Ok(self.configs().get(name).await?)
    }

    /// Standard setup: provisioned Cluster `c1`, Machine `m1`, config `cfg1` owned by it.
    pub async fn standard(&self) -> anyhow::Result<SiteBootstrapConfig> {
        self.cluster("c1", true, false).await?;
        let m = self.machine("m1", "c1", "cfg1").await?;
        self.config("cfg1", "c1", Some(&m), self.config_spec())
            .await
    }
}

/// Polls `f` every 100 ms until it returns `Some`, or fails after `secs` seconds.
pub async fn eventually<T, F, Fut>(secs: u64, what: &str, mut f: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await {
            return Ok(v);
        }
        if tokio::time::Instant::now() > deadline {
            anyhow::bail!("timed out after {secs} s waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
