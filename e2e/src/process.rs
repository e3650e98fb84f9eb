//! The process runner: build once, spawn the real binaries, capture their logs, wait for
//! readiness with deadlines, shut them down cleanly, and show the logs when a test fails.
//!
//! # Pieces
//!
//! - [`binaries`]: finds `siteboot-registration`, `siteboot-provider`, `siteboot-agent` and
//!   `sitebootctl` in the workspace target directory (derived from the running test
//!   binary, `target/<profile>/deps/..`, or `CARGO_TARGET_DIR`). When one is missing, or
//!   older than the sources of the crates it is built from, it runs
//!   `cargo build -p siteboot-registration -p siteboot-provider -p siteboot-agent --bins`
//!   once per test process (a `OnceLock`) under a file lock shared by all test processes,
//!   and fails with cargo's output when that build fails.
//!   `SITEBOOT_E2E_NO_BUILD=1` disables the build (CI that builds first).
//! - [`Process`]: one child process. stdout and stderr go to one log file (both handles
//!   share the file offset, so lines interleave in order). It offers
//!   [`Process::wait_for_log_line`], [`Process::wait_for_http`],
//!   [`Process::wait_for_tcp`] and [`Process::wait_exit`], each polling until the
//!   condition holds, the deadline passes, or the process exits early (the error then
//!   carries the exit status and the log tail, so a crash is reported as a crash, not as
//!   a timeout). Each wait has an `_async` twin that sleeps with tokio instead of
//!   blocking the thread, for `#[tokio::test]`s that also run in-process servers (the
//!   Kubernetes emulator) on the same runtime.
//!   [`Process::terminate`] sends SIGTERM, waits for a grace period, then SIGKILLs;
//!   [`Process::kill`] SIGKILLs at once (crash tests). Dropping a `Process` SIGKILLs it
//!   and reaps it, so no test leaves a server behind when it panics.
//! - [`TestRun`]: the per-test guard. It owns the artifacts directory
//!   `e2e/artifacts/<test-name>/` (gitignored; `SITEBOOT_E2E_ARTIFACTS` moves the root),
//!   names log files, spawns processes into it ([`TestRun::spawn`] for any program,
//!   [`TestRun::spawn_binary`] for a siteboot binary), and holds the test's
//!   [`SecretSet`](crate::secrets::SecretSet). When the test panics, its `Drop` prints
//!   every captured log to stderr between headers, with every registered secret
//!   redacted. When the test ends normally ([`TestRun::finish`] or `Drop`), every log is
//!   scanned for registered secrets and any hit fails the test with the log file, line
//!   and secret *name*.
//!
//! Declare the `TestRun` first in a test so it is dropped last: processes are killed
//! (flushing nothing further into their logs) before the logs are dumped or scanned.
//!
//! [`Process::signal`] sends any signal: `SIGSTOP`/`SIGCONT` make a server hang and
//! recover without losing its port or state (a slow or wedged dependency).
//!
//! Children are not put in their own process group: a Ctrl-C on `cargo test` reaches them
//! too. Only the main pid is signalled; servers that fork per connection (`git daemon`,
//! `sshd`) leave short-lived children that exit with their connection.

pub mod binaries;
mod http_probe;
mod test_run;

pub use test_run::{dump_logs, TestRun};

use std::ffi::OsString;
use std::fs::File;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill as send_signal, Signal};
use nix::unistd::Pid;

/// Default deadline for readiness waits: generous for a loaded 2-core machine.
pub const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// Default grace period between SIGTERM and SIGKILL.
pub const TERMINATE_GRACE: Duration = Duration::from_secs(20);
/// How often waits re-check their condition.
const POLL: Duration = Duration::from_millis(50);
/// How much of the log a failed wait quotes.
const TAIL_LINES: usize = 40;

/// Why a process could not be started, did not become ready, or did not stop.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("create log file {path}: {source}")]
    LogFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("spawn {name} ({program}): {source}")]
    Spawn {
        name: String,
        program: String,
        source: std::io::Error,
    },
    #[error("{name}: {what} not reached within {timeout:?}; log {log}:\n{tail}")]
    Timeout {
        name: String,
        what: String,
        timeout: Duration,
        log: PathBuf,
        tail: String,
    },
    #[error("{name} exited ({status}) while waiting for {what}; log {log}:\n{tail}")]
    ExitedEarly {
        name: String,
        what: String,
        status: ExitStatus,
        log: PathBuf,
        tail: String,
    },
    #[error("signal {name} (pid {pid}): {source}")]
    Signal {
        name: String,
        pid: u32,
        source: nix::Error,
    },
    #[error("wait for {name}: {source}")]
    Wait {
        name: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Binary(#[from] binaries::BinaryError),
}

/// What to run: program, arguments, environment and working directory.
#[derive(Debug, Clone)]
pub struct Spec {
    pub program: PathBuf,
    pub args: Vec<OsString>,
    /// Added to (or, with `clear_env`, replacing) the inherited environment.
    pub env: Vec<(OsString, OsString)>,
    /// Start from an empty environment (only `env` and `PATH` are set).
    pub clear_env: bool,
    pub cwd: Option<PathBuf>,
}

impl Spec {
    pub fn new(program: impl Into<PathBuf>) -> Self {
        Self {
            program: program.into(),
            args: Vec::new(),
            env: Vec::new(),
            clear_env: false,
            cwd: None,
        }
    }

    pub fn arg(mut self, arg: impl Into<OsString>) -> Self {
        self.args.push(arg.into());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    pub fn clear_env(mut self) -> Self {
        self.clear_env = true;
        self
    }

    pub fn cwd(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cwd = Some(dir.into());
        self
    }
}

/// The result of one readiness probe.
enum Probe<T> {
    Ready(T),
    NotYet,
}

/// A running child process whose stdout and stderr go to a log file.
#[derive(Debug)]
pub struct Process {
    name: String,
    child: Child,
    log: PathBuf,
    status: Option<ExitStatus>,
}

impl Process {
    /// Starts `spec` with stdout and stderr appended to `log` (created or truncated).
    pub fn spawn(name: &str, spec: &Spec, log: &Path) -> Result<Process, ProcessError> {
        let log_err = |source| ProcessError::LogFile {
            path: log.to_path_buf(),
            source,
        };
        if let Some(dir) = log.parent() {
            std::fs::create_dir_all(dir).map_err(log_err)?;
        }
        let out = File::create(log).map_err(log_err)?;
        let err = out.try_clone().map_err(log_err)?;
        let mut cmd = Command::new(&spec.program);
        cmd.args(&spec.args)
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err));
        if spec.clear_env {
            cmd.env_clear();
            cmd.env(
                "PATH",
                std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into()),
            );
        }
        cmd.envs(spec.env.iter().map(|(k, v)| (k, v)));
        if let Some(cwd) = &spec.cwd {
            cmd.current_dir(cwd);
        }
        let child = cmd.spawn().map_err(|source| ProcessError::Spawn {
            name: name.to_owned(),
            program: spec.program.display().to_string(),
            source,
        })?;
        Ok(Process {
            name: name.to_owned(),
            child,
            log: log.to_path_buf(),
            status: None,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// The whole log so far (lossy UTF-8).
    pub fn log(&self) -> String {
        read_lossy(&self.log)
    }

    /// The exit status if the process has exited (reaping it), without blocking.
    pub fn try_exit(&mut self) -> Result<Option<ExitStatus>, ProcessError> {
        if self.status.is_none() {
            self.status = self.child.try_wait().map_err(|source| ProcessError::Wait {
                name: self.name.clone(),
                source,
            })?;
        }
        Ok(self.status)
    }

    fn tail(&self) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(TAIL_LINES)..].join("\n")
    }

    fn timeout_error(&self, what: &str, timeout: Duration) -> ProcessError {
        ProcessError::Timeout {
            name: self.name.clone(),
            what: what.to_owned(),
            timeout,
            log: self.log.clone(),
            tail: self.tail(),
        }
    }

    /// Fails when the process has exited: readiness can no longer come.
    fn check_alive(&mut self, what: &str) -> Result<(), ProcessError> {
        match self.try_exit()? {
            None => Ok(()),
            Some(status) => Err(ProcessError::ExitedEarly {
                name: self.name.clone(),
                what: what.to_owned(),
                status,
                log: self.log.clone(),
                tail: self.tail(),
            }),
        }
    }

    fn wait_sync<T>(
        &mut self,
        what: &str,
        timeout: Duration,
        mut probe: impl FnMut(&mut Self) -> Result<Probe<T>, ProcessError>,
    ) -> Result<T, ProcessError> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Probe::Ready(v) = probe(self)? {
                return Ok(v);
            }
            if Instant::now() >= deadline {
                return Err(self.timeout_error(what, timeout));
            }
            std::thread::sleep(POLL);
        }
    }

    async fn wait_async<T>(
        &mut self,
        what: &str,
        timeout: Duration,
        mut probe: impl FnMut(&mut Self) -> Result<Probe<T>, ProcessError>,
    ) -> Result<T, ProcessError> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Probe::Ready(v) = probe(self)? {
                return Ok(v);
            }
            if Instant::now() >= deadline {
                return Err(self.timeout_error(what, timeout));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    fn probe_line(&mut self, needle: &str) -> Result<Probe<String>, ProcessError> {
        // Read the log before checking liveness: a process that printed the line and
        // then exited still counts as having printed it.
        let found = self
            .log()
            .lines()
            .find(|l| l.contains(needle))
            .map(str::to_owned);
        match found {
            Some(line) => Ok(Probe::Ready(line)),
            None => self
                .check_alive(&format!("log line containing {needle:?}"))
                .map(|()| Probe::NotYet),
        }
    }

    fn probe_lines(
        &mut self,
        what: &str,
        pred: &mut dyn FnMut(&str) -> bool,
    ) -> Result<Probe<String>, ProcessError> {
        let found = self.log().lines().find(|l| pred(l)).map(str::to_owned);
        match found {
            Some(line) => Ok(Probe::Ready(line)),
            None => self.check_alive(what).map(|()| Probe::NotYet),
        }
    }

    /// Waits until a log line contains `needle`; returns that line.
    pub fn wait_for_log_line(
        &mut self,
        needle: &str,
        timeout: Duration,
    ) -> Result<String, ProcessError> {
        let what = format!("log line containing {needle:?}");
        self.wait_sync(&what, timeout, |p| p.probe_line(needle))
    }

    /// Async twin of [`Process::wait_for_log_line`].
    pub async fn wait_for_log_line_async(
        &mut self,
        needle: &str,
        timeout: Duration,
    ) -> Result<String, ProcessError> {
        let what = format!("log line containing {needle:?}");
        self.wait_async(&what, timeout, |p| p.probe_line(needle))
            .await
    }

    /// Waits until a log line satisfies `pred` (`what` describes it in errors).
    pub fn wait_for_log_match(
        &mut self,
        what: &str,
        mut pred: impl FnMut(&str) -> bool,
        timeout: Duration,
    ) -> Result<String, ProcessError> {
        self.wait_sync(what, timeout, |p| p.probe_lines(what, &mut pred))
    }

    /// Waits until `cond` holds (`what` describes it in errors), failing early if the
    /// process exits.
    pub fn wait_until(
        &mut self,
        what: &str,
        timeout: Duration,
        mut cond: impl FnMut() -> bool,
    ) -> Result<(), ProcessError> {
        self.wait_sync(what, timeout, |p| {
            if cond() {
                return Ok(Probe::Ready(()));
            }
            p.check_alive(what).map(|()| Probe::NotYet)
        })
    }

    /// Waits until a TCP connection to `addr` succeeds.
    pub fn wait_for_tcp(
        &mut self,
        addr: SocketAddr,
        timeout: Duration,
    ) -> Result<(), ProcessError> {
        let what = format!("tcp {addr} accepting");
        self.wait_sync(&what, timeout, |p| {
            if TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_ok() {
                return Ok(Probe::Ready(()));
            }
            p.check_alive(&what).map(|()| Probe::NotYet)
        })
    }

    /// Waits until `GET url` (http or https) answers with a 2xx status; returns it.
    /// HTTPS readiness does not verify the server certificate: it proves the server
    /// answers, not whom to trust (tests check trust with their own clients).
    pub fn wait_for_http(&mut self, url: &str, timeout: Duration) -> Result<u16, ProcessError> {
        let what = format!("GET {url} answering 2xx");
        self.wait_sync(&what, timeout, |p| match http_probe::get_status(url) {
            Ok(status) if (200..300).contains(&status) => Ok(Probe::Ready(status)),
            _ => p.check_alive(&what).map(|()| Probe::NotYet),
        })
    }

    /// Async twin of [`Process::wait_for_http`]; the probe runs on a blocking thread.
    pub async fn wait_for_http_async(
        &mut self,
        url: &str,
        timeout: Duration,
    ) -> Result<u16, ProcessError> {
        let what = format!("GET {url} answering 2xx");
        let deadline = Instant::now() + timeout;
        loop {
            let u = url.to_owned();
            let got = tokio::task::spawn_blocking(move || http_probe::get_status(&u)).await;
            if let Ok(Ok(status)) = got {
                if (200..300).contains(&status) {
                    return Ok(status);
                }
            }
            self.check_alive(&what)?;
            if Instant::now() >= deadline {
                return Err(self.timeout_error(&what, timeout));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits for the process to exit on its own and returns its status.
    pub fn wait_exit(&mut self, timeout: Duration) -> Result<ExitStatus, ProcessError> {
        self.wait_sync("exit", timeout, |p| {
            Ok(p.try_exit()?.map_or(Probe::NotYet, Probe::Ready))
        })
    }

    /// Async twin of [`Process::wait_exit`].
    pub async fn wait_exit_async(&mut self, timeout: Duration) -> Result<ExitStatus, ProcessError> {
        self.wait_async("exit", timeout, |p| {
            Ok(p.try_exit()?.map_or(Probe::NotYet, Probe::Ready))
        })
        .await
    }

    /// Sends `signal` to the process unless it has already been reaped.
    pub fn signal(&mut self, signal: Signal) -> Result<(), ProcessError> {
        if self.try_exit()?.is_some() {
            return Ok(());
        }
        let pid = self.child.id();
        let raw = i32::try_from(pid).unwrap_or(i32::MAX);
        match send_signal(Pid::from_raw(raw), signal) {
            // Exited between try_exit and kill: nothing left to signal.
            Ok(()) | Err(nix::errno::Errno::ESRCH) => Ok(()),
            Err(source) => Err(ProcessError::Signal {
                name: self.name.clone(),
                pid,
                source,
            }),
        }
    }

    /// SIGKILLs the process (a crash) and reaps it.
    pub fn kill(&mut self) -> Result<ExitStatus, ProcessError> {
        self.signal(Signal::SIGKILL)?;
        self.wait_exit(READY_TIMEOUT)
    }

    /// SIGTERM, wait up to `grace` for a clean exit, then SIGKILL. Returns the status the
    /// process exited with (a signal status if it had to be killed).
    pub fn terminate(&mut self, grace: Duration) -> Result<ExitStatus, ProcessError> {
        self.signal(Signal::SIGTERM)?;
        match self.wait_exit(grace) {
            Ok(status) => Ok(status),
            Err(ProcessError::Timeout { .. }) => self.kill(),
            Err(e) => Err(e),
        }
    }

    /// Async twin of [`Process::terminate`].
    pub async fn terminate_async(&mut self, grace: Duration) -> Result<ExitStatus, ProcessError> {
        self.signal(Signal::SIGTERM)?;
        match self.wait_exit_async(grace).await {
            Ok(status) => Ok(status),
            Err(ProcessError::Timeout { .. }) => {
                self.signal(Signal::SIGKILL)?;
                self.wait_exit_async(READY_TIMEOUT).await
            }
            Err(e) => Err(e),
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if matches!(self.try_exit(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Reads a file as lossy UTF-8; a missing file reads as empty.
pub(crate) fn read_lossy(path: &Path) -> String {
    std::fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}
