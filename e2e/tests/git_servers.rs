//! The real Git servers of the harness, exercised with the real `git` client: a clone
//! through each of `git daemon`, `git http-backend` (HTTP and HTTPS, basic and bearer
//! auth) and `sshd` yields the committed files, wrong credentials are refused, and a new
//! commit becomes visible after a fetch. Server logs are scanned for the credentials.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use siteboot_e2e::git::{
    git_command, Change, CommitId, GitDaemon, GitHttpConfig, GitHttpServer, GitRepo, SshGitServer,
};
use siteboot_e2e::process::TestRun;

const FILES: &[(&str, &str)] = &[
    (
        "baseline/namespace.yaml",
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: edge\n",
    ),
    ("regions/eu-west/config.yaml", "region: eu-west\n"),
    ("clusters/store-0142/site.yaml", "site: store-0142\n"),
];

/// A client side: an isolated HOME and a place to clone into.
struct Client {
    dir: tempfile::TempDir,
}

impl Client {
    fn new() -> Client {
        Client {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn home(&self) -> PathBuf {
        let home = self.dir.path().join("home");
        std::fs::create_dir_all(&home).unwrap();
        home
    }

    fn checkout(&self) -> PathBuf {
        self.dir.path().join("checkout")
    }

    fn git(&self) -> Command {
        git_command(&self.home())
    }

    /// `git [config...] clone url checkout`, with extra environment.
    fn clone(&self, url: &str, config: &[String], env: &[(&str, &str)]) -> Output {
        let _ = std::fs::remove_dir_all(self.checkout());
        let mut cmd = self.git();
        for c in config {
            cmd.arg("-c").arg(c);
        }
        cmd.args(["clone", "--quiet", url]).arg(self.checkout());
        cmd.envs(env.iter().copied());
        cmd.output().unwrap()
    }

    /// `git fetch origin` in the checkout, then the commit `origin/<branch>` names.
    fn fetch(&self, config: &[String], env: &[(&str, &str)], branch: &str) -> CommitId {
        let mut cmd = self.git();
        for c in config {
            cmd.arg("-c").arg(c);
        }
        let out = cmd
            .args(["fetch", "--quiet", "origin"])
            .current_dir(self.checkout())
            .envs(env.iter().copied())
            .output()
            .unwrap();
        assert_success("fetch", &out);
        let out = self
            .git()
            .args(["rev-parse", &format!("origin/{branch}")])
            .current_dir(self.checkout())
            .output()
            .unwrap();
        assert_success("rev-parse", &out);
        CommitId(String::from_utf8(out.stdout).unwrap().trim().to_owned())
    }

    fn assert_files(&self, files: &[(&str, &str)]) {
        for (path, content) in files {
            let got = std::fs::read_to_string(self.checkout().join(path))
                .unwrap_or_else(|e| panic!("{path} missing from the clone: {e}"));
            assert_eq!(&got, content, "{path}");
        }
    }
}

fn assert_success(what: &str, out: &Output) {
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

fn log_of(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

#[test]
fn git_daemon_serves_clones_and_new_commits() {
    let run = TestRun::new("git_daemon_serves_clones_and_new_commits");
    let mut repo = GitRepo::create("fleet", FILES).unwrap();
    let daemon = GitDaemon::start(&repo, &run.log_path("git-daemon")).unwrap();
    let url = daemon.url(&repo);
    assert!(
        url.starts_with("git://127.0.0.1:") && url.ends_with("/fleet.git"),
        "{url}"
    );

    let client = Client::new();
    assert_success("clone", &client.clone(&url, &[], &[]));
    client.assert_files(FILES);

    let second = repo
        .commit(
            "add app, drop region",
            &[
                Change::write("clusters/store-0142/app.yaml", "app: pos\n"),
                Change::delete("regions/eu-west/config.yaml"),
            ],
        )
        .unwrap();
    assert_eq!(client.fetch(&[], &[], "main"), second);
    run.finish();
}

#[test]
fn http_backend_with_basic_auth_serves_the_right_user_only() {
    let run = TestRun::new("http_backend_with_basic_auth_serves_the_right_user_only");
    let password = "fleet-reader-pw-0142";
    run.secrets()
        .register_basic_auth("git-basic-password", "fleet", password);
    let mut repo = GitRepo::create("fleet", FILES).unwrap();
    let log = run.log_path("git-http");
    let server =
        GitHttpServer::start(&repo, GitHttpConfig::http().basic("fleet", password), &log).unwrap();
    let url = server.url(&repo);
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    let with_creds =
        |user: &str, pw: &str| url.replacen("http://", &format!("http://{user}:{pw}@"), 1);

    let client = Client::new();
    // No credentials: 401, and git (no prompt available) gives up.
    let out = client.clone(&url, &[], &[]);
    assert!(!out.status.success(), "clone without credentials succeeded");
    // Wrong password: refused.
    let out = client.clone(&with_creds("fleet", "wrong-password"), &[], &[]);
    assert!(
        !out.status.success(),
        "clone with a wrong password succeeded"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("Authentication failed"), "{stderr}");
    // Right credentials: the files.
    let good = with_creds("fleet", password);
    assert_success("clone", &client.clone(&good, &[], &[]));
    client.assert_files(FILES);

    let requests = server.requests();
    assert!(requests.iter().any(|r| r.status == 401), "{requests:?}");
    assert!(
        requests
            .iter()
            .any(|r| r.status == 200 && r.user.as_deref() == Some("fleet") && r.method == "POST"),
        "{requests:?}"
    );
    assert!(log_of(&log).contains("-> 401"), "{}", log_of(&log));

    let second = repo
        .commit("bump", &[Change::write("baseline/version", "2\n")])
        .unwrap();
    assert_eq!(client.fetch(&[], &[], "main"), second);
    run.finish();
}

#[test]
fn https_backend_with_bearer_token_and_test_ca() {
    let run = TestRun::new("https_backend_with_bearer_token_and_test_ca");
    let token = "sbgit_bearer_0123456789abcdef";
    run.register_secret("git-bearer-token", token);
    let mut repo = GitRepo::create_on_branch("fleet", "stable", FILES).unwrap();
    let server = GitHttpServer::start(
        &repo,
        GitHttpConfig::https().bearer(token),
        &run.log_path("git-https"),
    )
    .unwrap();
    let url = server.url(&repo);
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");
    let ca = server.ca_file().expect("https servers have a CA file");
    assert!(server
        .ca_pem()
        .unwrap()
        .starts_with("-----BEGIN CERTIFICATE-----"));
    let trust = format!("http.sslCAInfo={}", ca.display());
    let auth = |t: &str| format!("http.extraHeader=Authorization: Bearer {t}");

    let client = Client::new();
    // Not trusting the test CA: the TLS handshake fails.
    let out = client.clone(&url, &[auth(token)], &[]);
    assert!(!out.status.success(), "clone without the CA succeeded");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("certificate"), "{stderr}");
    // Trusting it but with a wrong token: 401.
    let out = client.clone(&url, &[trust.clone(), auth("wrong-token-value")], &[]);
    assert!(!out.status.success(), "clone with a wrong token succeeded");
    // Trusting it with the right token: the files, from the non-default branch.
    let config = [trust, auth(token)];
    assert_success("clone", &client.clone(&url, &config, &[]));
    client.assert_files(FILES);
    assert!(server
        .requests()
        .iter()
        .any(|r| r.user.as_deref() == Some("bearer")));

    let second = repo
        .commit("bump", &[Change::write("baseline/version", "2\n")])
        .unwrap();
    assert_eq!(client.fetch(&config, &[], "stable"), second);
    run.finish();
}

/// Enough refs that the clone's want list exceeds 1 KiB, which makes git gzip the
/// POST body: the CGI must get `HTTP_CONTENT_ENCODING` to inflate it.
#[test]
fn http_backend_handles_gzip_request_bodies() {
    let run = TestRun::new("http_backend_handles_gzip_request_bodies");
    let mut repo = GitRepo::create("fleet", FILES).unwrap();
    for i in 0..40 {
        let commit = repo
            .commit(
                &format!("c{i}"),
                &[Change::write(format!("n/{i}"), format!("{i}\n"))],
            )
            .unwrap();
        repo.set_branch(&format!("ring-{i:02}"), &commit).unwrap();
    }
    let server =
        GitHttpServer::start(&repo, GitHttpConfig::http(), &run.log_path("git-http")).unwrap();
    let client = Client::new();
    // Protocol v0 sends one want per ref in a single POST.
    let config = ["protocol.version=0".to_owned()];
    assert_success("clone", &client.clone(&server.url(&repo), &config, &[]));
    let requests = server.requests();
    assert!(
        requests
            .iter()
            .any(|r| r.content_encoding.as_deref() == Some("gzip") && r.status == 200),
        "no gzip'd request: {requests:?}"
    );
    let out = client
        .git()
        .args(["rev-parse", "origin/ring-39"])
        .current_dir(client.checkout())
        .output()
        .unwrap();
    assert_success("rev-parse ring-39", &out);
    run.finish();
}

#[test]
fn sshd_serves_upload_pack_to_the_deploy_key_with_a_pinned_host_key() {
    let run = TestRun::new("sshd_serves_upload_pack_to_the_deploy_key_with_a_pinned_host_key");
    let mut repo = GitRepo::create("fleet", FILES).unwrap();
    let server = SshGitServer::start(&repo, &run.log_path("sshd")).unwrap();
    let key = server.deploy_key();
    assert!(key
        .private_openssh
        .starts_with("-----BEGIN OPENSSH PRIVATE KEY-----"));
    assert!(key.public_openssh.starts_with("ssh-ed25519 "));
    assert!(server.host_fingerprint().starts_with("SHA256:"));
    assert!(server.host_public_key().starts_with("ssh-ed25519 "));
    assert!(!format!("{key:?}").contains(&key.private_openssh));
    run.register_pem("deploy-key", &key.private_openssh);

    let url = server.url(&repo);
    assert!(
        url.starts_with("ssh://") && url.ends_with("/repos/fleet.git"),
        "{url}"
    );
    let ssh = server.git_ssh_command();
    let env = [("GIT_SSH_COMMAND", ssh.as_str())];
    let client = Client::new();
    assert_success("clone", &client.clone(&url, &[], &env));
    client.assert_files(FILES);

    let second = repo
        .commit("bump", &[Change::write("baseline/version", "2\n")])
        .unwrap();
    assert_eq!(client.fetch(&[], &env, "main"), second);

    // The key may not push.
    let out = client
        .git()
        .args(["push", "--quiet", "origin", "HEAD:refs/heads/evil"])
        .current_dir(client.checkout())
        .envs(env)
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "push through the deploy key succeeded"
    );

    // A different pinned host key is refused before any git traffic.
    let other = tempfile::tempdir().unwrap();
    let wrong_hosts = other.path().join("known_hosts");
    let bogus = siteboot_e2e::git::ssh::generate_key(&other.path().join("k"), "other").unwrap();
    std::fs::write(
        &wrong_hosts,
        format!("[127.0.0.1]:{} {}\n", server.port(), bogus.public_openssh),
    )
    .unwrap();
    let wrong = ssh.replace(
        &server.known_hosts().display().to_string(),
        &wrong_hosts.display().to_string(),
    );
    let out = client.clone(&url, &[], &[("GIT_SSH_COMMAND", wrong.as_str())]);
    assert!(
        !out.status.success(),
        "clone with a wrong pinned host key succeeded"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("HOST IDENTIFICATION HAS CHANGED"),
        "{stderr}"
    );
    run.finish();
}

/// What the agent does: a depth-1 fetch of one pinned revision (not a branch tip) with
/// protocol v2, through every server.
#[test]
fn shallow_fetch_of_a_pinned_revision_works_on_every_server() {
    let run = TestRun::new("shallow_fetch_of_a_pinned_revision_works_on_every_server");
    let mut repo = GitRepo::create("fleet", FILES).unwrap();
    let pinned = repo.head().unwrap();
    repo.commit("newer", &[Change::write("baseline/version", "2\n")])
        .unwrap();
    let daemon = GitDaemon::start(&repo, &run.log_path("git-daemon")).unwrap();
    let http =
        GitHttpServer::start(&repo, GitHttpConfig::http(), &run.log_path("git-http")).unwrap();
    let ssh = SshGitServer::start(&repo, &run.log_path("sshd")).unwrap();
    run.register_pem("deploy-key", &ssh.deploy_key().private_openssh);
    let ssh_command = ssh.git_ssh_command();
    // (server, url, client environment)
    type Case<'a> = (&'a str, String, Vec<(&'a str, &'a str)>);
    let cases: Vec<Case> = vec![
        ("git daemon", daemon.url(&repo), vec![]),
        ("http-backend", http.url(&repo), vec![]),
        (
            "sshd",
            ssh.url(&repo),
            vec![("GIT_SSH_COMMAND", ssh_command.as_str())],
        ),
    ];
    for (server, url, env) in cases {
        let client = Client::new();
        let checkout = client.checkout();
        let out = client
            .git()
            .args(["init", "--quiet"])
            .arg(&checkout)
            .output()
            .unwrap();
        assert_success("init", &out);
        let out = client
            .git()
            .args([
                "-c",
                "protocol.version=2",
                "fetch",
                "--quiet",
                "--depth",
                "1",
                &url,
            ])
            .arg(pinned.as_str())
            .current_dir(&checkout)
            .envs(env.iter().copied())
            .output()
            .unwrap();
        assert_success(&format!("{server}: shallow fetch of {pinned}"), &out);
        let out = client
            .git()
            .args(["rev-parse", "FETCH_HEAD"])
            .current_dir(&checkout)
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            pinned.as_str(),
            "{server}"
        );
        let out = client
            .git()
            .args(["show", "FETCH_HEAD:clusters/store-0142/site.yaml"])
            .current_dir(&checkout)
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "site: store-0142\n",
            "{server}"
        );
        let shallow = std::fs::read_to_string(checkout.join(".git/shallow")).unwrap_or_default();
        assert_eq!(
            shallow.trim(),
            pinned.as_str(),
            "{server}: not a depth-1 fetch"
        );
    }
    assert!(
        http.requests()
            .iter()
            .any(|r| r.git_protocol.as_deref() == Some("version=2")),
        "{:?}",
        http.requests()
    );
    run.finish();
}

/// An outage and a recovery on the same URL, as the agent's offline journeys need.
#[test]
fn servers_come_back_on_the_same_port_after_an_outage() {
    let run = TestRun::new("servers_come_back_on_the_same_port_after_an_outage");
    let mut repo = GitRepo::create("fleet", FILES).unwrap();
    let http =
        GitHttpServer::start(&repo, GitHttpConfig::http(), &run.log_path("git-http")).unwrap();
    let mut daemon = GitDaemon::start(&repo, &run.log_path("git-daemon")).unwrap();
    let (http_url, daemon_url) = (http.url(&repo), daemon.url(&repo));
    let (http_port, daemon_port) = (http.port(), daemon.port());
    let http_client = Client::new();
    let daemon_client = Client::new();
    assert_success("http clone", &http_client.clone(&http_url, &[], &[]));
    assert_success("daemon clone", &daemon_client.clone(&daemon_url, &[], &[]));

    drop(http);
    daemon.process().kill().unwrap();
    let second = repo
        .commit("while offline", &[Change::write("baseline/version", "2\n")])
        .unwrap();
    for (name, client) in [("http", &http_client), ("daemon", &daemon_client)] {
        let out = client
            .git()
            .args(["fetch", "--quiet", "origin"])
            .current_dir(client.checkout())
            .output()
            .unwrap();
        assert!(
            !out.status.success(),
            "{name}: fetch during the outage succeeded"
        );
    }

    let http = GitHttpServer::start(
        &repo,
        GitHttpConfig::http().port(http_port),
        &run.log_path("git-http"),
    )
    .unwrap();
    let _daemon =
        GitDaemon::start_on_port(&repo, daemon_port, &run.log_path("git-daemon")).unwrap();
    assert_eq!(http.url(&repo), http_url);
    assert_eq!(http_client.fetch(&[], &[], "main"), second);
    assert_eq!(daemon_client.fetch(&[], &[], "main"), second);
    // A restarted server logs to a new file; both are kept for the dump.
    assert!(run
        .logs()
        .iter()
        .any(|(_, p)| p.ends_with("git-daemon-2.log")));
    run.finish();
}
