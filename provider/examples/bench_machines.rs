//! Benchmark: N Machines (default 1,000) with their SiteBootstrapConfigs created at once
//! against the in-process Kubernetes API emulator, reconciled by the controller with
//! default settings, minting tokens at an in-process fake of the operator API.
//! Prints the wall time until every config reports `dataSecretCreated`, the process CPU
//! time, and the time spent per render.
//!
//! `cargo run --release -p siteboot-provider --example bench_machines [-- N]`

#[path = "../tests/support/mod.rs"]
mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{stream, StreamExt, TryStreamExt};
use kube::api::ListParams;
use siteboot_provider::controller::{self, Context, Settings};
use siteboot_provider::metrics::Metrics;

/// utime + stime of this process, from /proc/self/stat (clock ticks of 10 ms).
fn process_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // Fields after the command: state is index 0, utime 11, stime 12.
    Duration::from_millis((ticks(11) + ticks(12)) * 10)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let n: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(1000);
    let env = support::Env::start().await?;
    env.cluster("c1", true, false).await?;
    let metrics = Arc::new(Metrics::default());
    let ctx =
        Arc::new(Context::new(env.client.clone(), Settings::default(), metrics.clone()).await);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(controller::run(ctx, async move {
        let _ = stop_rx.await;
    }));

    let cpu0 = process_cpu();
    let started = Instant::now();
    let spec = env.config_spec();
    stream::iter(0..n)
        .map(|i| {
            let env = &env;
            let spec = spec.clone();
            async move {
                let name = format!("edge-{i:05}");
                let m = env.machine(&name, "c1", &name).await?;
                env.config(&name, "c1", Some(&m), spec).await?;
                anyhow::Ok(())
            }
        })
        .buffer_unordered(64)
        .try_collect::<Vec<_>>()
        .await?;
    let created_in = started.elapsed();
    loop {
        let done = env
            .configs()
            .list(&ListParams::default())
            .await?
            .items
            .iter()
            .filter(|c| c.status.as_ref().is_some_and(|s| s.data_secret_created()))
            .count();
        if done == n {
            break;
        }
        if started.elapsed() > Duration::from_secs(1800) {
            anyhow::bail!("only {done}/{n} configs reached dataSecretCreated in 30 min");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let wall = started.elapsed();
    let cpu = process_cpu() - cpu0;
    let (renders, render_time) = metrics.render_totals();
    println!("machines:                 {n}");
    println!(
        "objects created in:       {:.2} s",
        created_in.as_secs_f64()
    );
    println!(
        "all dataSecretCreated in: {:.2} s (wall, from the first create)",
        wall.as_secs_f64()
    );
    println!(
        "throughput:               {:.0} configs/s",
        n as f64 / wall.as_secs_f64()
    );
    println!(
        "renders:                  {renders}, {:.1} us each (time inside render_cloud_init)",
        render_time.as_secs_f64() * 1e6 / renders.max(1) as f64
    );
    println!("process CPU:              {:.2} s total (emulator + fake registration + controller), {:.2} ms per Machine", cpu.as_secs_f64(), cpu.as_secs_f64() * 1e3 / n as f64);
    println!("tokens minted:            {}", env.fake.mint_bodies().len());
    let _ = stop_tx.send(());
    let _ = tokio::time::timeout(Duration::from_secs(30), running).await;
    Ok(())
}
