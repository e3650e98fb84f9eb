//! A claim code from a seed medium, so a field tech types nothing: when the agent has no
//! identity yet, it looks at each configured seed path (default: the NoCloud volumes
//! `/dev/disk/by-label/cidata` and `CIDATA`, then the directory `/run/siteboot/seed`) for
//! `siteboot-claim.yaml`, written by `sitebootctl seed --site S --claim`.
//!
//! A block device or image file is read as ISO 9660 straight off the medium, read-only,
//! without mounting it (`siteboot_wire::iso9660`); a directory (a mounted USB stick) is
//! read as files. Which claim to present is decided purely by [`decide`]:
//!
//! - an explicit `tokenFile`, `claimCode` or `claimCodeFile` wins over any seed;
//! - a usable seed claim wins over the factory `enrollment` credential (the seed is the
//!   tech's intent for this one box; the batch credential is generic);
//! - a claim the service refused before (recorded in `seed-refused.json`) is skipped, so
//!   a used or revoked seed left in the drive never causes a retry loop;
//! - a claim for another site or service, or an expired one, is an error when there is no
//!   other credential, and is skipped with a warning when enrollment can take over.
//!
//! The code is never logged: only the claim id, site and seed path.

use std::fs::File;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use siteboot_wire::api::Credential;
use siteboot_wire::iso9660::{IsoReadError, IsoReader};
use siteboot_wire::seed::{SeedClaim, SeedError, CLAIM_FILE, MAX_CLAIM_FILE};

use crate::config::{CredentialSource, Settings};
use crate::store::{DataDir, StoreError};

/// Where the agent looks for a seed unless `seedPaths` says otherwise.
pub const DEFAULT_SEED_PATHS: [&str; 3] = [
    "/dev/disk/by-label/cidata",
    "/dev/disk/by-label/CIDATA",
    "/run/siteboot/seed",
];

/// Claim ids the service refused, in the data directory.
pub const SEED_REFUSED: &str = "seed-refused.json";

/// A claim file found on a seed.
#[derive(Debug, Clone)]
pub struct FoundSeed {
    /// Where it was read from.
    pub source: PathBuf,
    /// The claim.
    pub claim: SeedClaim,
}

/// What to do with a seed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Present this claim.
    Use(Credential),
    /// Register with the configured credential (or prompt) instead; why, for the log.
    Skip(Option<String>),
    /// Stop: the seed is the only credential and it cannot work.
    Fail(SeedError),
}

/// `seed-refused.json`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Refused {
    claim_ids: Vec<String>,
}

/// Decides, purely, whether to present `found`'s claim (see the module docs).
pub fn decide(
    found: Option<&FoundSeed>,
    refused: &[String],
    settings: &Settings,
    now: DateTime<Utc>,
) -> Decision {
    let fallback = match &settings.credential {
        Some(CredentialSource::TokenFile(_))
        | Some(CredentialSource::ClaimCode(_))
        | Some(CredentialSource::ClaimCodeFile(_)) => return Decision::Skip(None),
        Some(CredentialSource::Enrollment { .. }) => true,
        None => false,
    };
    let Some(found) = found else {
        return Decision::Skip(None);
    };
    let claim = &found.claim;
    if refused
        .iter()
        .any(|id| id.eq_ignore_ascii_case(&claim.claim_id))
    {
        return Decision::Skip(Some(format!(
            "seed claim {} on {} was refused by the service before; ignoring it (remove the seed)",
            claim.claim_id,
            found.source.display()
        )));
    }
    match claim.check(
        now,
        settings.site_id.as_deref(),
        Some(&settings.registration_url),
    ) {
        Ok(code) => Decision::Use(Credential::Claim {
            code: code.to_secret_string(),
        }),
        Err(e) if fallback => Decision::Skip(Some(format!(
            "{e}; registering with the enrollment credential instead"
        ))),
        Err(e) => Decision::Fail(e),
    }
}

/// Looks at `paths` in order and returns the first claim file found. Media that are
/// absent, not ISO 9660, or carry no claim file are skipped (logged at debug or warn).
pub fn find(paths: &[PathBuf]) -> Option<FoundSeed> {
    for path in paths {
        match read_claim(path) {
            Ok(Some(claim)) => {
                return Some(FoundSeed {
                    source: path.clone(),
                    claim,
                })
            }
            Ok(None) => tracing::debug!(seed = %path.display(), "no siteboot claim here"),
            Err(why) => tracing::warn!(seed = %path.display(), "seed unusable: {why}"),
        }
    }
    None
}

/// The claim file at `path` (a directory, an ISO image or a block device), if any.
fn read_claim(path: &Path) -> Result<Option<SeedClaim>, String> {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot stat: {e}")),
    };
    let bytes = if meta.is_dir() {
        let file = path.join(CLAIM_FILE);
        match std::fs::metadata(&file) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("cannot stat {CLAIM_FILE}: {e}")),
            Ok(m) if m.len() > MAX_CLAIM_FILE => {
                return Err(format!(
                    "{CLAIM_FILE} is larger than {MAX_CLAIM_FILE} bytes"
                ))
            }
            Ok(_) => std::fs::read(&file).map_err(|e| format!("cannot read {CLAIM_FILE}: {e}"))?,
        }
    } else {
        let f = File::open(path).map_err(|e| format!("cannot open: {e}"))?;
        let mut iso = match IsoReader::open(f) {
            Ok(r) => r,
            Err(IsoReadError::NotIso) => {
                return Err(
                    "not an ISO 9660 volume (for a FAT stick, mount it at /run/siteboot/seed)"
                        .into(),
                )
            }
            Err(e) => return Err(e.to_string()),
        };
        match iso.read_file(CLAIM_FILE, MAX_CLAIM_FILE) {
            Ok(b) => b,
            // A seed with bootstrap data only: cloud-init's business, not ours.
            Err(IsoReadError::NotFound(_)) => return Ok(None),
            Err(e) => return Err(e.to_string()),
        }
    };
    // The parse error may quote part of the file: name the line only, never the text.
    serde_norway::from_slice::<SeedClaim>(&bytes)
        .map(Some)
        .map_err(|e| match e.location() {
            Some(l) => format!(
                "{CLAIM_FILE} is malformed at line {}: write the seed again",
                l.line()
            ),
            None => format!("{CLAIM_FILE} is malformed: write the seed again"),
        })
}

/// Reads the refused claim ids.
pub fn refused(dir: &DataDir) -> Vec<String> {
    dir.read_json::<Refused>(SEED_REFUSED)
        .ok()
        .flatten()
        .map(|r| r.claim_ids)
        .unwrap_or_default()
}

/// Records that the service refused `claim_id`, so the seed is not presented again.
pub fn remember_refused(dir: &DataDir, claim_id: &str) -> Result<(), StoreError> {
    let mut ids = refused(dir);
    if !ids.iter().any(|i| i == claim_id) {
        ids.push(claim_id.to_string());
    }
    dir.write_json(SEED_REFUSED, &Refused { claim_ids: ids })
}

/// The seed's claim credential and its claim id, when a seed should be used; logs why
/// a seed is skipped. `Err` when the seed is the only credential and cannot work.
pub fn claim_credential(
    dir: &DataDir,
    settings: &Settings,
) -> Result<Option<(Credential, String)>, SeedError> {
    if settings.seed_paths.is_empty()
        || matches!(
            settings.credential,
            Some(CredentialSource::TokenFile(_))
                | Some(CredentialSource::ClaimCode(_))
                | Some(CredentialSource::ClaimCodeFile(_))
        )
    {
        return Ok(None);
    }
    let found = find(&settings.seed_paths);
    match decide(found.as_ref(), &refused(dir), settings, Utc::now()) {
        Decision::Use(credential) => {
            let found = found.expect("Use implies a seed");
            tracing::info!(
                seed = %found.source.display(),
                claim = %found.claim.claim_id,
                site = %found.claim.site_id,
                "registering with the claim code from a seed"
            );
            Ok(Some((credential, found.claim.claim_id)))
        }
        Decision::Skip(Some(why)) => {
            tracing::warn!("{why}");
            Ok(None)
        }
        Decision::Skip(None) => Ok(None),
        Decision::Fail(e) => Err(e),
    }
}

/// While a registration waits for approval: a usable seed claim, if one appeared. Notes
/// why a seed is skipped once per distinct reason (`last_note`), so a seed left in the
/// drive does not flood the log every few seconds.
pub fn while_pending(
    dir: &DataDir,
    settings: &Settings,
    last_note: &mut Option<String>,
) -> Option<(Credential, String)> {
    if settings.seed_paths.is_empty() {
        return None;
    }
    let found = find_quietly(&settings.seed_paths);
    let note = match decide(found.as_ref(), &refused(dir), settings, Utc::now()) {
        Decision::Use(credential) => {
            let found = found?;
            tracing::info!(
                seed = %found.source.display(),
                claim = %found.claim.claim_id,
                site = %found.claim.site_id,
                "a claim seed appeared while waiting for approval; registering with it"
            );
            return Some((credential, found.claim.claim_id));
        }
        Decision::Skip(note) => note,
        Decision::Fail(e) => Some(e.to_string()),
    };
    if note.is_some() && note != *last_note {
        tracing::warn!("{}", note.as_deref().unwrap_or_default());
    }
    *last_note = note;
    None
}

/// [`find`] without per-path logging (called every few seconds while pending).
fn find_quietly(paths: &[PathBuf]) -> Option<FoundSeed> {
    paths.iter().find_map(|path| {
        read_claim(path).ok().flatten().map(|claim| FoundSeed {
            source: path.clone(),
            claim,
        })
    })
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, TimeZone};
    use siteboot_wire::ClaimCode;

    use super::*;
    use crate::config::{resolve, FileConfig};

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 22, 6, 0, 0).unwrap()
    }

    fn seed(site: &str, url: &str, expires: DateTime<Utc>) -> FoundSeed {
        let code = ClaimCode::from_random(&[1, 2, 3, 4, 5]);
        FoundSeed {
            source: "/dev/sr0".into(),
            claim: SeedClaim::new(url, None, None, site, &code, expires),
        }
    }

    fn settings(credential: &str, site: Option<&str>) -> Settings {
        let mut cfg = FileConfig {
            registration_url: Some("https://reg.example:8443".into()),
            ca_file: Some("/ca.pem".into()),
            site_id: site.map(str::to_string),
            ..FileConfig::default()
        };
        match credential {
            "token" => cfg.token_file = Some("/t".into()),
            "claim" => cfg.claim_code_file = Some("/c".into()),
            "enrollment" => {
                cfg.enrollment = Some(crate::config::EnrollmentConfig {
                    batch: Some("b".into()),
                    secret_file: Some("/s".into()),
                })
            }
            _ => {}
        }
        resolve(cfg).unwrap()
    }

    #[test]
    fn decisions() {
        let url = "https://reg.example:8443";
        let good = seed("store-0142", url, now() + Duration::hours(1));
        let expired = seed("store-0142", url, now());
        let other_site = seed("store-0007", url, now() + Duration::hours(1));
        let other_service = seed(
            "store-0142",
            "https://other:8443",
            now() + Duration::hours(1),
        );
        let refused = vec![good.claim.claim_id.clone()];
        let use_ = |d: &Decision| matches!(d, Decision::Use(Credential::Claim { .. }));
        let skip = |d: &Decision| matches!(d, Decision::Skip(_));
        let fail = |d: &Decision| matches!(d, Decision::Fail(_));
        // (what, seed, refused, credential, configured site, expectation)
        type Expect = fn(&Decision) -> bool;
        type Case<'a> = (
            &'a str,
            Option<&'a FoundSeed>,
            &'a [String],
            &'a str,
            Option<&'a str>,
            Expect,
        );
        let cases: Vec<Case> = vec![
            ("no seed", None, &[], "none", None, skip),
            (
                "seed, nothing configured",
                Some(&good),
                &[],
                "none",
                None,
                use_,
            ),
            (
                "seed beats enrollment",
                Some(&good),
                &[],
                "enrollment",
                None,
                use_,
            ),
            (
                "seed for the configured site",
                Some(&good),
                &[],
                "none",
                Some("store-0142"),
                use_,
            ),
            (
                "token file beats a seed",
                Some(&good),
                &[],
                "token",
                None,
                skip,
            ),
            (
                "claim file beats a seed",
                Some(&good),
                &[],
                "claim",
                None,
                skip,
            ),
            ("refused before", Some(&good), &refused, "none", None, skip),
            (
                "expired, no fallback",
                Some(&expired),
                &[],
                "none",
                None,
                fail,
            ),
            (
                "expired, enrollment takes over",
                Some(&expired),
                &[],
                "enrollment",
                None,
                skip,
            ),
            (
                "other site",
                Some(&other_site),
                &[],
                "none",
                Some("store-0142"),
                fail,
            ),
            (
                "other service",
                Some(&other_service),
                &[],
                "none",
                None,
                fail,
            ),
        ];
        for (what, found, refused, cred, site, expect) in cases {
            let d = decide(found, refused, &settings(cred, site), now());
            assert!(expect(&d), "{what}: {d:?}");
        }
    }

    #[test]
    fn the_used_code_is_the_seeds_and_never_printed() {
        let s = seed(
            "store-0142",
            "https://reg.example:8443",
            now() + Duration::hours(1),
        );
        let d = decide(Some(&s), &[], &settings("none", None), now());
        let Decision::Use(Credential::Claim { code }) = &d else {
            panic!("{d:?}")
        };
        assert_eq!(code, &s.claim.claim_code);
        assert!(!format!("{d:?}").contains(s.claim.claim_code.expose()));
    }

    #[test]
    fn reads_claims_from_directories_and_skips_what_is_not_a_seed() {
        let dir = tempfile::tempdir().unwrap();
        let s = seed(
            "store-0142",
            "https://reg.example:8443",
            now() + Duration::hours(1),
        );
        let yaml = serde_norway::to_string(&s.claim).unwrap();
        let mounted = dir.path().join("mounted");
        std::fs::create_dir(&mounted).unwrap();
        std::fs::write(mounted.join(CLAIM_FILE), &yaml).unwrap();
        let empty = dir.path().join("empty");
        std::fs::create_dir(&empty).unwrap();
        let not_iso = dir.path().join("disk.img");
        std::fs::write(&not_iso, vec![0u8; 64 * 1024]).unwrap();
        let broken = dir.path().join("broken");
        std::fs::create_dir(&broken).unwrap();
        std::fs::write(broken.join(CLAIM_FILE), "claimCode: [unterminated").unwrap();
        let paths = vec![
            dir.path().join("absent"),
            empty.clone(),
            not_iso.clone(),
            broken.clone(),
            mounted.clone(),
        ];
        let found = find(&paths).unwrap();
        assert_eq!(found.source, mounted);
        assert_eq!(found.claim, s.claim);
        assert!(find(&paths[..4]).is_none());
        assert!(read_claim(&not_iso)
            .unwrap_err()
            .contains("not an ISO 9660"));
        let err = read_claim(&broken).unwrap_err();
        assert!(err.contains("malformed"), "{err}");
    }

    #[test]
    fn refused_claims_are_remembered() {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::open(dir.path().join("data")).unwrap();
        assert!(refused(&data).is_empty());
        remember_refused(&data, "7KQ2").unwrap();
        remember_refused(&data, "7KQ2").unwrap();
        remember_refused(&data, "AB12").unwrap();
        assert_eq!(refused(&data), ["7KQ2", "AB12"]);
    }
}
