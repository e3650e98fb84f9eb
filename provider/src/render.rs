//! Bootstrap data rendering: plain values in, a cloud-init or Ignition document out.
//!
//! This module owns the pure `RenderInput -> String` step of the reconcile pipeline.
//! Every value that reaches a document is validated ([`validate`]) and then encoded for
//! its context: JSON-style double-quoted scalars or base64 in cloud-init YAML, serde_json
//! in Ignition, and single-quote shell quoting for values that we interpolate into our
//! own commands. Text payloads (agent config, systemd units, k3s config, scripts) come
//! from askama templates under `templates/` ([`payload`]).

use siteboot_wire::SecretString;

mod cloud_init;
pub mod encode;
mod ignition;
pub mod payload;
mod pem;
pub mod read_back;
pub mod shell;
pub mod validate;

pub use ignition::IGNITION_VERSION;

/// Where the agent configuration is written on the node.
pub const AGENT_CONFIG_PATH: &str = "/etc/siteboot/agent.yaml";
/// Where the registration CA bundle is written on the node.
pub const REGISTRATION_CA_PATH: &str = "/etc/siteboot/registration-ca.pem";
/// Where the one-time registration token is written (mode 0600; the agent deletes it).
pub const REGISTRATION_TOKEN_PATH: &str = "/etc/siteboot/registration-token";
/// Agent state directory.
pub const AGENT_DATA_DIR: &str = "/var/lib/siteboot";
/// Installed agent binary.
pub const AGENT_BINARY_PATH: &str = "/usr/local/bin/siteboot-agent";
/// systemd unit running the agent.
pub const AGENT_UNIT_NAME: &str = "siteboot-agent.service";
/// Path of the agent unit file.
pub const AGENT_UNIT_PATH: &str = "/etc/systemd/system/siteboot-agent.service";
/// Script that downloads, verifies and installs binaries, then starts services.
pub const BOOTSTRAP_SCRIPT_PATH: &str = "/usr/local/lib/siteboot/bootstrap.sh";
/// Cluster API convention: written when bootstrap succeeded.
pub const SENTINEL_PATH: &str = "/run/cluster-api/bootstrap-success.complete";
/// k3s configuration file.
pub const K3S_CONFIG_PATH: &str = "/etc/rancher/k3s/config.yaml";
/// Installed k3s binary.
pub const K3S_BINARY_PATH: &str = "/usr/local/bin/k3s";
/// systemd unit running k3s.
pub const K3S_UNIT_PATH: &str = "/etc/systemd/system/k3s.service";

/// Everything needed to render bootstrap data for one Machine. Plain values only.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RenderInput {
    /// Site id (a DNS label); becomes the agent's `siteId` expectation.
    pub site_id: String,
    /// Optional hostname to set on the node (a DNS name).
    pub hostname: Option<String>,
    /// Registration service base URL (`https://...`).
    pub registration_url: String,
    /// PEM CA bundle the agent trusts for the registration service.
    pub registration_ca_pem: String,
    /// One-time registration token text (`sbt1.<id>.<secret>`).
    pub token: SecretString,
    /// How the agent binary gets onto the node.
    pub agent: AgentInstall,
    /// Optional Kubernetes distribution for single-node edge sites.
    pub kubernetes: Option<KubernetesInstall>,
    /// Extra files written before anything runs.
    pub files: Vec<FileSpec>,
    /// Commands run (as the user's shell) before the agent is installed.
    pub pre_commands: Vec<String>,
    /// Commands run (as the user's shell) after the agent is started.
    pub post_commands: Vec<String>,
    /// Local users with SSH keys.
    pub users: Vec<UserSpec>,
    /// Time synchronisation servers.
    pub ntp: Option<NtpSpec>,
}

/// How the agent binary is installed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AgentInstall {
    /// Download from `url`, verify `sha256` (64 hex), install to [`AGENT_BINARY_PATH`].
    Download { url: String, sha256: String },
    /// The image already has [`AGENT_BINARY_PATH`] (factory images).
    Preinstalled,
}

/// How Kubernetes is installed on a single-node edge site.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KubernetesInstall {
    /// Download the k3s binary from `url`, verify `sha256`, run it as a server with
    /// `server_args` (each a `--flag` or `--flag=value`, written to the k3s config file).
    K3s {
        version: String,
        url: String,
        sha256: String,
        server_args: Vec<String>,
    },
    /// The image already runs Kubernetes; only enable the k3s unit if present.
    Preinstalled,
}

/// A file written onto the node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileSpec {
    /// Absolute path.
    pub path: String,
    /// Exact content (UTF-8, no NUL).
    pub content: String,
    /// Octal mode such as `"0644"`; default `0644`.
    pub permissions: Option<String>,
    /// `user` or `user:group`; default `root:root`.
    pub owner: Option<String>,
}

/// A local user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserSpec {
    /// Login name (POSIX portable user name).
    pub name: String,
    /// OpenSSH authorized_keys lines.
    pub ssh_authorized_keys: Vec<String>,
    /// Password-less sudo.
    pub sudo: bool,
    /// Supplementary groups.
    pub groups: Vec<String>,
}

/// Time synchronisation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NtpSpec {
    /// NTP server host names or addresses.
    pub servers: Vec<String>,
}

/// Why rendering failed. Messages name the offending field and never contain the token.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RenderError {
    /// An input value is not acceptable.
    #[error("invalid {field}: {reason}")]
    Invalid { field: String, reason: String },
    /// An askama template failed to render.
    #[error("render template {template}: {reason}")]
    Template {
        template: &'static str,
        reason: String,
    },
    /// The JSON/YAML encoder failed.
    #[error("encode {what}: {reason}")]
    Encode { what: &'static str, reason: String },
}

impl RenderError {
    pub(crate) fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// Short stable label for metrics and event reasons.
    pub fn category(&self) -> &'static str {
        match self {
            Self::Invalid { .. } => "invalid_input",
            Self::Template { .. } => "template",
            Self::Encode { .. } => "encode",
        }
    }
}

/// Renders `#cloud-config` user-data.
pub fn render_cloud_init(input: &RenderInput) -> Result<String, RenderError> {
    validate::input(input)?;
    cloud_init::render(input)
}

/// Renders an Ignition spec 3.3.0 JSON config.
pub fn render_ignition(input: &RenderInput) -> Result<String, RenderError> {
    validate::input(input)?;
    ignition::render(input)
}
