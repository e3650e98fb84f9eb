//! The agent's Git fetch against real servers: `file://`, `git daemon`, `git http-backend`
//! over HTTP and HTTPS (basic, bearer, custom CA) and OpenSSH `sshd` (deploy key, pinned
//! host key). Every test checks that only the assigned paths are materialised.

use std::collections::BTreeSet;
use std::path::Path;

use siteboot_agent::git::{self, FetchError, FetchOutcome};
use siteboot_e2e::git::{
    daemon::upload_pack_answers, Change, GitHttpConfig, GitHttpServer, GitRepo, SshGitServer,
};
use siteboot_e2e::process::{Process, Spec, TestRun, READY_TIMEOUT};
use siteboot_wire::assignment::{GitAuth, GitSource, RevisionPolicy};
use siteboot_wire::secret::SecretString;

const FILES: &[(&str, &str)] = &[
    ("baseline/ns.yaml", "kind: Namespace\n"),
    ("baseline/apps/deploy.yaml", "kind: Deployment\n"),
    ("regions/eu/cm.yaml", "kind: ConfigMap # eu\n"),
    ("regions/us/cm.yaml", "kind: ConfigMap # us\n"),
    ("clusters/s1/app.yaml", "kind: ConfigMap # s1 v1\n"),
    ("clusters/s2/app.yaml", "kind: ConfigMap # s2\n"),
    ("README.md", "fleet\n"),
];

fn paths() -> Vec<String> {
    vec![
        "baseline/".into(),
        "regions/eu/".into(),
        "clusters/s1/".into(),
    ]
}

fn fleet(name: &str) -> GitRepo {
    GitRepo::create(name, FILES).expect("create fleet repository")
}

fn branch(url: &str, auth: Option<GitAuth>) -> GitSource {
    GitSource {
        url: url.to_owned(),
        revision: RevisionPolicy::Branch {
            name: "main".into(),
        },
        auth_ref: None,
        auth,
    }
}

fn files_under(root: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read checkout") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let rel = path.strip_prefix(root).expect("under root");
                out.insert(rel.to_string_lossy().into_owned());
            }
        }
    }
    out
}

/// Exactly the files of the assigned paths, nothing else.
fn assert_only_assigned(out: &FetchOutcome) {
    let want: BTreeSet<String> = [
        "baseline/ns.yaml",
        "baseline/apps/deploy.yaml",
        "regions/eu/cm.yaml",
        "clusters/s1/app.yaml",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(
        files_under(&out.root),
        want,
        "checkout {}",
        out.root.display()
    );
    assert!(out.missing_paths.is_empty(), "{:?}", out.missing_paths);
}

fn read(out: &FetchOutcome, path: &str) -> String {
    std::fs::read_to_string(out.root.join(path)).expect("read materialised file")
}

fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// `git-daemon` started directly (not through the `git daemon` wrapper, whose forked
/// child would survive a kill), so stopping it really takes the server away.
fn git_daemon(run: &TestRun, repo: &GitRepo) -> (Process, String) {
    let port = siteboot_e2e::ports::must_free_port();
    let spec = Spec::new("/usr/lib/git-core/git-daemon")
        .arg("--reuseaddr")
        .arg("--listen=127.0.0.1")
        .arg(format!("--port={port}"))
        .arg(format!("--base-path={}", repo.base_path().display()))
        .arg("--export-all")
        .arg("--verbose")
        .arg("--log-destination=stderr");
    let mut process =
        Process::spawn("git-daemon", &spec, &run.log_path("git-daemon")).expect("spawn git-daemon");
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    process
        .wait_until("git-daemon answers", READY_TIMEOUT, || {
            upload_pack_answers(addr, &repo.url_path())
        })
        .expect("git-daemon ready");
    (
        process,
        format!("git://127.0.0.1:{port}{}", repo.url_path()),
    )
}

/// First sync, no-change poll (ref check only), then a new commit is fetched.
async fn journey(repo: &mut GitRepo, source: &GitSource, workdir: &Path) {
    let paths = paths();
    let first = git::fetch(source, &paths, workdir, None)
        .await
        .expect("first fetch");
    assert_eq!(first.commit, repo.head().expect("head").as_str());
    assert!(first.changed && first.pack_received);
    assert_only_assigned(&first);
    eprintln!("first sync: {:?}", first.wire);

    let poll = git::fetch(source, &paths, workdir, Some(&first.commit))
        .await
        .expect("poll");
    assert_eq!(poll.commit, first.commit);
    assert!(!poll.changed, "same commit is no change");
    assert!(
        !poll.pack_received,
        "a no-change poll must not download a pack"
    );
    assert_eq!(poll.root, first.root);
    assert!(poll.wire.received > 0, "the ref check talks to the server");
    assert!(
        poll.wire.received < first.wire.received,
        "{:?} vs {:?}",
        poll.wire,
        first.wire
    );
    eprintln!("no-change poll: {:?}", poll.wire);

    let next = repo
        .commit(
            "update s1, drop apps",
            &[
                Change::write("clusters/s1/app.yaml", "kind: ConfigMap # s1 v2\n"),
                Change::delete("baseline/apps/deploy.yaml"),
                Change::write("clusters/s2/app.yaml", "kind: ConfigMap # s2 v2\n"),
            ],
        )
        .expect("commit");
    let second = git::fetch(source, &paths, workdir, Some(&first.commit))
        .await
        .expect("second fetch");
    assert_eq!(second.commit, next.as_str());
    assert!(second.changed && second.pack_received);
    assert_eq!(
        read(&second, "clusters/s1/app.yaml"),
        "kind: ConfigMap # s1 v2\n"
    );
    assert!(!second.root.join("baseline/apps/deploy.yaml").exists());
    assert!(!second.root.join("clusters/s2").exists());
    assert!(
        first.root.is_dir(),
        "the previous checkout stays for last-known-good"
    );
    assert_eq!(
        git::existing_checkout(workdir, &first.commit, &paths),
        Some(first.root.clone())
    );
    // Pruned checkouts come back from the local object store, without network.
    std::fs::remove_dir_all(&first.root).expect("remove checkout");
    let back = git::existing_checkout(workdir, &first.commit, &paths).expect("re-materialised");
    assert_eq!(
        std::fs::read_to_string(back.join("clusters/s1/app.yaml")).expect("read"),
        "kind: ConfigMap # s1 v1\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_url_branch_journey() {
    let run = TestRun::new("git_fetch_file");
    let mut repo = fleet("fleet");
    // Without filter support the commit comes with its whole tree in one pack.
    let status = std::process::Command::new("git")
        .arg("--git-dir")
        .arg(repo.bare_path())
        .args(["config", "uploadpack.allowFilter", "false"])
        .status()
        .expect("git config");
    assert!(status.success());
    let work = tempfile::tempdir().expect("tempdir");
    let source = branch(&repo.file_url(), None);
    journey(&mut repo, &source, work.path()).await;

    // A layer the commit does not have is reported, not an error.
    let mut with_missing = paths();
    with_missing.push("regions/nowhere/".into());
    let out = git::fetch(&source, &with_missing, work.path(), None)
        .await
        .expect("fetch with a missing layer");
    assert_eq!(out.missing_paths, vec!["regions/nowhere".to_owned()]);

    let gone = branch("file:///nonexistent/fleet.git", None);
    let err = git::fetch(&gone, &paths(), work.path(), None)
        .await
        .expect_err("no repository");
    assert!(
        matches!(err, FetchError::RepositoryNotFound { .. }),
        "{err}"
    );
    assert!(!err.is_offline());
    let bad = git::fetch(&source, &["../etc".into()], work.path(), None)
        .await
        .expect_err("path escapes");
    assert!(matches!(bad, FetchError::Config(_)), "{bad}");
    run.finish();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn git_daemon_journey_pinned_commit_and_offline() {
    let run = TestRun::new("git_fetch_daemon");
    let mut repo = fleet("fleet");
    let pinned = repo.head().expect("head");
    let (daemon, url) = git_daemon(&run, &repo);
    let work = tempfile::tempdir().expect("tempdir");
    journey(&mut repo, &branch(&url, None), work.path()).await;

    // A ring pinned to the first commit stays there while the branch moved on.
    let source = GitSource {
        revision: RevisionPolicy::Commit {
            sha: pinned.as_str().to_owned(),
        },
        ..branch(&url, None)
    };
    let fresh = tempfile::tempdir().expect("tempdir");
    let out = git::fetch(&source, &paths(), fresh.path(), None)
        .await
        .expect("pinned fetch");
    assert_eq!(out.commit, pinned.as_str());
    assert_eq!(
        read(&out, "clusters/s1/app.yaml"),
        "kind: ConfigMap # s1 v1\n"
    );
    assert_only_assigned(&out);
    // Already in the object store: no network at all.
    let again = git::fetch(&source, &paths(), fresh.path(), Some(pinned.as_str()))
        .await
        .expect("again");
    assert!(!again.changed && again.wire.total() == 0);

    let missing = GitSource {
        revision: RevisionPolicy::Branch {
            name: "nope".into(),
        },
        ..branch(&url, None)
    };
    let err = git::fetch(&missing, &paths(), fresh.path(), None)
        .await
        .expect_err("no branch");
    assert!(matches!(err, FetchError::BranchNotFound { .. }), "{err}");
    assert!(!err.is_offline());

    drop(daemon);
    let err = git::fetch(&branch(&url, None), &paths(), work.path(), None)
        .await
        .expect_err("daemon gone");
    assert!(err.is_offline(), "stopped daemon is offline, got: {err}");
    run.finish();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_plain_and_https_with_basic_and_bearer() {
    let run = TestRun::new("git_fetch_http");
    run.register_secret("basic password", "s3cret-pass-123");
    run.register_secret("bearer token", "tok-abcdef-987654");
    let mut repo = fleet("fleet");

    let plain =
        GitHttpServer::start(&repo, GitHttpConfig::http(), &run.log_path("http")).expect("http");
    let work = tempfile::tempdir().expect("tempdir");
    let source = branch(&plain.url(&repo), None);
    journey(&mut repo, &source, work.path()).await;

    // Credentials never travel over plain http.
    let token = GitAuth::Token {
        token: SecretString::new("tok-abcdef-987654"),
        ca_pem: None,
    };
    let err = git::fetch(
        &branch(&plain.url(&repo), Some(token)),
        &paths(),
        work.path(),
        None,
    )
    .await
    .expect_err("token over http");
    assert!(matches!(err, FetchError::Config(_)), "{err}");

    let basic_cfg = GitHttpConfig::https().basic("bot", "s3cret-pass-123");
    let basic =
        GitHttpServer::start(&repo, basic_cfg, &run.log_path("https-basic")).expect("https");
    let ca = basic.ca_pem().expect("ca").to_owned();
    let auth = |password: &str| GitAuth::Basic {
        username: "bot".into(),
        password: SecretString::new(password),
        ca_pem: Some(ca.clone()),
    };
    let out = git::fetch(
        &branch(&basic.url(&repo), Some(auth("s3cret-pass-123"))),
        &paths(),
        work.path(),
        None,
    )
    .await
    .expect("https basic");
    assert_eq!(out.commit, repo.head().expect("head").as_str());
    let err = git::fetch(
        &branch(&basic.url(&repo), Some(auth("wrong-pass-000"))),
        &paths(),
        work.path(),
        None,
    )
    .await
    .expect_err("wrong password");
    assert!(matches!(err, FetchError::AuthRejected { .. }), "{err}");
    assert!(
        !err.is_offline() && !err.to_string().contains("wrong-pass-000"),
        "{err}"
    );
    // Without the custom CA the server is not trusted.
    let no_ca = GitAuth::Basic {
        username: "bot".into(),
        password: SecretString::new("s3cret-pass-123"),
        ca_pem: None,
    };
    let err = git::fetch(
        &branch(&basic.url(&repo), Some(no_ca)),
        &paths(),
        work.path(),
        None,
    )
    .await
    .expect_err("untrusted certificate");
    assert!(matches!(err, FetchError::Tls { .. }), "{err}");
    assert!(!err.is_offline());

    let bearer_cfg = GitHttpConfig::https().bearer("tok-abcdef-987654");
    let bearer =
        GitHttpServer::start(&repo, bearer_cfg, &run.log_path("https-bearer")).expect("https");
    let token = |t: &str| GitAuth::Token {
        token: SecretString::new(t),
        ca_pem: bearer.ca_pem().map(str::to_owned),
    };
    let fresh = tempfile::tempdir().expect("tempdir");
    let src = branch(&bearer.url(&repo), Some(token("tok-abcdef-987654")));
    let out = git::fetch(&src, &paths(), fresh.path(), None)
        .await
        .expect("https bearer");
    assert_only_assigned_after_update(&out);
    let poll = git::fetch(&src, &paths(), fresh.path(), Some(&out.commit))
        .await
        .expect("poll");
    assert!(!poll.changed && !poll.pack_received);
    eprintln!("https bearer no-change poll: {:?}", poll.wire);
    let err = git::fetch(
        &branch(&bearer.url(&repo), Some(token("tok-wrong"))),
        &paths(),
        fresh.path(),
        None,
    )
    .await
    .expect_err("wrong token");
    assert!(matches!(err, FetchError::AuthRejected { .. }), "{err}");

    let url = format!("https://127.0.0.1:{}/fleet.git", closed_port());
    let err = git::fetch(
        &branch(&url, Some(token("tok-abcdef-987654"))),
        &paths(),
        fresh.path(),
        None,
    )
    .await
    .expect_err("nobody listening");
    assert!(err.is_offline(), "{err}");
    run.finish();
}

/// The fleet after `journey`'s update commit.
fn assert_only_assigned_after_update(out: &FetchOutcome) {
    let want: BTreeSet<String> = [
        "baseline/ns.yaml",
        "regions/eu/cm.yaml",
        "clusters/s1/app.yaml",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(files_under(&out.root), want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssh_deploy_key_and_pinned_host_key() {
    let run = TestRun::new("git_fetch_ssh");
    let mut repo = fleet("fleet");
    let server = SshGitServer::start(&repo, &run.log_path("sshd")).expect("sshd");
    run.register_pem("deploy key", &server.deploy_key().private_openssh);
    let auth = |host_key: &str| GitAuth::Ssh {
        private_key: SecretString::new(server.deploy_key().private_openssh.clone()),
        known_host_key: host_key.to_owned(),
    };
    let url = server.url(&repo);
    let work = tempfile::tempdir().expect("tempdir");
    journey(
        &mut repo,
        &branch(&url, Some(auth(server.host_public_key()))),
        work.path(),
    )
    .await;

    // Another key pinned: refused before authenticating, naming the expected fingerprint.
    let other = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl";
    let err = git::fetch(
        &branch(&url, Some(auth(other))),
        &paths(),
        work.path(),
        None,
    )
    .await
    .expect_err("wrong host key");
    let FetchError::HostKeyMismatch {
        expected, offered, ..
    } = &err
    else {
        panic!("expected a host key mismatch, got: {err}");
    };
    assert_eq!(offered, server.host_fingerprint(), "{err}");
    assert_ne!(expected, offered);
    assert!(!err.is_offline());

    // A deploy key the server does not know.
    let stranger =
        siteboot_e2e::git::ssh::generate_key(&run.subdir("stranger").join("id"), "stranger")
            .expect("generate key");
    run.register_pem("stranger key", &stranger.private_openssh);
    let wrong_key = GitAuth::Ssh {
        private_key: SecretString::new(stranger.private_openssh.clone()),
        known_host_key: server.host_public_key().to_owned(),
    };
    let err = git::fetch(&branch(&url, Some(wrong_key)), &paths(), work.path(), None)
        .await
        .expect_err("unknown deploy key");
    assert!(matches!(err, FetchError::AuthRejected { .. }), "{err}");

    let closed = format!("ssh://git@127.0.0.1:{}/srv/fleet.git", closed_port());
    let err = git::fetch(
        &branch(&closed, Some(auth(server.host_public_key()))),
        &paths(),
        work.path(),
        None,
    )
    .await
    .expect_err("nobody listening");
    assert!(err.is_offline(), "{err}");
    run.finish();
}

/// Incompressible text, different per `seed`.
fn noise(seed: &str, len: usize) -> String {
    use sha2::{Digest, Sha256};
    let mut out = String::new();
    let mut block = Sha256::digest(seed.as_bytes());
    while out.len() < len {
        out.push_str(&hex::encode(block));
        out.push('\n');
        block = Sha256::digest(block);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_fleet_downloads_only_assigned_blobs() {
    let run = TestRun::new("git_fetch_large");
    let mut repo = fleet("fleet");
    let sites: Vec<(String, String)> = (0..300)
        .map(|i| {
            (
                format!("clusters/site-{i:03}/app.yaml"),
                noise(&format!("site {i}"), 2048),
            )
        })
        .collect();
    let changes: Vec<Change> = sites
        .iter()
        .map(|(p, c)| Change::write(p.as_str(), c))
        .collect();
    repo.commit("300 sites", &changes).expect("commit");
    let (_daemon, url) = git_daemon(&run, &repo);
    let work = tempfile::tempdir().expect("tempdir");
    let mut paths = paths();
    paths.push("clusters/site-007/".into());
    let out = git::fetch(&branch(&url, None), &paths, work.path(), None)
        .await
        .expect("fetch");
    assert_eq!(read(&out, "clusters/site-007/app.yaml"), sites[7].1);
    assert!(!out.root.join("clusters/site-008").exists());
    // The 300 site files hold ~600 KB that does not compress; only one is wanted.
    let content: usize = sites.iter().map(|(_, c)| c.len()).sum();
    assert!(
        (out.wire.received as usize) < content / 10,
        "received {} bytes for {} bytes of unassigned content",
        out.wire.received,
        content
    );
    eprintln!("large fleet first sync: {:?}", out.wire);

    // A change to another site's files costs its trees only, no blobs.
    let before = out.commit.clone();
    repo.commit(
        "touch site 100",
        &[Change::write(
            "clusters/site-100/app.yaml",
            noise("v2", 2048),
        )],
    )
    .expect("commit");
    let next = git::fetch(&branch(&url, None), &paths, work.path(), Some(&before))
        .await
        .expect("fetch");
    assert!(next.changed);
    assert!(next.wire.received < 4096, "{:?}", next.wire);
    eprintln!("large fleet unrelated change: {:?}", next.wire);
    run.finish();
}
