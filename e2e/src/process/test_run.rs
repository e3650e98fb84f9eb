//! [`TestRun`]: the per-test guard owning the artifacts directory, the captured logs and
//! the registered secrets; it prints the logs when the test fails and scans them for
//! secrets when it passes.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use nix::fcntl::{Flock, FlockArg};

use super::{read_lossy, Process, ProcessError, Spec};
use crate::secrets::{report, Leak, SecretSet};

/// The root of all per-test artifact directories.
pub fn artifacts_root() -> PathBuf {
    std::env::var_os("SITEBOOT_E2E_ARTIFACTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("artifacts"))
}

/// One e2e test's run: artifacts directory, logs and secrets.
///
/// Declare it first in the test so it drops last. On drop while panicking it prints
/// every log (secrets redacted); on a normal drop it runs the secret scan (like
/// [`TestRun::finish`]) and panics on a leak.
pub struct TestRun {
    name: String,
    dir: PathBuf,
    logs: Mutex<Vec<(String, PathBuf)>>,
    secrets: SecretSet,
    finished: bool,
    // Held so a concurrent run of the same test in another process picks another dir.
    _dir_lock: Option<Flock<File>>,
}

impl std::fmt::Debug for TestRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestRun")
            .field("name", &self.name)
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

impl TestRun {
    /// Starts a run named `name` in `<artifacts>/<name>/`, emptied first. When another
    /// process is running a test of the same name, `<artifacts>/<name>.<pid>/` is used.
    ///
    /// # Panics
    /// When the directory cannot be created: no test can run without it.
    pub fn new(name: &str) -> TestRun {
        let root = artifacts_root();
        let base = sanitize(name);
        std::fs::create_dir_all(&root)
            .unwrap_or_else(|e| panic!("create artifacts root {}: {e}", root.display()));
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(root.join(format!(".{base}.lock")))
            .ok()
            .and_then(|f| Flock::lock(f, FlockArg::LockExclusiveNonblock).ok());
        let dir = match &lock {
            Some(_) => root.join(&base),
            None => root.join(format!("{base}.{}", std::process::id())),
        };
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)
            .unwrap_or_else(|e| panic!("create artifacts dir {}: {e}", dir.display()));
        TestRun {
            name: name.to_owned(),
            dir,
            logs: Mutex::new(Vec::new()),
            secrets: SecretSet::new(),
            finished: false,
            _dir_lock: lock,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The run's artifacts directory (configs, keys, databases, logs).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A fresh subdirectory of the artifacts directory.
    pub fn subdir(&self, name: &str) -> PathBuf {
        let dir = self.dir.join(sanitize(name));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        dir
    }

    /// The secrets this run scans for.
    pub fn secrets(&self) -> &SecretSet {
        &self.secrets
    }

    /// Registers a plain secret value (see [`SecretSet::register`]).
    pub fn register_secret(&self, name: &str, value: impl AsRef<[u8]>) {
        self.secrets.register(name, value);
    }

    /// Registers a PEM/OpenSSH private key (see [`SecretSet::register_pem`]).
    pub fn register_pem(&self, name: &str, pem: &str) {
        self.secrets.register_pem(name, pem);
    }

    /// Returns a new, unique log path `<dir>/<name>.log` (then `<name>-2.log`, ...) and
    /// registers it for dumping and scanning. Give it to servers that log to a file.
    pub fn log_path(&self, name: &str) -> PathBuf {
        let mut logs = self.logs.lock().unwrap_or_else(|e| e.into_inner());
        let base = sanitize(name);
        let mut n = 1;
        let path = loop {
            let file = if n == 1 {
                format!("{base}.log")
            } else {
                format!("{base}-{n}.log")
            };
            let path = self.dir.join(file);
            if !logs.iter().any(|(_, p)| *p == path) && !path.exists() {
                break path;
            }
            n += 1;
        };
        logs.push((name.to_owned(), path.clone()));
        path
    }

    /// Registers an existing log file (written by something else) for dump and scan.
    pub fn add_log(&self, name: &str, path: &Path) {
        self.logs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((name.to_owned(), path.to_path_buf()));
    }

    /// Every registered log, in registration order.
    pub fn logs(&self) -> Vec<(String, PathBuf)> {
        self.logs.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Spawns `spec` as `name` with its output captured in this run's artifacts.
    pub fn spawn(&self, name: &str, spec: &Spec) -> Result<Process, ProcessError> {
        let log = self.log_path(name);
        Process::spawn(name, spec, &log)
    }

    /// Spawns the siteboot binary `bin` (built first if needed, see
    /// [`binaries`](super::binaries)) with `args` and `env` added to the inherited
    /// environment (plus `RUST_BACKTRACE=1` and `NO_COLOR=1` unless given), logging to
    /// `<dir>/<bin>.log` (`<bin>-2.log` for a restart).
    pub fn spawn_binary<I, S>(
        &self,
        bin: &str,
        args: I,
        env: &[(&str, &str)],
    ) -> Result<Process, ProcessError>
    where
        I: IntoIterator<Item = S>,
        S: Into<std::ffi::OsString>,
    {
        let path = super::binaries::binary(bin)?;
        let mut spec = Spec::new(path).args(args);
        for (k, v) in [("RUST_BACKTRACE", "1"), ("NO_COLOR", "1")] {
            if !env.iter().any(|(key, _)| key == &k) {
                spec = spec.env(k, v);
            }
        }
        for (k, v) in env {
            spec = spec.env(k, v);
        }
        self.spawn(bin, &spec)
    }

    /// Scans every log for every registered secret.
    pub fn scan(&self) -> Vec<Leak> {
        let logs = self.logs();
        self.secrets
            .scan_files(logs.iter().map(|(_, p)| p.as_path()))
    }

    /// Writes every log, secrets redacted, between headers.
    pub fn dump_logs_to(&self, out: &mut dyn Write) {
        dump_logs(&self.name, &self.logs(), &self.secrets, out);
    }

    /// Ends the run: scans the logs and panics, naming file, line and secret name, if
    /// any registered secret appears (the logs are then dumped, redacted, by `Drop`).
    /// Call it at the end of a passing test; dropping the run does the same.
    pub fn finish(mut self) {
        self.finished = true;
        let leaks = self.scan();
        if !leaks.is_empty() {
            panic!("test run `{}`: {}", self.name, report(&leaks));
        }
    }

    /// Prints the dump through `eprint!`, so libtest's output capture shows it with the
    /// failed test (and hides it for passing ones).
    fn print_dump(&self) {
        let mut buf = Vec::new();
        self.dump_logs_to(&mut buf);
        eprint!("{}", String::from_utf8_lossy(&buf));
    }
}

impl Drop for TestRun {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.print_dump();
        } else if !self.finished {
            self.finished = true;
            let leaks = self.scan();
            if !leaks.is_empty() {
                self.print_dump();
                panic!("test run `{}`: {}", self.name, report(&leaks));
            }
        }
    }
}

/// Writes each log as `===== <test>: <name> (<path>) =====` + redacted content +
/// `===== end <name> =====`.
pub fn dump_logs(test: &str, logs: &[(String, PathBuf)], secrets: &SecretSet, out: &mut dyn Write) {
    for (name, path) in logs {
        let text = secrets.redact(&read_lossy(path));
        let _ = writeln!(out, "===== {test}: {name} ({}) =====", path.display());
        let _ = out.write_all(text.as_bytes());
        if !text.is_empty() && !text.ends_with('\n') {
            let _ = writeln!(out);
        }
        let _ = writeln!(out, "===== end {name} =====");
    }
    let _ = out.flush();
}
