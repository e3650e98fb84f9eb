//! Locating (and, when needed, building once) the real siteboot binaries.
//!
//! The binaries live next to the test binary's directory: cargo puts integration-test
//! executables in `<target>/<profile>/deps/` and bin targets in `<target>/<profile>/`, so
//! the directory is derived from `std::env::current_exe()`. When the test does not run
//! from a `deps/` directory, `CARGO_TARGET_DIR` (relative paths are taken from the
//! workspace root) or `<workspace>/target`, with the `debug` profile, is used.
//! `SITEBOOT_E2E_BIN_DIR` overrides all of this.
//!
//! `cargo test -p siteboot-e2e` does not build other packages' binaries, so before the
//! first use in a test process the binaries are checked: missing, or older than the
//! newest source file of the crates they are built from (`registration/`, `provider/`,
//! `agent/`, `wire/`, `templates/`, `Cargo.lock`), they are built with
//! `cargo build -p siteboot-registration -p siteboot-provider -p siteboot-agent --bins`.
//! A `OnceLock` makes that once per process; an exclusive `flock` on
//! `<target>/siteboot-e2e-build.lock` makes concurrent test processes wait for one build
//! instead of racing (the check is repeated under the lock). A failed build is an error
//! carrying the tail of cargo's output (the full output is in
//! `<target>/siteboot-e2e-build.log`). `SITEBOOT_E2E_NO_BUILD=1` never builds and only
//! reports missing binaries.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::SystemTime;

use nix::fcntl::{Flock, FlockArg};

/// Every binary the e2e suite runs, with the package that builds it.
pub const BINARIES: &[(&str, &str)] = &[
    ("siteboot-registration", "siteboot-registration"),
    ("sitebootctl", "siteboot-registration"),
    ("siteboot-provider", "siteboot-provider"),
    ("siteboot-agent", "siteboot-agent"),
];

/// Workspace folders whose files the binaries are built from.
const SOURCE_DIRS: &[&str] = &["registration", "provider", "agent", "wire", "templates"];

/// Why a binary is not available.
#[derive(Debug, Clone, thiserror::Error)]
pub enum BinaryError {
    #[error("unknown siteboot binary `{0}`")]
    Unknown(String),
    #[error("binary {0} is missing and SITEBOOT_E2E_NO_BUILD is set; run `cargo build --workspace --bins`")]
    Missing(PathBuf),
    #[error("`{command}` failed ({status}); full output in {log}:\n{tail}")]
    BuildFailed {
        command: String,
        status: String,
        log: PathBuf,
        tail: String,
    },
    #[error("run cargo to build the siteboot binaries: {0}")]
    Cargo(String),
}

/// The workspace root (the parent of the e2e crate).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the e2e crate lives inside the workspace")
        .to_path_buf()
}

/// The profile output directory (`<target>/<profile>`) for a test executable at `exe`,
/// or, when `exe` is not in a `deps/` directory, from `cargo_target_dir` or
/// `<workspace>/target` with the `debug` profile. Pure: every input is an argument.
pub fn bin_dir_for(exe: &Path, cargo_target_dir: Option<&Path>, workspace: &Path) -> PathBuf {
    if let Some(deps) = exe.parent() {
        if deps.file_name().is_some_and(|n| n == "deps") {
            if let Some(profile) = deps.parent() {
                return profile.to_path_buf();
            }
        }
    }
    let target = match cargo_target_dir {
        Some(dir) if dir.is_absolute() => dir.to_path_buf(),
        Some(dir) => workspace.join(dir),
        None => workspace.join("target"),
    };
    target.join("debug")
}

/// The cargo arguments that select the profile whose output directory is `bin_dir`.
pub fn profile_args(bin_dir: &Path) -> Vec<String> {
    match bin_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") | None => Vec::new(),
        Some("release") => vec!["--release".into()],
        Some(other) => vec!["--profile".into(), other.into()],
    }
}

/// The directory holding the binaries for this test process.
pub fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("SITEBOOT_E2E_BIN_DIR") {
        return PathBuf::from(dir);
    }
    let exe = std::env::current_exe().unwrap_or_default();
    let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from);
    bin_dir_for(&exe, target.as_deref(), &workspace_root())
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// The newest modification time of any file under `dir` (skipping `target/` and dot dirs).
fn newest_under(dir: &Path) -> Option<SystemTime> {
    let mut newest = modified(dir);
    let Ok(entries) = std::fs::read_dir(dir) else {
        return newest;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') || name == "target" {
            continue;
        }
        let t = if path.is_dir() {
            newest_under(&path)
        } else {
            modified(&path)
        };
        newest = newest.max(t);
    }
    newest
}

/// Names of binaries that are missing or older than the sources.
fn stale(dir: &Path) -> Vec<&'static str> {
    let root = workspace_root();
    let sources = SOURCE_DIRS
        .iter()
        .map(|d| newest_under(&root.join(d)))
        .chain([modified(&root.join("Cargo.lock"))])
        .max()
        .flatten();
    BINARIES
        .iter()
        .map(|(bin, _)| *bin)
        .filter(|bin| match modified(&dir.join(bin)) {
            None => true,
            Some(built) => sources.is_some_and(|src| src > built),
        })
        .collect()
}

fn build(dir: &Path) -> Result<(), BinaryError> {
    let target = dir.parent().unwrap_or(dir);
    std::fs::create_dir_all(target).map_err(|e| BinaryError::Cargo(e.to_string()))?;
    let lock_file = File::create(target.join("siteboot-e2e-build.lock"))
        .map_err(|e| BinaryError::Cargo(format!("create build lock: {e}")))?;
    let _lock = Flock::lock(lock_file, FlockArg::LockExclusive)
        .map_err(|(_, e)| BinaryError::Cargo(format!("take build lock: {e}")))?;
    if stale(dir).is_empty() {
        return Ok(()); // another test process built them while we waited
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut args: Vec<String> = vec!["build".into()];
    let mut packages: Vec<&str> = BINARIES.iter().map(|(_, p)| *p).collect();
    packages.dedup();
    for p in packages {
        args.extend(["-p".into(), p.into()]);
    }
    args.push("--bins".into());
    args.extend(profile_args(dir));
    let command = format!("cargo {}", args.join(" "));
    let log = target.join("siteboot-e2e-build.log");
    let out = File::create(&log).map_err(|e| BinaryError::Cargo(e.to_string()))?;
    let err = out
        .try_clone()
        .map_err(|e| BinaryError::Cargo(e.to_string()))?;
    let mut cmd = Command::new(cargo);
    cmd.args(&args)
        .current_dir(workspace_root())
        .stdout(out)
        .stderr(err);
    if let Some(t) = std::env::var_os("CARGO_TARGET_DIR") {
        cmd.env("CARGO_TARGET_DIR", t);
    }
    let status = cmd
        .status()
        .map_err(|e| BinaryError::Cargo(e.to_string()))?;
    if status.success() {
        return Ok(());
    }
    let text = super::read_lossy(&log);
    let lines: Vec<&str> = text.lines().collect();
    Err(BinaryError::BuildFailed {
        command,
        status: status.to_string(),
        log,
        tail: lines[lines.len().saturating_sub(40)..].join("\n"),
    })
}

/// Makes sure every siteboot binary is built and current (once per process) and returns
/// the directory holding them.
pub fn ensure_built() -> Result<PathBuf, BinaryError> {
    static BUILT: OnceLock<Result<PathBuf, BinaryError>> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let dir = bin_dir();
            let missing = stale(&dir);
            if missing.is_empty() {
                return Ok(dir);
            }
            if std::env::var_os("SITEBOOT_E2E_NO_BUILD").is_some() {
                return match BINARIES.iter().find(|(b, _)| !dir.join(b).exists()) {
                    Some((b, _)) => Err(BinaryError::Missing(dir.join(b))),
                    None => Ok(dir),
                };
            }
            build(&dir).map(|()| dir)
        })
        .clone()
}

/// The path of one siteboot binary (`siteboot-agent`, ...), built if needed.
pub fn binary(name: &str) -> Result<PathBuf, BinaryError> {
    if !BINARIES.iter().any(|(b, _)| *b == name) {
        return Err(BinaryError::Unknown(name.to_owned()));
    }
    Ok(ensure_built()?.join(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bin_dir_table() {
        let ws = Path::new("/ws");
        let cases: &[(&str, Option<&str>, &str)] = &[
            (
                "/ws/target/debug/deps/journeys-1234",
                None,
                "/ws/target/debug",
            ),
            (
                "/t/release/deps/journeys-1234",
                Some("/other"),
                "/t/release",
            ),
            ("/usr/local/bin/runner", None, "/ws/target/debug"),
            ("/usr/local/bin/runner", Some("/ct"), "/ct/debug"),
            ("/usr/local/bin/runner", Some("rel"), "/ws/rel/debug"),
        ];
        for (exe, target, want) in cases {
            let got = bin_dir_for(Path::new(exe), target.map(Path::new), ws);
            assert_eq!(got, PathBuf::from(want), "{exe} {target:?}");
        }
    }

    #[test]
    fn profile_args_table() {
        let cases: &[(&str, &[&str])] = &[
            ("/t/debug", &[]),
            ("/t/release", &["--release"]),
            ("/t/ci", &["--profile", "ci"]),
        ];
        for (dir, want) in cases {
            assert_eq!(profile_args(Path::new(dir)), want.to_vec(), "{dir}");
        }
    }

    #[test]
    fn unknown_binaries_are_refused() {
        assert!(matches!(binary("rm"), Err(BinaryError::Unknown(_))));
    }
}
