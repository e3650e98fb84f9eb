//! Pick and open the transport for a source URL: `file://` (a local `git-upload-pack`
//! process), `git://` (TCP), `ssh://` / `user@host:path` (russh), `http(s)://` (reqwest).
//! Every transport counts its bytes.

use std::any::Any;
use std::io::Read;
use std::net::{TcpStream, ToSocketAddrs};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gix::protocol::transport::client::blocking_io::Transport;
use gix::protocol::transport::client::git::{blocking_io::Connection, ConnectMode};
use gix::protocol::transport::Protocol;
use gix::url::Scheme;
use siteboot_wire::assignment::GitAuth;

use super::counting::{Counter, CountingRead, CountingWrite};
use super::error::FetchError;
use super::{http, ssh};

/// An opened transport, ready for the handshake.
pub(crate) struct Connected {
    pub transport: Box<dyn Transport + Send>,
    /// Transport options gix hands to `configure()` before the handshake (http only).
    pub options: Option<Box<dyn Any>>,
    /// The remote side's stderr, when there is one (process and ssh).
    pub stderr: Option<Arc<Mutex<String>>>,
}

/// Open a transport to `url`.
pub(crate) fn connect(
    url: &gix::Url,
    display: &str,
    auth: Option<&GitAuth>,
    counter: &Counter,
    rt: &tokio::runtime::Handle,
) -> Result<Connected, FetchError> {
    let path = url.path.to_string();
    let no_auth = |kind: &str| match auth {
        None => Ok(()),
        Some(_) => Err(FetchError::Config(format!(
            "{kind} urls take no credential, but the assignment carries one for {display}"
        ))),
    };
    match url.scheme {
        Scheme::File => {
            no_auth("file://")?;
            local(&path, display, counter)
        }
        Scheme::Git => {
            no_auth("git://")?;
            let host = url
                .host()
                .ok_or_else(|| FetchError::Config(format!("{display} has no host")))?;
            daemon(host, url.port.unwrap_or(9418), &path, display, counter)
        }
        Scheme::Ssh => {
            let Some(GitAuth::Ssh {
                private_key,
                known_host_key,
            }) = auth
            else {
                return Err(FetchError::Config(format!(
                    "{display} is an ssh url: the assignment must carry an ssh deploy key and pinned host key"
                )));
            };
            let host = url
                .host()
                .ok_or_else(|| FetchError::Config(format!("{display} has no host")))?;
            let target = ssh::Target {
                host,
                port: url.port.unwrap_or(22),
                user: url.user().unwrap_or("git"),
                path: &path,
                display,
            };
            let stream = ssh::connect(rt, &target, private_key.expose(), known_host_key, counter)?;
            let conn = Connection::new(
                CountingRead::new(stream.reader, counter.clone()),
                CountingWrite::new(stream.writer, counter.clone()),
                Protocol::V2,
                path.as_str(),
                None::<(&str, Option<u16>)>,
                ConnectMode::Process,
                false,
            )
            .custom_url(Some(display.into()));
            Ok(Connected {
                transport: Box::new(conn),
                options: None,
                stderr: Some(stream.stderr),
            })
        }
        Scheme::Http | Scheme::Https => {
            let parts = http::connect(url.clone(), display, auth, counter)?;
            Ok(Connected {
                transport: Box::new(parts.transport),
                options: Some(parts.options),
                stderr: None,
            })
        }
        _ => Err(FetchError::Config(format!(
            "unsupported url scheme in {display}; use https, ssh, git or file"
        ))),
    }
}

fn daemon(
    host: &str,
    port: u16,
    path: &str,
    display: &str,
    counter: &Counter,
) -> Result<Connected, FetchError> {
    let unreachable = |reason: String| FetchError::Unreachable {
        url: display.to_owned(),
        reason,
    };
    let addrs: Vec<_> = (host, port)
        .to_socket_addrs()
        .map_err(|e| unreachable(format!("cannot resolve {host}: {e}")))?
        .collect();
    let mut last = String::from("no address");
    let stream = addrs
        .iter()
        .find_map(
            |addr| match TcpStream::connect_timeout(addr, Duration::from_secs(15)) {
                Ok(s) => Some(s),
                Err(e) => {
                    last = e.to_string();
                    None
                }
            },
        )
        .ok_or_else(|| unreachable(last))?;
    let io = |e: std::io::Error| unreachable(e.to_string());
    stream
        .set_read_timeout(Some(Duration::from_secs(120)))
        .map_err(io)?;
    stream
        .set_write_timeout(Some(Duration::from_secs(120)))
        .map_err(io)?;
    let write = stream.try_clone().map_err(io)?;
    let conn = Connection::new(
        CountingRead::new(stream, counter.clone()),
        CountingWrite::new(write, counter.clone()),
        Protocol::V2,
        path,
        Some((host, Some(port))),
        ConnectMode::Daemon,
        false,
    )
    .custom_url(Some(display.into()));
    Ok(Connected {
        transport: Box::new(conn),
        options: None,
        stderr: None,
    })
}

/// `git-upload-pack` as a child process; killed and reaped when the reader is dropped.
struct ProcessReader {
    stdout: ChildStdout,
    child: Child,
}

impl Read for ProcessReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.stdout.read(buf)
    }
}

impl Drop for ProcessReader {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

fn local(path: &str, display: &str, counter: &Counter) -> Result<Connected, FetchError> {
    if !std::path::Path::new(path).exists() {
        return Err(FetchError::RepositoryNotFound {
            url: display.to_owned(),
            reason: "no such directory".into(),
        });
    }
    let mut cmd = Command::new("git-upload-pack");
    cmd.arg(path)
        .env("GIT_PROTOCOL", "version=2")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for var in [
        "GIT_DIR",
        "GIT_CONFIG",
        "GIT_CONFIG_PARAMETERS",
        "GIT_OBJECT_DIRECTORY",
    ] {
        cmd.env_remove(var);
    }
    let mut child = cmd.spawn().map_err(|e| FetchError::Protocol {
        url: display.to_owned(),
        reason: format!("cannot start git-upload-pack (is git installed?): {e}"),
    })?;
    let stdin = child.stdin.take().expect("piped");
    let stdout = child.stdout.take().expect("piped");
    let mut child_stderr = child.stderr.take().expect("piped");
    let stderr = Arc::new(Mutex::new(String::new()));
    let sink = stderr.clone();
    std::thread::spawn(move || {
        let mut text = String::new();
        child_stderr.read_to_string(&mut text).ok();
        sink.lock().expect("lock").push_str(&text);
    });
    let conn = Connection::new(
        CountingRead::new(ProcessReader { stdout, child }, counter.clone()),
        CountingWrite::new(stdin, counter.clone()),
        Protocol::V2,
        path,
        None::<(&str, Option<u16>)>,
        ConnectMode::Process,
        false,
    )
    .custom_url(Some(display.into()));
    Ok(Connected {
        transport: Box::new(conn),
        options: None,
        stderr: Some(stderr),
    })
}
