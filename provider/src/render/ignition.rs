//! Ignition spec 3.3.0 JSON, built with serde_json.
//!
//! Every file (including the askama-rendered text payloads) is embedded as a
//! `data:;base64,` URL, so no input can alter the JSON structure. Ignition has no
//! `runcmd`: a one-shot `siteboot-bootstrap.service` runs the same bootstrap script the
//! cloud-init document runs, wrapped with the user's commands and the sentinel.

use super::encode::data_url;
use super::payload::{self, NodeFile, IGNITION_BOOTSTRAP_UNIT};
use super::{RenderError, RenderInput};
use serde::Serialize;

/// The Ignition config version this renderer emits.
pub const IGNITION_VERSION: &str = "3.3.0";

#[derive(Serialize)]
struct Config {
    ignition: Ignition,
    #[serde(skip_serializing_if = "Passwd::is_empty")]
    passwd: Passwd,
    storage: Storage,
    systemd: Systemd,
}

#[derive(Serialize)]
struct Ignition {
    version: &'static str,
}

#[derive(Serialize)]
struct Passwd {
    users: Vec<User>,
}

impl Passwd {
    fn is_empty(&self) -> bool {
        self.users.is_empty()
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct User {
    name: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    ssh_authorized_keys: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    groups: Vec<String>,
}

#[derive(Serialize)]
struct Storage {
    files: Vec<File>,
}

#[derive(Serialize)]
struct Named {
    name: String,
}

#[derive(Serialize)]
struct File {
    path: String,
    overwrite: bool,
    mode: u32,
    user: Named,
    #[serde(skip_serializing_if = "Option::is_none")]
    group: Option<Named>,
    contents: Contents,
}

#[derive(Serialize)]
struct Contents {
    source: String,
}

#[derive(Serialize)]
struct Systemd {
    units: Vec<Unit>,
}

#[derive(Serialize)]
struct Unit {
    name: &'static str,
    enabled: bool,
    contents: String,
}

fn file(f: NodeFile) -> File {
    File {
        contents: Contents {
            source: data_url(f.content.as_bytes()),
        },
        path: f.path,
        overwrite: true,
        mode: f.mode,
        user: Named { name: f.user },
        group: f.group.map(|name| Named { name }),
    }
}

/// Renders a validated input.
pub(super) fn render(input: &RenderInput) -> Result<String, RenderError> {
    let mut files = payload::plan(input)?;
    files.push(payload::ignition_run_script(input)?);
    if let Some(h) = &input.hostname {
        files.push(NodeFile {
            path: "/etc/hostname".into(),
            content: format!("{h}\n"),
            mode: 0o644,
            user: "root".into(),
            group: Some("root".into()),
            opaque: false,
        });
    }
    if let Some(ntp) = &input.ntp {
        files.push(payload::timesyncd_dropin(&ntp.servers)?);
    }
    for u in input.users.iter().filter(|u| u.sudo) {
        files.push(payload::sudoers_dropin(&u.name)?);
    }
    let config = Config {
        ignition: Ignition {
            version: IGNITION_VERSION,
        },
        passwd: Passwd {
            users: input
                .users
                .iter()
                .map(|u| User {
                    name: u.name.clone(),
                    ssh_authorized_keys: u.ssh_authorized_keys.clone(),
                    groups: u.groups.clone(),
                })
                .collect(),
        },
        storage: Storage {
            files: files.into_iter().map(file).collect(),
        },
        systemd: Systemd {
            units: vec![Unit {
                name: IGNITION_BOOTSTRAP_UNIT,
                enabled: true,
                contents: payload::ignition_bootstrap_unit()?,
            }],
        },
    };
    let mut out = serde_json::to_string_pretty(&config).map_err(|e| RenderError::Encode {
        what: "ignition config",
        reason: e.to_string(),
    })?;
    out.push('\n');
    Ok(out)
}
