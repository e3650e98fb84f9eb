//! An HTTP `CONNECT` proxy on loopback that maps the guest-facing service addresses
//! (`10.0.2.100:P`) to the loopback ports behind them, and refuses everything else.
//!
//! Why: bootstrap data names one registration URL, used both by the box and by the
//! provider that mints its token. The guest reaches `https://10.0.2.100:8443` through
//! `guestfwd`; the provider process on the host reaches the same URL through this proxy
//! (`HTTPS_PROXY`), as a management cluster would reach the service's public address.

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::Result;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The running proxy; stopped on drop.
#[derive(Debug)]
pub struct ConnectProxy {
    port: u16,
    task: tokio::task::JoinHandle<()>,
}

/// Parses `CONNECT host:port HTTP/1.x` from a request head; `None` for anything else.
pub fn connect_target(head: &str) -> Option<&str> {
    let line = head.lines().next()?;
    let mut parts = line.split_whitespace();
    match (parts.next(), parts.next(), parts.next()) {
        (Some("CONNECT"), Some(target), Some(v)) if v.starts_with("HTTP/1.") => Some(target),
        _ => None,
    }
}

impl ConnectProxy {
    /// Starts the proxy; `map` sends `"10.0.2.100:8443"` to `"127.0.0.1:31000"` etc.
    pub async fn start(map: HashMap<String, String>) -> Result<ConnectProxy> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let port = listener.local_addr()?.port();
        let map = Arc::new(map);
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let map = map.clone();
                tokio::spawn(async move {
                    let _ = serve(client, &map).await;
                });
            }
        });
        Ok(ConnectProxy { port, task })
    }

    /// `http://127.0.0.1:PORT`, for `HTTPS_PROXY`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

async fn serve(mut client: TcpStream, map: &HashMap<String, String>) -> Result<()> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        anyhow::ensure!(head.len() < 8192, "request head too long");
        if client.read(&mut byte).await? == 0 {
            return Ok(());
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head);
    let Some(upstream) = connect_target(&head).and_then(|t| map.get(t)) else {
        client
            .write_all(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
            .await?;
        return Ok(());
    };
    let mut server = TcpStream::connect(upstream.as_str()).await?;
    client
        .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
        .await?;
    tokio::io::copy_bidirectional(&mut client, &mut server).await?;
    Ok(())
}

impl Drop for ConnectProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::connect_target;

    #[test]
    fn connect_target_table() {
        let cases = [
            (
                "CONNECT 10.0.2.100:8443 HTTP/1.1\r\nHost: x\r\n\r\n",
                Some("10.0.2.100:8443"),
            ),
            ("GET http://x/ HTTP/1.1\r\n\r\n", None),
            ("CONNECT 10.0.2.100:8443\r\n\r\n", None),
            ("", None),
        ];
        for (head, want) in cases {
            assert_eq!(connect_target(head), want, "{head:?}");
        }
    }
}
