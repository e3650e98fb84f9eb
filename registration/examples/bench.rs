//! Load generator on loopback for the registration service. Prints figures; asserts nothing.
//!
//! ```text
//! cargo run --release -p siteboot-registration --example bench [-- --registrations N --agents N --per-agent N --paced-rate N]
//! ```
//!
//! Phases, each bounded in count and time, each compared with a bare hyper + rustls server
//! using the same TLS configuration, measured in the same run:
//! 1. registrations/s: full TLS handshake + token redemption + CSR signing + durable
//!    commit, vs. handshake + empty 200;
//! 2. check-ins/s over kept-alive mTLS connections (32 agents), vs. kept-alive empty 200;
//! 3. check-in latency with 1,000 concurrent agents (p50/p99), vs. the same against bare.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::stream::{self, StreamExt};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::json;
use siteboot_registration::testkit::{client, fresh_client, token, Device, Harness};
use siteboot_registration::Limits;
use siteboot_wire::api::Registered;

/// Upper bound on any one phase.
const PHASE_DEADLINE: Duration = Duration::from_secs(90);

struct Stats {
    ok: usize,
    failed: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

impl Stats {
    fn rate(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64()
    }
    fn pct(&self, p: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let i = ((self.latencies.len() as f64 - 1.0) * p).round() as usize;
        self.latencies[i]
    }
    fn line(&self, name: &str) -> String {
        format!(
            "{name:<44} {:>8.1} req/s  p50 {:>7.2} ms  p99 {:>7.2} ms  ({} ok, {} failed, {:.1} s)",
            self.rate(),
            self.pct(0.50).as_secs_f64() * 1e3,
            self.pct(0.99).as_secs_f64() * 1e3,
            self.ok,
            self.failed,
            self.elapsed.as_secs_f64()
        )
    }
}

/// Runs `n` calls of `f` with `concurrency` in flight; stops starting new ones at the deadline.
async fn phase<F, Fut>(n: usize, concurrency: usize, f: F) -> Stats
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    let results: Vec<(bool, Duration)> = stream::iter(0..n)
        .take_while(|_| futures::future::ready(started.elapsed() < PHASE_DEADLINE))
        .map(|i| {
            let fut = f(i);
            async move {
                let t = Instant::now();
                let ok = fut.await;
                (ok, t.elapsed())
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let elapsed = started.elapsed();
    let mut latencies: Vec<Duration> = results.iter().filter(|r| r.0).map(|r| r.1).collect();
    latencies.sort();
    Stats {
        ok: latencies.len(),
        failed: results.len() - latencies.len(),
        elapsed,
        latencies,
    }
}

/// The baseline: hyper + rustls with the service's TLS config, answering an empty 200.
async fn bare_server(tls: Arc<rustls::ServerConfig>) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let _ = tcp.set_nodelay(true);
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let svc = hyper::service::service_fn(|_req| async {
                    Ok::<_, std::convert::Infallible>(hyper::Response::new(
                        http_body_util::Empty::<hyper::body::Bytes>::new(),
                    ))
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), svc)
                    .await;
            });
        }
    });
    addr
}

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::main]
async fn main() {
    let registrations = arg("--registrations", 1000);
    let agents = arg("--agents", 1000);
    let concurrency = 16;
    let dir = tempfile::tempdir().expect("temp dir");
    // One site per device: a second registration for a site would replace (revoke) the first.
    let sites = registrations.max(agents);
    let h = Harness::start(dir.path(), sites, Limits::unlimited())
        .await
        .expect("start service");
    let d = &h.handle.info().data_dir;
    let read = |p: &std::path::Path| std::fs::read_to_string(p).unwrap();
    let tls = siteboot_registration::tls::server_config(
        &read(&d.ca_cert),
        &read(&d.server_cert),
        &read(&d.server_key),
    )
    .unwrap();
    let bare = format!("https://127.0.0.1:{}", bare_server(tls).await.port());
    println!("siteboot registration bench: {registrations} registrations, {agents} agents, loopback, {} cpus",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1));

    // Inputs prepared outside the timed phases: tokens (operator API) and device keys/CSRs.
    let mut tokens = Vec::with_capacity(registrations);
    for i in 0..registrations {
        tokens.push(h.mint_token(&format!("site-{i:03}")).await);
    }
    let devices: Vec<Device> = (0..registrations)
        .map(|i| Device::new(&format!("BENCH-{i}")))
        .collect();

    // 1. Full handshake per request.
    let fresh = fresh_client(&h.ca_pem);
    let bare_hs = phase(registrations, concurrency, |_| {
        let c = fresh.clone();
        let url = format!("{bare}/");
        async move {
            c.get(url)
                .send()
                .await
                .map(|r| r.status().is_success())
                .unwrap_or(false)
        }
    })
    .await;
    let regs = phase(registrations, concurrency, |i| {
        let c = fresh.clone();
        let url = format!("{}/v1/register", h.url);
        let body = devices[i].request(token(&tokens[i]));
        async move {
            c.post(url)
                .json(&body)
                .send()
                .await
                .map(|r| r.status().as_u16() == 201)
                .unwrap_or(false)
        }
    })
    .await;

    // Agents for the check-in phases: register (untimed) with the remaining tokens.
    let mut agent_clients = Vec::new();
    let mut bare_clients = Vec::new();
    for i in 0..agents {
        let dev = Device::new(&format!("AGENT-{i}"));
        let t = h.mint_token(&format!("site-{i:03}")).await;
        let (st, v) = h.register(&dev.request(token(&t))).await;
        if st != 201 {
            eprintln!("agent registration failed: {v}");
            continue;
        }
        let reg: Registered = serde_json::from_value(v).unwrap();
        agent_clients.push(client(&h.ca_pem, Some((&reg.certificate, &dev.key_pem))));
        bare_clients.push(client(&h.ca_pem, Some((&reg.certificate, &dev.key_pem))));
    }
    let body =
        json!({"state": "ready", "appliedRevision": "abc123", "attemptedRevision": "abc123"});
    // Warm the connections so the timed phases see kept-alive connections only.
    let warm = |clients: &Vec<reqwest::Client>, url: String, checkin: bool| {
        let calls: Vec<_> = clients
            .iter()
            .map(|c| {
                let req = if checkin {
                    c.post(&url).json(&body)
                } else {
                    c.get(&url)
                };
                req.send()
            })
            .collect();
        futures::future::join_all(calls)
    };
    warm(&agent_clients, format!("{}/v1/checkin", h.url), true).await;
    warm(&bare_clients, format!("{bare}/"), false).await;

    // 2. Kept-alive throughput with 32 agents.
    let per_agent = arg("--per-agent", 1000);
    let few = agent_clients.len().min(32);
    let bare_ka = phase(few * per_agent, few, |i| {
        let c = bare_clients[i % few].clone();
        let url = format!("{bare}/");
        async move {
            c.get(url)
                .send()
                .await
                .map(|r| r.status().is_success())
                .unwrap_or(false)
        }
    })
    .await;
    let checkins = phase(few * per_agent, few, |i| {
        let c = agent_clients[i % few].clone();
        let url = format!("{}/v1/checkin", h.url);
        let body = body.clone();
        async move {
            c.post(url)
                .json(&body)
                .send()
                .await
                .map(|r| r.status().is_success())
                .unwrap_or(false)
        }
    })
    .await;

    // Diagnostic: the service's HTTP stack alone (routing, middleware, metrics) on the same
    // kept-alive mTLS connections, to separate HTTP-layer overhead from domain work.
    let stack = phase(few * per_agent, few, |i| {
        let c = agent_clients[i % few].clone();
        let url = format!("{}/healthz", h.url);
        async move {
            c.get(url)
                .send()
                .await
                .map(|r| r.status().is_success())
                .unwrap_or(false)
        }
    })
    .await;

    // 3. All agents at once, 3 check-ins each.
    let n = agent_clients.len();
    let bare_many = phase(n * 3, n, |i| {
        let c = bare_clients[i % n].clone();
        let url = format!("{bare}/");
        async move {
            c.get(url)
                .send()
                .await
                .map(|r| r.status().is_success())
                .unwrap_or(false)
        }
    })
    .await;
    let many = phase(n * 3, n, |i| {
        let c = agent_clients[i % n].clone();
        let url = format!("{}/v1/checkin", h.url);
        let body = body.clone();
        async move {
            c.post(url)
                .json(&body)
                .send()
                .await
                .map(|r| r.status().is_success())
                .unwrap_or(false)
        }
    })
    .await;

    // 4. All agents connected, paced (open loop) at a fixed aggregate rate: what an agent
    //    sees when 1,000 sites check in steadily rather than all in the same instant.
    let rate = arg("--paced-rate", 2000) as f64;
    let rounds = 4usize;
    let paced = paced_phase(
        &agent_clients,
        format!("{}/v1/checkin", h.url),
        Some(body.clone()),
        rate,
        rounds,
    )
    .await;
    let bare_paced = paced_phase(&bare_clients, format!("{bare}/"), None, rate, rounds).await;

    println!();
    println!("{}", bare_hs.line("bare: handshake + empty 200"));
    println!(
        "{}",
        regs.line("registrations (handshake+token+csr+commit)")
    );
    println!(
        "  ratio registrations / bare handshake: {:.0}%",
        100.0 * regs.rate() / bare_hs.rate()
    );
    println!(
        "{}",
        bare_ka.line(&format!("bare: kept-alive empty 200 ({few} conns)"))
    );
    println!(
        "{}",
        checkins.line(&format!("check-ins kept-alive mTLS ({few} agents)"))
    );
    println!(
        "  ratio check-ins / bare kept-alive: {:.0}%",
        100.0 * checkins.rate() / bare_ka.rate()
    );
    println!(
        "{}",
        stack.line(&format!(
            "diagnostic: GET /healthz kept-alive ({few} conns)"
        ))
    );
    println!(
        "  ratio service http stack / bare kept-alive: {:.0}%",
        100.0 * stack.rate() / bare_ka.rate()
    );
    println!(
        "{}",
        bare_many.line(&format!("bare: kept-alive empty 200 ({n} conns)"))
    );
    println!(
        "{}",
        many.line(&format!("check-ins kept-alive mTLS ({n} agents)"))
    );
    println!(
        "  check-in p99 with {n} concurrent agents: {:.2} ms",
        many.pct(0.99).as_secs_f64() * 1e3
    );
    println!(
        "{}",
        bare_paced.line(&format!("bare: paced {rate:.0}/s over {n} conns"))
    );
    println!(
        "{}",
        paced.line(&format!("check-ins paced {rate:.0}/s over {n} agents"))
    );
    println!(
        "  check-in p99 with {n} agents at {rate:.0} check-ins/s: {:.2} ms",
        paced.pct(0.99).as_secs_f64() * 1e3
    );
    let _ = h.handle.shutdown().await;
}

/// Each client sends `rounds` requests, spaced so the aggregate is `rate` per second.
async fn paced_phase(
    clients: &[reqwest::Client],
    url: String,
    body: Option<serde_json::Value>,
    rate: f64,
    rounds: usize,
) -> Stats {
    let n = clients.len().max(1);
    let period = Duration::from_secs_f64(n as f64 / rate);
    let started = Instant::now();
    let tasks: Vec<_> = clients
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let (c, url, body) = (c.clone(), url.clone(), body.clone());
            let offset = Duration::from_secs_f64(i as f64 / rate);
            tokio::spawn(async move {
                let mut out = Vec::with_capacity(rounds);
                for k in 0..rounds {
                    tokio::time::sleep_until((started + offset + period * k as u32).into()).await;
                    let t = Instant::now();
                    let req = match &body {
                        Some(b) => c.post(&url).json(b),
                        None => c.get(&url),
                    };
                    let ok = req
                        .send()
                        .await
                        .map(|r| r.status().is_success())
                        .unwrap_or(false);
                    out.push((ok, t.elapsed()));
                }
                out
            })
        })
        .collect();
    let mut results = Vec::new();
    for t in tasks {
        results.extend(t.await.unwrap_or_default());
    }
    let elapsed = started.elapsed();
    let mut latencies: Vec<Duration> = results.iter().filter(|r| r.0).map(|r| r.1).collect();
    latencies.sort();
    Stats {
        ok: latencies.len(),
        failed: results.len() - latencies.len(),
        elapsed,
        latencies,
    }
}
