//! The `SiteBootstrapConfig` and `SiteBootstrapConfigTemplate` custom resources
//! (`bootstrap.cluster.x-k8s.io/v1alpha1`). The `///` comments here become the field
//! descriptions `kubectl explain` shows, so they are written for cluster operators.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

mod status;

pub use status::{Condition, ConditionStatus, Initialization, SiteBootstrapConfigStatus};

/// Desired bootstrap data for one Machine of an edge site: which site it is, where it
/// registers, how the agent (and optionally k3s) is installed, plus user files, commands,
/// users and NTP.
// clippy reads the repeated `type_ = ...` of the printcolumn arguments as duplicated attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[kube(
    group = "bootstrap.cluster.x-k8s.io",
    version = "v1alpha1",
    kind = "SiteBootstrapConfig",
    plural = "sitebootstrapconfigs",
    singular = "sitebootstrapconfig",
    namespaced,
    status = "SiteBootstrapConfigStatus",
    shortname = "sbc",
    category = "cluster-api",
    doc = "SiteBootstrapConfig is the Cluster API bootstrap config of siteboot: it renders cloud-init or Ignition data that installs the siteboot agent with a one-time registration token for the Machine's site.",
    label("cluster.x-k8s.io/v1beta2", "v1alpha1"),
    label("cluster.x-k8s.io/v1beta1", "v1alpha1"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status",
        description = "Bootstrap data is available"
    ),
    printcolumn(
        name = "Site",
        type_ = "string",
        json_path = ".status.siteId",
        description = "Site the Machine registers as"
    ),
    printcolumn(
        name = "Registered",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Registered\")].status",
        description = "The device redeemed its token"
    ),
    printcolumn(
        name = "Device",
        type_ = "string",
        json_path = ".status.deviceId",
        priority = 1,
        description = "Registered device id"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct SiteBootstrapConfigSpec {
    /// Output format of the bootstrap data: `cloud-config` (default) or `ignition` (spec 3.3.0).
    #[serde(default)]
    pub format: Format,
    /// Which site this Machine becomes.
    pub site: SiteSource,
    /// The registration service the agent (and the provider) talk to.
    pub registration: Registration,
    /// How the siteboot agent gets onto the node.
    pub agent: AgentSource,
    /// Optional Kubernetes distribution for single-node edge sites.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubernetes: Option<KubernetesSource>,
    /// Hostname to set on the node (a DNS name). Defaults to none (the image's choice).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// Extra files written before anything runs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<File>,
    /// Shell commands run before the agent is installed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pre_commands: Vec<String>,
    /// Shell commands run after the agent has started.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub post_commands: Vec<String>,
    /// Local users with SSH keys.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub users: Vec<User>,
    /// Time synchronisation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ntp: Option<Ntp>,
    /// Lifetime of the one-time registration token, e.g. `24h`, `90m`, `1h30m`. The token is
    /// extended before it expires for as long as the Machine exists and has not registered.
    /// Defaults to the controller's `--token-ttl` (24h).
    #[serde(default, rename = "tokenTTL", skip_serializing_if = "Option::is_none")]
    pub token_ttl: Option<String>,
}

/// Bootstrap data format.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
pub enum Format {
    /// cloud-init `#cloud-config` user-data.
    #[default]
    #[serde(rename = "cloud-config")]
    CloudConfig,
    /// Ignition spec 3.3.0 JSON.
    #[serde(rename = "ignition")]
    Ignition,
}

impl Format {
    /// The value written under the data Secret's `format` key.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::CloudConfig => "cloud-config",
            Format::Ignition => "ignition",
        }
    }
}

/// The site id, given directly or read from a label.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SiteSource {
    /// The site id (a DNS label such as `store-0142`). Wins over `siteIdFrom`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site_id: Option<String>,
    /// Read the site id from a label of the owning Machine, or else of its Cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site_id_from: Option<LabelRef>,
}

/// A label key to read a value from.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LabelRef {
    /// Label key on the Machine or Cluster, e.g. `siteboot.io/site-id`.
    pub label: String,
}

/// Registration service settings.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Registration {
    /// Base URL the agent on the site uses (`https://...`).
    pub url: String,
    /// Base URL the provider uses for the operator API when the management cluster reaches
    /// the service under another address (e.g. an in-cluster Service). Defaults to `url`.
    /// Plain `http://` is accepted only for loopback addresses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator_url: Option<String>,
    /// PEM CA bundle that signs the service's certificate (inline).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_bundle: Option<String>,
    /// PEM CA bundle read from a Secret or ConfigMap in the config's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_bundle_from: Option<KeyRef>,
    /// Secret (in the config's namespace) holding the operator API credential the provider
    /// uses to mint tokens. Never copied into the bootstrap data.
    pub credentials_secret_ref: SecretKeyRef,
}

/// A key in a Secret or ConfigMap.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KeyRef {
    /// `Secret` or `ConfigMap`.
    pub kind: SourceKind,
    /// Object name in the config's namespace.
    pub name: String,
    /// Key in the object's data; default `ca.crt`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

/// Kind of object a [`KeyRef`] points at.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
pub enum SourceKind {
    /// A core/v1 Secret.
    #[default]
    Secret,
    /// A core/v1 ConfigMap.
    ConfigMap,
}

/// A key in a Secret.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// Secret name in the config's namespace.
    pub name: String,
    /// Key in the Secret's data; default `token`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

/// Where the agent binary comes from: exactly one of `url` (+ `sha256`) or `preinstalled`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AgentSource {
    /// Download URL of the agent binary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Lower-case hex SHA-256 of the binary at `url`; the node refuses any other file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// The image already contains the agent (factory images).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub preinstalled: bool,
}

/// Kubernetes for single-node edge sites: exactly one of `k3s` or `preinstalled`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KubernetesSource {
    /// Install k3s as a single-node server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub k3s: Option<K3s>,
    /// The image already runs Kubernetes.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub preinstalled: bool,
}

/// k3s artifact and options.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct K3s {
    /// k3s version, e.g. `v1.31.4+k3s1`.
    pub version: String,
    /// Download URL of the k3s binary.
    pub url: String,
    /// Lower-case hex SHA-256 of the binary.
    pub sha256: String,
    /// Server options, each `--flag` or `--flag=value`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub server_args: Vec<String>,
}

/// A file written onto the node.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct File {
    /// Absolute path.
    pub path: String,
    /// Exact content.
    pub content: String,
    /// Octal mode such as `0644` (default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permissions: Option<String>,
    /// `user` or `user:group` (default `root:root`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
}

/// A local user.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct User {
    /// Login name.
    pub name: String,
    /// OpenSSH `authorized_keys` lines.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ssh_authorized_keys: Vec<String>,
    /// Password-less sudo.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub sudo: bool,
    /// Supplementary groups.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
}

/// Time synchronisation.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Ntp {
    /// NTP servers (host names or addresses).
    #[serde(default)]
    pub servers: Vec<String>,
}

/// Stamps out one `SiteBootstrapConfig` per Machine of a MachineDeployment, MachineSet or
/// control plane.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[kube(
    group = "bootstrap.cluster.x-k8s.io",
    version = "v1alpha1",
    kind = "SiteBootstrapConfigTemplate",
    plural = "sitebootstrapconfigtemplates",
    singular = "sitebootstrapconfigtemplate",
    namespaced,
    shortname = "sbct",
    category = "cluster-api",
    doc = "SiteBootstrapConfigTemplate is the template Cluster API clones into one SiteBootstrapConfig per Machine.",
    label("cluster.x-k8s.io/v1beta2", "v1alpha1"),
    label("cluster.x-k8s.io/v1beta1", "v1alpha1"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct SiteBootstrapConfigTemplateSpec {
    /// The config every Machine gets.
    pub template: SiteBootstrapConfigTemplateResource,
}

/// Template body.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SiteBootstrapConfigTemplateResource {
    /// Labels and annotations copied onto each generated config.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<TemplateMeta>,
    /// Spec of each generated config.
    pub spec: SiteBootstrapConfigSpec,
}

/// The subset of object metadata a template may set.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TemplateMeta {
    /// Labels.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub labels: std::collections::BTreeMap<String, String>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub annotations: std::collections::BTreeMap<String, String>,
}

/// Keeps `ObjectMeta` referenced for docs; the derive provides the real metadata field.
#[allow(dead_code)]
type Meta = ObjectMeta;
