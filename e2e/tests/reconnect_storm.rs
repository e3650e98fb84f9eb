//! Journey 4: a reconnect storm of 2,000 simulated agents (the agent crate's own
//! registration and check-in code, each on its own loopback source address) against the
//! real `siteboot-registration` binary, which is SIGKILLed and restarted mid-fleet.
//! Scenario and verdict: `siteboot_e2e::storm`. The figures are printed (run with
//! `--nocapture` to see them); the benchmark variant is `examples/storm.rs`.

use std::time::Instant;

use siteboot_e2e::process::TestRun;
use siteboot_e2e::storm::{run, StormConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_thousand_agents_come_back_after_a_power_cut() -> anyhow::Result<()> {
    let test = TestRun::new("reconnect_storm");
    let cfg = StormConfig::new(2000);
    let t0 = Instant::now();
    let report = run(&test, &cfg).await?;
    println!("{report}\nwall time {:.1} s", t0.elapsed().as_secs_f64());
    let problems = report.problems();
    assert!(
        problems.is_empty(),
        "reconnect storm failed:\n{}\n\n{report}",
        problems.join("\n")
    );
    // Each first-boot box has its own source address, so the per-address limit never
    // throttles them (all 1,800 behind one address would be 429'd at 10/s).
    assert_eq!(report.phases[0].counts.throttled, 0, "{report}");
    // The newcomers share one NAT address: the per-address limit must have answered
    // 429s, or the test did not exercise them.
    assert!(
        report.phases[1].counts.throttled > 0,
        "no 429 was answered: the NAT group did not hit the per-address limit\n{report}"
    );
    test.finish();
    Ok(())
}
