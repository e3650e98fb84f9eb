//! Journey 4, the reconnect storm, shared by `tests/reconnect_storm.rs` (2,000 agents) and
//! `examples/storm.rs` (the 10,000-agent benchmark).
//!
//! The scenario, against the real `siteboot-registration` binary (a process, SQLite in its
//! data directory) and simulated agents built from the agent crate ([`agent`]):
//!
//! 1. **First boot.** An inventory of N sites; half the boxes carry a one-time token
//!    minted through the operator API, half the factory batch credential with their
//!    serial pre-assigned. All but the newcomers power on at uniformly random times
//!    within a window, register and check in. Each has its own source address.
//! 2. **Power cut.** The hub is SIGKILLed (no drain, no heartbeat flush) and restarted
//!    at once on the same port and data; every box loses its connection. Every
//!    registered box comes back at a uniformly random time within the reconnect window
//!    and checks in until it succeeds; in the same window the newcomers (tokens minted
//!    before the cut, half of them factory boxes) register for the first time from behind
//!    shared NAT addresses, so the per-address rate limit answers 429s that they must
//!    honour.
//! 3. **Verdict** ([`StormReport::problems`]): every box registered and checked in after
//!    the restart, no 5xx and no other 4xx seen by any box, every 429 carried a
//!    `Retry-After` that the box waited out, the hub healthy and stopping cleanly, and
//!    the store holding exactly N active devices, one per site, each seen since the cut.

pub mod agent;
pub mod hub;
pub mod report;
pub mod stats;

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::{DateTime, Utc};
use siteboot_agent::backoff::unit;
use siteboot_agent::client::{CallRecord, ServiceClient};
use siteboot_wire::api::{PATH_CHECKIN, PATH_REGISTER};
use siteboot_wire::operator::DeviceStatus;
use tokio::task::JoinSet;

use crate::process::TestRun;
use agent::{nat_address, own_address, Credential, SimAgent};
use hub::{vm_hwm_kib, Hub, BATCH};
use stats::{ok_latencies, percentile, retry_waits, Counts};

pub use report::{PhaseReport, StormReport};

/// Knobs of one storm.
#[derive(Debug, Clone)]
pub struct StormConfig {
    /// Sites, and boxes (one per site).
    pub agents: usize,
    /// Boxes that register for the first time during the reconnect window.
    pub newcomers: usize,
    /// Newcomers sharing one source address (a carrier NAT).
    pub nat_group: usize,
    /// First boots are spread over this window.
    pub register_window: Duration,
    /// After the cut, every box comes back within this window.
    pub reconnect_window: Duration,
    /// A phase not finished this long after it started fails the run.
    pub deadline: Duration,
    /// `RUST_LOG` of the hub.
    pub log_level: String,
    /// Boxes keep their kept-alive connection open after checking in, as a running agent
    /// does between check-ins (`false`: closed at once; a diagnostic for the hub's
    /// per-connection memory).
    pub hold_connections: bool,
}

impl StormConfig {
    /// Defaults for `agents` boxes: 10% newcomers, 200 per NAT address, 10 s windows.
    pub fn new(agents: usize) -> StormConfig {
        StormConfig {
            agents,
            newcomers: agents / 10,
            nat_group: 200,
            register_window: Duration::from_secs(10),
            reconnect_window: Duration::from_secs(10),
            deadline: Duration::from_secs(300),
            log_level: "info".into(),
            hold_connections: true,
        }
    }
}

/// Site id of box `i`.
pub fn site_id(i: usize) -> String {
    format!("storm-{i:05}")
}

/// Serial of box `i`.
pub fn serial(i: usize) -> String {
    format!("SN-STORM-{i:05}")
}

/// Box `i` is a factory box (enrollment) when odd, a CAPI-provisioned box (token) when even.
pub fn is_factory(i: usize) -> bool {
    i % 2 == 1
}

/// The inventory: `n` sites over four regions and two rings; factory boxes' serials are
/// pre-assigned.
pub fn inventory_yaml(n: usize) -> String {
    let mut y = String::from(
        "apiVersion: siteboot.io/v1alpha1\nkind: Inventory\ngit:\n  url: https://git.example.com/fleet.git\n  rings:\n    canary: {branch: canary}\n    broad: {branch: main}\nsites:\n",
    );
    for i in 0..n {
        let region = ["eu-west", "eu-central", "us-east", "us-west"][i % 4];
        let ring = if i % 10 == 0 { "canary" } else { "broad" };
        y.push_str(&format!(
            "  - id: {}\n    region: {region}\n    ring: {ring}\n    country: DE\n",
            site_id(i)
        ));
        if is_factory(i) {
            y.push_str(&format!("    expectedSerials: [{}]\n", serial(i)));
        }
    }
    y
}

/// Boxes that finished a phase, holding their connections open until the phase is over.
struct PhaseRun {
    done: Vec<(usize, Instant)>,
    failed: Vec<(usize, String)>,
    clients: Vec<ServiceClient>,
}

/// Boots `which` boxes at uniformly random times in `[start, start + window)`.
fn launch(
    agents: &[Arc<SimAgent>],
    which: &[usize],
    start: Instant,
    window: Duration,
) -> JoinSet<(usize, Instant, Result<ServiceClient, String>)> {
    let mut set = JoinSet::new();
    for &i in which {
        let a = agents[i].clone();
        let at = start + window.mul_f64(unit());
        set.spawn(async move {
            tokio::time::sleep_until(at.into()).await;
            let r = a.boot().await.map_err(|e| format!("{e:#}"));
            (i, Instant::now(), r)
        });
    }
    set
}

/// Collects a launched phase until every box is done or `deadline` passes.
async fn collect(
    mut set: JoinSet<(usize, Instant, Result<ServiceClient, String>)>,
    which: &[usize],
    deadline: Instant,
    hold: bool,
) -> PhaseRun {
    let mut run = PhaseRun {
        done: Vec::new(),
        failed: Vec::new(),
        clients: Vec::new(),
    };
    loop {
        match tokio::time::timeout_at(deadline.into(), set.join_next()).await {
            Ok(Some(Ok((i, at, Ok(client))))) => {
                run.done.push((i, at));
                if hold {
                    run.clients.push(client);
                }
            }
            Ok(Some(Ok((i, _, Err(e))))) => run.failed.push((i, e)),
            Ok(Some(Err(e))) => run.failed.push((usize::MAX, format!("task failed: {e}"))),
            Ok(None) => break,
            Err(_) => {
                set.abort_all();
                break;
            }
        }
    }
    let finished: BTreeSet<usize> = run
        .done
        .iter()
        .map(|d| d.0)
        .chain(run.failed.iter().map(|f| f.0))
        .collect();
    for &i in which {
        if !finished.contains(&i) {
            run.failed
                .push((i, "still not checked in at the deadline".into()));
        }
    }
    run
}

fn phase_report(
    name: &'static str,
    run: &PhaseRun,
    agents: usize,
    calls: &[Vec<CallRecord>],
    start: Instant,
    end: Instant,
) -> PhaseReport {
    let all = || calls.iter().flatten();
    let pair = |v: Vec<Duration>| Some((percentile(&v, 0.5)?, percentile(&v, 0.99)?));
    let waits: Vec<stats::RetryWait> = calls
        .iter()
        .flat_map(|c| {
            let in_phase: Vec<CallRecord> = c
                .iter()
                .filter(|r| r.started >= start && r.started < end)
                .cloned()
                .collect();
            retry_waits(&in_phase)
        })
        .collect();
    let unhonoured = waits.iter().filter(|w| !w.honoured()).count();
    let waited: Vec<Duration> = waits.iter().filter_map(|w| w.waited).collect();
    let asked = waits.iter().filter_map(|w| w.asked).max();
    let wait_summary = (|| Some((asked?, percentile(&waited, 0.0)?, percentile(&waited, 0.5)?)))();
    PhaseReport {
        name,
        agents,
        completion: run
            .done
            .iter()
            .map(|d| d.1.saturating_duration_since(start))
            .max()
            .unwrap_or_default(),
        groups: Vec::new(),
        counts: Counts::of(all(), start, end),
        register: pair(ok_latencies(all(), PATH_REGISTER, start, end)),
        checkin: pair(ok_latencies(all(), PATH_CHECKIN, start, end)),
        unhonoured,
        waits: wait_summary,
        failed: run.failed.clone(),
        hub_ready_after: None,
    }
}

/// Runs the whole storm (see the module docs) and reports; fails only when the harness
/// itself cannot run (a violated expectation is a [`StormReport::problems`] entry).
pub async fn run(run: &TestRun, cfg: &StormConfig) -> anyhow::Result<StormReport> {
    let n = cfg.agents;
    let newcomers = cfg.newcomers.min(n);
    let mut hub = Hub::prepare(run, &inventory_yaml(n), &cfg.log_level).await?;
    hub.spawn(run)?;
    hub.wait_ready(run).await?;
    // Agents' data directories hold nothing the report needs; tmpfs keeps 2 x N fsyncs
    // per phase from stalling the load generator's runtime threads.
    let root = tempfile::Builder::new()
        .prefix("siteboot-storm-")
        .tempdir_in(if std::path::Path::new("/dev/shm").is_dir() {
            "/dev/shm"
        } else {
            "/tmp"
        })
        .context("create the agents' root directory")?;
    let tokens = mint_tokens(&hub, n).await?;
    for (k, t) in tokens.values().take(20).enumerate() {
        run.register_secret(&format!("token {k}"), t);
    }
    let first_time = n - newcomers;
    let mut agents = Vec::with_capacity(n);
    for i in 0..n {
        let source = if i < first_time {
            own_address(i)
        } else {
            nat_address((i - first_time) / cfg.nat_group.max(1))
        };
        let credential = match tokens.get(&i) {
            Some(t) => Credential::Token(t.clone()),
            None => Credential::Enrollment,
        };
        let batch = (BATCH, hub.batch_secret_file.as_path());
        agents.push(Arc::new(SimAgent::new(
            i,
            &site_id(i),
            &serial(i),
            source,
            root.path(),
            &hub.url,
            &hub.ca_file,
            batch,
            &credential,
        )?));
    }

    // Phase 1: first boot.
    let which: Vec<usize> = (0..first_time).collect();
    let start1 = Instant::now();
    let set = launch(&agents, &which, start1, cfg.register_window);
    let first = collect(set, &which, start1 + cfg.deadline, cfg.hold_connections).await;
    let end1 = Instant::now();
    let rss1 = hub.peak_rss_kib();
    for a in agents.iter().take(5) {
        if let Ok(pem) = std::fs::read_to_string(a.data_dir().join("identity.pem")) {
            run.register_pem(&format!("identity key of box {}", a.index), &pem);
        }
    }

    // Phase 2: the power cut takes the hub and every box down; all come back.
    hub.kill9()?;
    drop(first.clients);
    let cut = Utc::now();
    let start2 = Instant::now();
    hub.spawn(run)?;
    let which: Vec<usize> = (0..n).collect();
    let set = launch(&agents, &which, start2, cfg.reconnect_window);
    let (ready, second) = tokio::join!(
        async {
            hub.wait_ready(run).await?;
            anyhow::Ok(start2.elapsed())
        },
        collect(set, &which, start2 + cfg.deadline, cfg.hold_connections)
    );
    let ready = ready?;
    let end2 = Instant::now();

    let calls: Vec<Vec<CallRecord>> = agents.iter().map(|a| a.calls.records()).collect();
    let p1 = phase_report(
        "first boot",
        &PhaseRun {
            done: first.done,
            failed: first.failed,
            clients: Vec::new(),
        },
        first_time,
        &calls,
        start1,
        end1,
    );
    let mut p2 = phase_report("reconnect after the cut", &second, n, &calls, start2, end2);
    p2.hub_ready_after = Some(ready);
    let last = |pred: &dyn Fn(usize) -> bool| {
        second
            .done
            .iter()
            .filter(|d| pred(d.0))
            .map(|d| d.1.saturating_duration_since(start2))
            .max()
            .unwrap_or_default()
    };
    p2.groups = vec![
        ("reconnecting", first_time, last(&|i| i < first_time)),
        (
            "first-time behind NAT",
            newcomers,
            last(&|i| i >= first_time),
        ),
    ];
    let rss2 = hub.peak_rss_kib();
    let settled = hub.rss_kib();
    let health = hub.health().await?;
    let store = check_store(&hub, &agents, cut).await?;
    drop(second.clients);
    let clean_stop = hub.terminate().await?;
    Ok(StormReport {
        config: cfg.clone(),
        phases: vec![p1, p2],
        hub_rss_kib: (rss1, rss2),
        hub_rss_settled_kib: settled,
        generator_rss_kib: vm_hwm_kib("/proc/self/status"),
        health,
        active_devices: store.0,
        bound_twice: store.1,
        missing_devices: store.2,
        not_seen_since_cut: store.3,
        clean_stop,
    })
}

/// Tokens for every token box, minted through the operator API (8 at a time).
async fn mint_tokens(hub: &Hub, n: usize) -> anyhow::Result<HashMap<usize, String>> {
    let mut out = HashMap::new();
    let wanted: Vec<usize> = (0..n).filter(|i| !is_factory(*i)).collect();
    for chunk in wanted.chunks(8) {
        let minted = futures::future::try_join_all(
            chunk
                .iter()
                .map(|&i| async move { anyhow::Ok((i, hub.mint_token(&site_id(i)).await?)) }),
        )
        .await?;
        out.extend(minted);
    }
    Ok(out)
}

/// (active devices, bound twice, boxes missing, active devices not seen since `cut`).
async fn check_store(
    hub: &Hub,
    agents: &[Arc<SimAgent>],
    cut: DateTime<Utc>,
) -> anyhow::Result<(usize, usize, usize, usize)> {
    let devices = hub.devices().await?;
    let active: Vec<_> = devices
        .iter()
        .filter(|d| d.status == DeviceStatus::Active)
        .collect();
    let sites: BTreeSet<&str> = active.iter().map(|d| d.site_id.as_str()).collect();
    let serials: BTreeSet<&str> = active.iter().map(|d| d.facts.serial.as_str()).collect();
    let bound_twice = (active.len() - sites.len()) + (active.len() - serials.len());
    let by_id: HashMap<&str, &str> = active
        .iter()
        .map(|d| (d.device_id.as_str(), d.site_id.as_str()))
        .collect();
    let missing = agents
        .iter()
        .filter(|a| match a.record() {
            Some(r) => by_id.get(r.device_id.as_str()) != Some(&a.site_id.as_str()),
            None => true,
        })
        .count();
    let stale = active
        .iter()
        .filter(|d| d.last_seen.is_none_or(|t| t < cut))
        .count();
    Ok((active.len(), bound_twice, missing, stale))
}
