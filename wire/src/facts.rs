//! What a device says about itself when it registers and checks in.

use serde::{Deserialize, Serialize};

/// Hardware and OS facts gathered on the box.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeviceFacts {
    /// DMI system serial number (`/sys/class/dmi/id/product_serial`).
    pub serial: String,
    /// MAC addresses of physical interfaces, lower-case `aa:bb:cc:dd:ee:ff`.
    #[serde(default)]
    pub macs: Vec<String>,
    /// SHA-256 (hex) of the TPM endorsement key, when the box has a TPM.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tpm_ek_sha256: Option<String>,
    /// Hostname at registration time.
    #[serde(default)]
    pub hostname: String,
    /// CPU architecture (`x86_64`, `aarch64`).
    #[serde(default)]
    pub arch: String,
    /// OS name and version (`Debian GNU/Linux 12 (bookworm)`).
    #[serde(default)]
    pub os: String,
}

/// Why facts are unacceptable; `field` names the JSON field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct FactsError {
    /// JSON path of the offending field, e.g. `facts.macs[1]`.
    pub field: String,
    /// What is wrong and what to send instead.
    pub reason: String,
}

impl DeviceFacts {
    /// Validates sizes and formats so that stores and logs only ever see sane values.
    pub fn validate(&self) -> Result<(), FactsError> {
        let err = |field: String, reason: &str| {
            Err(FactsError {
                field,
                reason: reason.into(),
            })
        };
        let printable = |s: &str| !s.chars().any(|c| c.is_control());
        if self.serial.trim().is_empty() || self.serial.len() > 128 || !printable(&self.serial) {
            return err("facts.serial".into(), "must be 1-128 printable characters");
        }
        if self.macs.len() > 64 {
            return err("facts.macs".into(), "at most 64 MAC addresses");
        }
        for (i, mac) in self.macs.iter().enumerate() {
            if !is_mac(mac) {
                return err(
                    format!("facts.macs[{i}]"),
                    "must look like aa:bb:cc:dd:ee:ff",
                );
            }
        }
        if let Some(ek) = &self.tpm_ek_sha256 {
            if ek.len() != 64 || !ek.chars().all(|c| c.is_ascii_hexdigit()) {
                return err("facts.tpmEkSha256".into(), "must be 64 hex characters");
            }
        }
        for (field, value) in [
            ("hostname", &self.hostname),
            ("arch", &self.arch),
            ("os", &self.os),
        ] {
            if value.len() > 255 || !printable(value) {
                return err(
                    format!("facts.{field}"),
                    "must be at most 255 printable characters",
                );
            }
        }
        Ok(())
    }
}

fn is_mac(s: &str) -> bool {
    let parts: Vec<&str> = s.split(':').collect();
    parts.len() == 6
        && parts
            .iter()
            .all(|p| p.len() == 2 && p.chars().all(|c| c.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok() -> DeviceFacts {
        DeviceFacts {
            serial: "SN-0001".into(),
            macs: vec!["52:54:00:12:34:56".into()],
            tpm_ek_sha256: None,
            hostname: "box".into(),
            arch: "x86_64".into(),
            os: "Debian GNU/Linux 12".into(),
        }
    }

    #[test]
    fn validation_table() {
        assert!(ok().validate().is_ok());
        let cases: Vec<(DeviceFacts, &str)> = vec![
            (
                DeviceFacts {
                    serial: " ".into(),
                    ..ok()
                },
                "facts.serial",
            ),
            (
                DeviceFacts {
                    serial: "a\nb".into(),
                    ..ok()
                },
                "facts.serial",
            ),
            (
                DeviceFacts {
                    macs: vec!["52:54:00:12:34".into()],
                    ..ok()
                },
                "facts.macs[0]",
            ),
            (
                DeviceFacts {
                    tpm_ek_sha256: Some("zz".into()),
                    ..ok()
                },
                "facts.tpmEkSha256",
            ),
            (
                DeviceFacts {
                    hostname: "x".repeat(300),
                    ..ok()
                },
                "facts.hostname",
            ),
        ];
        for (facts, field) in cases {
            assert_eq!(facts.validate().unwrap_err().field, field);
        }
    }
}
