//! Cost of the fleet view at fleet scale. Prints figures; asserts nothing.
//!
//! ```text
//! RUST_LOG=error cargo run --release -p siteboot-registration --example fleet_view -- [--sites N] [--rounds N]
//! ```
//!
//! Builds an inventory of N sites (default 10,000) on SQLite in a temp dir, registers a
//! device at 90% of them and checks each in once (a state change, written through; a
//! tenth of them again as a coalesced heartbeat held in memory), mints tokens for 5% of
//! the rest, then times `Registry::fleet` (unfiltered, and filtered by region and by
//! state), `Registry::site_detail`, and the encode of the unfiltered answer to JSON.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{TimeDelta, Utc};
use siteboot_registration::inventory::InventoryHandle;
use siteboot_registration::registry::{RegisterOutcome, Registry, RegistryConfig};
use siteboot_registration::store::sqlite::SqliteStore;
use siteboot_registration::store::Store;
use siteboot_registration::testkit::inventory_yaml;
use siteboot_wire::api::{AgentState, CheckinRequest, Credential, RegisterRequest};
use siteboot_wire::fleet::{FleetQuery, SiteState};
use siteboot_wire::operator::MintTokenRequest;
use siteboot_wire::DeviceFacts;

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn report(name: &str, mut times: Vec<Duration>) {
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "  {name:<34} median {:>8.2} ms   max {:>8.2} ms   ({} rounds)",
        ms(times[times.len() / 2]),
        ms(times[times.len() - 1]),
        times.len()
    );
}

async fn setup(r: &Registry, sites: usize) -> anyhow::Result<()> {
    let now = Utc::now() - TimeDelta::seconds(30);
    let mut tasks = tokio::task::JoinSet::new();
    for chunk in (0..sites).collect::<Vec<_>>().chunks(sites.div_ceil(32)) {
        let r = r.clone();
        let chunk = chunk.to_vec();
        tasks.spawn(async move {
            for i in chunk {
                let site = format!("site-{i:03}");
                if i % 10 == 9 {
                    if i % 20 == 19 {
                        let mint = MintTokenRequest {
                            site_id: site,
                            machine: None,
                            ttl_seconds: None,
                        };
                        r.mint_token(&mint, now).await?;
                    }
                    continue;
                }
                let mint = MintTokenRequest {
                    site_id: site.clone(),
                    machine: None,
                    ttl_seconds: None,
                };
                let t = r.mint_token(&mint, now).await?;
                let req = RegisterRequest {
                    credential: Credential::Token { token: t.token },
                    csr: String::new(),
                    facts: DeviceFacts {
                        serial: format!("SN-{i:03}"),
                        ..Default::default()
                    },
                };
                let RegisterOutcome::Registered { device_id, .. } = r.register(&req, now).await?
                else {
                    anyhow::bail!("site-{i:03} did not register");
                };
                let state = if i % 50 == 0 {
                    AgentState::Failed
                } else {
                    AgentState::Ready
                };
                let ci = CheckinRequest {
                    applied_revision: Some("0123abcd".into()),
                    attempted_revision: Some("0123abcd".into()),
                    state,
                    error: None,
                    health: Default::default(),
                    offline_periods: vec![],
                    facts: None,
                    attempts: Vec::new(),
                };
                r.checkin(&site, &device_id, &ci, now).await?;
                if i % 10 == 0 {
                    r.checkin(&site, &device_id, &ci, now + TimeDelta::seconds(20))
                        .await?;
                }
            }
            anyhow::Ok(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    Ok(())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let sites = arg("--sites", 10_000);
    let rounds = arg("--rounds", 20).max(1);
    let dir = tempfile::tempdir()?;
    let inv = dir.path().join("inventory.yaml");
    std::fs::write(&inv, inventory_yaml(sites))?;
    let store = Arc::new(SqliteStore::open(dir.path().join("registry.db"))?);
    let r = Registry::new(
        store as Arc<dyn Store>,
        InventoryHandle::load(&inv)?,
        RegistryConfig::default(),
    );
    let started = Instant::now();
    setup(&r, sites).await?;
    println!(
        "fleet view: {sites} sites, set up in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let all = r.fleet(&FleetQuery::default(), Utc::now()).await?;
    let counts: Vec<String> = SiteState::ALL
        .iter()
        .map(|s| format!("{s} {}", all.counts.total[s]))
        .collect();
    println!("  states: {}", counts.join(", "));
    let queries = [
        ("fleet() unfiltered", FleetQuery::default()),
        (
            "fleet(region=eu-west)",
            FleetQuery {
                region: Some("eu-west".into()),
                ..Default::default()
            },
        ),
        (
            "fleet(state=failed)",
            FleetQuery {
                state: Some(SiteState::Failed),
                ..Default::default()
            },
        ),
    ];
    for (name, q) in queries {
        let mut times = Vec::new();
        for _ in 0..rounds {
            let t = Instant::now();
            std::hint::black_box(r.fleet(&q, Utc::now()).await?);
            times.push(t.elapsed());
        }
        report(name, times);
    }
    let mut times = Vec::new();
    for i in 0..rounds {
        let t = Instant::now();
        let id = format!("site-{:03}", (i * 7919) % sites);
        std::hint::black_box(r.site_detail(&id, Utc::now()).await?);
        times.push(t.elapsed());
    }
    report("site_detail()", times);
    let mut times = Vec::new();
    let mut bytes = 0;
    for _ in 0..rounds {
        let t = Instant::now();
        bytes = serde_json::to_vec(&all)?.len();
        times.push(t.elapsed());
    }
    report(&format!("encode unfiltered ({} KiB)", bytes / 1024), times);
    Ok(())
}
