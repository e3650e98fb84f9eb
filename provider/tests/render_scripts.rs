//! The shell the rendered documents run, executed for real.
//!
//! * Every script in every golden fixture (cloud-init's joined `runcmd`, `bootstrap.sh`,
//!   Ignition's `run.sh`) is syntax-checked with `sh -n` (dash, Debian's /bin/sh).
//! * `install_verified` is taken verbatim from a rendered `bootstrap.sh` and run against
//!   a local file: a matching digest installs it (mode 0755), a wrong digest fails and
//!   leaves neither the destination nor a temporary file behind.
//! * cloud-init's own `shellify` builds the runcmd script, and a failing preCommand stops
//!   it before anything that follows.

mod render_support;

use base64::Engine as _;
use render_support::*;
use serde_json::Value;
use siteboot_provider::render::{render_cloud_init, render_ignition};
use std::process::Command;

/// The script cloud-init itself makes of a `runcmd` list (`cloudinit.util.shellify`).
fn shellify(runcmd: &Value) -> String {
    let out = Command::new("/usr/bin/python3")
        .args(["-c", "import json,sys; from cloudinit import util; sys.stdout.write(util.shellify(json.load(sys.stdin)))"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write as _;
            child.stdin.take().expect("stdin").write_all(runcmd.to_string().as_bytes())?;
            child.wait_with_output()
        })
        .expect("run cloud-init's shellify (Debian package cloud-init)");
    assert!(
        out.status.success(),
        "shellify: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

fn b64(s: &str) -> String {
    String::from_utf8(base64::engine::general_purpose::STANDARD.decode(s).unwrap()).unwrap()
}

/// (name, script) for every script a document carries.
fn scripts(input: &siteboot_provider::render::RenderInput) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let cloud: Value = serde_norway::from_str(&render_cloud_init(input).unwrap()).unwrap();
    // cloud-init turns a runcmd list of strings into "#!/bin/sh\n" + one line per item.
    let runcmd: Vec<&str> = cloud["runcmd"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    out.push((
        "cloud-init runcmd".into(),
        format!("#!/bin/sh\n{}\n", runcmd.join("\n")),
    ));
    for f in cloud["write_files"].as_array().unwrap() {
        if f["path"].as_str().unwrap().ends_with(".sh") {
            assert!(f.get("encoding").is_none());
            out.push((
                format!("cloud-init {}", f["path"]),
                f["content"].as_str().unwrap().to_owned(),
            ));
        }
    }
    let ign: Value = serde_json::from_str(&render_ignition(input).unwrap()).unwrap();
    for f in ign["storage"]["files"].as_array().unwrap() {
        if f["path"].as_str().unwrap().ends_with(".sh") {
            let src = f["contents"]["source"].as_str().unwrap();
            out.push((
                format!("ignition {}", f["path"]),
                b64(src.strip_prefix("data:;base64,").unwrap()),
            ));
        }
    }
    out
}

#[test]
fn every_rendered_script_parses() {
    for (fixture, input) in [
        ("minimal", minimal()),
        ("full", full()),
        ("preinstalled", preinstalled()),
    ] {
        let scripts = scripts(&input);
        assert_eq!(
            scripts.len(),
            4,
            "{fixture}: runcmd, bootstrap.sh (x2), run.sh"
        );
        for (name, script) in scripts {
            let out = Command::new("/bin/sh")
                .arg("-n")
                .arg("-c")
                .arg(&script)
                .output()
                .expect("sh -n");
            assert!(
                out.status.success(),
                "{fixture} {name}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

fn install_verified_function() -> String {
    let cloud: Value = serde_norway::from_str(&render_cloud_init(&minimal()).unwrap()).unwrap();
    let script = cloud["write_files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"] == "/usr/local/lib/siteboot/bootstrap.sh")
        .map(|f| f["content"].as_str().unwrap().to_owned())
        .expect("bootstrap.sh");
    let start = script.find("install_verified() {").expect("function start");
    let end = start + script[start..].find("\n}\n").expect("function end") + 3;
    script[start..end].to_owned()
}

fn run_install(url: &str, sha: &str, dest: &std::path::Path) -> std::process::Output {
    let script = format!(
        "set -eu\n{}\ninstall_verified \"$1\" \"$2\" \"$3\"\n",
        install_verified_function()
    );
    Command::new("/bin/sh")
        .arg("-c")
        .arg(script)
        .arg("sh")
        .arg(url)
        .arg(sha)
        .arg(dest)
        .output()
        .expect("sh")
}

#[test]
fn install_verified_installs_only_a_matching_file() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("artifact");
    std::fs::write(&src, b"#!/bin/sh\necho agent\n").unwrap();
    let sha = siteboot_wire::secret::sha256_hex(b"#!/bin/sh\necho agent\n");
    let url = format!("file://{}", src.display());
    let bin = dir.path().join("bin");
    let dest = bin.join("siteboot-agent");

    let out = run_install(&url, &sha, &dest);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::read(&dest).unwrap(), b"#!/bin/sh\necho agent\n");
    assert_eq!(
        std::fs::metadata(&dest).unwrap().permissions().mode() & 0o777,
        0o755
    );

    let other = dir.path().join("other-dest");
    let out = run_install(&url, &"0".repeat(64), &other);
    assert!(!out.status.success(), "a wrong digest must fail");
    assert!(!other.exists(), "nothing installed on a digest mismatch");
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.contains(".download."))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");

    // A failed download (no such file) also fails without installing anything.
    let out = run_install(
        &format!("file://{}/missing", dir.path().display()),
        &sha,
        &other,
    );
    assert!(!out.status.success());
    assert!(!other.exists());
}

/// cloud-init joins `runcmd` into one script; our leading `set -e` makes the first failing
/// command end it, so nothing after it (bootstrap, postCommands, the sentinel) runs.
/// Safe to execute: it stops at `false`, before any siteboot step.
#[test]
fn a_failing_pre_command_stops_runcmd_before_the_sentinel() {
    let dir = tempfile::tempdir().unwrap();
    let input = siteboot_provider::render::RenderInput {
        pre_commands: vec!["echo pre > \"$MARK_DIR/pre\"".into(), "false".into()],
        post_commands: vec!["echo post > \"$MARK_DIR/post\"".into()],
        ..minimal()
    };
    let cloud: Value = serde_norway::from_str(&render_cloud_init(&input).unwrap()).unwrap();
    let script = shellify(&cloud["runcmd"]);
    let out = Command::new("/bin/sh")
        .arg("-c")
        .arg(&script)
        .env("MARK_DIR", dir.path())
        .output()
        .expect("sh");
    assert!(
        !out.status.success(),
        "the failing command fails the script"
    );
    assert!(
        dir.path().join("pre").exists(),
        "commands before the failure ran"
    );
    assert!(
        !dir.path().join("post").exists(),
        "nothing after the failure ran"
    );
}
