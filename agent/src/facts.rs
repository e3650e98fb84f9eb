//! Device facts gathered on the box: DMI serial, MACs of physical interfaces, hostname,
//! architecture, OS, and the TPM endorsement key hash when a TPM is present.
//!
//! Paths are relative to a root (`/` in production) so tests can point at a fake tree.

use std::fs;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use siteboot_wire::DeviceFacts;

/// Where facts are read from.
#[derive(Debug, Clone)]
pub struct FactSources {
    /// Filesystem root (`/`).
    pub root: PathBuf,
    /// Serial override (`--serial` / `SITEBOOT_SERIAL`), for tests and boxes without DMI.
    pub serial_override: Option<String>,
}

/// Why facts could not be gathered.
#[derive(Debug, thiserror::Error)]
pub enum FactsError {
    /// No serial.
    #[error("cannot read the device serial from {0}: set --serial or SITEBOOT_SERIAL")]
    NoSerial(String),
}

impl FactSources {
    /// Production defaults.
    pub fn system(serial_override: Option<String>) -> FactSources {
        FactSources {
            root: PathBuf::from("/"),
            serial_override,
        }
    }

    fn path(&self, p: &str) -> PathBuf {
        self.root.join(p.trim_start_matches('/'))
    }

    /// Gathers the facts.
    pub fn gather(&self) -> Result<DeviceFacts, FactsError> {
        let serial_path = self.path("/sys/class/dmi/id/product_serial");
        let serial = match &self.serial_override {
            Some(s) if !s.trim().is_empty() => s.trim().to_string(),
            _ => read_trimmed(&serial_path)
                .filter(|s| !s.is_empty())
                .ok_or_else(|| FactsError::NoSerial(serial_path.display().to_string()))?,
        };
        Ok(DeviceFacts {
            serial,
            macs: self.macs(),
            tpm_ek_sha256: self.tpm_ek_sha256(),
            hostname: read_trimmed(&self.path("/proc/sys/kernel/hostname"))
                .or_else(|| read_trimmed(&self.path("/etc/hostname")))
                .unwrap_or_default(),
            arch: std::env::consts::ARCH.to_string(),
            os: os_name(&fs::read_to_string(self.path("/etc/os-release")).unwrap_or_default()),
        })
    }

    /// MACs of physical interfaces: `lo` and virtual ones (no `device` link) excluded.
    fn macs(&self) -> Vec<String> {
        let net = self.path("/sys/class/net");
        let mut macs: Vec<String> = fs::read_dir(&net)
            .into_iter()
            .flatten()
            .filter_map(Result::ok)
            .filter(|e| e.file_name() != "lo" && e.path().join("device").exists())
            .filter_map(|e| read_trimmed(&e.path().join("address")))
            .map(|m| m.to_ascii_lowercase())
            .filter(|m| m.len() == 17 && m != "00:00:00:00:00:00")
            .collect();
        macs.sort();
        macs.dedup();
        macs.truncate(64);
        macs
    }

    /// SHA-256 of the EK certificate when a TPM and a readable EK certificate exist.
    fn tpm_ek_sha256(&self) -> Option<String> {
        if !self.path("/sys/class/tpm/tpm0").exists() {
            return None;
        }
        ["/sys/class/tpm/tpm0/device/ek_cert", "/var/lib/tpm/ek.crt"]
            .iter()
            .find_map(|p| fs::read(self.path(p)).ok())
            .filter(|b| !b.is_empty())
            .map(|b| hex::encode(Sha256::digest(b)))
    }
}

fn read_trimmed(p: &Path) -> Option<String> {
    fs::read_to_string(p).ok().map(|s| s.trim().to_string())
}

/// `PRETTY_NAME` (or `NAME VERSION_ID`) from os-release text.
pub fn os_name(os_release: &str) -> String {
    let get = |key: &str| {
        os_release.lines().find_map(|l| {
            l.strip_prefix(key)
                .and_then(|v| v.strip_prefix('='))
                .map(|v| v.trim().trim_matches('"').to_string())
        })
    };
    get("PRETTY_NAME")
        .or_else(|| {
            get("NAME").map(|n| match get("VERSION_ID") {
                Some(v) => format!("{n} {v}"),
                None => n,
            })
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gathers_from_a_fake_root() {
        let tmp = tempfile::tempdir().unwrap();
        let r = tmp.path();
        let w = |p: &str, s: &str| {
            let p = r.join(p);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, s).unwrap();
        };
        w("sys/class/dmi/id/product_serial", "SN-42\n");
        w("sys/class/net/lo/address", "00:00:00:00:00:00\n");
        w("sys/class/net/eth0/address", "52:54:00:AA:BB:01\n");
        fs::create_dir_all(r.join("sys/class/net/eth0/device")).unwrap();
        w("sys/class/net/veth1/address", "52:54:00:aa:bb:02\n");
        w("etc/hostname", "box-1\n");
        w(
            "etc/os-release",
            "NAME=\"Debian GNU/Linux\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n",
        );
        let src = FactSources {
            root: r.to_path_buf(),
            serial_override: None,
        };
        let f = src.gather().unwrap();
        assert_eq!(f.serial, "SN-42");
        assert_eq!(f.macs, vec!["52:54:00:aa:bb:01"]);
        assert_eq!(f.os, "Debian GNU/Linux 12 (bookworm)");
        assert_eq!(f.tpm_ek_sha256, None);
        assert!(f.validate().is_ok());
        w("sys/class/tpm/tpm0/device/ek_cert", "EKCERT");
        let f = FactSources {
            serial_override: Some("OVR".into()),
            ..src
        }
        .gather()
        .unwrap();
        assert_eq!(f.serial, "OVR");
        assert_eq!(f.tpm_ek_sha256.unwrap().len(), 64);
        let none = FactSources {
            root: r.join("nothing"),
            serial_override: None,
        }
        .gather();
        assert!(matches!(none, Err(FactsError::NoSerial(_))));
    }

    #[test]
    fn os_name_table() {
        for (text, want) in [
            ("PRETTY_NAME=\"X 1\"\nNAME=Y\n", "X 1"),
            ("NAME=Alpine\nVERSION_ID=3.20\n", "Alpine 3.20"),
            ("", ""),
        ] {
            assert_eq!(os_name(text), want);
        }
    }
}
