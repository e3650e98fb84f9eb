//! Table tests for the pure matching core of the secret scan.

use super::*;

fn needle(name: &str, value: &str) -> Needle {
    Needle {
        name: name.into(),
        value: value.as_bytes().to_vec(),
    }
}

const KEY: &str = "-----BEGIN OPENSSH PRIVATE KEY-----
b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW
QyNTUxOQAAACDz0u2Wl4hN6LrZ0z7rU1Dn1aE0gkqg6Y2b0mBzY0v2mAAAAJgYw8cGGMPH
BgAAAAtzc2gtZWQyNTUxOQAAACDz0u2Wl4hN6LrZ0z7rU1Dn1aE0gkqg6Y2b0mBzY0v2mA
AAAEDc
-----END OPENSSH PRIVATE KEY-----
";

#[test]
fn find_leaks_table() {
    let needles = vec![
        needle("registration-token", "sbt_0123456789abcdef"),
        needle("claim-code", "K7QX-M2PD-9"),
    ];
    let cases: &[(&str, &[(&str, usize)])] = &[
        ("nothing to see here\n", &[]),
        ("token=sbt_0123456789abcdef\n", &[("registration-token", 1)]),
        (
            "a\nb\nclaim K7QX-M2PD-9 used\nsbt_0123456789abcdef sbt_0123456789abcdef\n",
            &[("claim-code", 3), ("registration-token", 4)],
        ),
        // A prefix of a secret is not the secret.
        ("sbt_0123456789abcde\n", &[]),
        ("K7QX-M2PD\n", &[]),
        // At the very end, without a newline.
        ("x K7QX-M2PD-9", &[("claim-code", 1)]),
    ];
    for (text, want) in cases {
        let got = find_leaks(&needles, text.as_bytes());
        let got: Vec<(&str, usize)> = got.iter().map(|f| (f.secret.as_str(), f.line)).collect();
        assert_eq!(&got, want, "in {text:?}");
    }
}

#[test]
fn a_planted_secret_is_found_and_a_non_secret_is_not() {
    let set = SecretSet::new();
    set.register("operator-password", "correct-horse-battery");
    assert_eq!(set.scan_bytes(b"login ok for operator\n"), vec![]);
    assert_eq!(
        set.scan_bytes(b"login\nwith correct-horse-battery\n"),
        vec![Finding {
            secret: "operator-password".into(),
            line: 2
        }]
    );
}

#[test]
fn percent_encoded_values_are_found() {
    let set = SecretSet::new();
    set.register("bearer", "tok+en/with=chars");
    let found = set.scan_bytes(b"GET /x?token=tok%2Ben%2Fwith%3Dchars\n");
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].secret, "bearer");
}

#[test]
fn pem_keys_are_registered_by_body_lines() {
    let needles = pem_needles("deploy-key", KEY);
    // 3 long body lines; the armour and the short last line are skipped.
    assert_eq!(needles.len(), 3);
    assert!(needles.iter().all(|n| !n.value.starts_with(b"-----")));
    assert_eq!(needles[0].name, "deploy-key#1");
    // One logged body line is enough to be caught.
    let line = KEY.lines().nth(2).unwrap();
    let found = find_leaks(&needles, format!("debug: key {line}").as_bytes());
    assert_eq!(
        found,
        vec![Finding {
            secret: "deploy-key#2".into(),
            line: 1
        }]
    );
    // The armour alone is not a leak.
    assert!(find_leaks(&needles, b"-----BEGIN OPENSSH PRIVATE KEY-----").is_empty());
}

#[test]
fn reports_and_debug_output_never_contain_the_value() {
    let value = "sbt_supersecretvalue42";
    let set = SecretSet::new();
    set.register("registration-token", value);
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("agent.log");
    std::fs::write(&log, format!("starting\nredeeming {value}\n")).unwrap();
    let leaks = set.scan_files([log.as_path()]);
    assert_eq!(leaks.len(), 1);
    assert_eq!(leaks[0].line, 2);
    let text = report(&leaks);
    assert!(text.contains("registration-token"), "{text}");
    assert!(text.contains("agent.log line 2"), "{text}");
    assert!(!text.contains(value), "{text}");
    assert!(!format!("{set:?}").contains(value));
    assert!(!format!("{:?}", set.needles()).contains(value));
}

#[test]
fn redaction_replaces_every_value_longest_first() {
    let needles = vec![needle("short", "abcdefgh"), needle("long", "abcdefgh-ijkl")];
    let out = redact_bytes(&needles, b"1 abcdefgh-ijkl 2 abcdefgh 3");
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "1 [REDACTED:long] 2 [REDACTED:short] 3"
    );
}

#[test]
#[should_panic(expected = "shorter than")]
fn too_short_secrets_are_refused() {
    SecretSet::new().register("pin", "1234");
}

#[test]
fn missing_files_are_skipped() {
    let set = SecretSet::new();
    set.register("token", "0123456789");
    assert!(set
        .scan_files([Path::new("/nonexistent/siteboot/log")])
        .is_empty());
}

#[test]
fn basic_auth_is_found_as_password_and_as_header() {
    let set = SecretSet::new();
    set.register_basic_auth("git-password", "fleet", "fleet-reader-pw");
    // base64("fleet:fleet-reader-pw")
    let header = b"authorization: Basic ZmxlZXQ6ZmxlZXQtcmVhZGVyLXB3\n";
    let found = set.scan_bytes(header);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].secret, "git-password (basic auth header)");
    assert_eq!(set.scan_bytes(b"pw=fleet-reader-pw").len(), 1);
}
