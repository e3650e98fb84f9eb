//! Table tests for config parsing, overlay and validation.

use super::*;

const FULL: &str = r#"
registrationUrl: https://127.0.0.1:8443
caFile: /etc/siteboot/registration-ca.pem
caSha256: "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
siteId: store-0142
tokenFile: /etc/siteboot/registration-token
dataDir: /var/lib/siteboot
kubeconfig: /etc/rancher/k3s/k3s.yaml
pollIntervalSeconds: 60
"#;

fn base() -> FileConfig {
    FileConfig {
        registration_url: Some("https://reg.example:8443/".into()),
        ca_file: Some("/ca.pem".into()),
        ..FileConfig::default()
    }
}

#[test]
fn parses_the_documented_file() {
    let cfg = FileConfig::parse(FULL, "agent.yaml").unwrap();
    let s = resolve(cfg).unwrap();
    assert_eq!(s.registration_url, "https://127.0.0.1:8443");
    assert_eq!(s.ca_sha256.as_deref(), Some(&*"a".repeat(64)));
    assert_eq!(
        s.credential,
        Some(CredentialSource::TokenFile(
            "/etc/siteboot/registration-token".into()
        ))
    );
    assert_eq!(s.poll_interval, Duration::from_secs(60));
    assert_eq!(s.resync_interval, Duration::from_secs(300));
    let enr = FileConfig::parse(
        "registrationUrl: https://r\ncaFile: /c\nenrollment: { batch: 2026-w14-lineA, secretFile: /s }\n",
        "f",
    )
    .unwrap();
    assert_eq!(
        resolve(enr).unwrap().credential,
        Some(CredentialSource::Enrollment {
            batch: "2026-w14-lineA".into(),
            secret_file: "/s".into()
        })
    );
}

#[test]
fn bad_values_name_the_field() {
    let cases: Vec<(FileConfig, &str)> = vec![
        (
            FileConfig {
                registration_url: None,
                ..base()
            },
            "registrationUrl",
        ),
        (
            FileConfig {
                registration_url: Some("http://x".into()),
                ..base()
            },
            "registrationUrl",
        ),
        (
            FileConfig {
                registration_url: Some("not a url".into()),
                ..base()
            },
            "registrationUrl",
        ),
        (
            FileConfig {
                ca_file: None,
                ..base()
            },
            "caFile",
        ),
        (
            FileConfig {
                ca_sha256: Some("abc".into()),
                ..base()
            },
            "caSha256",
        ),
        (
            FileConfig {
                site_id: Some("Store_1".into()),
                ..base()
            },
            "siteId",
        ),
        (
            FileConfig {
                poll_interval_seconds: Some(0),
                ..base()
            },
            "pollIntervalSeconds",
        ),
        (
            FileConfig {
                resync_interval_seconds: Some(100_000),
                ..base()
            },
            "resyncIntervalSeconds",
        ),
        (
            FileConfig {
                token_file: Some("/t".into()),
                claim_code: Some(SecretString::new("7KQ2-M9XD-4")),
                ..base()
            },
            "tokenFile, claimCode",
        ),
        (
            FileConfig {
                enrollment: Some(EnrollmentConfig {
                    batch: Some("b".into()),
                    secret_file: None,
                }),
                ..base()
            },
            "enrollment.secretFile",
        ),
        (
            FileConfig {
                enrollment: Some(EnrollmentConfig {
                    batch: None,
                    secret_file: Some("/s".into()),
                }),
                ..base()
            },
            "enrollment.batch",
        ),
        (
            FileConfig {
                claim_code: Some(SecretString::new("SECRETCODE")),
                ..base()
            },
            "claimCode",
        ),
    ];
    for (cfg, field) in cases {
        let err = resolve(cfg).unwrap_err();
        assert_eq!(err.field, field, "{err}");
        let line = err.to_string();
        assert!(
            !line.contains('\n') && line.starts_with("invalid agent config: "),
            "{line}"
        );
        assert!(!line.contains("SECRETCODE"), "{line}");
    }
    let unknown = FileConfig::parse(
        "registrationUrl: https://x\nregistrationURL: y\n",
        "agent.yaml",
    )
    .unwrap_err();
    assert!(unknown.to_string().contains("registrationURL"), "{unknown}");
}

#[test]
fn flags_override_the_file_and_replace_its_credential() {
    let file = FileConfig {
        token_file: Some("/t".into()),
        poll_interval_seconds: Some(60),
        ..base()
    };
    let flags = FileConfig {
        claim_code_file: Some("/media/seed/claim".into()),
        poll_interval_seconds: Some(5),
        ..FileConfig::default()
    };
    let s = resolve(file.clone().overlay(flags)).unwrap();
    assert_eq!(
        s.credential,
        Some(CredentialSource::ClaimCodeFile("/media/seed/claim".into()))
    );
    assert_eq!(s.poll_interval, Duration::from_secs(5));
    assert_eq!(s.registration_url, "https://reg.example:8443");
    // No credential at all is valid here: an identity may already exist, or the agent
    // prompts on a console.
    let none = resolve(FileConfig {
        token_file: None,
        ..file.overlay(FileConfig::default())
    })
    .unwrap();
    assert_eq!(none.credential, None);
    assert_eq!(none.data_dir, PathBuf::from(DEFAULT_DATA_DIR));
}
