//! Inputs the renderer must refuse: identifiers that are not identifiers (hostile site
//! ids and hostnames, user and group names, multi-line SSH keys, bad URLs, digests, paths,
//! modes and owners, a CA that is not a certificate), NUL anywhere, and a malformed token
//! whose error must not echo it. Every refusal names the offending field.

mod render_support;

use render_support::*;
use siteboot_provider::render::{
    render_cloud_init, render_ignition, AgentInstall, FileSpec, RenderError, RenderInput, UserSpec,
};

fn assert_invalid(input: &RenderInput, field: &str, case: &str) {
    for (format, result) in [
        ("cloud-init", render_cloud_init(input)),
        ("ignition", render_ignition(input)),
    ] {
        match result {
            Err(RenderError::Invalid { field: f, .. }) => assert_eq!(f, field, "{case} ({format})"),
            other => panic!("{case} ({format}): expected invalid {field}, got {other:?}"),
        }
    }
}

#[test]
fn hostile_site_ids_and_hostnames_are_errors() {
    for (name, h) in hostile_values() {
        assert_invalid(
            &RenderInput {
                site_id: h.clone(),
                ..minimal()
            },
            "siteId",
            name,
        );
        assert_invalid(
            &RenderInput {
                hostname: Some(h.clone()),
                ..minimal()
            },
            "hostname",
            name,
        );
    }
    for bad in [
        "Store-0142",
        "store_0142",
        "store-0142.",
        "-store",
        "store 0142",
        "",
    ] {
        assert_invalid(
            &RenderInput {
                site_id: bad.into(),
                ..minimal()
            },
            "siteId",
            bad,
        );
    }
}

#[test]
fn nul_is_rejected_everywhere_it_could_appear() {
    let nul = "before\0after".to_string();
    assert_invalid(&input_with(&nul), "files[0].content", "file content");
    assert_invalid(
        &RenderInput {
            pre_commands: vec![nul.clone()],
            ..minimal()
        },
        "preCommands[0]",
        "pre",
    );
    assert_invalid(
        &RenderInput {
            post_commands: vec![nul.clone()],
            ..minimal()
        },
        "postCommands[0]",
        "post",
    );
    let user = UserSpec {
        name: "ops".into(),
        ssh_authorized_keys: vec![nul.clone()],
        sudo: false,
        groups: vec![],
    };
    assert_invalid(
        &RenderInput {
            users: vec![user],
            ..minimal()
        },
        "users[0].sshAuthorizedKeys[0]",
        "key",
    );
}

#[test]
fn multi_line_ssh_keys_and_bad_identifiers_are_errors() {
    let user = |name: &str, key: &str, group: &str| UserSpec {
        name: name.into(),
        ssh_authorized_keys: vec![key.into()],
        sudo: true,
        groups: vec![group.into()],
    };
    let ok_key = "ssh-ed25519 AAAA ops";
    let cases: Vec<(RenderInput, &str)> = vec![
        (
            RenderInput {
                users: vec![user("ops", "ssh-ed25519 AAAA a\nssh-rsa BBBB evil", "adm")],
                ..minimal()
            },
            "users[0].sshAuthorizedKeys[0]",
        ),
        (
            RenderInput {
                users: vec![user("ops\nALL", ok_key, "adm")],
                ..minimal()
            },
            "users[0].name",
        ),
        (
            RenderInput {
                users: vec![user("ops", ok_key, "adm,wheel")],
                ..minimal()
            },
            "users[0].groups[0]",
        ),
        (
            RenderInput {
                users: vec![user("root", ok_key, "adm")],
                ..minimal()
            },
            "users[0].name",
        ),
        (
            RenderInput {
                registration_url: "https://reg.example/\n#cloud-config".into(),
                ..minimal()
            },
            "registrationUrl",
        ),
        (
            RenderInput {
                registration_url: "http://reg.example".into(),
                ..minimal()
            },
            "registrationUrl",
        ),
        (
            RenderInput {
                agent: AgentInstall::Download {
                    url: "https://a.example/x".into(),
                    sha256: "$(id)".into(),
                },
                ..minimal()
            },
            "agent.sha256",
        ),
        (
            RenderInput {
                agent: AgentInstall::Download {
                    url: "ftp://a.example/x".into(),
                    sha256: "ab".repeat(32),
                },
                ..minimal()
            },
            "agent.url",
        ),
        (
            RenderInput {
                files: vec![FileSpec {
                    path: "/etc/../etc/shadow".into(),
                    content: String::new(),
                    permissions: None,
                    owner: None,
                }],
                ..minimal()
            },
            "files[0].path",
        ),
        (
            RenderInput {
                files: vec![FileSpec {
                    path: "/etc/x\n- path: /y".into(),
                    content: String::new(),
                    permissions: None,
                    owner: None,
                }],
                ..minimal()
            },
            "files[0].path",
        ),
        (
            RenderInput {
                files: vec![FileSpec {
                    path: "/etc/x".into(),
                    content: String::new(),
                    permissions: Some("0644'".into()),
                    owner: None,
                }],
                ..minimal()
            },
            "files[0].permissions",
        ),
        (
            RenderInput {
                files: vec![FileSpec {
                    path: "/etc/x".into(),
                    content: String::new(),
                    permissions: None,
                    owner: Some("root:$(id)".into()),
                }],
                ..minimal()
            },
            "files[0].owner",
        ),
        (
            RenderInput {
                files: vec![FileSpec {
                    path: "/etc/siteboot/registration-token".into(),
                    content: "x".into(),
                    permissions: None,
                    owner: None,
                }],
                ..minimal()
            },
            "files[0].path",
        ),
        (
            RenderInput {
                registration_ca_pem:
                    "-----BEGIN CERTIFICATE-----\n$(id)\n-----END CERTIFICATE-----\n".into(),
                ..minimal()
            },
            "registrationCaPem",
        ),
    ];
    for (input, field) in &cases {
        assert_invalid(input, field, field);
    }
}

#[test]
fn errors_never_contain_the_token() {
    let secret = "sbt1.0123456789.$(curl evil)";
    let input = RenderInput {
        token: secret.to_string().into(),
        ..minimal()
    };
    for result in [render_cloud_init(&input), render_ignition(&input)] {
        let err = result.expect_err("malformed token");
        assert_eq!(
            err,
            RenderError::Invalid {
                field: "token".into(),
                reason: "expected a registration token sbt1.<id>.<secret>".into()
            }
        );
        assert!(!format!("{err} {err:?}").contains("curl"));
    }
}
