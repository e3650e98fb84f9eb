//! Hostile inputs: every value that can reach a document is tried with quotes, newlines,
//! `#cloud-config` lines, YAML anchors and tags, template syntax, shell metacharacters,
//! unicode (RTL, emoji, line separators, C1 controls) and 4 KiB values.
//!
//! Each rendered document must pass the real validators, and parsing it back (serde_norway
//! and cloud-init's own PyYAML for YAML, serde_json for Ignition) must give exactly the
//! hostile value where it was put, with no extra structure. Values that cannot be carried
//! (NUL) or that must be identifiers (site id, hostname) are errors.

mod render_support;

use base64::Engine as _;
use render_support::*;
use serde_json::Value;
use siteboot_provider::render::{
    render_cloud_init, render_ignition, AgentInstall, KubernetesInstall, RenderInput, UserSpec,
};

fn b64_decode(s: &str) -> String {
    String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(s)
            .expect("base64"),
    )
    .expect("utf-8")
}

fn cloud_file<'a>(doc: &'a Value, path: &str) -> &'a Value {
    doc["write_files"]
        .as_array()
        .expect("write_files")
        .iter()
        .find(|f| f["path"] == path)
        .unwrap_or_else(|| panic!("no write_files entry {path}"))
}

fn cloud_file_content(doc: &Value, path: &str) -> String {
    let f = cloud_file(doc, path);
    let content = f["content"].as_str().expect("content");
    match f.get("encoding").and_then(Value::as_str) {
        Some("b64") => b64_decode(content),
        None => content.to_owned(),
        Some(other) => panic!("unexpected encoding {other}"),
    }
}

fn ign_file_content(doc: &Value, path: &str) -> String {
    let f = doc["storage"]["files"]
        .as_array()
        .expect("storage.files")
        .iter()
        .find(|f| f["path"] == path)
        .unwrap_or_else(|| panic!("no storage file {path}"));
    let source = f["contents"]["source"].as_str().expect("source");
    b64_decode(source.strip_prefix("data:;base64,").expect("data URL"))
}

/// Parses cloud-init YAML with serde_norway and with PyYAML; both must agree.
fn parse_cloud(name: &str, doc: &str) -> Value {
    let ours: Value =
        serde_norway::from_str(doc).unwrap_or_else(|e| panic!("{name}: serde_norway: {e}"));
    assert_eq!(
        ours,
        pyyaml_to_json(doc),
        "{name}: serde_norway and PyYAML disagree"
    );
    ours
}

fn keys(v: &Value) -> Vec<&str> {
    v.as_object()
        .expect("mapping")
        .keys()
        .map(String::as_str)
        .collect()
}

#[test]
fn hostile_values_stay_data_in_cloud_init() {
    for (name, h) in hostile_values() {
        let doc = render_cloud_init(&input_with(&h)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(doc.starts_with("#cloud-config\n"), "{name}");
        assert_cloud_init_valid(name, &doc);
        let v = parse_cloud(name, &doc);
        let mut top = keys(&v);
        top.sort_unstable();
        assert_eq!(top, ["runcmd", "write_files"], "{name}: top-level keys");
        assert_eq!(
            cloud_file_content(&v, HOSTILE_FILE),
            h,
            "{name}: file content"
        );
        let runcmd: Vec<&str> = v["runcmd"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().expect("string command"))
            .collect();
        assert_eq!(runcmd.len(), 5, "{name}: runcmd length");
        assert_eq!(runcmd[1], h, "{name}: preCommand");
        assert_eq!(runcmd[3], h, "{name}: postCommand");
        let agent: Value =
            serde_norway::from_str(&cloud_file_content(&v, "/etc/siteboot/agent.yaml"))
                .expect("agent.yaml");
        assert_eq!(agent["siteId"], "store-0142", "{name}");
    }
}

#[test]
fn hostile_values_stay_data_in_ignition() {
    for (name, h) in hostile_values() {
        let doc = render_ignition(&input_with(&h)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_ignition_valid(name, &doc);
        let v: Value = serde_json::from_str(&doc).expect("json");
        let mut top = keys(&v);
        top.sort_unstable();
        assert_eq!(top, ["ignition", "storage", "systemd"], "{name}");
        assert_eq!(
            ign_file_content(&v, HOSTILE_FILE),
            h,
            "{name}: file content"
        );
        // run.sh is "<header>set -e\n<pre>\n/bin/sh '<bootstrap>'\n<post>\n<sentinel>...".
        let run = ign_file_content(&v, "/usr/local/lib/siteboot/run.sh");
        let body = &run[run.find("\nset -e\n").expect("set -e") + "\nset -e\n".len()..];
        let expected_middle = format!("{h}\n/bin/sh '/usr/local/lib/siteboot/bootstrap.sh'\n{h}\nmkdir -p /run/cluster-api && ");
        assert_eq!(
            &body[..expected_middle.len()],
            expected_middle,
            "{name}: commands in run.sh"
        );
    }
}

/// Single-line hostile values where identifiers are not required: SSH key comments and
/// k3s server argument values. Both must come back exactly.
#[test]
fn hostile_single_line_values_in_keys_and_k3s_args() {
    for (name, h) in hostile_values() {
        if h.chars().any(char::is_control) {
            continue; // multi-line values are covered by the rejection test below
        }
        let key = format!("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHostile {h}");
        let input = RenderInput {
            users: vec![UserSpec {
                name: "ops".into(),
                ssh_authorized_keys: vec![key.clone()],
                sudo: true,
                groups: vec![],
            }],
            kubernetes: Some(KubernetesInstall::K3s {
                version: "v1.31.4+k3s1".into(),
                url: "https://k3s.example/k3s".into(),
                sha256: "ab".repeat(32),
                server_args: vec![format!("--node-label={h}")],
            }),
            ..minimal()
        };
        let doc = render_cloud_init(&input).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_cloud_init_valid(name, &doc);
        let v = parse_cloud(name, &doc);
        assert_eq!(
            v["users"][0]["ssh_authorized_keys"][0],
            key.as_str(),
            "{name}: ssh key"
        );
        let k3s: Value =
            serde_norway::from_str(&cloud_file_content(&v, "/etc/rancher/k3s/config.yaml"))
                .expect("k3s config");
        assert_eq!(k3s["node-label"], h.as_str(), "{name}: k3s arg");

        let ign = render_ignition(&input).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_ignition_valid(name, &ign);
        let v: Value = serde_json::from_str(&ign).expect("json");
        assert_eq!(
            v["passwd"]["users"][0]["sshAuthorizedKeys"][0],
            key.as_str(),
            "{name}: ssh key"
        );
        let k3s: Value =
            serde_norway::from_str(&ign_file_content(&v, "/etc/rancher/k3s/config.yaml"))
                .expect("k3s config");
        assert_eq!(k3s["node-label"], h.as_str(), "{name}: k3s arg");
    }
}

/// A URL may legally contain `'`, `$`, `(`, `;`: the bootstrap script must pass it to the
/// download function as one word, exactly. A real shell evaluates the rendered line.
#[test]
fn hostile_download_url_is_one_shell_word() {
    let url = "https://downloads.example/a'b/$(touch${IFS}/tmp/pwned);x=`id`&y=%27|z";
    let input = RenderInput {
        agent: AgentInstall::Download {
            url: url.into(),
            sha256: "cd".repeat(32),
        },
        ..minimal()
    };
    for (format, script) in [
        (
            "cloud-init",
            cloud_file_content(
                &parse_cloud("url", &render_cloud_init(&input).unwrap()),
                "/usr/local/lib/siteboot/bootstrap.sh",
            ),
        ),
        (
            "ignition",
            ign_file_content(
                &serde_json::from_str(&render_ignition(&input).unwrap()).unwrap(),
                "/usr/local/lib/siteboot/bootstrap.sh",
            ),
        ),
    ] {
        let line = script
            .lines()
            .find(|l| l.starts_with("install_verified "))
            .expect("install line");
        let probe = format!(
            "install_verified() {{ printf '%s\\n' \"$1\" \"$2\" \"$3\" \"$#\"; }}\n{line}\n"
        );
        let out = std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(&probe)
            .output()
            .expect("sh");
        assert!(out.status.success(), "{format}");
        let want = format!(
            "{url}\n{}\n/usr/local/bin/siteboot-agent\n3\n",
            "cd".repeat(32)
        );
        assert_eq!(String::from_utf8(out.stdout).unwrap(), want, "{format}");
    }
}
