//! The node's files, independent of the document format.
//!
//! [`plan`] turns a validated [`RenderInput`] into the list of files both renderers write
//! (agent config, CA bundle, token, systemd units, k3s config, bootstrap script, the
//! user's files). Text payloads come from askama templates in `templates/`; every value
//! spliced into them is either a [`YamlStr`] (YAML files) or a [`ShellWord`] (scripts),
//! or was validated against a grammar that cannot carry syntax (unit files, sudoers).

use super::encode::YamlStr;
use super::shell::ShellWord;
use super::{
    validate, AgentInstall, KubernetesInstall, RenderError, RenderInput, AGENT_BINARY_PATH,
    AGENT_CONFIG_PATH, AGENT_DATA_DIR, AGENT_UNIT_NAME, AGENT_UNIT_PATH, BOOTSTRAP_SCRIPT_PATH,
    K3S_BINARY_PATH, K3S_CONFIG_PATH, K3S_UNIT_PATH, REGISTRATION_CA_PATH, REGISTRATION_TOKEN_PATH,
    SENTINEL_PATH,
};
use askama::Template;

/// Where k3s writes its admin kubeconfig (the agent's `kubeconfig`).
pub const K3S_KUBECONFIG_PATH: &str = "/etc/rancher/k3s/k3s.yaml";
/// Ignition only: the script the bootstrap unit runs.
pub const IGNITION_RUN_SCRIPT_PATH: &str = "/usr/local/lib/siteboot/run.sh";
/// Ignition only: the one-shot unit running [`IGNITION_RUN_SCRIPT_PATH`].
pub const IGNITION_BOOTSTRAP_UNIT: &str = "siteboot-bootstrap.service";
/// Ignition only: marks a completed bootstrap so the unit does not run again.
pub const BOOTSTRAP_DONE_PATH: &str = "/var/lib/siteboot/bootstrap.done";
/// Ignition only: systemd-timesyncd drop-in carrying `ntp.servers`.
pub const TIMESYNCD_DROPIN_PATH: &str = "/etc/systemd/timesyncd.conf.d/siteboot.conf";
/// Ignition only: per-user sudoers drop-ins live here as `siteboot-<name>`.
pub const SUDOERS_DIR: &str = "/etc/sudoers.d";
/// The command that writes the Cluster API bootstrap sentinel.
pub const SENTINEL_COMMAND: &str =
    "mkdir -p /run/cluster-api && echo success > /run/cluster-api/bootstrap-success.complete";
/// The command that runs the bootstrap script.
pub const BOOTSTRAP_COMMAND: &str = "/bin/sh /usr/local/lib/siteboot/bootstrap.sh";

/// One file to write on the node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeFile {
    pub path: String,
    pub content: String,
    pub mode: u32,
    pub user: String,
    pub group: Option<String>,
    /// Came from the user (`files`) or is opaque (CA, token): written base64-encoded.
    pub opaque: bool,
}

impl NodeFile {
    fn ours(path: &str, content: String, mode: u32) -> Self {
        Self {
            path: path.to_owned(),
            content,
            mode,
            user: "root".into(),
            group: Some("root".into()),
            opaque: false,
        }
    }

    /// `user:group` or `user`, as cloud-init's `owner` spells it.
    pub fn owner(&self) -> String {
        match &self.group {
            Some(g) => format!("{}:{g}", self.user),
            None => self.user.clone(),
        }
    }
}

/// True for paths siteboot writes itself; user files may not replace them.
pub fn is_reserved_path(path: &str) -> bool {
    [
        AGENT_CONFIG_PATH,
        REGISTRATION_CA_PATH,
        REGISTRATION_TOKEN_PATH,
        AGENT_BINARY_PATH,
        AGENT_UNIT_PATH,
        BOOTSTRAP_SCRIPT_PATH,
        K3S_BINARY_PATH,
        K3S_CONFIG_PATH,
        K3S_UNIT_PATH,
        IGNITION_RUN_SCRIPT_PATH,
        BOOTSTRAP_DONE_PATH,
        TIMESYNCD_DROPIN_PATH,
        SENTINEL_PATH,
        "/etc/hostname",
    ]
    .contains(&path)
        || path.starts_with("/etc/sudoers.d/siteboot-")
}

#[derive(Template)]
#[template(path = "agent.yaml")]
struct AgentConfig {
    registration_url: YamlStr,
    ca_file: YamlStr,
    ca_sha256: YamlStr,
    site_id: YamlStr,
    token_file: YamlStr,
    data_dir: YamlStr,
    kubeconfig: Option<YamlStr>,
}

#[derive(Template)]
#[template(path = "siteboot-agent.service")]
struct AgentUnit {
    bootstrap_script: &'static str,
    after_k3s: bool,
    agent_binary: &'static str,
    agent_config: &'static str,
}

#[derive(Template)]
#[template(path = "k3s.service")]
struct K3sUnit<'a> {
    version: &'a str,
    config_path: &'static str,
    k3s_binary: &'static str,
}

struct K3sEntry {
    key: YamlStr,
    value: K3sValue,
}

enum K3sValue {
    Flag,
    One(YamlStr),
    Many(Vec<YamlStr>),
}

impl std::fmt::Display for K3sValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Flag => f.write_str("true"),
            Self::One(v) => v.fmt(f),
            Self::Many(vs) => {
                let items: Vec<String> = vs.iter().map(ToString::to_string).collect();
                write!(f, "[{}]", items.join(", "))
            }
        }
    }
}

#[derive(Template)]
#[template(path = "k3s-config.yaml")]
struct K3sConfig {
    entries: Vec<K3sEntry>,
}

struct Download {
    url: ShellWord,
    sha256: ShellWord,
}

struct K3sScript {
    download: Option<Download>,
}

#[derive(Template)]
#[template(path = "bootstrap.sh")]
struct BootstrapScript {
    data_dir: ShellWord,
    agent: Option<Download>,
    agent_binary: ShellWord,
    k3s: Option<K3sScript>,
    k3s_binary: ShellWord,
    agent_unit: ShellWord,
}

#[derive(Template)]
#[template(path = "ignition-run.sh")]
struct IgnitionRun<'a> {
    pre_commands: &'a [String],
    post_commands: &'a [String],
    bootstrap_script: ShellWord,
    sentinel_command: &'static str,
    data_dir: ShellWord,
    done_marker: ShellWord,
}

#[derive(Template)]
#[template(path = "siteboot-bootstrap.service")]
struct BootstrapUnit {
    done_marker: &'static str,
    run_script: &'static str,
}

#[derive(Template)]
#[template(path = "timesyncd.conf")]
struct Timesyncd {
    servers: String,
}

#[derive(Template)]
#[template(path = "user.sudoers")]
struct Sudoers<'a> {
    name: &'a str,
}

fn render(template: &'static str, t: &impl Template) -> Result<String, RenderError> {
    let mut out = t.render().map_err(|e| RenderError::Template {
        template,
        reason: e.to_string(),
    })?;
    if !out.ends_with('\n') {
        out.push('\n');
    }
    Ok(out)
}

/// Groups k3s `--flag[=value]` arguments into config-file entries, first-seen order.
fn k3s_entries(args: &[String]) -> Result<Vec<K3sEntry>, RenderError> {
    let mut grouped: Vec<(&str, Vec<Option<&str>>)> = Vec::new();
    for (i, a) in args.iter().enumerate() {
        let (flag, value) = validate::k3s_flag(&format!("kubernetes.serverArgs[{i}]"), a)?;
        match grouped.iter_mut().find(|(f, _)| *f == flag) {
            Some((_, values)) => values.push(value),
            None => grouped.push((flag, vec![value])),
        }
    }
    Ok(grouped
        .into_iter()
        .map(|(flag, values)| {
            let value = match values.as_slice() {
                [None] => K3sValue::Flag,
                [Some(v)] => K3sValue::One(YamlStr::new(*v)),
                many => K3sValue::Many(
                    many.iter()
                        .map(|v| YamlStr::new(v.unwrap_or("true")))
                        .collect(),
                ),
            };
            K3sEntry {
                key: YamlStr::new(flag),
                value,
            }
        })
        .collect())
}

/// The files both formats write, in write order: siteboot's own first, then the user's.
pub fn plan(input: &RenderInput) -> Result<Vec<NodeFile>, RenderError> {
    let ca_sha256 = super::pem::first_cert_sha256(&input.registration_ca_pem)?;
    let k3s = input.kubernetes.as_ref();
    let mut files = vec![
        NodeFile {
            opaque: true,
            ..NodeFile::ours(
                REGISTRATION_CA_PATH,
                input.registration_ca_pem.clone(),
                0o644,
            )
        },
        NodeFile {
            opaque: true,
            ..NodeFile::ours(
                REGISTRATION_TOKEN_PATH,
                format!("{}\n", input.token.expose()),
                0o600,
            )
        },
    ];
    let agent_config = AgentConfig {
        registration_url: YamlStr::new(&input.registration_url),
        ca_file: YamlStr::new(REGISTRATION_CA_PATH),
        ca_sha256: YamlStr::new(ca_sha256),
        site_id: YamlStr::new(&input.site_id),
        token_file: YamlStr::new(REGISTRATION_TOKEN_PATH),
        data_dir: YamlStr::new(AGENT_DATA_DIR),
        kubeconfig: k3s.map(|_| YamlStr::new(K3S_KUBECONFIG_PATH)),
    };
    files.push(NodeFile::ours(
        AGENT_CONFIG_PATH,
        render("agent.yaml", &agent_config)?,
        0o644,
    ));
    let unit = AgentUnit {
        bootstrap_script: BOOTSTRAP_SCRIPT_PATH,
        after_k3s: k3s.is_some(),
        agent_binary: AGENT_BINARY_PATH,
        agent_config: AGENT_CONFIG_PATH,
    };
    files.push(NodeFile::ours(
        AGENT_UNIT_PATH,
        render("siteboot-agent.service", &unit)?,
        0o644,
    ));
    if let Some(KubernetesInstall::K3s {
        version,
        server_args,
        ..
    }) = k3s
    {
        if !server_args.is_empty() {
            let config = K3sConfig {
                entries: k3s_entries(server_args)?,
            };
            files.push(NodeFile::ours(
                K3S_CONFIG_PATH,
                render("k3s-config.yaml", &config)?,
                0o600,
            ));
        }
        let unit = K3sUnit {
            version,
            config_path: K3S_CONFIG_PATH,
            k3s_binary: K3S_BINARY_PATH,
        };
        files.push(NodeFile::ours(
            K3S_UNIT_PATH,
            render("k3s.service", &unit)?,
            0o644,
        ));
    }
    let script = BootstrapScript {
        data_dir: ShellWord::new(AGENT_DATA_DIR),
        agent: match &input.agent {
            AgentInstall::Download { url, sha256 } => Some(Download {
                url: ShellWord::new(url),
                sha256: ShellWord::new(sha256.to_ascii_lowercase()),
            }),
            AgentInstall::Preinstalled => None,
        },
        agent_binary: ShellWord::new(AGENT_BINARY_PATH),
        k3s: k3s.map(|k| K3sScript {
            download: match k {
                KubernetesInstall::K3s { url, sha256, .. } => Some(Download {
                    url: ShellWord::new(url),
                    sha256: ShellWord::new(sha256.to_ascii_lowercase()),
                }),
                KubernetesInstall::Preinstalled => None,
            },
        }),
        k3s_binary: ShellWord::new(K3S_BINARY_PATH),
        agent_unit: ShellWord::new(AGENT_UNIT_NAME),
    };
    files.push(NodeFile::ours(
        BOOTSTRAP_SCRIPT_PATH,
        render("bootstrap.sh", &script)?,
        0o755,
    ));
    for f in &input.files {
        let (user, group) = match f
            .owner
            .as_deref()
            .map(|o| o.split_once(':').map_or((o, None), |(u, g)| (u, Some(g))))
        {
            Some((u, g)) => (u.to_owned(), g.map(str::to_owned)),
            None => ("root".to_owned(), Some("root".to_owned())),
        };
        let mode = match &f.permissions {
            Some(p) => validate::permissions("files.permissions", p)?,
            None => 0o644,
        };
        files.push(NodeFile {
            path: f.path.clone(),
            content: f.content.clone(),
            mode,
            user,
            group,
            opaque: true,
        });
    }
    Ok(files)
}

/// Ignition only: the script its one-shot unit runs (cloud-init uses `runcmd` instead).
pub fn ignition_run_script(input: &RenderInput) -> Result<NodeFile, RenderError> {
    let run = IgnitionRun {
        pre_commands: &input.pre_commands,
        post_commands: &input.post_commands,
        bootstrap_script: ShellWord::new(BOOTSTRAP_SCRIPT_PATH),
        sentinel_command: SENTINEL_COMMAND,
        data_dir: ShellWord::new(AGENT_DATA_DIR),
        done_marker: ShellWord::new(BOOTSTRAP_DONE_PATH),
    };
    Ok(NodeFile::ours(
        IGNITION_RUN_SCRIPT_PATH,
        render("ignition-run.sh", &run)?,
        0o755,
    ))
}

/// Ignition only: the one-shot unit that runs the bootstrap.
pub fn ignition_bootstrap_unit() -> Result<String, RenderError> {
    render(
        "siteboot-bootstrap.service",
        &BootstrapUnit {
            done_marker: BOOTSTRAP_DONE_PATH,
            run_script: IGNITION_RUN_SCRIPT_PATH,
        },
    )
}

/// Ignition only: systemd-timesyncd drop-in for validated NTP servers.
pub fn timesyncd_dropin(servers: &[String]) -> Result<NodeFile, RenderError> {
    let t = Timesyncd {
        servers: servers.join(" "),
    };
    Ok(NodeFile::ours(
        TIMESYNCD_DROPIN_PATH,
        render("timesyncd.conf", &t)?,
        0o644,
    ))
}

/// Ignition only: password-less sudo for a validated user name.
pub fn sudoers_dropin(name: &str) -> Result<NodeFile, RenderError> {
    let path = format!("{SUDOERS_DIR}/siteboot-{name}");
    Ok(NodeFile::ours(
        &path,
        render("user.sudoers", &Sudoers { name })?,
        0o440,
    ))
}
