//! The real binaries as processes: start-up banner and flags, graceful SIGTERM, secret
//! hygiene of everything the service prints (debug logging on), and `sitebootctl` exit
//! codes.

use std::path::Path;
use std::process::Command;

use serde_json::{json, Value};
use siteboot_registration::testkit::process::ServerProcess;
use siteboot_registration::testkit::{client, inventory_yaml, token, Device};
use siteboot_wire::api::Credential;
use siteboot_wire::SecretString;

const SERVER: &str = env!("CARGO_BIN_EXE_siteboot-registration");
const CTL: &str = env!("CARGO_BIN_EXE_sitebootctl");

#[test]
fn bad_flags_fail_with_one_actionable_line() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(SERVER)
        .args(["--inventory", "/nonexistent/inventory.yaml", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains("--inventory /nonexistent/inventory.yaml: no such file"),
        "{err}"
    );
    let out = Command::new(SERVER)
        .args(["--listen", "nonsense"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    for flag in ["--version", "--help"] {
        assert!(Command::new(SERVER)
            .arg(flag)
            .output()
            .unwrap()
            .status
            .success());
        assert!(Command::new(CTL)
            .arg(flag)
            .output()
            .unwrap()
            .status
            .success());
    }
}

fn ctl(dir: &Path, url: &str, args: &[&str]) -> (i32, String) {
    let out = Command::new(CTL)
        .arg("--server")
        .arg(url)
        .arg("--data-dir")
        .arg(dir)
        .args(args)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_never_prints_a_secret() {
    let dir = tempfile::tempdir().unwrap();
    let inv = dir.path().join("inventory.yaml");
    std::fs::write(&inv, inventory_yaml(6)).unwrap();
    let data = dir.path().join("data");
    let server = ServerProcess::start(
        Path::new(SERVER),
        &data,
        &["--inventory", inv.to_str().unwrap()],
    )
    .unwrap();
    let url = server.url.clone();
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");
    let ca = std::fs::read_to_string(data.join("ca.pem")).unwrap();
    let operator = std::fs::read_to_string(data.join("operator-token"))
        .unwrap()
        .trim()
        .to_string();
    let batch_secret = std::fs::read_to_string(data.join("demo-batch-secret"))
        .unwrap()
        .trim()
        .to_string();
    let http = client(&ca, None);
    let op = |path: &str, body: Value| {
        http.post(format!("{url}{path}"))
            .bearer_auth(&operator)
            .json(&body)
            .send()
    };
    let register = |body: Value| http.post(format!("{url}/v1/register")).json(&body).send();

    let minted: Value = op("/v1/operator/tokens", json!({"siteId": "site-001"}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let tok = minted["token"].as_str().unwrap().to_string();
    let token_id = minted["info"]["tokenId"].as_str().unwrap().to_string();
    let d1 = Device::new("SN-HYG-1");
    let r = register(json!(d1.request(token(&tok)))).await.unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let replay = register(json!(Device::new("SN-HYG-2").request(token(&tok))))
        .await
        .unwrap();
    assert_eq!(replay.status().as_u16(), 401);

    let claim: Value = op("/v1/operator/claims", json!({"siteId": "site-001"}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let code = claim["code"].as_str().unwrap().to_string();
    let d2 = Device::new("SN-HYG-3");
    let claim_cred = |c: &str| Credential::Claim {
        code: SecretString::new(c),
    };
    assert_eq!(
        register(json!(d2.request(claim_cred(&code))))
            .await
            .unwrap()
            .status()
            .as_u16(),
        201
    );
    // Replayed by another box (the same box with the same key would get its 201 again).
    assert_eq!(
        register(json!(Device::new("SN-HYG-4").request(claim_cred(&code))))
            .await
            .unwrap()
            .status()
            .as_u16(),
        401
    );

    let enroll = |serial: &str| {
        Device::new(serial).request(Credential::Enrollment {
            batch: "demo".into(),
            secret: SecretString::new(batch_secret.clone()),
        })
    };
    assert_eq!(
        register(json!(enroll("SN-003")))
            .await
            .unwrap()
            .status()
            .as_u16(),
        201
    );
    let pending: Value = register(json!(enroll("SN-NOBODY")))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let poll_secret = pending["pollSecret"].as_str().unwrap().to_string();
    let polled = http
        .get(format!(
            "{url}/v1/register/{}",
            pending["pendingId"].as_str().unwrap()
        ))
        .header("x-siteboot-poll-secret", &poll_secret)
        .send()
        .await
        .unwrap();
    assert_eq!(polled.status().as_u16(), 200);
    let wrong_op = http
        .get(format!("{url}/v1/operator/sites"))
        .bearer_auth("sbop1_guess")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_op.status().as_u16(), 401);

    // sitebootctl against the live process.
    let (code_ok, out) = ctl(&data, &url, &["sites", "list"]);
    assert_eq!(code_ok, 0, "{out}");
    assert!(out.contains("site-005"), "{out}");
    assert_eq!(
        ctl(&data, &url, &["sites", "show", "nope"]).0,
        5,
        "not found"
    );
    assert_eq!(ctl(&data, "https://127.0.0.1:1", &["sites", "list"]).0, 3);
    assert_eq!(
        ctl(
            &data,
            &url,
            &["--token-file", "/nonexistent", "sites", "list"]
        )
        .0,
        1
    );
    assert_eq!(ctl(&data, &url, &["sites", "frobnicate"]).0, 1);

    let (clean_exit, logs) = server.terminate();
    assert!(clean_exit, "graceful shutdown failed:\n{logs}");
    assert!(logs.contains(&format!("listening on {url}")), "{logs}");
    assert!(
        logs.contains(data.join("operator-token").to_str().unwrap()),
        "banner names the credential file"
    );
    assert!(
        logs.contains(&token_id),
        "logs should name the token id:\n{logs}"
    );
    assert!(logs.contains("heartbeats flushed"), "{logs}");
    let code_plain = code.replace('-', "");
    let secrets = [
        ("token", tok.as_str()),
        ("token secret part", tok.rsplit('.').next().unwrap()),
        ("claim code", code.as_str()),
        ("claim code without dashes", code_plain.as_str()),
        ("claim secret part", &code_plain[4..8]),
        ("operator credential", operator.as_str()),
        ("batch secret", batch_secret.as_str()),
        ("poll secret", poll_secret.as_str()),
    ];
    for (what, secret) in secrets {
        assert!(!secret.is_empty());
        assert!(
            !logs.contains(secret),
            "{what} appears in the service output"
        );
    }
    assert!(
        !logs.contains("PRIVATE KEY"),
        "a private key appears in the service output"
    );
}
