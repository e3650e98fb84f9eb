//! CPU time spent by the server side of this process, read from the kernel's per-thread
//! scheduler statistics (`/proc/self/task/*/schedstat`, nanoseconds on CPU).
//!
//! The load generator shares the process and the two cores, so requests per second alone
//! mix the client's cost into every ratio. Server CPU per request separates them: the
//! service's and the bare server's threads are named (`server*`, plus the store's
//! `siteboot-*` threads) and only those are summed.

use std::time::Duration;

/// Thread-name prefixes that belong to the server side.
const SERVER_THREADS: [&str; 2] = ["server", "siteboot-"];

/// Total CPU time of the server-side threads so far (zero where /proc is unavailable).
pub fn server() -> Duration {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return Duration::ZERO;
    };
    let mut total = 0u64;
    for task in tasks.flatten() {
        let path = task.path();
        let Ok(comm) = std::fs::read_to_string(path.join("comm")) else {
            continue;
        };
        if !SERVER_THREADS.iter().any(|p| comm.starts_with(p)) {
            continue;
        }
        if let Some(ns) = std::fs::read_to_string(path.join("schedstat"))
            .ok()
            .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        {
            total += ns;
        }
    }
    Duration::from_nanos(total)
}

/// Measures the server CPU used while `fut` runs.
pub async fn during<T>(fut: impl std::future::Future<Output = T>) -> (T, Duration) {
    let before = server();
    let out = fut.await;
    (out, server().saturating_sub(before))
}
