//! SSH transport through russh: pinned host key, deploy-key authentication, and an exec
//! channel running `git-upload-pack '<path>'` whose byte stream gix speaks the git
//! protocol over. No libssh2, no `ssh` subprocess.
//!
//! The async channel is pumped by a task on the caller's tokio runtime into an in-memory
//! duplex pipe; the blocking side (gix) reads and writes that pipe through `SyncIoBridge`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use russh::client::{self, Handle, Msg};
use russh::keys::{HashAlg, PrivateKey, PrivateKeyWithHashAlg, PublicKey, PublicKeyOrCertificate};
use russh::{Channel, ChannelMsg, Disconnect};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream, ReadHalf, WriteHalf};
use tokio::runtime;
use tokio_util::io::SyncIoBridge;

use super::counting::{Counter, CountingStream};
use super::error::FetchError;

/// Where and as whom to connect.
pub(crate) struct Target<'a> {
    pub host: &'a str,
    pub port: u16,
    pub user: &'a str,
    pub path: &'a str,
    /// Redacted URL for messages.
    pub display: &'a str,
}

/// The blocking halves of the `git-upload-pack` byte stream, plus its stderr.
pub(crate) struct SshStream {
    pub reader: SyncIoBridge<ReadHalf<DuplexStream>>,
    pub writer: SyncIoBridge<WriteHalf<DuplexStream>>,
    pub stderr: Arc<Mutex<String>>,
}

struct Pinned {
    expected: PublicKey,
    offered: Arc<Mutex<Option<String>>>,
}

impl client::Handler for Pinned {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let PublicKeyOrCertificate::PublicKey { key, .. } = key else {
            *self.offered.lock().expect("lock") = Some("a certificate".into());
            return Ok(false);
        };
        *self.offered.lock().expect("lock") = Some(key.fingerprint(HashAlg::Sha256).to_string());
        Ok(key.key_data() == self.expected.key_data())
    }
}

/// Parse the pinned key: `ssh-ed25519 AAAA... [comment]`, optionally preceded by a
/// known_hosts host field.
pub(crate) fn parse_host_key(text: &str) -> Result<PublicKey, FetchError> {
    let text = text.trim();
    PublicKey::from_openssh(text)
        .or_else(|first| match text.split_once(char::is_whitespace) {
            Some((_, rest)) => PublicKey::from_openssh(rest.trim()).map_err(|_| first),
            None => Err(first),
        })
        .map_err(|e| {
            FetchError::Config(format!(
                "pinned ssh host key is not an openssh public key: {e}"
            ))
        })
}

/// Quote a path for the remote shell: `'it'\''s'` (the shared rule in `siteboot_wire`).
pub(crate) use siteboot_wire::shell::quote as shell_quote;

/// Connect, verify the host key, authenticate, and start `git-upload-pack`.
pub(crate) fn connect(
    rt: &runtime::Handle,
    target: &Target<'_>,
    private_key: &str,
    known_host_key: &str,
    counter: &Counter,
) -> Result<SshStream, FetchError> {
    let expected = parse_host_key(known_host_key)?;
    let key = PrivateKey::from_openssh(private_key.as_bytes()).map_err(|e| {
        FetchError::Config(format!(
            "ssh deploy key is not an unencrypted openssh private key: {e}"
        ))
    })?;
    if key.is_encrypted() {
        return Err(FetchError::Config(
            "ssh deploy key is passphrase-protected".into(),
        ));
    }
    let (session, channel) = rt.block_on(open(target, key, expected, counter))?;
    let stderr = Arc::new(Mutex::new(String::new()));
    let (ours, theirs) = tokio::io::duplex(256 * 1024);
    rt.spawn(pump(session, channel, theirs, stderr.clone()));
    let (r, w) = tokio::io::split(ours);
    Ok(SshStream {
        reader: SyncIoBridge::new_with_handle(r, rt.clone()),
        writer: SyncIoBridge::new_with_handle(w, rt.clone()),
        stderr,
    })
}

async fn open(
    target: &Target<'_>,
    key: PrivateKey,
    expected: PublicKey,
    counter: &Counter,
) -> Result<(Handle<Pinned>, Channel<Msg>), FetchError> {
    let unreachable = |reason: String| FetchError::Unreachable {
        url: target.display.to_owned(),
        reason,
    };
    let protocol = |reason: String| FetchError::Protocol {
        url: target.display.to_owned(),
        reason,
    };
    let addr = (target.host, target.port);
    let tcp = match tokio::time::timeout(
        Duration::from_secs(15),
        tokio::net::TcpStream::connect(addr),
    )
    .await
    {
        Err(_) => return Err(unreachable("connect timed out after 15s".into())),
        Ok(Err(e)) => return Err(unreachable(e.to_string())),
        Ok(Ok(tcp)) => tcp,
    };
    let expected_fp = expected.fingerprint(HashAlg::Sha256).to_string();
    let offered = Arc::new(Mutex::new(None));
    let handler = Pinned {
        expected,
        offered: offered.clone(),
    };
    let config = Arc::new(client::Config {
        inactivity_timeout: Some(Duration::from_secs(120)),
        ..Default::default()
    });
    let stream = CountingStream::new(tcp, counter.clone());
    let handshake = client::connect_stream(config, stream, handler);
    let mut session = match tokio::time::timeout(Duration::from_secs(30), handshake).await {
        Err(_) => return Err(unreachable("ssh handshake timed out after 30s".into())),
        Ok(Ok(session)) => session,
        Ok(Err(e)) => {
            let offered = offered.lock().expect("lock").clone();
            return Err(match (e, offered) {
                (russh::Error::UnknownKey, offered) => FetchError::HostKeyMismatch {
                    host: format!("{}:{}", target.host, target.port),
                    expected: expected_fp,
                    offered: offered.unwrap_or_else(|| "unknown".into()),
                },
                (russh::Error::IO(e), _) => unreachable(e.to_string()),
                (e, _) => protocol(format!("ssh handshake failed: {e}")),
            });
        }
    };
    let hash = session
        .best_supported_rsa_hash()
        .await
        .ok()
        .flatten()
        .flatten();
    let auth = session
        .authenticate_publickey(target.user, PrivateKeyWithHashAlg::new(Arc::new(key), hash))
        .await
        .map_err(|e| protocol(format!("ssh authentication failed: {e}")))?;
    if !auth.success() {
        return Err(FetchError::AuthRejected {
            url: target.display.to_owned(),
            reason: format!(
                "ssh server refused the deploy key for user {:?}",
                target.user
            ),
        });
    }
    let channel = session
        .channel_open_session()
        .await
        .map_err(|e| protocol(format!("ssh session channel refused: {e}")))?;
    // Ask for protocol v2; servers that do not accept the variable answer with v1.
    channel
        .set_env(false, "GIT_PROTOCOL", "version=2")
        .await
        .ok();
    channel
        .exec(
            true,
            format!("git-upload-pack {}", shell_quote(target.path)),
        )
        .await
        .map_err(|e| protocol(format!("could not start git-upload-pack: {e}")))?;
    Ok((session, channel))
}

/// Move bytes between the channel and the duplex pipe until either side ends.
async fn pump(
    session: Handle<Pinned>,
    channel: Channel<Msg>,
    pipe: DuplexStream,
    stderr: Arc<Mutex<String>>,
) {
    let (mut rx, tx) = channel.split();
    let (mut from_git, mut to_git) = tokio::io::split(pipe);
    let mut buf = vec![0u8; 32 * 1024];
    let mut local_open = true;
    loop {
        tokio::select! {
            msg = rx.wait() => match msg {
                Some(ChannelMsg::Data { data }) => {
                    if to_git.write_all(&data).await.is_err() {
                        break;
                    }
                }
                Some(ChannelMsg::ExtendedData { data, ext: 1 }) => {
                    let mut err = stderr.lock().expect("lock");
                    if err.len() < 4096 {
                        err.push_str(&String::from_utf8_lossy(&data));
                    }
                }
                Some(ChannelMsg::Eof | ChannelMsg::Close) | None => break,
                Some(_) => {}
            },
            n = from_git.read(&mut buf), if local_open => match n {
                Ok(0) | Err(_) => {
                    local_open = false;
                    tx.eof().await.ok();
                }
                Ok(n) => {
                    if tx.data(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            },
        }
    }
    to_git.shutdown().await.ok();
    drop(to_git);
    session
        .disconnect(Disconnect::ByApplication, "", "en")
        .await
        .ok();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_quote_table() {
        let cases = [
            ("/srv/fleet.git", "'/srv/fleet.git'"),
            ("it's", r"'it'\''s'"),
            ("a b;rm -rf /", "'a b;rm -rf /'"),
        ];
        for (input, want) in cases {
            assert_eq!(shell_quote(input), want);
        }
    }

    #[test]
    fn host_key_accepts_known_hosts_form() {
        let key =
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl";
        assert!(parse_host_key(key).is_ok());
        assert!(parse_host_key(&format!("[127.0.0.1]:2222 {key} comment")).is_ok());
        assert!(parse_host_key("not a key").is_err());
    }
}
