//! Free loopback ports that never collide between tests, threads or test binaries.
//!
//! Every server an e2e test starts (the real binaries, `git daemon`, `sshd`, the Git HTTP
//! server, the Kubernetes emulator) needs a port on `127.0.0.1`. Asking the kernel for
//! port 0 and handing the number to a child process is racy: the number is free when we
//! close our socket, and nothing stops another test, or the kernel itself (for the local
//! side of an outgoing connection), from taking it before the child binds it. This module
//! closes both holes:
//!
//! 1. **Ports come from below the kernel's ephemeral range.** The kernel picks the local
//!    port of outgoing connections from `/proc/sys/net/ipv4/ip_local_port_range`
//!    (`32768-60999` by default). We hand out ports from `[PORT_FLOOR, ephemeral_low)`
//!    (normally `20000-32767`), which the kernel never uses on its own.
//! 2. **Every handed-out port is reserved across processes.** A reservation is an
//!    exclusive, non-blocking `flock(2)` on `<tmp>/siteboot-e2e-ports/<port>.lock`, held
//!    for the rest of the test process. Concurrent test binaries (cargo runs them one
//!    after another, but developers and CI run several `cargo test` at once) skip ports
//!    another live process holds; the kernel drops the lock when a process dies, however
//!    it dies, so there is nothing stale to clean up. Within one process a `Mutex`ed set
//!    does the same for parallel test threads (flock locks are per open file description,
//!    so a second `open` in the same process would not conflict by itself).
//! 3. **A reserved port must also be bindable right now** (something outside the harness
//!    may use it): we bind it once, with `SO_REUSEADDR` as every server here uses, and
//!    close it again before returning.
//!
//! The scan starts at an offset derived from the process id and the clock, so concurrent
//! processes rarely even contend for the same lock file. Reservations are never released
//! while the process runs: a test that restarts a server (crash and recovery journeys)
//! keeps its port, and a process uses a few hundred ports at most out of ~12,000.
//! Set `SITEBOOT_E2E_PORT_LOCK_DIR` to use another lock directory.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use nix::fcntl::{Flock, FlockArg};

/// Lowest port ever handed out (below it live well-known and registered services).
pub const PORT_FLOOR: u16 = 20000;
/// Upper bound used when the ephemeral range cannot be read.
const DEFAULT_EPHEMERAL_LOW: u16 = 32768;

/// Why no port could be reserved.
#[derive(Debug, thiserror::Error)]
pub enum PortError {
    #[error("create port lock directory {path}: {source}")]
    LockDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("no free loopback port in {low}..{high}: every port is locked or in use")]
    Exhausted { low: u16, high: u16 },
}

/// Held locks, by port, for the lifetime of the process.
fn held() -> &'static Mutex<BTreeMap<u16, Flock<File>>> {
    static HELD: OnceLock<Mutex<BTreeMap<u16, Flock<File>>>> = OnceLock::new();
    HELD.get_or_init(|| Mutex::new(BTreeMap::new()))
}

/// The directory holding one lock file per reserved port.
pub fn lock_dir() -> PathBuf {
    std::env::var_os("SITEBOOT_E2E_PORT_LOCK_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("siteboot-e2e-ports"))
}

/// Parses `/proc/sys/net/ipv4/ip_local_port_range` ("32768\t60999") into its low end.
pub fn parse_ephemeral_low(text: &str) -> Option<u16> {
    text.split_whitespace().next()?.parse().ok()
}

/// The half-open range `[low, high)` ports are handed out from.
pub fn port_range() -> (u16, u16) {
    let high = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|t| parse_ephemeral_low(&t))
        .unwrap_or(DEFAULT_EPHEMERAL_LOW);
    // A machine with a lowered ephemeral range still gets a usable window.
    let high = high.max(PORT_FLOOR + 1000);
    (PORT_FLOOR, high)
}

/// The order in which the ports of `[low, high)` are tried: every port exactly once,
/// starting at `seed` modulo the range size.
pub fn scan_order(low: u16, high: u16, seed: u64) -> impl Iterator<Item = u16> {
    let size = u64::from(high - low);
    let start = seed % size;
    (0..size).map(move |i| low + ((start + i) % size) as u16)
}

fn seed() -> u64 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    u64::from(std::process::id()).wrapping_mul(7919) ^ u64::from(nanos)
}

/// Reserves a free loopback port for the rest of this process and returns it.
///
/// The port is free on `127.0.0.1` when returned and no other thread or process using
/// this module will get it; pass it to the server that should bind it.
pub fn free_port() -> Result<u16, PortError> {
    let dir = lock_dir();
    std::fs::create_dir_all(&dir).map_err(|source| PortError::LockDir {
        path: dir.clone(),
        source,
    })?;
    let (low, high) = port_range();
    let mut held = held().lock().unwrap_or_else(|e| e.into_inner());
    for port in scan_order(low, high, seed()) {
        if held.contains_key(&port) {
            continue;
        }
        let Ok(file) = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join(format!("{port}.lock")))
        else {
            continue;
        };
        let Ok(lock) = Flock::lock(file, FlockArg::LockExclusiveNonblock) else {
            continue; // another live process holds this port
        };
        if TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port))).is_err() {
            continue; // in use by something outside the harness
        }
        held.insert(port, lock);
        return Ok(port);
    }
    Err(PortError::Exhausted { low, high })
}

/// Like [`free_port`], panicking with the reason: for tests.
pub fn must_free_port() -> u16 {
    free_port().unwrap_or_else(|e| panic!("reserve a loopback port: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_ephemeral_range() {
        let cases = [
            ("32768\t60999\n", Some(32768)),
            ("1024 65535", Some(1024)),
            ("", None),
            ("garbage", None),
        ];
        for (text, want) in cases {
            assert_eq!(parse_ephemeral_low(text), want, "{text:?}");
        }
    }

    #[test]
    fn scan_order_visits_every_port_once() {
        for seed in [0u64, 1, 9, 10, 12345] {
            let mut seen: Vec<u16> = scan_order(100, 110, seed).collect();
            assert_eq!(seen.len(), 10);
            assert_eq!(seen[0], 100 + (seed % 10) as u16);
            seen.sort();
            assert_eq!(seen, (100..110).collect::<Vec<_>>());
        }
    }

    #[test]
    fn ports_are_distinct_across_threads_and_below_the_ephemeral_range() {
        let (low, high) = port_range();
        let handles: Vec<_> = (0..8)
            .map(|_| std::thread::spawn(|| (0..16).map(|_| must_free_port()).collect::<Vec<_>>()))
            .collect();
        let mut all: Vec<u16> = handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect();
        assert!(all.iter().all(|p| (low..high).contains(p)), "{all:?}");
        let n = all.len();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), n, "a port was handed out twice");
    }

    #[test]
    fn reserved_ports_are_locked_for_other_processes() {
        let port = must_free_port();
        let lock = lock_dir().join(format!("{port}.lock"));
        // util-linux flock(1) in another process cannot take the lock while we hold it.
        let status = std::process::Command::new("flock")
            .args(["--nonblock", "--conflict-exit-code", "42"])
            .arg(&lock)
            .arg("true")
            .status()
            .unwrap();
        assert_eq!(
            status.code(),
            Some(42),
            "another process could lock port {port}"
        );
    }
}
