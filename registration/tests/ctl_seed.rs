//! `sitebootctl seed` end to end against a real registration service (in-process, HTTPS):
//! a claim seed is minted, written, read back with our reader and with `isoinfo`, and the
//! code it carries registers a device; bootstrap-data seeds from a Secret (YAML and JSON)
//! and raw user-data; and the refusals (existing file, Ignition, unknown site, expired
//! code, not a Secret) with their exit codes.

use std::fs::File;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use base64::Engine;
use chrono::{Duration, Utc};
use clap::Parser;
use serde_json::Value;
use siteboot_registration::ctl::{self, Cli, CtlError};
use siteboot_registration::testkit::{Device, Harness};
use siteboot_registration::Limits;
use siteboot_wire::api::Credential;
use siteboot_wire::iso9660::IsoReader;
use siteboot_wire::seed::{SeedClaim, CLAIM_FILE, CLAIM_USER_DATA};
use siteboot_wire::SecretString;

fn cli(h: &Harness, args: &[&str]) -> Cli {
    let dd = h.data_dir.to_str().unwrap().to_string();
    let mut full = vec!["sitebootctl", "--server", &h.url, "--data-dir", &dd, "seed"];
    full.extend_from_slice(args);
    Cli::try_parse_from(full).unwrap()
}

fn read(iso: &Path, name: &str) -> Vec<u8> {
    let mut r = IsoReader::open(File::open(iso).unwrap()).unwrap();
    assert_eq!(r.volume_id(), "cidata");
    r.read_file(name, 1 << 20).unwrap()
}

fn isoinfo(iso: &Path, name: &str) -> Vec<u8> {
    let out = Command::new("isoinfo")
        .args(["-J", "-i", iso.to_str().unwrap(), "-x", &format!("/{name}")])
        .output()
        .expect("isoinfo (Debian genisoimage; scripts/test.sh installs it)");
    assert!(out.status.success());
    out.stdout
}

fn cloud_init_schema_ok(user_data: &[u8], scratch: &Path) {
    let f = scratch.join("user-data.check");
    std::fs::write(&f, user_data).unwrap();
    let out = Command::new("cloud-init")
        .args(["schema", "--config-file", f.to_str().unwrap()])
        .output()
        .expect("cloud-init (scripts/test.sh installs it)");
    assert!(
        out.status.success(),
        "cloud-init schema: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claim_seed_is_minted_written_and_registers_a_box() {
    let dir = tempfile::tempdir().unwrap();
    let h = Harness::start(dir.path(), 4, Limits::unlimited())
        .await
        .unwrap();
    let iso = dir.path().join("store.iso");
    let p = iso.to_str().unwrap();
    let out = ctl::execute(&cli(
        &h,
        &["--site", "site-001", "--claim", "--iso", p, "--ttl", "2h"],
    ))
    .await
    .unwrap();
    assert!(out.contains("siteId: site-001\n"), "{out}");
    assert!(out.contains(&format!("iso: {p}\n")), "{out}");
    assert_eq!(mode(&iso), 0o600);

    // Our reader and isoinfo see the same files.
    let claim_bytes = read(&iso, CLAIM_FILE);
    assert!(claim_bytes == isoinfo(&iso, CLAIM_FILE));
    let user_data = read(&iso, "user-data");
    assert_eq!(user_data, CLAIM_USER_DATA.as_bytes());
    cloud_init_schema_ok(&user_data, dir.path());
    let meta = String::from_utf8(read(&iso, "meta-data")).unwrap();
    let claim: SeedClaim = serde_norway::from_slice(&claim_bytes).unwrap();
    assert!(
        meta.starts_with(&format!(
            "instance-id: site-001-claim-{}\n",
            claim.claim_id.to_lowercase()
        )),
        "{meta}"
    );
    // What was printed names the claim but never the code.
    assert!(
        out.contains(&format!("claimId: {}\n", claim.claim_id)),
        "{out}"
    );
    assert!(!out.contains(claim.claim_code.expose()), "{out}");
    assert!(!out.contains(&claim.claim_code.expose()[5..9]), "{out}");
    let code = claim
        .check(Utc::now(), Some("site-001"), Some(&h.url))
        .unwrap();
    assert_eq!(claim.ca_bundle.as_deref(), Some(h.ca_pem.as_str()));
    let der = siteboot_registration::tls::certs_from_pem("ca", &h.ca_pem).unwrap();
    assert_eq!(
        claim.ca_sha256,
        Some(siteboot_wire::secret::sha256_hex(der[0].as_ref()))
    );
    let ttl = claim.expires_at - Utc::now();
    assert!(
        ttl > Duration::minutes(100) && ttl <= Duration::hours(2),
        "{ttl}"
    );

    // The code on the seed registers a box for the site.
    let device = Device::new("SN-SEED-1");
    let (st, reg) = h
        .register(&device.request(Credential::Claim {
            code: code.to_secret_string(),
        }))
        .await;
    assert_eq!(st, 201, "{reg}");
    assert_eq!(reg["siteId"], "site-001");

    // An existing file is never replaced without --force, and nothing is minted then.
    let before = std::fs::read(&iso).unwrap();
    let err = ctl::execute(&cli(&h, &["--site", "site-001", "--claim", "--iso", p]))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("--force"), "{err}");
    assert_eq!(err.exit_code(), 1);
    assert!(std::fs::read(&iso).unwrap() == before);
    ctl::execute(&cli(
        &h,
        &["--site", "site-001", "--claim", "--iso", p, "--force"],
    ))
    .await
    .unwrap();
    assert!(std::fs::read(&iso).unwrap() != before);
    assert_eq!(mode(&iso), 0o600);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claim_seed_from_a_code_minted_earlier_and_refusals() {
    let dir = tempfile::tempdir().unwrap();
    let h = Harness::start(dir.path(), 4, Limits::unlimited())
        .await
        .unwrap();
    let code = h.mint_claim("site-002").await;
    let iso = dir.path().join("earlier.iso");
    let p = iso.to_str().unwrap();
    let expires = (Utc::now() + Duration::hours(1)).to_rfc3339();
    let out = ctl::execute(&cli(
        &h,
        &[
            "--site",
            "site-002",
            "--claim-code",
            &code,
            "--expires-at",
            &expires,
            "--iso",
            p,
            "-o",
            "json",
        ],
    ))
    .await
    .unwrap();
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["siteId"], "site-002");
    assert!(!out.contains(&code), "{out}");
    let claim: SeedClaim = serde_norway::from_slice(&read(&iso, CLAIM_FILE)).unwrap();
    assert_eq!(claim.claim_code, SecretString::new(code.clone()));
    let (st, reg) = h
        .register(&Device::new("SN-SEED-2").request(Credential::Claim {
            code: SecretString::new(code.clone()),
        }))
        .await;
    assert_eq!(st, 201, "{reg}");

    let missing = dir.path().join("never.iso");
    let m = missing.to_str().unwrap();
    // (args, exit code, what the message must say)
    let past = (Utc::now() - Duration::minutes(1)).to_rfc3339();
    let cases: Vec<(Vec<&str>, u8, &str)> = vec![
        (
            vec!["--site", "no-such-site", "--claim", "--iso", m],
            2,
            "server answered 4",
        ),
        (
            vec![
                "--site",
                "site-002",
                "--claim-code",
                &code,
                "--expires-at",
                &past,
                "--iso",
                m,
            ],
            1,
            "expired",
        ),
        (
            vec![
                "--site",
                "site-002",
                "--claim-code",
                "7KQ2-M9XD-0",
                "--expires-at",
                &expires,
                "--iso",
                m,
            ],
            1,
            "typo",
        ),
        (
            vec!["--site", "Bad Site", "--claim", "--iso", m],
            1,
            "not a valid site id",
        ),
        (vec!["--site", "site-002", "--iso", m], 1, "--claim"),
        (vec!["--iso", m], 1, "say what the seed carries"),
        (
            vec!["--user-data", "/nonexistent/ud", "--iso", m],
            1,
            "/nonexistent/ud",
        ),
        (
            vec![
                "--user-data",
                "/etc/hostname",
                "--iso",
                "/nonexistent-dir/x.iso",
            ],
            1,
            "does not exist",
        ),
    ];
    for (args, exit, says) in cases {
        let err: CtlError = ctl::execute(&cli(&h, &args)).await.unwrap_err();
        assert_eq!(err.exit_code(), exit, "{args:?}: {err}");
        assert!(err.to_string().contains(says), "{args:?}: {err}");
        assert!(!err.to_string().contains(&code[5..9]), "{err}");
        assert!(!missing.exists(), "{args:?} wrote a file");
    }
}

fn secret_yaml(value: &[u8], format: Option<&str>) -> String {
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let mut y = format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: store-0142-bootstrap\n  namespace: default\ntype: cluster.x-k8s.io/secret\ndata:\n  value: {}\n",
        b64(value)
    );
    if let Some(f) = format {
        y.push_str(&format!("  format: {}\n", b64(f.as_bytes())));
    }
    y
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bootstrap_data_seeds_from_a_secret_or_raw_user_data() {
    let dir = tempfile::tempdir().unwrap();
    let h = Harness::start(dir.path(), 1, Limits::unlimited())
        .await
        .unwrap();
    let user_data =
        b"#cloud-config\nwrite_files:\n  - path: /etc/siteboot/marker\n    content: hello\n";
    let yaml = dir.path().join("secret.yaml");
    std::fs::write(&yaml, secret_yaml(user_data, Some("cloud-config"))).unwrap();
    let as_json: Value = serde_norway::from_str(&secret_yaml(user_data, None)).unwrap();
    let json_file = dir.path().join("secret.json");
    std::fs::write(&json_file, serde_json::to_string_pretty(&as_json).unwrap()).unwrap();
    let raw = dir.path().join("user-data.raw");
    std::fs::write(&raw, user_data).unwrap();
    let net = dir.path().join("net.yaml");
    std::fs::write(&net, "version: 2\nethernets:\n  eth0:\n    dhcp4: true\n").unwrap();

    let cases: [(&str, Vec<&str>, &str); 3] = [
        (
            "yaml",
            vec!["--from-secret", yaml.to_str().unwrap()],
            "iid-store-0142-bootstrap",
        ),
        (
            "json",
            vec!["--from-secret", json_file.to_str().unwrap()],
            "iid-store-0142-bootstrap",
        ),
        (
            "raw",
            vec![
                "--user-data",
                raw.to_str().unwrap(),
                "--instance-id",
                "box-7",
                "--network-config",
                net.to_str().unwrap(),
            ],
            "box-7",
        ),
    ];
    for (what, args, instance) in cases {
        let iso = dir.path().join(format!("{what}.iso"));
        let mut all = args.clone();
        all.extend(["--iso", iso.to_str().unwrap()]);
        let out = ctl::execute(&cli(&h, &all)).await.unwrap();
        assert!(!out.contains("hello"), "{what}: {out}");
        assert_eq!(mode(&iso), 0o600, "{what}");
        assert!(read(&iso, "user-data") == user_data, "{what}");
        assert!(isoinfo(&iso, "user-data") == user_data, "{what}");
        let meta = String::from_utf8(read(&iso, "meta-data")).unwrap();
        assert!(
            meta.starts_with(&format!("instance-id: {instance}\n")),
            "{what}: {meta}"
        );
        if what == "raw" {
            assert!(read(&iso, "network-config") == std::fs::read(&net).unwrap());
        }
    }

    let ignition = br#"{"ignition":{"version":"3.3.0"}}"#;
    let ign_secret = dir.path().join("ign.yaml");
    std::fs::write(&ign_secret, secret_yaml(ignition, Some("ignition"))).unwrap();
    let ign_raw = dir.path().join("ign.json");
    std::fs::write(&ign_raw, ignition).unwrap();
    let not_secret = dir.path().join("cm.yaml");
    std::fs::write(&not_secret, "apiVersion: v1\nkind: ConfigMap\ndata: {}\n").unwrap();
    let never = dir.path().join("never.iso");
    let cases: [(&str, &Path, &str); 3] = [
        ("--from-secret", &ign_secret, "cloud-config only"),
        ("--user-data", &ign_raw, "cloud-config only"),
        ("--from-secret", &not_secret, "kind must be Secret"),
    ];
    for (flag, file, says) in cases {
        let err = ctl::execute(&cli(
            &h,
            &[
                flag,
                file.to_str().unwrap(),
                "--iso",
                never.to_str().unwrap(),
            ],
        ))
        .await
        .unwrap_err();
        assert!(
            err.to_string().contains(says),
            "{flag} {}: {err}",
            file.display()
        );
        assert!(!never.exists());
    }
}
