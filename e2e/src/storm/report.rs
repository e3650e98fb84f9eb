//! What a storm measured and the verdict: per-phase figures, the hub's and the load
//! generator's peak RSS, what the store holds afterwards, and [`StormReport::problems`],
//! the list of violated expectations (empty when the storm passed).

use std::fmt;
use std::time::Duration;

use super::stats::Counts;
use super::StormConfig;

/// One phase's figures.
#[derive(Debug, Clone)]
pub struct PhaseReport {
    /// What happened.
    pub name: &'static str,
    /// Boxes that had to finish.
    pub agents: usize,
    /// Phase start to the last box's successful check-in.
    pub completion: Duration,
    /// The same per group of boxes: (group, boxes, completion).
    pub groups: Vec<(&'static str, usize, Duration)>,
    /// Calls by outcome.
    pub counts: Counts,
    /// Successful registrations: p50, p99.
    pub register: Option<(Duration, Duration)>,
    /// Successful check-ins: p50, p99.
    pub checkin: Option<(Duration, Duration)>,
    /// 429s not waited out (or without `Retry-After`).
    pub unhonoured: usize,
    /// Over the 429s followed by another call: largest `Retry-After` asked, shortest and
    /// median wait before the next call.
    pub waits: Option<(Duration, Duration, Duration)>,
    /// Boxes that failed or did not finish: (index, reason).
    pub failed: Vec<(usize, String)>,
    /// When the hub listened again, from the phase start (reconnect phase only).
    pub hub_ready_after: Option<Duration>,
}

/// Everything a storm measured and checked.
#[derive(Debug, Clone)]
pub struct StormReport {
    /// The configuration.
    pub config: StormConfig,
    /// First boot, then the reconnect after the cut.
    pub phases: Vec<PhaseReport>,
    /// Hub `VmHWM` before the cut and at the end of the restarted run, KiB.
    pub hub_rss_kib: (Option<u64>, Option<u64>),
    /// Hub `VmRSS` once every box has checked in (connections still open), KiB.
    pub hub_rss_settled_kib: Option<u64>,
    /// Load generator `VmHWM`, KiB.
    pub generator_rss_kib: Option<u64>,
    /// `/healthz`, `/readyz` after the storm.
    pub health: (u16, u16),
    /// Active devices in the store.
    pub active_devices: usize,
    /// Sites with more than one active device, serials bound to more than one site.
    pub bound_twice: usize,
    /// Boxes whose device is not active in the store (or is active under another site).
    pub missing_devices: usize,
    /// Active devices not seen since the cut.
    pub not_seen_since_cut: usize,
    /// The hub exited cleanly on SIGTERM at the end.
    pub clean_stop: bool,
}

impl StormReport {
    /// Every violated expectation, as sentences; empty when the storm passed.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        for p in &self.phases {
            if !p.failed.is_empty() {
                let first: Vec<String> = p
                    .failed
                    .iter()
                    .take(5)
                    .map(|(i, e)| format!("box {i}: {e}"))
                    .collect();
                out.push(format!(
                    "{}: {} of {} boxes did not finish: {}",
                    p.name,
                    p.failed.len(),
                    p.agents,
                    first.join("; ")
                ));
            }
            if p.counts.server_errors > 0 {
                out.push(format!(
                    "{}: boxes saw {} 5xx answers",
                    p.name, p.counts.server_errors
                ));
            }
            if p.counts.client_errors > 0 {
                out.push(format!(
                    "{}: boxes saw {} 4xx answers other than 429",
                    p.name, p.counts.client_errors
                ));
            }
            if p.unhonoured > 0 {
                out.push(format!(
                    "{}: {} 429s lacked Retry-After or were retried sooner",
                    p.name, p.unhonoured
                ));
            }
        }
        if self.health != (200, 200) {
            out.push(format!(
                "hub unhealthy after the storm: /healthz {} /readyz {}",
                self.health.0, self.health.1
            ));
        }
        let n = self.config.agents;
        if self.active_devices != n {
            out.push(format!(
                "store holds {} active devices, expected {n}",
                self.active_devices
            ));
        }
        for (count, what) in [
            (self.bound_twice, "sites or serials bound twice"),
            (
                self.missing_devices,
                "boxes whose device is not active for their site",
            ),
            (
                self.not_seen_since_cut,
                "active devices not seen since the cut",
            ),
        ] {
            if count > 0 {
                out.push(format!("{count} {what}"));
            }
        }
        if !self.clean_stop {
            out.push("hub did not stop cleanly on SIGTERM".into());
        }
        out
    }
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn mib(k: Option<u64>) -> String {
    k.map_or("n/a".into(), |k| format!("{:.1} MiB", k as f64 / 1024.0))
}

impl fmt::Display for StormReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.config;
        writeln!(
            f,
            "storm: {} boxes ({} first-time during the reconnect, {} per NAT address); windows: first boot {:?}, reconnect {:?}; {}",
            c.agents,
            c.newcomers,
            c.nat_group,
            c.register_window,
            c.reconnect_window,
            if c.hold_connections {
                "boxes keep their connection open"
            } else {
                "boxes close their connection after checking in"
            }
        )?;
        for p in &self.phases {
            let secs = p.completion.as_secs_f64();
            write!(
                f,
                "{}: {} boxes done in {:.2} s ({:.0} boxes/s)",
                p.name,
                p.agents - p.failed.len(),
                secs,
                p.agents as f64 / secs.max(1e-9)
            )?;
            if let Some(r) = p.hub_ready_after {
                write!(
                    f,
                    "; hub listening {:.2} s after the restart",
                    r.as_secs_f64()
                )?;
            }
            writeln!(f)?;
            for (g, boxes, d) in &p.groups {
                let secs = d.as_secs_f64();
                writeln!(
                    f,
                    "  {g}: {boxes} boxes done in {secs:.2} s ({:.0} boxes/s)",
                    *boxes as f64 / secs.max(1e-9)
                )?;
            }
            let k = &p.counts;
            writeln!(
                f,
                "  calls {} (2xx {}, 429 {}, 5xx {}, other 4xx {}, no answer {}); 429s not honoured {}",
                k.calls, k.ok, k.throttled, k.server_errors, k.client_errors, k.unreachable, p.unhonoured
            )?;
            if let Some((asked, shortest, median)) = p.waits {
                writeln!(
                    f,
                    "  after a 429: Retry-After up to {} s; next call after {:.2} s at the soonest, {:.2} s median",
                    asked.as_secs(),
                    shortest.as_secs_f64(),
                    median.as_secs_f64()
                )?;
            }
            for (name, v) in [("register", p.register), ("check-in", p.checkin)] {
                if let Some((p50, p99)) = v {
                    writeln!(f, "  {name} latency p50 {} p99 {}", ms(p50), ms(p99))?;
                }
            }
        }
        writeln!(
            f,
            "hub peak RSS: {} before the cut, {} after the restart ({} once settled); load generator peak RSS {}",
            mib(self.hub_rss_kib.0),
            mib(self.hub_rss_kib.1),
            mib(self.hub_rss_settled_kib),
            mib(self.generator_rss_kib)
        )?;
        write!(
            f,
            "store: {} active devices, {} bound twice, {} boxes missing, {} not seen since the cut; health {}/{}; clean stop {}",
            self.active_devices, self.bound_twice, self.missing_devices, self.not_seen_since_cut, self.health.0, self.health.1, self.clean_stop
        )
    }
}
