//! The process runner and secret scan with real child processes: shell scripts that
//! print lines and handle (or ignore) signals, and Python's `http.server` on a reserved
//! port. The failure paths of `TestRun` (log dump on panic, leak report) are checked by
//! re-running this test binary on one test with `SITEBOOT_E2E_RUN_MODE` set.

use std::os::unix::process::ExitStatusExt as _;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use siteboot_e2e::ports::must_free_port;
use siteboot_e2e::process::{dump_logs, ProcessError, Spec, TestRun, READY_TIMEOUT};
use siteboot_e2e::secrets::SecretSet;

fn sh(script: &str) -> Spec {
    Spec::new("/bin/sh").arg("-c").arg(script)
}

/// A script that logs, becomes "ready", and exits 0 on SIGTERM.
const GRACEFUL: &str = r#"
trap 'echo "got TERM, shutting down"; exit 0' TERM
echo "starting"
sleep 0.2
echo "listening: ready"
while :; do sleep 0.1; done
"#;

#[test]
fn waits_for_a_log_line_and_terminates_cleanly() {
    let run = TestRun::new("waits_for_a_log_line_and_terminates_cleanly");
    let mut p = run.spawn("graceful", &sh(GRACEFUL)).unwrap();
    let line = p.wait_for_log_line("ready", READY_TIMEOUT).unwrap();
    assert_eq!(line, "listening: ready");
    assert!(p.try_exit().unwrap().is_none(), "still running");
    let status = p.terminate(Duration::from_secs(30)).unwrap();
    assert_eq!(status.code(), Some(0), "clean exit on SIGTERM");
    // The trap's line may be written by the shell just before it exits.
    p.wait_for_log_line("got TERM", READY_TIMEOUT).unwrap();
    assert!(p.log().starts_with("starting\n"), "{}", p.log());
    assert_eq!(p.log_path(), run.dir().join("graceful.log"));
    run.finish();
}

#[test]
fn terminate_escalates_to_sigkill_when_sigterm_is_ignored() {
    let run = TestRun::new("terminate_escalates_to_sigkill_when_sigterm_is_ignored");
    let mut p = run
        .spawn(
            "stubborn",
            &sh("trap '' TERM; echo up; while :; do sleep 0.1; done"),
        )
        .unwrap();
    p.wait_for_log_line("up", READY_TIMEOUT).unwrap();
    let status = p.terminate(Duration::from_millis(500)).unwrap();
    assert_eq!(status.signal(), Some(9), "{status}");
    run.finish();
}

#[test]
fn kill_is_a_crash_and_drop_reaps() {
    let run = TestRun::new("kill_is_a_crash_and_drop_reaps");
    let mut p = run.spawn("victim", &sh(GRACEFUL)).unwrap();
    p.wait_for_log_line("ready", READY_TIMEOUT).unwrap();
    let status = p.kill().unwrap();
    assert_eq!(status.signal(), Some(9));
    assert!(!p.log().contains("got TERM"), "SIGKILL runs no handler");

    let p = run.spawn("dropped", &sh(GRACEFUL)).unwrap();
    let pid = p.pid();
    assert!(Path::new(&format!("/proc/{pid}")).exists());
    drop(p);
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "dropped process {pid} still exists"
    );
    // Names are unique per run: a second process of one name gets its own log.
    let again = run.spawn("victim", &sh("echo second")).unwrap();
    assert_eq!(again.log_path(), run.dir().join("victim-2.log"));
    run.finish();
}

#[test]
fn waits_fail_early_when_the_process_exits_and_time_out_otherwise() {
    let run = TestRun::new("waits_fail_early_when_the_process_exits_and_time_out_otherwise");
    let mut crasher = run
        .spawn("crasher", &sh("echo 'config invalid: boom' >&2; exit 3"))
        .unwrap();
    match crasher.wait_for_log_line("ready", READY_TIMEOUT) {
        Err(ProcessError::ExitedEarly { status, tail, .. }) => {
            assert_eq!(status.code(), Some(3));
            assert!(tail.contains("config invalid: boom"), "{tail}");
        }
        other => panic!("expected ExitedEarly, got {other:?}"),
    }
    assert_eq!(crasher.wait_exit(READY_TIMEOUT).unwrap().code(), Some(3));

    let mut sleeper = run
        .spawn("sleeper", &sh("echo sleeping; exec sleep 600"))
        .unwrap();
    match sleeper.wait_for_log_line("never printed", Duration::from_millis(300)) {
        Err(ProcessError::Timeout { tail, .. }) => assert!(tail.contains("sleeping"), "{tail}"),
        other => panic!("expected Timeout, got {other:?}"),
    }
    let line = sleeper
        .wait_for_log_match(
            "a line starting with sle",
            |l| l.starts_with("sle"),
            READY_TIMEOUT,
        )
        .unwrap();
    assert_eq!(line, "sleeping");
    run.finish();
}

fn python_http(run: &TestRun, name: &str) -> (siteboot_e2e::process::Process, String) {
    let port = must_free_port();
    let root = run.subdir("www");
    std::fs::write(root.join("healthz"), "ok\n").unwrap();
    let spec = Spec::new("/usr/bin/python3")
        .args([
            "-u",
            "-m",
            "http.server",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
        ])
        .arg("--directory")
        .arg(&root);
    let p = run.spawn(name, &spec).unwrap();
    (p, format!("http://127.0.0.1:{port}/healthz"))
}

#[test]
fn waits_for_http_readiness_of_a_real_server() {
    let run = TestRun::new("waits_for_http_readiness_of_a_real_server");
    let (mut p, url) = python_http(&run, "http-server");
    assert_eq!(p.wait_for_http(&url, READY_TIMEOUT).unwrap(), 200);
    // The server logged the probe's request.
    p.wait_for_log_line("GET /healthz", READY_TIMEOUT).unwrap();
    // A 404 is an answer but not readiness.
    let missing = url.replace("healthz", "missing");
    assert!(matches!(
        p.wait_for_http(&missing, Duration::from_millis(300)),
        Err(ProcessError::Timeout { .. })
    ));
    let status = p.terminate(Duration::from_secs(30)).unwrap();
    assert!(
        status.code().is_some() || status.signal() == Some(15),
        "{status}"
    );
    run.finish();
}

#[tokio::test]
async fn async_waits_do_not_block_the_runtime() {
    let run = TestRun::new("async_waits_do_not_block_the_runtime");
    // A task on this (current-thread) runtime must keep running while we wait.
    let ticks = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let t = ticks.clone();
    let ticker = tokio::spawn(async move {
        loop {
            t.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });
    let (mut p, url) = python_http(&run, "http-server");
    p.wait_for_http_async(&url, READY_TIMEOUT).await.unwrap();
    p.wait_for_log_line_async("GET /healthz", READY_TIMEOUT)
        .await
        .unwrap();
    p.terminate_async(Duration::from_secs(30)).await.unwrap();
    assert!(ticks.load(std::sync::atomic::Ordering::Relaxed) > 1);
    ticker.abort();
    run.finish();
}

#[test]
fn dump_logs_prints_headers_and_redacts_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("registration.log");
    let b = dir.path().join("agent.log");
    std::fs::write(&a, "listening on 127.0.0.1:1\n").unwrap();
    std::fs::write(&b, "redeeming sbt_topsecret_value_1\nno newline").unwrap();
    let secrets = SecretSet::new();
    secrets.register("registration-token", "sbt_topsecret_value_1");
    let logs = vec![
        ("registration".to_owned(), a.clone()),
        ("agent".to_owned(), b.clone()),
    ];
    let mut out = Vec::new();
    dump_logs("journey", &logs, &secrets, &mut out);
    let out = String::from_utf8(out).unwrap();
    let want = format!(
        "===== journey: registration ({}) =====\nlistening on 127.0.0.1:1\n===== end registration =====\n\
         ===== journey: agent ({}) =====\nredeeming [REDACTED:registration-token]\nno newline\n===== end agent =====\n",
        a.display(),
        b.display()
    );
    assert_eq!(out, want);
}

#[test]
fn secret_scan_catches_a_planted_secret_in_a_process_log() {
    let run = TestRun::new("secret_scan_catches_a_planted_secret_in_a_process_log");
    let token = "sbt_planted_0123456789";
    run.register_secret("registration-token", token);
    let mut p = run
        .spawn(
            "leaky",
            &sh(&format!("echo 'hello'; echo 'debug: token={token}'")),
        )
        .unwrap();
    p.wait_exit(READY_TIMEOUT).unwrap();
    let leaks = run.scan();
    assert_eq!(leaks.len(), 1, "{leaks:?}");
    assert_eq!(leaks[0].secret, "registration-token");
    assert_eq!(leaks[0].line, 2);
    assert_eq!(leaks[0].file, p.log_path());
    // finish() fails the test with a report that names the secret, not its value.
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run.finish()));
    let payload = result.expect_err("finish must fail on a leak");
    let message = payload
        .downcast_ref::<String>()
        .cloned()
        .unwrap_or_default();
    assert!(message.contains("registration-token"), "{message}");
    assert!(message.contains("leaky.log line 2"), "{message}");
    assert!(!message.contains(token), "the report printed the secret");
}

/// What the child run does, from `SITEBOOT_E2E_RUN_MODE`.
const MODE_VAR: &str = "SITEBOOT_E2E_RUN_MODE";
const CHILD_SECRET: &str = "sbt_child_secret_value_42";

/// A normal run: a worker logs, the run passes the secret scan. Under
/// `SITEBOOT_E2E_RUN_MODE=panic` its worker logs the registered secret and the test
/// panics (a failing test: the log dump must redact it); under `=leak` the worker logs
/// the secret and the test ends normally (the scan in `finish` must fail it);
/// `=leak-on-drop` is the same without `finish` (the scan in `Drop` must fail it). The two tests
/// below run this one in a child process in those modes.
#[test]
fn child_run_passes_or_fails_per_mode() {
    let mode = std::env::var(MODE_VAR).unwrap_or_default();
    let run = TestRun::new(&format!("child_run_passes_or_fails_per_mode-{mode}"));
    run.register_secret("api-token", CHILD_SECRET);
    let line = if mode.starts_with("leak") || mode == "panic" {
        format!("worker says hello with {CHILD_SECRET}")
    } else {
        "worker says hello".to_owned()
    };
    let mut p = run.spawn("worker", &sh(&format!("echo '{line}'"))).unwrap();
    p.wait_exit(READY_TIMEOUT).unwrap();
    p.wait_for_log_line("worker says hello", READY_TIMEOUT)
        .unwrap();
    if mode == "panic" {
        panic!("deliberate failure (mode=panic)");
    }
    if mode != "leak-on-drop" {
        run.finish();
    } // else: dropping the run scans the logs just the same
}

fn run_child(mode: &str) -> (bool, String) {
    let exe = std::env::current_exe().unwrap();
    let out = Command::new(exe)
        .args([
            "--exact",
            "child_run_passes_or_fails_per_mode",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(MODE_VAR, mode)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

#[test]
fn a_failing_test_prints_every_log_with_secrets_redacted() {
    let (ok, text) = run_child("panic");
    assert!(!ok, "the child test should fail:\n{text}");
    assert!(text.contains("deliberate failure"), "{text}");
    assert!(
        text.contains("===== child_run_passes_or_fails_per_mode-panic: worker ("),
        "no log header:\n{text}"
    );
    assert!(
        text.contains("worker says hello with [REDACTED:api-token]\n===== end worker ====="),
        "{text}"
    );
    assert!(
        !text.contains(CHILD_SECRET),
        "the secret value was printed:\n{text}"
    );
}

#[test]
fn a_leaking_test_fails_naming_the_secret_but_not_printing_it() {
    for mode in ["leak", "leak-on-drop"] {
        let (ok, text) = run_child(mode);
        assert!(
            !ok,
            "{mode}: the child test should fail on the leak:\n{text}"
        );
        assert!(
            text.contains("secret `api-token` appears in"),
            "{mode}: {text}"
        );
        assert!(text.contains("worker.log line 1"), "{mode}: {text}");
        assert!(
            text.contains("[REDACTED:api-token]"),
            "{mode}: the dump should be redacted:\n{text}"
        );
        assert!(
            !text.contains(CHILD_SECRET),
            "{mode}: the secret value was printed:\n{text}"
        );
    }
}

/// The real binaries are found next to this test binary, built first (once, under a
/// file lock) when missing or older than their sources, and run.
#[test]
fn siteboot_binaries_are_located_built_and_run() {
    use siteboot_e2e::process::binaries::{binary, BINARIES};
    let run = TestRun::new("siteboot_binaries_are_located_built_and_run");
    for (name, _) in BINARIES {
        let path = binary(name).unwrap_or_else(|e| panic!("{e}"));
        assert!(path.is_file(), "{} missing", path.display());
        assert_eq!(path.file_name().unwrap(), *name);
        let mut p = run.spawn_binary(name, ["--help"], &[]).unwrap();
        let status = p.wait_exit(READY_TIMEOUT).unwrap();
        assert!(status.success(), "{name} --help: {status}\n{}", p.log());
        assert!(p.log().contains("Usage:"), "{name} --help:\n{}", p.log());
    }
    run.finish();
}
