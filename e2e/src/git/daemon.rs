//! [`GitDaemon`]: `git daemon` serving a repository over `git://` on loopback.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

use super::{isolated_env, GitError, GitRepo};
use crate::ports;
use crate::process::{Process, Spec, READY_TIMEOUT};

/// Debian's git-daemon. Run directly, not as `git daemon`: the `git` wrapper would run it
/// as a child, and killing the wrapper would orphan a daemon that keeps serving.
pub const GIT_DAEMON: &str = "/usr/lib/git-core/git-daemon";

/// A running `git daemon`; killed on drop.
#[derive(Debug)]
pub struct GitDaemon {
    process: Process,
    port: u16,
}

/// Sends a real `git-upload-pack` request for `path` and reports whether the daemon
/// answered with a pkt-line (four hex digits), i.e. it is up and exports the repository.
pub fn upload_pack_answers(addr: SocketAddr, path: &str) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(2)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let body = format!("git-upload-pack {path}\0host=127.0.0.1\0");
    let line = format!("{:04x}{body}", body.len() + 4);
    if s.write_all(line.as_bytes()).is_err() {
        return false;
    }
    let mut head = [0u8; 4];
    let answered = s.read_exact(&mut head).is_ok()
        && head.iter().all(u8::is_ascii_hexdigit)
        && head != *b"0000";
    // End the exchange politely (a flush packet) so the daemon logs no error.
    let _ = s.write_all(b"0000");
    answered
}

impl GitDaemon {
    /// Serves the base path of `repo` (and so every repository in it), logging to `log`.
    pub fn start(repo: &GitRepo, log: &Path) -> Result<GitDaemon, GitError> {
        Self::start_on_port(repo, ports::free_port()?, log)
    }

    /// Like [`GitDaemon::start`] on a given port: to bring a server back on the same
    /// URL after an outage (`--reuseaddr` lets it rebind at once).
    pub fn start_on_port(repo: &GitRepo, port: u16, log: &Path) -> Result<GitDaemon, GitError> {
        let base = repo.base_path();
        let home = base.parent().unwrap_or(&base).join("home");
        let mut spec = Spec::new(GIT_DAEMON)
            .clear_env()
            .arg("--reuseaddr")
            .arg("--listen=127.0.0.1")
            .arg(format!("--port={port}"))
            .arg(format!("--base-path={}", base.display()))
            .arg("--export-all")
            .arg("--verbose")
            .arg("--informative-errors")
            .arg("--log-destination=stderr")
            .cwd(&base);
        for (k, v) in isolated_env(&home) {
            spec = spec.env(k, v);
        }
        let mut process = Process::spawn("git-daemon", &spec, log)?;
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let path = repo.url_path();
        process.wait_until(
            &format!("git daemon on {addr} serving {path}"),
            READY_TIMEOUT,
            || upload_pack_answers(addr, &path),
        )?;
        Ok(GitDaemon { process, port })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `git://127.0.0.1:<port>/<name>.git`
    pub fn url(&self, repo: &GitRepo) -> String {
        format!("git://127.0.0.1:{}{}", self.port, repo.url_path())
    }

    /// The daemon process (to stop it in an outage test, or read its log).
    pub fn process(&mut self) -> &mut Process {
        &mut self.process
    }
}
