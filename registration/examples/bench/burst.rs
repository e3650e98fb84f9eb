//! The "same instant" phase: every agent already holds a kept-alive mTLS connection; in each
//! round all of them send one request at one instant, and each latency is measured from that
//! instant to the complete response (what an agent sees when the whole fleet checks in at
//! once), and also from the moment its own request was written.
//!
//! The load generator is deliberately lean, so the phase measures the server rather than
//! the client stack: a raw HTTP/1.1 request, prepared once, written on a tokio-rustls
//! stream; the response is framed by `content-length` and validated after the round.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls_pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch, Barrier};
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use crate::load::Stats;

/// Longest a single call may take before it counts as failed.
const CALL_TIMEOUT: Duration = Duration::from_secs(60);
/// Pause between "everyone is ready" and the start signal, so every task is parked on it.
const SETTLE: Duration = Duration::from_millis(200);

/// One kept-alive HTTP/1.1-over-TLS connection.
pub struct Lean {
    stream: TlsStream<TcpStream>,
    buf: Vec<u8>,
}

/// A parsed response.
pub struct Reply {
    pub status: u16,
    pub body: Vec<u8>,
}

fn bad(what: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string())
}

impl Lean {
    /// Connects and completes the (m)TLS handshake.
    pub async fn connect(
        addr: SocketAddr,
        tls: Arc<rustls::ClientConfig>,
    ) -> std::io::Result<Self> {
        let tcp = TcpStream::connect(addr).await?;
        tcp.set_nodelay(true)?;
        let name = ServerName::IpAddress(addr.ip().into());
        let stream = TlsConnector::from(tls).connect(name, tcp).await?;
        Ok(Self {
            stream,
            buf: Vec::with_capacity(4096),
        })
    }

    /// Writes `req` and reads one complete response.
    pub async fn call(&mut self, req: &[u8]) -> std::io::Result<Reply> {
        self.stream.write_all(req).await?;
        self.stream.flush().await?;
        self.buf.clear();
        loop {
            if let Some(r) = parse(&self.buf)? {
                return Ok(r);
            }
            if self.stream.read_buf(&mut self.buf).await? == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
        }
    }
}

/// A complete response in `buf`, `None` while incomplete.
fn parse(buf: &[u8]) -> std::io::Result<Option<Reply>> {
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Ok(None);
    };
    let head = std::str::from_utf8(&buf[..end]).map_err(|_| bad("response head is not utf-8"))?;
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("no status line"))?;
    let mut len = None;
    for l in lines {
        let Some((k, v)) = l.split_once(':') else {
            continue;
        };
        if k.eq_ignore_ascii_case("content-length") {
            len = Some(
                v.trim()
                    .parse::<usize>()
                    .map_err(|_| bad("content-length"))?,
            );
        } else if k.eq_ignore_ascii_case("transfer-encoding") {
            return Err(bad("chunked responses are not expected here"));
        }
    }
    let len = len.ok_or_else(|| bad("no content-length"))?;
    let total = end + 4 + len;
    if buf.len() < total {
        return Ok(None);
    }
    if buf.len() > total {
        return Err(bad("bytes after the response"));
    }
    Ok(Some(Reply {
        status,
        body: buf[end + 4..total].to_vec(),
    }))
}

/// An HTTP/1.1 request, prepared once.
pub fn request(method: &str, path: &str, addr: SocketAddr, json: Option<&[u8]>) -> Vec<u8> {
    let mut r = format!("{method} {path} HTTP/1.1\r\nhost: {addr}\r\n").into_bytes();
    if let Some(b) = json {
        r.extend_from_slice(
            format!(
                "content-type: application/json\r\ncontent-length: {}\r\n",
                b.len()
            )
            .as_bytes(),
        );
    }
    r.extend_from_slice(b"\r\n");
    if let Some(b) = json {
        r.extend_from_slice(b);
    }
    r
}

/// Figures of a burst phase.
pub struct Burst {
    /// Latency from the common start instant to each complete response.
    pub from_instant: Stats,
    /// Latency from each request's own write to its complete response.
    pub own: Stats,
    /// Worst p99 (from the instant) of a single round.
    pub worst_round_p99: Duration,
    /// Longest time from the start instant until a request was written (generator spread).
    pub send_spread: Duration,
}

struct Sample {
    ok: bool,
    from_instant: Duration,
    own: Duration,
    started_after: Duration,
    body: Vec<u8>,
}

/// Runs `rounds` rounds over `conns`; `valid` checks each 200 body after its round.
pub async fn run(
    conns: Vec<Lean>,
    req: Vec<u8>,
    rounds: usize,
    valid: impl Fn(&[u8]) -> bool,
) -> Burst {
    let n = conns.len();
    let req = Arc::new(req);
    let barrier = Arc::new(Barrier::new(n + 1));
    let (start_tx, start_rx) = watch::channel::<Option<Instant>>(None);
    let (out_tx, mut out_rx) = mpsc::unbounded_channel::<Sample>();
    for mut conn in conns {
        let (req, barrier, mut start_rx, out_tx) = (
            req.clone(),
            barrier.clone(),
            start_rx.clone(),
            out_tx.clone(),
        );
        tokio::spawn(async move {
            for _ in 0..rounds {
                barrier.wait().await;
                if start_rx.changed().await.is_err() {
                    return;
                }
                let Some(t0) = *start_rx.borrow_and_update() else {
                    return;
                };
                let started = Instant::now();
                let reply = tokio::time::timeout(CALL_TIMEOUT, conn.call(&req)).await;
                let done = Instant::now();
                let (ok, body) = match reply {
                    Ok(Ok(r)) => (r.status == 200, r.body),
                    _ => (false, Vec::new()),
                };
                let _ = out_tx.send(Sample {
                    ok,
                    from_instant: done - t0,
                    own: done - started,
                    started_after: started - t0,
                    body,
                });
            }
        });
    }
    drop(out_tx);
    let (mut all_instant, mut all_own) = (Vec::new(), Vec::new());
    let (mut worst_round_p99, mut send_spread, mut elapsed) =
        (Duration::ZERO, Duration::ZERO, Duration::ZERO);
    for _ in 0..rounds {
        barrier.wait().await;
        tokio::time::sleep(SETTLE).await;
        start_tx.send_replace(Some(Instant::now()));
        let mut round = Vec::with_capacity(n);
        while round.len() < n {
            match out_rx.recv().await {
                Some(s) => round.push(s),
                None => break,
            }
        }
        let results: Vec<(bool, Duration)> = round
            .iter()
            .map(|s| (s.ok && valid(&s.body), s.from_instant))
            .collect();
        let stats = Stats::from_results(&results, Duration::ZERO);
        worst_round_p99 = worst_round_p99.max(stats.pct(0.99));
        elapsed += round
            .iter()
            .map(|s| s.from_instant)
            .max()
            .unwrap_or_default();
        send_spread = send_spread.max(
            round
                .iter()
                .map(|s| s.started_after)
                .max()
                .unwrap_or_default(),
        );
        all_own.extend(round.iter().map(|s| (s.ok && valid(&s.body), s.own)));
        all_instant.extend(results);
    }
    Burst {
        from_instant: Stats::from_results(&all_instant, elapsed),
        own: Stats::from_results(&all_own, elapsed),
        worst_round_p99,
        send_spread,
    }
}
