//! The reconnect-storm benchmark: the scenario of `tests/reconnect_storm.rs`
//! (`siteboot_e2e::storm`) at benchmark scale, against the release server binary.
//!
//! ```text
//! cargo run --release -p siteboot-e2e --example storm -- --agents 10000
//! ```
//!
//! Prints the first-boot (registration) and reconnect completion times, throughput, 429
//! count, p50/p99 latencies, the hub's peak RSS (`VmHWM`) before the cut and after the
//! restart, and the load generator's. Exits 1 when an expectation of the scenario fails.
//! Flags: `--agents N` (10000), `--newcomers N` (agents/10), `--nat-group N` (200),
//! `--register-window S` (10), `--reconnect-window S` (10), `--deadline S` (900),
//! `--log-level L` (warn), `--no-hold` (boxes close their connection after checking in:
//! shows how much of the hub's RSS is per-connection state). The servers are the binaries of this example's profile
//! (`target/release/`), built first when stale.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use siteboot_e2e::process::TestRun;
use siteboot_e2e::storm::{run, StormConfig};

fn parse(args: &[String]) -> anyhow::Result<StormConfig> {
    let value = |flag: &str| -> anyhow::Result<Option<&String>> {
        match args.iter().position(|a| a == flag) {
            Some(i) => args
                .get(i + 1)
                .map(Some)
                .with_context(|| format!("{flag} needs a value")),
            None => Ok(None),
        }
    };
    let number = |flag: &str| -> anyhow::Result<Option<u64>> {
        value(flag)?
            .map(|v| {
                v.parse::<u64>()
                    .with_context(|| format!("{flag} {v:?}: not a whole number"))
            })
            .transpose()
    };
    for a in args.iter().filter(|a| a.starts_with("--")) {
        let known = [
            "--agents",
            "--no-hold",
            "--newcomers",
            "--nat-group",
            "--register-window",
            "--reconnect-window",
            "--deadline",
            "--log-level",
        ];
        if !known.contains(&a.as_str()) {
            bail!("unknown flag {a}; known: {}", known.join(", "));
        }
    }
    let agents = number("--agents")?.unwrap_or(10_000) as usize;
    if agents == 0 {
        bail!("--agents must be at least 1");
    }
    let mut cfg = StormConfig::new(agents);
    cfg.deadline = Duration::from_secs(900);
    cfg.log_level = "warn".into();
    if let Some(n) = number("--newcomers")? {
        cfg.newcomers = n as usize;
    }
    if let Some(n) = number("--nat-group")? {
        cfg.nat_group = (n as usize).max(1);
    }
    for (flag, slot) in [
        ("--register-window", &mut cfg.register_window),
        ("--reconnect-window", &mut cfg.reconnect_window),
        ("--deadline", &mut cfg.deadline),
    ] {
        if let Some(s) = number(flag)? {
            *slot = Duration::from_secs(s);
        }
    }
    cfg.hold_connections = !args.iter().any(|a| a == "--no-hold");
    if let Some(l) = value("--log-level")? {
        cfg.log_level = l.clone();
    }
    Ok(cfg)
}

/// Servers come from this example's profile directory (`target/<profile>/examples/..`).
fn use_this_profile() {
    if std::env::var_os("SITEBOOT_E2E_BIN_DIR").is_some() {
        return;
    }
    let exe = std::env::current_exe().unwrap_or_default();
    if let Some(profile) = exe
        .parent()
        .filter(|d| d.ends_with("examples"))
        .and_then(|d| d.parent())
    {
        std::env::set_var("SITEBOOT_E2E_BIN_DIR", profile);
    }
}

async fn bench(cfg: StormConfig) -> anyhow::Result<bool> {
    let test = TestRun::new("storm-bench");
    let t0 = Instant::now();
    let report = run(&test, &cfg).await?;
    println!(
        "{report}\nwall time {:.1} s; artifacts in {}",
        t0.elapsed().as_secs_f64(),
        test.dir().display()
    );
    let problems = report.problems();
    for p in &problems {
        eprintln!("FAILED: {p}");
    }
    test.finish();
    Ok(problems.is_empty())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let cfg = match parse(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("storm: {e:#}");
            return ExitCode::from(2);
        }
    };
    use_this_profile();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("storm: start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(bench(cfg)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("storm: {e:#}");
            ExitCode::from(1)
        }
    }
}
