//! Shared fixtures and the real validators for the render tests.
//!
//! `cloud-init schema` and `ignition-validate` are run as processes: a missing binary is a
//! test failure naming the Debian package to install, never a skip.

#![allow(dead_code)]

use siteboot_provider::render::{
    AgentInstall, FileSpec, KubernetesInstall, NtpSpec, RenderInput, UserSpec,
};
use siteboot_wire::{RegistrationToken, SecretString};
use std::path::{Path, PathBuf};
use std::process::Command;

/// A real self-signed CA certificate (RSA 2048, 1249 bytes of PEM), made with
/// `openssl req -x509 -newkey rsa:2048 -subj "/O=siteboot example/CN=siteboot registration CA"`.
pub const CA_PEM: &str = include_str!("../golden/ca.pem");
/// `openssl x509 -in golden/ca.pem -outform der | sha256sum`.
pub const CA_DER_SHA256: &str = "d9c55f0c74ca2ce8ee5c59eb1cb9837b9e7acb8b6aaf72e6f8ed7c563ce4b288";

pub fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

/// A well-formed, fixed registration token.
pub fn token() -> SecretString {
    RegistrationToken::from_random(&[0x5a; siteboot_wire::token::RANDOM_BYTES]).to_secret_string()
}

/// The smallest useful input: agent download, nothing else.
pub fn minimal() -> RenderInput {
    RenderInput {
        site_id: "store-0142".into(),
        hostname: None,
        registration_url: "https://register.fleet.example:8443".into(),
        registration_ca_pem: CA_PEM.into(),
        token: token(),
        agent: AgentInstall::Download {
            url: "https://downloads.fleet.example/siteboot-agent/v0.1.0/siteboot-agent-linux-amd64"
                .into(),
            sha256: "0f3c4d2a9b8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a".into(),
        },
        kubernetes: None,
        files: vec![],
        pre_commands: vec![],
        post_commands: vec![],
        users: vec![],
        ntp: None,
    }
}

/// Everything switched on: k3s, files, users, NTP, commands, hostname.
pub fn full() -> RenderInput {
    RenderInput {
        hostname: Some("store-0142-node-1".into()),
        kubernetes: Some(KubernetesInstall::K3s {
            version: "v1.31.4+k3s1".into(),
            url: "https://github.com/k3s-io/k3s/releases/download/v1.31.4%2Bk3s1/k3s".into(),
            sha256: "74897e4af26ea383ce50f445752f40ca63a0aef0d90994fb74073c43063eeeb2".into(),
            server_args: vec![
                "--write-kubeconfig-mode=0600".into(),
                "--disable=traefik".into(),
                "--disable=servicelb".into(),
                "--node-label=siteboot.dev/site=store-0142".into(),
                "--node-taint=node.cluster.x-k8s.io/uninitialized:NoSchedule".into(),
                "--secrets-encryption".into(),
            ],
        }),
        files: vec![
            FileSpec {
                path: "/etc/motd".into(),
                content: "Store 142 edge node. Managed by siteboot.\n".into(),
                permissions: None,
                owner: None,
            },
            FileSpec {
                path: "/home/ops/.config/site.env".into(),
                content: "SITE=store-0142\nREGION=eu-west\n".into(),
                permissions: Some("0640".into()),
                owner: Some("ops:ops".into()),
            },
        ],
        pre_commands: vec!["echo pre-bootstrap".into(), "modprobe br_netfilter".into()],
        post_commands: vec!["echo bootstrap done > /var/log/siteboot-done".into()],
        users: vec![
            UserSpec {
                name: "ops".into(),
                ssh_authorized_keys: vec![
                    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMn1b8yJm3ZrW5mXv0ZrW5mXv0ZrW5mXv0ZrW5mXv0Zr ops@fleet".into(),
                ],
                sudo: true,
                groups: vec!["adm".into(), "systemd-journal".into()],
            },
            UserSpec {
                name: "audit".into(),
                ssh_authorized_keys: vec![],
                sudo: false,
                groups: vec![],
            },
        ],
        ntp: Some(NtpSpec {
            servers: vec!["ntp1.fleet.example".into(), "10.0.0.1".into()],
        }),
        ..minimal()
    }
}

/// A factory image: agent and k3s preinstalled.
pub fn preinstalled() -> RenderInput {
    RenderInput {
        agent: AgentInstall::Preinstalled,
        kubernetes: Some(KubernetesInstall::Preinstalled),
        ..minimal()
    }
}

fn run_validator(
    program: &str,
    package: &str,
    args: &[&str],
    doc: &str,
    suffix: &str,
) -> Result<String, String> {
    if !Path::new(program).exists() {
        panic!("{program} is missing: install the Debian package `{package}` (apt-get install {package})");
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join(format!("doc.{suffix}"));
    std::fs::write(&path, doc).expect("write document");
    let out = Command::new(program)
        .args(args)
        .arg(&path)
        .output()
        .unwrap_or_else(|e| panic!("run {program}: {e} (Debian package `{package}`)"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() {
        Ok(text)
    } else {
        Err(text)
    }
}

/// `cloud-init schema --config-file F` must accept the document.
pub fn assert_cloud_init_valid(name: &str, doc: &str) {
    match run_validator(
        "/usr/bin/cloud-init",
        "cloud-init",
        &["schema", "--config-file"],
        doc,
        "yaml",
    ) {
        Ok(out) => assert!(
            out.contains("Valid cloud-config") && !out.to_lowercase().contains("deprecat"),
            "{name}: cloud-init schema did not say valid, or reported deprecations:\n{out}"
        ),
        Err(out) => panic!("{name}: cloud-init schema rejected the document:\n{out}"),
    }
}

/// `ignition-validate F` must accept the document without warnings.
pub fn assert_ignition_valid(name: &str, doc: &str) {
    match run_validator("/usr/bin/ignition-validate", "ignition", &[], doc, "ign") {
        Ok(out) => assert!(
            out.trim().is_empty(),
            "{name}: ignition-validate warned:\n{out}"
        ),
        Err(out) => panic!("{name}: ignition-validate rejected the document:\n{out}"),
    }
}

/// Compares `actual` with the golden file; `UPDATE_GOLDEN=1` rewrites it instead.
pub fn assert_golden(file: &str, actual: &str) {
    let path = golden_dir().join(file);
    if std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| v == "1") {
        std::fs::write(&path, actual).expect("write golden");
        return;
    }
    let want = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "read {}: {e} (run with UPDATE_GOLDEN=1 to create it)",
            path.display()
        )
    });
    if want != actual {
        let line = want
            .lines()
            .zip(actual.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| want.lines().count().min(actual.lines().count()));
        panic!(
            "{file} differs from the golden file at line {}:\n  golden: {:?}\n  actual: {:?}\n(rerun with UPDATE_GOLDEN=1 after reviewing)",
            line + 1,
            want.lines().nth(line),
            actual.lines().nth(line)
        );
    }
}

/// Parses YAML with PyYAML, the parser cloud-init itself uses, and returns it as JSON.
pub fn pyyaml_to_json(doc: &str) -> serde_json::Value {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("doc.yaml");
    std::fs::write(&path, doc).expect("write document");
    let out = Command::new("/usr/bin/python3")
        .args(["-c", "import json,sys,yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1], encoding='utf-8'))))"])
        .arg(&path)
        .output()
        .expect("run /usr/bin/python3 (installed with the Debian package cloud-init)");
    assert!(
        out.status.success(),
        "PyYAML failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("PyYAML output is JSON")
}

/// Where [`input_with`] writes the hostile file.
pub const HOSTILE_FILE: &str = "/etc/siteboot-test/hostile.txt";

/// The hostile table: quotes, newlines, `#cloud-config`, anchors/tags, template syntax,
/// shell metacharacters, unicode (RTL, emoji, NEL/LS/PS, BOM, C0/C1) and 4 KiB values.
pub fn hostile_values() -> Vec<(&'static str, String)> {
    let mut v: Vec<(&'static str, String)> = vec![
        ("double quotes", r#"he said "hi" \"escaped\" "#.into()),
        ("single quotes", "it's 'quoted' ''".into()),
        ("newlines", "line1\nline2\r\nline3\n\n".into()),
        (
            "cloud-config header",
            "#cloud-config\nruncmd: [\"rm -rf /\"]\n".into(),
        ),
        ("document markers", "---\nfoo: bar\n...\n--- !!map\n".into()),
        ("yaml anchors", "&a [*a, *a] *b &c".into()),
        (
            "yaml tags",
            "!!python/object/apply:os.system ['id'] !!binary AAAA".into(),
        ),
        ("yaml indicators", "- ? : , [ ] { } # | > @ ` % !".into()),
        ("leading space and colon", "  key: value  ".into()),
        (
            "template syntax",
            "{{ 7*7 }} {% if true %}x{% endif %} {# c #} ${HOME} $(( 1+1 ))".into(),
        ),
        ("percent", "%s %n %(x)s 100% %%".into()),
        ("command substitution", "$(rm -rf /)".into()),
        (
            "shell metacharacters",
            "; reboot; `id` | cat & > /dev/null < /etc/passwd \\ \\\\".into(),
        ),
        (
            "rtl and emoji",
            "abc\u{202e}cba \u{200f}\u{05d0}\u{05d1} 🚀🔥 e\u{301}".into(),
        ),
        ("line separators", "a\u{85}b\u{2028}c\u{2029}d".into()),
        ("bom and noncharacters", "\u{feff}x\u{fffe}\u{ffff}".into()),
        (
            "c0 and c1 controls",
            "\u{1}\u{7}\u{1b}[31m\u{7f}\u{9b}\u{80}\t".into(),
        ),
        ("4 KiB ascii", "x".repeat(4096)),
    ];
    let mixed: String = v
        .iter()
        .map(|(_, s)| s.as_str())
        .collect::<Vec<_>>()
        .join("|");
    let mut big = String::new();
    while big.len() < 4096 {
        big.push_str(&mixed);
    }
    v.push(("4 KiB mixed hostile", big));
    v
}

/// [`minimal`] with `h` as a file's content, a preCommand and a postCommand.
pub fn input_with(h: &str) -> RenderInput {
    RenderInput {
        files: vec![FileSpec {
            path: HOSTILE_FILE.into(),
            content: h.into(),
            permissions: Some("0600".into()),
            owner: None,
        }],
        pre_commands: vec![h.into()],
        post_commands: vec![h.into()],
        ..minimal()
    }
}
