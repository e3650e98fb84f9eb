//! The claim file a NoCloud seed carries to a replacement box (`siteboot-claim.yaml` in
//! the root of a `cidata` volume), and the fixed NoCloud companions written beside it.
//!
//! `sitebootctl seed --site S --claim` mints a claim code and writes this file; the agent
//! reads it straight off the medium when it has no identity yet. The file names the
//! service (URL, CA pin, optionally the CA bundle), the site, the claim id and expiry, and
//! the code itself: [`SeedClaim::check`] decides, purely, whether a box may present it.
//! The YAML encoding is done at the edges (CLI and agent); this module only owns the shape
//! and the rules.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::claim::ClaimCode;
use crate::labels::is_valid_site_id;
use crate::secret::SecretString;

/// NoCloud volume label (cloud-init also accepts `CIDATA`).
pub const VOLUME_ID: &str = "cidata";
/// File name of the claim in the volume's root directory.
pub const CLAIM_FILE: &str = "siteboot-claim.yaml";
/// `apiVersion` of the claim file.
pub const API_VERSION: &str = "siteboot.io/v1alpha1";
/// `kind` of the claim file.
pub const KIND: &str = "SeedClaim";
/// Largest claim file a reader accepts (a CA bundle fits many times over).
pub const MAX_CLAIM_FILE: u64 = 256 * 1024;

/// The `user-data` of a claim seed: valid cloud-config that changes nothing, so an image
/// running cloud-init boots as it would without the seed (the agent reads the claim file
/// itself; cloud-init never copies the code to disk).
pub const CLAIM_USER_DATA: &str = "#cloud-config\n# siteboot claim seed: the siteboot agent reads siteboot-claim.yaml from this volume.\n# Nothing for cloud-init to do.\n{}\n";

/// `meta-data` naming the NoCloud instance.
pub fn meta_data(instance_id: &str) -> String {
    format!("instance-id: {instance_id}\nlocal-hostname: {instance_id}\n")
}

/// The NoCloud instance id of a claim seed for `site_id` and claim `claim_id`.
pub fn claim_instance_id(site_id: &str, claim_id: &str) -> String {
    format!("{site_id}-claim-{}", claim_id.to_ascii_lowercase())
}

/// `siteboot-claim.yaml`. `Debug` redacts the code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SeedClaim {
    /// [`API_VERSION`].
    pub api_version: String,
    /// [`KIND`].
    pub kind: String,
    /// `https://` URL of the registration service that minted the code.
    pub registration_url: String,
    /// SHA-256 (hex) of the service CA certificate's DER.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_sha256: Option<String>,
    /// PEM bundle of the service CA.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_bundle: Option<String>,
    /// Site the box takes over.
    pub site_id: String,
    /// Public claim id (first four symbols of the code).
    pub claim_id: String,
    /// `XXXX-XXXX-C`.
    pub claim_code: SecretString,
    /// When the code stops working.
    pub expires_at: DateTime<Utc>,
}

/// Why a seed's claim cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SeedError {
    /// Not a claim file this version understands.
    #[error("seed claim file has apiVersion {api_version:?} kind {kind:?}; this agent reads {API_VERSION} {KIND}: write the seed with a matching sitebootctl")]
    Version {
        /// Found `apiVersion`.
        api_version: String,
        /// Found `kind`.
        kind: String,
    },
    /// `registrationUrl` is not an `https://` URL.
    #[error("seed claim registrationUrl {0:?} is not an https:// URL: write the seed again")]
    RegistrationUrl(String),
    /// `caSha256` is not 64 hex characters.
    #[error("seed claim caSha256 is not 64 hex characters: write the seed again")]
    CaPin,
    /// `siteId` is not a valid site id.
    #[error("seed claim siteId {0:?} is not a valid site id: write the seed again")]
    SiteId(String),
    /// The code does not parse or does not match `claimId` (never quoted).
    #[error("seed claim {claim_id}: the claim code is damaged (check symbol or id mismatch): write the seed again")]
    Code {
        /// The claim id the file names.
        claim_id: String,
    },
    /// The code expired.
    #[error("seed claim {claim_id} for site {site_id} expired at {expires_at}: mint a new one with `sitebootctl seed --site {site_id} --claim`")]
    Expired {
        /// Claim id.
        claim_id: String,
        /// Site.
        site_id: String,
        /// Expiry.
        expires_at: DateTime<Utc>,
    },
    /// The box is configured for another site.
    #[error("seed claim {claim_id} is for site {got:?} but this box is configured for site {want:?}: use a seed for {want:?} or remove siteId from the agent config")]
    SiteMismatch {
        /// Claim id.
        claim_id: String,
        /// The box's `siteId`.
        want: String,
        /// The seed's site.
        got: String,
    },
    /// The box is configured for another registration service.
    #[error("seed claim {claim_id} was minted by {got} but this box registers with {want}: write the seed against {want}")]
    ServiceMismatch {
        /// Claim id.
        claim_id: String,
        /// The box's `registrationUrl`.
        want: String,
        /// The seed's URL.
        got: String,
    },
}

impl SeedClaim {
    /// A claim file for `code`, minted by the service at `registration_url` for `site_id`.
    pub fn new(
        registration_url: &str,
        ca_bundle: Option<String>,
        ca_sha256: Option<String>,
        site_id: &str,
        code: &ClaimCode,
        expires_at: DateTime<Utc>,
    ) -> Self {
        Self {
            api_version: API_VERSION.into(),
            kind: KIND.into(),
            registration_url: registration_url.trim_end_matches('/').to_string(),
            ca_sha256,
            ca_bundle,
            site_id: site_id.to_string(),
            claim_id: code.id().to_string(),
            claim_code: code.to_secret_string(),
            expires_at,
        }
    }

    /// Whether a box may present this claim at `now`: well-formed, not expired, for the
    /// box's site (`want_site`, when configured) and service (`want_url`, when
    /// configured). Returns the parsed code.
    pub fn check(
        &self,
        now: DateTime<Utc>,
        want_site: Option<&str>,
        want_url: Option<&str>,
    ) -> Result<ClaimCode, SeedError> {
        if self.api_version != API_VERSION || self.kind != KIND {
            return Err(SeedError::Version {
                api_version: self.api_version.clone(),
                kind: self.kind.clone(),
            });
        }
        let url = self.registration_url.trim_end_matches('/');
        let host = url.strip_prefix("https://").unwrap_or_default();
        if host.is_empty() || host.starts_with('/') || url.chars().any(char::is_whitespace) {
            return Err(SeedError::RegistrationUrl(self.registration_url.clone()));
        }
        if let Some(pin) = &self.ca_sha256 {
            if pin.len() != 64 || !pin.chars().all(|c| c.is_ascii_hexdigit()) {
                return Err(SeedError::CaPin);
            }
        }
        if !is_valid_site_id(&self.site_id) {
            return Err(SeedError::SiteId(self.site_id.clone()));
        }
        let code = ClaimCode::parse(self.claim_code.expose())
            .ok()
            .filter(|c| c.id().eq_ignore_ascii_case(&self.claim_id))
            .ok_or_else(|| SeedError::Code {
                claim_id: self.claim_id.clone(),
            })?;
        if let Some(want) = want_site {
            if want != self.site_id {
                return Err(SeedError::SiteMismatch {
                    claim_id: self.claim_id.clone(),
                    want: want.into(),
                    got: self.site_id.clone(),
                });
            }
        }
        if let Some(want) = want_url {
            let want = want.trim_end_matches('/');
            if !want.eq_ignore_ascii_case(url) {
                return Err(SeedError::ServiceMismatch {
                    claim_id: self.claim_id.clone(),
                    want: want.into(),
                    got: url.into(),
                });
            }
        }
        if self.expires_at <= now {
            return Err(SeedError::Expired {
                claim_id: self.claim_id.clone(),
                site_id: self.site_id.clone(),
                expires_at: self.expires_at,
            });
        }
        Ok(code)
    }
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, TimeZone};

    use super::*;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 22, 5, 0, 0).unwrap()
    }

    fn good() -> SeedClaim {
        let code = ClaimCode::from_random(&[0x3a, 0x91, 0x07, 0xfe, 0x55]);
        SeedClaim::new(
            "https://reg.example:8443/",
            Some("-----BEGIN CERTIFICATE-----\n".into()),
            Some("ab".repeat(32)),
            "store-0142",
            &code,
            now() + Duration::hours(72),
        )
    }

    #[test]
    fn a_good_claim_checks_out_and_serialises_camel_case() {
        let c = good();
        let code = c
            .check(now(), Some("store-0142"), Some("https://reg.example:8443"))
            .unwrap();
        assert_eq!(code.id(), c.claim_id);
        assert_eq!(c.check(now(), None, None).unwrap(), code);
        let json = serde_json::to_value(&c).unwrap();
        assert_eq!(json["registrationUrl"], "https://reg.example:8443");
        assert_eq!(json["claimCode"], c.claim_code.expose());
        let back: SeedClaim = serde_json::from_value(json).unwrap();
        assert_eq!(back, c);
        assert!(!format!("{c:?}").contains(c.claim_code.expose()));
    }

    #[test]
    fn bad_claims_are_refused_with_the_right_reason() {
        type Case = (
            &'static str,
            fn(&mut SeedClaim),
            Option<&'static str>,
            fn(&SeedError) -> bool,
        );
        let cases: Vec<Case> = vec![
            (
                "version",
                |c| c.api_version = "v9".into(),
                None,
                |e| matches!(e, SeedError::Version { .. }),
            ),
            (
                "kind",
                |c| c.kind = "Other".into(),
                None,
                |e| matches!(e, SeedError::Version { .. }),
            ),
            (
                "http url",
                |c| c.registration_url = "http://x".into(),
                None,
                |e| matches!(e, SeedError::RegistrationUrl(_)),
            ),
            (
                "no host",
                |c| c.registration_url = "https://".into(),
                None,
                |e| matches!(e, SeedError::RegistrationUrl(_)),
            ),
            (
                "pin",
                |c| c.ca_sha256 = Some("abc".into()),
                None,
                |e| *e == SeedError::CaPin,
            ),
            (
                "site",
                |c| c.site_id = "Store 1".into(),
                None,
                |e| matches!(e, SeedError::SiteId(_)),
            ),
            (
                "typo",
                |c| c.claim_code = SecretString::new("AAAA-AAAA-Z"),
                None,
                |e| matches!(e, SeedError::Code { .. }),
            ),
            (
                "id mismatch",
                |c| c.claim_id = "ZZZZ".into(),
                None,
                |e| matches!(e, SeedError::Code { .. }),
            ),
            (
                "expired",
                |c| c.expires_at = now(),
                None,
                |e| matches!(e, SeedError::Expired { .. }),
            ),
            (
                "other site",
                |_| {},
                Some("store-0007"),
                |e| matches!(e, SeedError::SiteMismatch { .. }),
            ),
            (
                "other service",
                |c| c.registration_url = "https://elsewhere".into(),
                None,
                |e| matches!(e, SeedError::ServiceMismatch { .. }),
            ),
        ];
        for (what, edit, site, want) in cases {
            let mut c = good();
            edit(&mut c);
            let err = c
                .check(
                    now(),
                    site.or(Some("store-0142")),
                    Some("https://reg.example:8443"),
                )
                .unwrap_err();
            assert!(want(&err), "{what}: {err:?}");
            assert!(
                !err.to_string().contains(good().claim_code.expose()),
                "{what}: {err}"
            );
        }
    }

    #[test]
    fn nocloud_companions() {
        assert_eq!(
            claim_instance_id("store-0142", "7KQ2"),
            "store-0142-claim-7kq2"
        );
        assert_eq!(
            meta_data("store-0142-claim-7kq2"),
            "instance-id: store-0142-claim-7kq2\nlocal-hostname: store-0142-claim-7kq2\n"
        );
        assert!(CLAIM_USER_DATA.starts_with("#cloud-config\n"));
    }
}
