//! Load generator on loopback for the registration service. Prints figures; asserts nothing.
//!
//! ```text
//! RUST_LOG=error cargo run --release -p siteboot-registration --example bench -- \
//!     [--registrations N] [--agents N] [--per-agent N] [--rounds N] [--paced-rates N,N,..] \
//!     [--only registrations,keepalive,burst,paced]
//! ```
//!
//! The service and the bare baseline run on their own multi-thread runtime (as the service
//! does in its process); the load generator runs on a second runtime. Phases, each bounded
//! in count and time, each compared with a bare hyper + rustls server using the same TLS
//! configuration, measured in the same run:
//! 1. registrations/s: full TLS handshake + token redemption + CSR signing + durable
//!    commit, vs. handshake + empty 200 (reqwest, a new connection per request, 16 in flight);
//! 2. check-ins/s over kept-alive mTLS connections (32 agents, reqwest), vs. kept-alive
//!    empty 200, plus the service's HTTP stack alone (`GET /healthz`) as a diagnostic;
//! 3. "same instant": every agent holds a kept-alive mTLS connection and all send one
//!    check-in at one instant, `--rounds` times; latency from that instant (see `burst`);
//! 4. paced: all agents connected, open-loop aggregate rates of check-ins (a sweep), and
//!    the highest rate whose check-in p99 stays under 20 ms.
//!
//! Each closed-loop phase also prints the server side's CPU time per request (see `cpu`),
//! which the load generator's own cost does not blur.

mod bare;
mod burst;
mod cpu;
mod load;

use std::sync::Arc;
use std::time::Instant;

use serde_json::json;
use siteboot_registration::testkit::{client, fresh_client, token, Device, Harness};
use siteboot_registration::Limits;
use siteboot_wire::api::{CheckinResponse, Registered};

use load::{call, paced_phase, phase, Stats};

/// The allocator the service binary ships with (`registration/src/main.rs`), so the bench
/// measures what runs in production; the baseline shares it.
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn arg_list(name: &str, default: &[f64]) -> Vec<f64> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(|v| v.split(',').filter_map(|r| r.trim().parse().ok()).collect())
        .unwrap_or_else(|| default.to_vec())
}

fn enabled(phase: &str) -> bool {
    let args: Vec<String> = std::env::args().collect();
    match args.iter().position(|a| a == "--only") {
        Some(i) => args
            .get(i + 1)
            .is_some_and(|v| v.split(',').any(|p| p == phase)),
        None => true,
    }
}

fn ratio(name: &str, a: &Stats, b: &Stats) {
    println!("  ratio {name}: {:.0}%", 100.0 * a.rate() / b.rate());
}

/// Server CPU per successful request, in microseconds.
fn cpu_per(s: &Stats, cpu: std::time::Duration) -> f64 {
    cpu.as_secs_f64() * 1e6 / s.ok.max(1) as f64
}

/// Prints server CPU per request of `a` against the baseline `b`.
fn cpu_ratio(name: &str, a: (&Stats, std::time::Duration), b: (&Stats, std::time::Duration)) {
    let (x, y) = (cpu_per(a.0, a.1), cpu_per(b.0, b.1));
    println!(
        "  server CPU per request, {name}: {x:.0} us vs {y:.0} us ({:.0}% of the baseline's throughput per core)",
        100.0 * y / x
    );
}

fn main() {
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .thread_name("server")
        .enable_all()
        .build()
        .expect("server runtime");
    let load_rt = tokio::runtime::Builder::new_multi_thread()
        .thread_name("load")
        .enable_all()
        .build()
        .expect("load runtime");
    load_rt.block_on(bench(server_rt.handle().clone()));
}

async fn bench(server: tokio::runtime::Handle) {
    let registrations = arg("--registrations", 1000);
    let agents = arg("--agents", 1000);
    let per_agent = arg("--per-agent", 1000);
    let rounds = arg("--rounds", 5);
    let rates: Vec<f64> = arg_list("--paced-rates", &[2000.0, 5000.0, 10000.0, 20000.0]);
    let dir = tempfile::tempdir().expect("temp dir");
    // One site per device: a second registration for a site would replace (revoke) the first.
    let sites = registrations.max(agents);
    let path = dir.path().to_path_buf();
    let h = server
        .spawn(async move { Harness::start(&path, sites, Limits::unlimited()).await })
        .await
        .expect("server task")
        .expect("start service");
    let d = &h.handle.info().data_dir;
    let read = |p: &std::path::Path| std::fs::read_to_string(p).unwrap();
    let tls = siteboot_registration::tls::server_config(
        &read(&d.ca_cert),
        &read(&d.server_cert),
        &read(&d.server_key),
    )
    .unwrap();
    let bare_addr = server.spawn(bare::serve(tls)).await.expect("bare server");
    let bare = format!("https://{bare_addr}");
    println!(
        "siteboot registration bench: {registrations} registrations, {agents} agents, loopback, {} cpus",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
    );

    if enabled("registrations") {
        // Inputs prepared outside the timed phase: tokens (operator API) and keys/CSRs.
        let mut tokens = Vec::with_capacity(registrations);
        for i in 0..registrations {
            tokens.push(h.mint_token(&format!("site-{i:03}")).await);
        }
        let devices: Vec<Device> = (0..registrations)
            .map(|i| Device::new(&format!("BENCH-{i}")))
            .collect();
        let fresh = fresh_client(&h.ca_pem);
        let url = format!("{bare}/");
        let (bare_hs, bare_hs_cpu) =
            cpu::during(phase(registrations, 16, |_| call(&fresh, &url, None))).await;
        let url = format!("{}/v1/register", h.url);
        let (regs, regs_cpu) = cpu::during(phase(registrations, 16, |i| {
            let (c, url) = (fresh.clone(), url.clone());
            let body = devices[i].request(token(&tokens[i]));
            async move {
                c.post(url)
                    .json(&body)
                    .send()
                    .await
                    .is_ok_and(|r| r.status().as_u16() == 201)
            }
        }))
        .await;
        println!();
        println!("{}", bare_hs.line("bare: handshake + empty 200"));
        println!(
            "{}",
            regs.line("registrations (handshake+token+csr+commit)")
        );
        ratio("registrations / bare handshake", &regs, &bare_hs);
        cpu_ratio(
            "registrations vs bare handshake",
            (&regs, regs_cpu),
            (&bare_hs, bare_hs_cpu),
        );
    }

    // Agents for the check-in phases: registered untimed.
    let mut identities = Vec::new();
    for i in 0..agents {
        let dev = Device::new(&format!("AGENT-{i}"));
        let t = h.mint_token(&format!("site-{i:03}")).await;
        let (st, v) = h.register(&dev.request(token(&t))).await;
        if st != 201 {
            eprintln!("agent registration failed: {v}");
            continue;
        }
        let reg: Registered = serde_json::from_value(v).unwrap();
        identities.push((reg, dev));
    }
    let n = identities.len();
    let body =
        json!({"state": "ready", "appliedRevision": "abc123", "attemptedRevision": "abc123"});
    let checkin_url = format!("{}/v1/checkin", h.url);
    let mk = || -> Vec<reqwest::Client> {
        identities
            .iter()
            .map(|(reg, dev)| client(&h.ca_pem, Some((&reg.certificate, &dev.key_pem))))
            .collect()
    };
    let (agent_clients, bare_clients) = (mk(), mk());
    // Every agent reports its state once (written through), and every connection is warm.
    let warm = |clients: &Vec<reqwest::Client>, url: String, body: Option<serde_json::Value>| {
        let calls: Vec<_> = clients
            .iter()
            .map(|c| {
                let (c, url, body) = (c.clone(), url.clone(), body.clone());
                async move { call(&c, &url, body.as_ref()).await }
            })
            .collect();
        futures::future::join_all(calls)
    };
    warm(&agent_clients, checkin_url.clone(), Some(body.clone())).await;
    warm(&bare_clients, format!("{bare}/"), None).await;

    if enabled("keepalive") {
        let few = n.min(32);
        let url = format!("{bare}/");
        let (bare_ka, bare_ka_cpu) = cpu::during(phase(few * per_agent, few, |i| {
            call(&bare_clients[i % few], &url, None)
        }))
        .await;
        let (checkins, checkins_cpu) = cpu::during(phase(few * per_agent, few, |i| {
            call(&agent_clients[i % few], &checkin_url, Some(&body))
        }))
        .await;
        // Diagnostic: the service's HTTP stack alone (routing, middleware, metrics) on the
        // same kept-alive mTLS connections, to separate HTTP-layer overhead from domain work.
        let url = format!("{}/healthz", h.url);
        let (stack, stack_cpu) = cpu::during(phase(few * per_agent, few, |i| {
            call(&agent_clients[i % few], &url, None)
        }))
        .await;
        println!();
        println!(
            "{}",
            bare_ka.line(&format!("bare: kept-alive empty 200 ({few} conns)"))
        );
        println!(
            "{}",
            checkins.line(&format!("check-ins kept-alive mTLS ({few} agents)"))
        );
        ratio("check-ins / bare kept-alive", &checkins, &bare_ka);
        cpu_ratio(
            "check-ins vs bare kept-alive",
            (&checkins, checkins_cpu),
            (&bare_ka, bare_ka_cpu),
        );
        println!(
            "{}",
            stack.line(&format!(
                "diagnostic: GET /healthz kept-alive ({few} conns)"
            ))
        );
        ratio("service http stack / bare kept-alive", &stack, &bare_ka);
        cpu_ratio(
            "GET /healthz vs bare kept-alive",
            (&stack, stack_cpu),
            (&bare_ka, bare_ka_cpu),
        );
    }

    if enabled("burst") {
        let started = Instant::now();
        let lean = |addr| {
            let ca = h.ca_pem.clone();
            let ids: Vec<_> = identities
                .iter()
                .map(|(r, d)| (r.certificate.clone(), d.key_pem.clone()))
                .collect();
            async move {
                let mut conns = Vec::with_capacity(ids.len());
                for (cert, key) in ids {
                    let cfg = siteboot_registration::tls::client_config(&ca, Some((&cert, &key)))
                        .expect("client tls");
                    conns.push(
                        burst::Lean::connect(addr, Arc::new(cfg))
                            .await
                            .expect("connect"),
                    );
                }
                conns
            }
        };
        let checkin = burst::request(
            "POST",
            "/v1/checkin",
            h.handle.local_addr(),
            Some(&serde_json::to_vec(&body).unwrap()),
        );
        let empty = burst::request("GET", "/", bare_addr, None);
        let warm_lean = |mut conns: Vec<burst::Lean>, req: Vec<u8>| async move {
            for c in conns.iter_mut() {
                let r = c.call(&req).await.expect("warm-up call");
                assert_eq!(
                    r.status,
                    200,
                    "warm-up: {}",
                    String::from_utf8_lossy(&r.body)
                );
            }
            conns
        };
        let svc_conns = warm_lean(lean(h.handle.local_addr()).await, checkin.clone()).await;
        let bare_conns = warm_lean(lean(bare_addr).await, empty.clone()).await;
        let setup = started.elapsed();
        let bare_burst = burst::run(bare_conns, empty, rounds, |b| b.is_empty()).await;
        let svc_burst = burst::run(svc_conns, checkin, rounds, |b| {
            serde_json::from_slice::<CheckinResponse>(b)
                .is_ok_and(|r| r.assignment.site_id.starts_with("site-"))
        })
        .await;
        println!();
        println!("same instant: {n} agents on kept-alive mTLS send one request each at one instant, {rounds} rounds (setup {:.1} s)", setup.as_secs_f64());
        for (name, b) in [("bare: empty 200", &bare_burst), ("check-ins", &svc_burst)] {
            println!(
                "{}",
                b.from_instant.line(&format!("{name}, from the instant"))
            );
            println!(
                "{:<46} p50 {:>7.2} ms  p99 {:>7.2} ms; worst round p99 {:.2} ms; last request written {:.2} ms after the instant",
                format!("{name}, from its own write"),
                b.own.ms(0.5),
                b.own.ms(0.99),
                b.worst_round_p99.as_secs_f64() * 1e3,
                b.send_spread.as_secs_f64() * 1e3
            );
        }
        println!(
            "  check-in p99 with {n} agents at the same instant: {:.2} ms (bare {:.2} ms)",
            svc_burst.from_instant.ms(0.99),
            bare_burst.from_instant.ms(0.99)
        );
    }

    if enabled("paced") {
        // All agents connected, paced (open loop) at fixed aggregate rates: what an agent
        // sees when the fleet checks in steadily rather than all in the same instant. The
        // sweep finds the highest rate at which the check-in p99 stays under 20 ms.
        println!();
        let mut within = None;
        for rate in rates.iter().copied() {
            // About two seconds per rate, at least four check-ins per agent.
            let rounds_at = ((rate * 2.0) / n.max(1) as f64).ceil().max(4.0) as usize;
            let paced = paced_phase(
                &agent_clients,
                checkin_url.clone(),
                Some(body.clone()),
                rate,
                rounds_at,
            )
            .await;
            let bare_paced =
                paced_phase(&bare_clients, format!("{bare}/"), None, rate, rounds_at).await;
            println!(
                "{}",
                bare_paced.line(&format!("bare: paced {rate:.0}/s over {n} conns"))
            );
            println!(
                "{}",
                paced.line(&format!("check-ins paced {rate:.0}/s over {n} agents"))
            );
            if paced.failed == 0 && paced.ms(0.99) < 20.0 {
                within = Some((rate, paced.ms(0.99), paced.rate()));
            }
        }
        match within {
            Some((rate, p99, achieved)) => println!(
                "  check-in p99 < 20 ms with {n} agents up to {rate:.0} check-ins/s offered ({achieved:.0}/s achieved, p99 {p99:.2} ms)"
            ),
            None => println!("  check-in p99 >= 20 ms at every offered rate"),
        }
    }
    let _ = h.handle.shutdown().await;
}
