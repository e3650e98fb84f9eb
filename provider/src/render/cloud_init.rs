//! `#cloud-config` user-data from `templates/cloud-init.yaml`.
//!
//! Files go to `write_files` (siteboot's text payloads as quoted scalars, the user's files,
//! CA bundle and token as base64); `runcmd` starts with `set -e` so that cloud-init's
//! generated runcmd script stops at the first failure and the Cluster API sentinel is only
//! written when everything before it succeeded.

use super::encode::{b64, YamlStr};
use super::payload::{self, BOOTSTRAP_COMMAND, SENTINEL_COMMAND};
use super::{RenderError, RenderInput};
use askama::Template;

struct User {
    name: YamlStr,
    sudo: bool,
    groups: Vec<YamlStr>,
    keys: Vec<YamlStr>,
}

struct File {
    path: YamlStr,
    owner: YamlStr,
    permissions: YamlStr,
    b64: bool,
    defer: bool,
    content: YamlStr,
}

#[derive(Template)]
#[template(path = "cloud-init.yaml")]
struct CloudConfig {
    hostname: Option<YamlStr>,
    users: Vec<User>,
    ntp_servers: Vec<YamlStr>,
    files: Vec<File>,
    runcmd: Vec<YamlStr>,
}

/// Renders a validated input.
pub(super) fn render(input: &RenderInput) -> Result<String, RenderError> {
    let files = payload::plan(input)?
        .into_iter()
        .map(|f| File {
            path: YamlStr::new(&f.path),
            owner: YamlStr::new(f.owner()),
            permissions: YamlStr::new(format!("{:04o}", f.mode)),
            b64: f.opaque,
            // Files owned by users created in this document must wait for them.
            defer: f.user != "root" || f.group.as_deref().is_some_and(|g| g != "root"),
            content: if f.opaque {
                YamlStr::new(b64(f.content.as_bytes()))
            } else {
                YamlStr::new(f.content)
            },
        })
        .collect();
    let users = input
        .users
        .iter()
        .map(|u| User {
            name: YamlStr::new(&u.name),
            sudo: u.sudo,
            groups: u.groups.iter().map(YamlStr::new).collect(),
            keys: u.ssh_authorized_keys.iter().map(YamlStr::new).collect(),
        })
        .collect();
    let mut runcmd = vec![YamlStr::new("set -e")];
    runcmd.extend(input.pre_commands.iter().map(YamlStr::new));
    runcmd.push(YamlStr::new(BOOTSTRAP_COMMAND));
    runcmd.extend(input.post_commands.iter().map(YamlStr::new));
    runcmd.push(YamlStr::new(SENTINEL_COMMAND));
    let doc = CloudConfig {
        hostname: input.hostname.as_ref().map(YamlStr::new),
        users,
        ntp_servers: input
            .ntp
            .iter()
            .flat_map(|n| n.servers.iter().map(YamlStr::new))
            .collect(),
        files,
        runcmd,
    };
    let mut out = doc.render().map_err(|e| RenderError::Template {
        template: "cloud-init.yaml",
        reason: e.to_string(),
    })?;
    out.push('\n');
    Ok(out)
}
