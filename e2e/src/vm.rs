//! Real QEMU virtual machines for the first-boot journeys (issue 7): the appliance images
//! from `bootstrap-images/`, booted under `-accel tcg` with direct kernel boot, a
//! copy-on-write overlay per VM, the SMBIOS serial set, the serial console captured as a
//! test log, and a restricted user network whose only way out are `guestfwd` ports to
//! the test's loopback services.
//!
//! - [`image`]: builds (or finds cached) images by running `bootstrap-images/build.sh`,
//!   copies and injects enrollment configs.
//! - [`qemu`]: starts and stops one VM ([`qemu::Vm`]).
//! - [`disk`]: reads files from a VM's disk after shutdown (`qemu-img convert`,
//!   `e2fsck`, `debugfs`), without mounting.
//! - [`seed`]: NoCloud `cidata` seed ISOs.
//! - [`serve`]: a loopback HTTP server for the agent download.
//! - [`services`]: the registration service as the guest sees it, the host proxy.
//! - [`proxy`]: an HTTP CONNECT proxy that lets host processes reach the guest-facing
//!   addresses (`10.0.2.100:P`), so one URL serves the guest and the host alike.
//!
//! Only one VM test runs at a time per machine ([`exclusive`]): TCG guests on a loaded
//! 2-core machine would starve each other.

pub mod disk;
pub mod image;
pub mod proxy;
pub mod qemu;
pub mod seed;
pub mod serve;
pub mod services;

use std::fs::{File, OpenOptions};
use std::path::PathBuf;

use nix::fcntl::{Flock, FlockArg};

/// The address the guest uses for every host service (`guestfwd` target).
pub const SERVICE_IP: &str = "10.0.2.100";
/// Guest-side port of the registration service.
pub const REGISTRATION_PORT: u16 = 8443;
/// Guest-side port of the site cluster's API (the emulator standing in for the box's
/// local cluster).
pub const SITE_API_PORT: u16 = 6443;
/// Guest-side port of the agent download server.
pub const DOWNLOAD_PORT: u16 = 8080;
/// Guest-side port of the fleet Git server.
pub const GIT_PORT: u16 = 9080;

/// `http(s)://10.0.2.100:port`: the URL of a service as the guest sees it.
pub fn guest_url(scheme: &str, port: u16) -> String {
    format!("{scheme}://{SERVICE_IP}:{port}")
}

/// Rewrites a loopback URL (`http://127.0.0.1:HOST/...`) to the guest's view of it.
pub fn guest_view(url: &str, guest_port: u16) -> anyhow::Result<String> {
    let mut u = url::Url::parse(url)?;
    u.set_host(Some(SERVICE_IP))?;
    u.set_port(Some(guest_port))
        .map_err(|_| anyhow::anyhow!("{url}: cannot set a port"))?;
    Ok(u.to_string())
}

/// Holds the machine-wide VM lock; dropped at the end of the test.
#[derive(Debug)]
pub struct Exclusive {
    _lock: Flock<File>,
}

/// Waits (blocking) until no other VM test runs on this machine, then holds the lock.
pub fn exclusive() -> anyhow::Result<Exclusive> {
    let dir = image::cache_dir();
    std::fs::create_dir_all(&dir)?;
    let path: PathBuf = dir.join("vm-test.lock");
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)?;
    let lock = Flock::lock(file, FlockArg::LockExclusive)
        .map_err(|(_, e)| anyhow::anyhow!("lock {}: {e}", path.display()))?;
    Ok(Exclusive { _lock: lock })
}

/// A kubeconfig naming the site cluster at `http://10.0.2.100:6443` (no credentials:
/// the emulator has none). Baked into the images as the box's local cluster.
pub fn guest_kubeconfig() -> String {
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: site\n  cluster:\n    server: {}\ncontexts:\n- name: site\n  context:\n    cluster: site\n    user: site\ncurrent-context: site\nusers:\n- name: site\n  user: {{}}\n",
        guest_url("http", SITE_API_PORT)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guest_view_rewrites_host_and_port() {
        let cases = [
            (
                "http://127.0.0.1:20001/fleet.git",
                9080,
                "http://10.0.2.100:9080/fleet.git",
            ),
            ("https://127.0.0.1:31000", 8443, "https://10.0.2.100:8443/"),
        ];
        for (input, port, want) in cases {
            assert_eq!(guest_view(input, port).unwrap(), want, "{input}");
        }
    }

    #[test]
    fn guest_kubeconfig_is_valid_yaml_naming_the_service_ip() {
        let v: serde_norway::Value = serde_norway::from_str(&guest_kubeconfig()).unwrap();
        assert_eq!(
            v["clusters"][0]["cluster"]["server"].as_str(),
            Some("http://10.0.2.100:6443")
        );
    }
}
