//! Real Git servers on loopback for the agent's fetch journeys.
//!
//! Nothing here is a mock: repositories are made with Debian's `git` (2.39), and served by
//! the same programs a fleet would use.
//!
//! - [`GitRepo`] ([`repo`]): a bare repository in a temp dir, `<tmp>/repos/<name>.git`,
//!   written through a separate work tree with `git --git-dir --work-tree` so the served
//!   repository is always the bare one and never needs a push. Commits use a fixed
//!   identity ([`AUTHOR_NAME`], [`AUTHOR_EMAIL`]) and a fixed, incrementing date, and every
//!   git command runs with an isolated environment ([`git_command`]: `HOME` in a temp
//!   dir, `GIT_CONFIG_NOSYSTEM=1`, `GIT_CONFIG_GLOBAL=/dev/null`, no prompts), so the
//!   developer's or CI's git config never leaks in. [`GitRepo::commit`] applies
//!   [`Change`]s (write, delete) and returns the new [`CommitId`]; branches can be created
//!   or moved for pinned-revision rings. `uploadpack.allowAnySHA1InWant` and
//!   `uploadpack.allowFilter` are on so clients can fetch one pinned revision shallowly.
//! - [`GitDaemon`] ([`daemon`]): `git-daemon --export-all --base-path=<tmp>/repos
//!   --reuseaddr --listen=127.0.0.1 --port=<port>`; URL `git://127.0.0.1:<port>/<name>.git`.
//!   Ready when a real `git-upload-pack` request over the port gets a pkt-line answer.
//!   It is started as `/usr/lib/git-core/git-daemon`, not `git daemon`: the `git`
//!   wrapper runs the daemon as its child, so killing the wrapper would leave the daemon
//!   serving. [`GitDaemon::start_on_port`] brings a server back on the same URL.
//! - [`GitHttpServer`] ([`http`]): an in-process hyper server (own thread, own tokio
//!   runtime, so it works from sync and async tests alike) that runs
//!   `git http-backend` as a CGI per request: request headers become the CGI variables
//!   (`GIT_PROJECT_ROOT`, `GIT_HTTP_EXPORT_ALL`, `PATH_INFO`, `QUERY_STRING`,
//!   `REQUEST_METHOD`, `CONTENT_TYPE`, `CONTENT_LENGTH`, `HTTP_CONTENT_ENCODING` so
//!   gzip'd request bodies are inflated by git itself, `HTTP_GIT_PROTOCOL` for protocol
//!   v2, `REMOTE_USER`, `REMOTE_ADDR`), the body streams into the CGI's stdin, and its
//!   stdout is parsed into CGI headers (`Status:` and the rest) and a streamed body.
//!   Plain HTTP or HTTPS (rustls 0.23, ring; certificate from a [`TestCa`] made with
//!   rcgen, whose PEM is returned for clients to trust), with optional basic or bearer
//!   authentication (401 + `WWW-Authenticate` when missing or wrong). Every request is
//!   recorded (method, path, status, user; never credentials).
//! - [`SshGitServer`] ([`ssh`]): a throwaway OpenSSH `sshd` on a loopback port with a
//!   fresh ed25519 host key and a fresh ed25519 deploy key (both made with `ssh-keygen`).
//!   The deploy key's private key (OpenSSH PEM) and public line, the host key's public
//!   line, SHA256 fingerprint and a ready `known_hosts` file are returned for pinning.
//!   A `ForceCommand` wrapper allows only `git-upload-pack '<repo under the base>'` and
//!   runs it through `git-shell`, so the key can read repositories and do nothing else.
//!   URL: `ssh://<user>@127.0.0.1:<port>/<absolute path of the bare repo>`.
//!
//! Every server is started on a port from [`crate::ports`], waits for readiness with a
//! deadline, writes its log to the file the caller names (use
//! [`TestRun::log_path`](crate::process::TestRun::log_path) so it is dumped on failure and
//! scanned for secrets), and is killed when dropped.

pub mod daemon;
pub mod http;
pub mod repo;
pub mod ssh;
pub mod tls;

pub use daemon::GitDaemon;
pub use http::{GitHttpConfig, GitHttpServer, HttpAuth, RequestRecord};
pub use repo::{Change, CommitId, GitRepo};
pub use ssh::{DeployKey, SshGitServer};
pub use tls::TestCa;

use std::path::{Path, PathBuf};
use std::process::Command;

/// Path of Debian's git.
pub const GIT: &str = "/usr/bin/git";
/// Author and committer name of every commit the harness makes.
pub const AUTHOR_NAME: &str = "siteboot e2e";
/// Author and committer e-mail of every commit the harness makes.
pub const AUTHOR_EMAIL: &str = "e2e@siteboot.invalid";

/// Why a repository or a Git server could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("create {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("run `{command}`: {source}")]
    Spawn {
        command: String,
        source: std::io::Error,
    },
    #[error("`{command}` failed ({status}): {stderr}")]
    Command {
        command: String,
        status: String,
        stderr: String,
    },
    #[error("invalid repository file path `{0}`: must be relative and stay inside the repository")]
    BadPath(String),
    #[error("reserve a port: {0}")]
    Port(#[from] crate::ports::PortError),
    #[error("start server: {0}")]
    Process(#[from] crate::process::ProcessError),
    #[error("make test certificates: {0}")]
    Tls(String),
    #[error("start http server: {0}")]
    Http(String),
}

pub(crate) fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> GitError + '_ {
    move |source| GitError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The environment every harness-run git process gets, with `home` as `HOME`.
pub fn isolated_env(home: &Path) -> Vec<(String, String)> {
    [
        ("HOME", home.display().to_string()),
        ("GIT_CONFIG_NOSYSTEM", "1".into()),
        ("GIT_CONFIG_GLOBAL", "/dev/null".into()),
        ("GIT_TERMINAL_PROMPT", "0".into()),
        ("GIT_ASKPASS", "/bin/false".into()),
        ("SSH_ASKPASS", "/bin/false".into()),
        ("LC_ALL", "C".into()),
        ("GIT_AUTHOR_NAME", AUTHOR_NAME.into()),
        ("GIT_AUTHOR_EMAIL", AUTHOR_EMAIL.into()),
        ("GIT_COMMITTER_NAME", AUTHOR_NAME.into()),
        ("GIT_COMMITTER_EMAIL", AUTHOR_EMAIL.into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// A `git` command that reads no user or system configuration: a clean environment
/// plus `PATH`, with `home` as `HOME`. Use it for clients in tests too.
pub fn git_command(home: &Path) -> Command {
    let mut cmd = Command::new(GIT);
    cmd.env_clear()
        .env(
            "PATH",
            std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into()),
        )
        .envs(isolated_env(home));
    cmd
}

/// Runs `cmd`, failing with its stderr when it does not succeed; returns stdout.
pub fn run(cmd: &mut Command) -> Result<String, GitError> {
    // Program and arguments only: the environment is not worth printing.
    let command = std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| a.to_string_lossy())
        .collect::<Vec<_>>()
        .join(" ");
    let out = cmd.output().map_err(|source| GitError::Spawn {
        command: command.clone(),
        source,
    })?;
    if !out.status.success() {
        return Err(GitError::Command {
            command,
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
