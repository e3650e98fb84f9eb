//! Pure mapping from a `SiteBootstrapConfigSpec` (plus the resolved site, CA bundle and
//! token) to the renderer's [`RenderInput`]. Also renders with a placeholder token so a
//! bad spec is reported before any token is minted.

use siteboot_wire::SecretString;

use crate::api::{Format, SiteBootstrapConfigSpec};
use crate::render::{
    self, AgentInstall, FileSpec, KubernetesInstall, NtpSpec, RenderError, RenderInput, UserSpec,
};

/// A well-formed token used only for the validation render (never written anywhere).
pub const PLACEHOLDER_TOKEN: &str = "sbt1.0000000000.00000000000000000000000000";

/// Why a spec cannot be turned into render input.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum InputError {
    #[error("spec.agent needs url and sha256, or preinstalled: true")]
    Agent,
    #[error("spec.kubernetes needs k3s or preinstalled: true")]
    Kubernetes,
    #[error("spec.registration needs caBundle or caBundleFrom")]
    CaBundle,
}

/// Builds the renderer's input.
pub fn render_input(
    spec: &SiteBootstrapConfigSpec,
    site_id: &str,
    ca_pem: &str,
    token: SecretString,
) -> Result<RenderInput, InputError> {
    let agent = match (&spec.agent.url, &spec.agent.sha256, spec.agent.preinstalled) {
        (Some(url), Some(sha256), false) => AgentInstall::Download {
            url: url.clone(),
            sha256: sha256.clone(),
        },
        (None, None, true) => AgentInstall::Preinstalled,
        _ => return Err(InputError::Agent),
    };
    let kubernetes = match &spec.kubernetes {
        None => None,
        Some(k) => Some(match (&k.k3s, k.preinstalled) {
            (Some(k3s), false) => KubernetesInstall::K3s {
                version: k3s.version.clone(),
                url: k3s.url.clone(),
                sha256: k3s.sha256.clone(),
                server_args: k3s.server_args.clone(),
            },
            (None, true) => KubernetesInstall::Preinstalled,
            _ => return Err(InputError::Kubernetes),
        }),
    };
    Ok(RenderInput {
        site_id: site_id.to_string(),
        hostname: spec.hostname.clone(),
        registration_url: spec.registration.url.clone(),
        registration_ca_pem: ca_pem.to_string(),
        token,
        agent,
        kubernetes,
        files: spec
            .files
            .iter()
            .map(|f| FileSpec {
                path: f.path.clone(),
                content: f.content.clone(),
                permissions: f.permissions.clone(),
                owner: f.owner.clone(),
            })
            .collect(),
        pre_commands: spec.pre_commands.clone(),
        post_commands: spec.post_commands.clone(),
        users: spec
            .users
            .iter()
            .map(|u| UserSpec {
                name: u.name.clone(),
                ssh_authorized_keys: u.ssh_authorized_keys.clone(),
                sudo: u.sudo,
                groups: u.groups.clone(),
            })
            .collect(),
        ntp: spec.ntp.as_ref().map(|n| NtpSpec {
            servers: n.servers.clone(),
        }),
    })
}

/// Renders `input` in `format`.
pub fn render(format: Format, input: &RenderInput) -> Result<String, RenderError> {
    match format {
        Format::CloudConfig => render::render_cloud_init(input),
        Format::Ignition => render::render_ignition(input),
    }
}

/// Reasons a validation render fails, as one message.
pub fn validate(spec: &SiteBootstrapConfigSpec, site_id: &str, ca_pem: &str) -> Result<(), String> {
    let input = render_input(spec, site_id, ca_pem, SecretString::new(PLACEHOLDER_TOKEN))
        .map_err(|e| e.to_string())?;
    render(spec.format, &input)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{AgentSource, K3s, KubernetesSource};

    #[test]
    fn agent_and_kubernetes_source_table() {
        let dl = AgentSource {
            url: Some("https://x/agent".into()),
            sha256: Some("ab".repeat(32)),
            preinstalled: false,
        };
        let pre = AgentSource {
            preinstalled: true,
            ..Default::default()
        };
        let both = AgentSource {
            preinstalled: true,
            ..dl.clone()
        };
        let k3s = K3s {
            version: "v1.31.4+k3s1".into(),
            url: "https://x/k3s".into(),
            sha256: "cd".repeat(32),
            server_args: vec![],
        };
        let rows = [
            (dl.clone(), None, Ok(())),
            (pre.clone(), None, Ok(())),
            (both, None, Err(InputError::Agent)),
            (AgentSource::default(), None, Err(InputError::Agent)),
            (
                pre.clone(),
                Some(KubernetesSource {
                    k3s: Some(k3s.clone()),
                    preinstalled: false,
                }),
                Ok(()),
            ),
            (
                pre.clone(),
                Some(KubernetesSource {
                    k3s: None,
                    preinstalled: true,
                }),
                Ok(()),
            ),
            (
                pre.clone(),
                Some(KubernetesSource {
                    k3s: Some(k3s),
                    preinstalled: true,
                }),
                Err(InputError::Kubernetes),
            ),
            (
                pre,
                Some(KubernetesSource::default()),
                Err(InputError::Kubernetes),
            ),
        ];
        for (agent, kubernetes, want) in rows {
            let spec = SiteBootstrapConfigSpec {
                agent: agent.clone(),
                kubernetes: kubernetes.clone(),
                ..Default::default()
            };
            let got = render_input(&spec, "s", "", SecretString::new("t")).map(|_| ());
            assert_eq!(got, want, "{agent:?} {kubernetes:?}");
        }
    }
}
