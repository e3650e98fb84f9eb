//! [`SshGitServer`]: a throwaway OpenSSH `sshd` serving `git-upload-pack` to one deploy key.

use std::io::Read;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::{io_err, run, GitError, GitRepo};
use crate::ports;
use crate::process::{Process, Spec, READY_TIMEOUT};

/// Path of Debian's sshd (it must be started by absolute path to re-exec itself).
pub const SSHD: &str = "/usr/sbin/sshd";
const SSH_KEYGEN: &str = "/usr/bin/ssh-keygen";
/// sshd's privilege-separation directory; created when missing.
const PRIVSEP_DIR: &str = "/run/sshd";

/// An ed25519 key pair made with `ssh-keygen`. `Debug` never shows the private key.
#[derive(Clone)]
pub struct DeployKey {
    /// The private key, OpenSSH PEM (`-----BEGIN OPENSSH PRIVATE KEY-----`).
    pub private_openssh: String,
    /// The public key line (`ssh-ed25519 AAAA... comment`).
    pub public_openssh: String,
    /// The private key file (mode 0600), for `ssh -i`.
    pub private_key_path: PathBuf,
    /// `SHA256:...` fingerprint of the public key.
    pub fingerprint: String,
}

impl std::fmt::Debug for DeployKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeployKey")
            .field("public_openssh", &self.public_openssh)
            .field("fingerprint", &self.fingerprint)
            .field("private_openssh", &"[REDACTED]")
            .finish()
    }
}

/// Generates an ed25519 key pair at `path` / `path.pub` with `ssh-keygen`.
pub fn generate_key(path: &Path, comment: &str) -> Result<DeployKey, GitError> {
    run(Command::new(SSH_KEYGEN)
        .args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"])
        .arg(path))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(io_err(path))?;
    let public_path = path.with_extension("pub");
    let fingerprint = run(Command::new(SSH_KEYGEN)
        .args(["-l", "-E", "sha256", "-f"])
        .arg(&public_path))?;
    Ok(DeployKey {
        private_openssh: std::fs::read_to_string(path).map_err(io_err(path))?,
        public_openssh: std::fs::read_to_string(&public_path)
            .map_err(io_err(&public_path))?
            .trim()
            .to_owned(),
        private_key_path: path.to_path_buf(),
        fingerprint: parse_fingerprint(&fingerprint).unwrap_or_default(),
    })
}

/// The `SHA256:...` field of `ssh-keygen -l` output ("256 SHA256:abc comment (ED25519)").
pub fn parse_fingerprint(line: &str) -> Option<String> {
    line.split_whitespace()
        .nth(1)
        .filter(|f| f.starts_with("SHA256:"))
        .map(str::to_owned)
}

/// The `sshd_config` of a throwaway server. Pure.
pub fn sshd_config(dir: &Path, port: u16, user: &str, wrapper: &Path) -> String {
    let d = dir.display();
    format!(
        "# siteboot e2e throwaway sshd: one deploy key, git-upload-pack only
ListenAddress 127.0.0.1:{port}
HostKey {d}/host_ed25519
PidFile {d}/sshd.pid
AuthorizedKeysFile {d}/authorized_keys
AllowUsers {user}
StrictModes no
UsePAM no
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
PermitTTY no
AllowTcpForwarding no
AllowAgentForwarding no
AllowStreamLocalForwarding no
X11Forwarding no
PermitUserRC no
PrintMotd no
UseDNS no
AcceptEnv GIT_PROTOCOL
ForceCommand {w}
LogLevel VERBOSE
",
        w = wrapper.display()
    )
}

/// The ForceCommand wrapper: only `git-upload-pack '<base>/...'` (no `..`), run through
/// `git-shell`, which parses the quoted path itself and allows nothing else.
pub fn upload_pack_wrapper(base: &Path) -> String {
    let b = base.display();
    format!(
        "#!/bin/sh
# siteboot e2e: the deploy key may only fetch repositories under {b}.
export GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null
case \"$SSH_ORIGINAL_COMMAND\" in
  *..*) ;;
  \"git-upload-pack '{b}/\"*|\"git upload-pack '{b}/\"*)
    exec /usr/bin/git-shell -c \"$SSH_ORIGINAL_COMMAND\" ;;
esac
echo \"siteboot-e2e: only git-upload-pack of repositories under {b} is allowed\" >&2
exit 1
"
    )
}

/// A running throwaway sshd; killed on drop.
#[derive(Debug)]
pub struct SshGitServer {
    process: Process,
    port: u16,
    user: String,
    _dir: tempfile::TempDir,
    host_public_key: String,
    host_fingerprint: String,
    known_hosts: PathBuf,
    deploy_key: DeployKey,
}

fn current_user() -> Result<String, GitError> {
    nix::unistd::User::from_uid(nix::unistd::geteuid())
        .ok()
        .flatten()
        .map(|u| u.name)
        .ok_or_else(|| GitError::Tls("the current user has no passwd entry".into()))
}

/// True once the port answers with an SSH identification string.
fn ssh_banner(addr: SocketAddr) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(2)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let mut buf = [0u8; 8];
    s.read_exact(&mut buf).is_ok() && &buf == b"SSH-2.0-"
}

impl SshGitServer {
    /// Starts sshd serving the repositories under `repo`'s base path, logging to `log`.
    pub fn start(repo: &GitRepo, log: &Path) -> Result<SshGitServer, GitError> {
        let port = ports::free_port()?;
        let dir = tempfile::Builder::new()
            .prefix("siteboot-e2e-sshd-")
            .tempdir()
            .map_err(io_err(Path::new("/tmp")))?;
        let d = dir.path();
        let privsep = Path::new(PRIVSEP_DIR);
        if !privsep.exists() {
            std::fs::create_dir_all(privsep).map_err(io_err(privsep))?;
            std::fs::set_permissions(privsep, std::fs::Permissions::from_mode(0o755))
                .map_err(io_err(privsep))?;
        }
        let host = generate_key(&d.join("host_ed25519"), "siteboot-e2e-host")?;
        let deploy_key = generate_key(&d.join("deploy_ed25519"), "siteboot-e2e-deploy")?;
        let authorized = d.join("authorized_keys");
        std::fs::write(
            &authorized,
            format!("restrict {}\n", deploy_key.public_openssh),
        )
        .map_err(io_err(&authorized))?;
        let wrapper = d.join("git-upload-pack-only");
        std::fs::write(&wrapper, upload_pack_wrapper(&repo.base_path()))
            .map_err(io_err(&wrapper))?;
        std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755))
            .map_err(io_err(&wrapper))?;
        let user = current_user()?;
        let config = d.join("sshd_config");
        std::fs::write(&config, sshd_config(d, port, &user, &wrapper)).map_err(io_err(&config))?;
        // "ssh-ed25519 AAAA... comment" -> "ssh-ed25519 AAAA..."
        let host_public_key = host
            .public_openssh
            .split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" ");
        let known_hosts = d.join("known_hosts");
        std::fs::write(
            &known_hosts,
            format!("[127.0.0.1]:{port} {host_public_key}\n"),
        )
        .map_err(io_err(&known_hosts))?;

        let spec = Spec::new(SSHD)
            .clear_env()
            .args(["-D", "-e", "-f"])
            .arg(&config);
        let mut process = Process::spawn("sshd", &spec, log)?;
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        process.wait_until(&format!("sshd banner on {addr}"), READY_TIMEOUT, || {
            ssh_banner(addr)
        })?;
        Ok(SshGitServer {
            process,
            port,
            user,
            _dir: dir,
            host_public_key,
            host_fingerprint: host.fingerprint,
            known_hosts,
            deploy_key,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The login user in URLs (the user running the tests).
    pub fn user(&self) -> &str {
        &self.user
    }

    /// `ssh://<user>@127.0.0.1:<port>/<absolute path of the bare repository>`
    pub fn url(&self, repo: &GitRepo) -> String {
        format!(
            "ssh://{}@127.0.0.1:{}{}",
            self.user,
            self.port,
            repo.bare_path().display()
        )
    }

    /// The host key, `ssh-ed25519 AAAA...`, to pin.
    pub fn host_public_key(&self) -> &str {
        &self.host_public_key
    }

    /// The host key's `SHA256:...` fingerprint.
    pub fn host_fingerprint(&self) -> &str {
        &self.host_fingerprint
    }

    /// A `known_hosts` file holding exactly this server's host key.
    pub fn known_hosts(&self) -> &Path {
        &self.known_hosts
    }

    /// The key the server accepts. Register `private_openssh` as a secret.
    pub fn deploy_key(&self) -> &DeployKey {
        &self.deploy_key
    }

    /// A `GIT_SSH_COMMAND` that uses the deploy key and trusts only the pinned host key.
    pub fn git_ssh_command(&self) -> String {
        format!(
            "ssh -F /dev/null -i {} -o IdentitiesOnly=yes -o IdentityAgent=none -o BatchMode=yes \
             -o StrictHostKeyChecking=yes -o UserKnownHostsFile={} -o GlobalKnownHostsFile=/dev/null",
            self.deploy_key.private_key_path.display(),
            self.known_hosts.display()
        )
    }

    /// The sshd process (to stop it in an outage test, or read its log).
    pub fn process(&mut self) -> &mut Process {
        &mut self.process
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_parse() {
        let cases = [
            (
                "256 SHA256:abcDEF+/x c (ED25519)\n",
                Some("SHA256:abcDEF+/x"),
            ),
            ("256 MD5:aa:bb c (ED25519)", None),
            ("", None),
        ];
        for (line, want) in cases {
            assert_eq!(parse_fingerprint(line).as_deref(), want, "{line}");
        }
    }

    #[test]
    fn config_pins_loopback_and_force_command() {
        let cfg = sshd_config(Path::new("/t/d"), 20022, "root", Path::new("/t/d/w"));
        for line in [
            "ListenAddress 127.0.0.1:20022",
            "HostKey /t/d/host_ed25519",
            "AuthorizedKeysFile /t/d/authorized_keys",
            "ForceCommand /t/d/w",
            "PasswordAuthentication no",
            "UsePAM no",
            "StrictModes no",
        ] {
            assert!(cfg.lines().any(|l| l == line), "missing {line:?} in\n{cfg}");
        }
    }

    /// Runs the wrapper with a given SSH_ORIGINAL_COMMAND, with git-shell replaced by
    /// a recorder, and reports whether it would have run the command.
    #[test]
    fn wrapper_allows_only_upload_pack_under_the_base() {
        let script = upload_pack_wrapper(Path::new("/srv/repos"))
            .replace("exec /usr/bin/git-shell -c", "echo ALLOWED");
        let cases = [
            ("git-upload-pack '/srv/repos/fleet.git'", true),
            ("git upload-pack '/srv/repos/fleet.git'", true),
            ("git-receive-pack '/srv/repos/fleet.git'", false),
            ("git-upload-pack '/etc/x.git'", false),
            ("git-upload-pack '/srv/repos/../../etc'", false),
            ("sh -c id", false),
            ("", false),
        ];
        for (command, allowed) in cases {
            let out = Command::new("/bin/sh")
                .arg("-c")
                .arg(&script)
                .env("SSH_ORIGINAL_COMMAND", command)
                .output()
                .unwrap();
            let ran = String::from_utf8_lossy(&out.stdout).contains("ALLOWED");
            assert_eq!(ran, allowed, "{command:?}");
        }
    }
}
