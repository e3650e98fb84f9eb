//! `sitebootctl seed`: writes a NoCloud seed, an ISO 9660 volume labelled `cidata` (what
//! `cloud-localds` makes), for a tech to attach to a box as a virtual CD or `dd` onto a
//! USB stick. Two kinds:
//!
//! - **bootstrap data**: `--from-secret FILE` (a CAPI bootstrap data Secret as `kubectl get
//!   secret -o yaml|json` prints it) or `--user-data FILE` becomes `user-data`. NoCloud
//!   carries cloud-config only: Ignition data is refused with what to use instead.
//! - **claim**: `--site S --claim` mints a claim code through the operator API (or
//!   `--claim-code` takes one minted earlier) and writes `siteboot-claim.yaml` (service URL,
//!   CA bundle and pin, site, claim id, code, expiry) beside a `user-data` that changes
//!   nothing, for the agent to read off the medium.
//!
//! The ISO is written with mode 0600 (it holds a one-time secret either way) and never
//! over an existing file unless `--force`. What is printed names the ISO, the site, the
//! claim id and expiry, never the code or the data.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use base64::Engine;
use chrono::{DateTime, Utc};
use clap::Args;
use serde_json::{json, Value};
use siteboot_wire::iso9660::{write_image, IsoFile};
use siteboot_wire::operator::{MintClaimRequest, MintClaimResponse, PATH_CLAIMS};
use siteboot_wire::seed::{self as wire_seed, SeedClaim};
use siteboot_wire::ClaimCode;

use super::args::Cli;
use super::client::{Client, CtlError};
use crate::config::parse_duration;

/// Largest user-data, meta-data or Secret file read (a seed is small).
const MAX_INPUT: u64 = 16 * 1024 * 1024;

/// `sitebootctl seed` flags.
#[derive(Debug, Args)]
pub struct SeedArgs {
    /// Write the seed ISO to this file (mode 0600).
    #[arg(long, value_name = "FILE")]
    pub iso: PathBuf,
    /// Replace an existing file at --iso.
    #[arg(long)]
    pub force: bool,
    /// Claim seed: the site a replacement box takes over.
    #[arg(long, conflicts_with_all = ["from_secret", "user_data"])]
    pub site: Option<String>,
    /// Claim seed: mint a new claim code for --site through the operator API.
    #[arg(long, requires = "site", conflicts_with = "claim_code")]
    pub claim: bool,
    /// Claim seed: a code minted earlier with `claim create` (also $SITEBOOT_CLAIM_CODE,
    /// read only for `--site S` without `--claim`).
    // No clap `env` here: a variable left in a tech's shell after `claim create` would
    // count as the flag and make `--user-data`, `--from-secret` and `--claim` conflict
    // with it (see [`claim_code_of`]).
    #[arg(long, requires_all = ["site", "expires_at"])]
    pub claim_code: Option<String>,
    /// Expiry of --claim-code as `claim create` printed it (RFC 3339).
    #[arg(long, requires = "site", conflicts_with = "claim")]
    pub expires_at: Option<DateTime<Utc>>,
    /// Lifetime of a minted code (e.g. 72h; the service default when absent).
    #[arg(long, value_parser = parse_duration, requires = "claim")]
    pub ttl: Option<std::time::Duration>,
    /// Bootstrap data seed: the CAPI bootstrap data Secret (kubectl get secret -o yaml|json).
    #[arg(long, value_name = "FILE", conflicts_with = "user_data")]
    pub from_secret: Option<PathBuf>,
    /// Bootstrap data seed: raw cloud-config user-data.
    #[arg(long, value_name = "FILE")]
    pub user_data: Option<PathBuf>,
    /// NoCloud meta-data file (default: generated with --instance-id).
    #[arg(long, value_name = "FILE")]
    pub meta_data: Option<PathBuf>,
    /// Instance id for the generated meta-data (default: from the site and claim, or
    /// from the Secret's name).
    #[arg(long, conflicts_with = "meta_data")]
    pub instance_id: Option<String>,
    /// NoCloud network-config file (network config v1 or v2 YAML).
    #[arg(long, value_name = "FILE")]
    pub network_config: Option<PathBuf>,
}

/// The environment variable a claim code minted earlier may come from.
pub const CLAIM_CODE_ENV: &str = "SITEBOOT_CLAIM_CODE";

/// The claim code of a claim seed: `--claim-code`, else `env` (the value of
/// [`CLAIM_CODE_ENV`]), but only for a claim seed that mints nothing (`--site` without
/// `--claim`). Any other seed ignores the variable.
pub fn claim_code_of(a: &SeedArgs, env: Option<String>) -> Option<String> {
    match (&a.claim_code, &a.site, a.claim) {
        (Some(code), _, _) => Some(code.clone()),
        (None, Some(_), false) => env.filter(|c| !c.trim().is_empty()),
        _ => None,
    }
}

/// Writes the seed and returns what to print.
pub async fn run(cli: &Cli, a: &SeedArgs) -> Result<Value, CtlError> {
    check_destination(&a.iso, a.force)?;
    let network = a
        .network_config
        .as_deref()
        .map(|p| read_limited("--network-config", p))
        .transpose()?;
    let mut summary = json!({});
    let (user_data, extra, default_instance) = if let Some(site) = &a.site {
        let code = claim_code_of(a, std::env::var(CLAIM_CODE_ENV).ok());
        let (claim, yaml) = claim_file(cli, a, code.as_deref(), site).await?;
        summary["siteId"] = json!(claim.site_id);
        summary["claimId"] = json!(claim.claim_id);
        summary["expiresAt"] = json!(claim.expires_at);
        let id = wire_seed::claim_instance_id(&claim.site_id, &claim.claim_id);
        let files = vec![IsoFile::new(wire_seed::CLAIM_FILE, yaml)];
        (wire_seed::CLAIM_USER_DATA.as_bytes().to_vec(), files, id)
    } else if let Some(path) = &a.from_secret {
        let (data, name) = bootstrap_secret(&read_limited("--from-secret", path)?)?;
        summary["secret"] = json!(name);
        (data, vec![], format!("iid-{name}"))
    } else if let Some(path) = &a.user_data {
        let data = read_limited("--user-data", path)?;
        refuse_ignition(&data)?;
        (data, vec![], "iid-siteboot".to_string())
    } else {
        return Err(CtlError::Usage(
            "say what the seed carries: --site S --claim (or --claim-code), --from-secret FILE or --user-data FILE".into(),
        ));
    };
    let meta = match &a.meta_data {
        Some(p) => read_limited("--meta-data", p)?,
        None => {
            let id = a.instance_id.clone().unwrap_or(default_instance);
            if id.is_empty() || id.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(CtlError::Usage(format!(
                    "--instance-id {id:?} must be one word"
                )));
            }
            wire_seed::meta_data(&id).into_bytes()
        }
    };
    let mut files = vec![
        IsoFile::new("user-data", user_data),
        IsoFile::new("meta-data", meta),
    ];
    if let Some(n) = network {
        files.push(IsoFile::new("network-config", n));
    }
    files.extend(extra);
    let names: Vec<String> = files.iter().map(|f| f.name.clone()).collect();
    let image = write_image(wire_seed::VOLUME_ID, &files, Utc::now())
        .map_err(|e| CtlError::Usage(format!("build the seed image: {e}")))?;
    write_private(&a.iso, &image, a.force)?;
    summary["iso"] = json!(a.iso.display().to_string());
    summary["volumeId"] = json!(wire_seed::VOLUME_ID);
    summary["files"] = json!(names.join(","));
    summary["bytes"] = json!(image.len());
    Ok(summary)
}

/// Refuses to go on (before minting anything) when the ISO cannot be written.
fn check_destination(path: &Path, force: bool) -> Result<(), CtlError> {
    if path.is_dir() {
        return Err(CtlError::Usage(format!(
            "--iso {} is a directory: name the ISO file to write",
            path.display()
        )));
    }
    if path.exists() && !force {
        return Err(CtlError::Usage(format!(
            "--iso {} exists: pass --force to replace it",
            path.display()
        )));
    }
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if !parent.is_dir() {
        return Err(CtlError::Usage(format!(
            "--iso {}: directory {} does not exist",
            path.display(),
            parent.display()
        )));
    }
    Ok(())
}

fn read_limited(flag: &str, path: &Path) -> Result<Vec<u8>, CtlError> {
    let meta = std::fs::metadata(path)
        .map_err(|e| CtlError::Usage(format!("{flag} {}: {e}", path.display())))?;
    if meta.len() > MAX_INPUT {
        return Err(CtlError::Usage(format!(
            "{flag} {} is {} bytes: a seed holds at most {MAX_INPUT}",
            path.display(),
            meta.len()
        )));
    }
    std::fs::read(path).map_err(|e| CtlError::Usage(format!("{flag} {}: {e}", path.display())))
}

/// The claim file: a freshly minted code or the one given, with the service's URL and CA.
async fn claim_file(
    cli: &Cli,
    a: &SeedArgs,
    claim_code: Option<&str>,
    site: &str,
) -> Result<(SeedClaim, Vec<u8>), CtlError> {
    if !siteboot_wire::labels::is_valid_site_id(site) {
        return Err(CtlError::Usage(format!(
            "--site {site:?} is not a valid site id (a DNS label such as store-0142)"
        )));
    }
    let ca_file = cli
        .ca_file
        .clone()
        .unwrap_or_else(|| cli.data_dir.join("ca.pem"));
    let ca_pem = std::fs::read_to_string(&ca_file).map_err(|e| {
        CtlError::Usage(format!(
            "read ca file {}: {e}; pass --ca-file or --data-dir of the running service",
            ca_file.display()
        ))
    })?;
    let certs = crate::tls::certs_from_pem("ca file", &ca_pem)
        .map_err(|e| CtlError::Usage(format!("{}: {e}", ca_file.display())))?;
    let pin = siteboot_wire::secret::sha256_hex(certs[0].as_ref());
    // Where the code came from, for messages (never the code itself).
    let from = if a.claim_code.is_some() {
        "--claim-code"
    } else {
        "$SITEBOOT_CLAIM_CODE"
    };
    let (code, expires_at) = match (claim_code, a.claim) {
        (Some(text), _) => {
            let code = ClaimCode::parse(text).map_err(|_| {
                CtlError::Usage(format!(
                    "{from} is not a valid claim code XXXX-XXXX-C (check for a typo)"
                ))
            })?;
            let expires_at = a.expires_at.ok_or_else(|| {
                CtlError::Usage(format!(
                    "{from} needs --expires-at (as `claim create` printed it)"
                ))
            })?;
            if expires_at <= Utc::now() {
                return Err(CtlError::Usage(format!(
                    "claim {} expired at {expires_at}: mint a new one with --claim",
                    code.id()
                )));
            }
            (code, expires_at)
        }
        (None, true) => {
            let client = Client::from_cli(cli)?;
            let req = MintClaimRequest {
                site_id: site.to_string(),
                ttl_seconds: a.ttl.map(|d| d.as_secs()),
            };
            let answer = client.post(PATH_CLAIMS, &json!(req)).await?;
            let minted: MintClaimResponse = serde_json::from_value(answer).map_err(|e| {
                CtlError::Unreachable(format!("server answered an unexpected claim body: {e}"))
            })?;
            let code = ClaimCode::parse(minted.code.expose()).map_err(|_| {
                CtlError::Unreachable("server answered a malformed claim code".into())
            })?;
            tracing::info!(claim = %code.id(), site = %minted.site_id, "minted a claim code for a seed");
            (code, minted.expires_at)
        }
        (None, false) => {
            return Err(CtlError::Usage(
                "--site needs --claim (mint a code now) or --claim-code CODE --expires-at T (or $SITEBOOT_CLAIM_CODE with --expires-at T)".into(),
            ))
        }
    };
    let claim = SeedClaim::new(
        &cli.server,
        Some(ca_pem),
        Some(pin),
        site,
        &code,
        expires_at,
    );
    claim
        .check(Utc::now(), Some(site), Some(&cli.server))
        .map_err(|e| CtlError::Usage(e.to_string()))?;
    let mut yaml = format!(
        "# siteboot claim seed for site {site} (claim {}, expires {expires_at}).\n# Holds a one-time claim code: keep it like a key, destroy it once the box registered.\n",
        code.id()
    );
    yaml.push_str(
        &serde_norway::to_string(&claim)
            .map_err(|e| CtlError::Usage(format!("encode the claim file: {e}")))?,
    );
    Ok((claim, yaml.into_bytes()))
}

/// `data.value` (and `data.format`) of a CAPI bootstrap data Secret, with its name.
fn bootstrap_secret(text: &[u8]) -> Result<(Vec<u8>, String), CtlError> {
    let bad = |why: &str| {
        CtlError::Usage(format!(
            "--from-secret: {why}; pass the bootstrap data Secret as `kubectl get secret NAME -o yaml` prints it"
        ))
    };
    let doc: serde_json::Value =
        serde_norway::from_slice(text).map_err(|_| bad("not a YAML or JSON document"))?;
    if doc.get("kind").and_then(Value::as_str) != Some("Secret") {
        return Err(bad("not a Secret (kind must be Secret)"));
    }
    let name = doc["metadata"]["name"]
        .as_str()
        .unwrap_or("bootstrap")
        .to_string();
    let decode = |key: &str| -> Result<Option<Vec<u8>>, CtlError> {
        match doc["data"].get(key).and_then(Value::as_str) {
            None => Ok(None),
            Some(b64) => base64::engine::general_purpose::STANDARD
                .decode(b64.trim())
                .map(Some)
                .map_err(|_| bad(&format!("data.{key} is not base64"))),
        }
    };
    let value = decode("value")?.ok_or_else(|| bad("no data.value key"))?;
    // CAPI: `format` is cloud-config unless it says ignition.
    let format = decode("format")?
        .map(|f| String::from_utf8_lossy(&f).trim().to_string())
        .unwrap_or_else(|| "cloud-config".into());
    match format.as_str() {
        "cloud-config" => {}
        "ignition" => return Err(ignition_error()),
        other => return Err(bad(&format!("unknown bootstrap data format {other:?}"))),
    }
    refuse_ignition(&value)?;
    Ok((value, name))
}

fn ignition_error() -> CtlError {
    CtlError::Usage(
        "the bootstrap data is Ignition: a NoCloud seed carries cloud-config only. Give Ignition \
         hosts the config directly instead: QEMU `-fw_cfg name=opt/com.coreos/config,file=config.ign`, \
         the `ignition.config.url=` kernel argument, or the platform's user-data; or render the \
         SiteBootstrapConfig with format cloud-config"
            .into(),
    )
}

/// Ignition JSON passed as raw user-data is refused the same way.
fn refuse_ignition(data: &[u8]) -> Result<(), CtlError> {
    let text = String::from_utf8_lossy(&data[..data.len().min(4096)]);
    let t = text.trim_start();
    if t.starts_with('{') && t.contains("\"ignition\"") {
        return Err(ignition_error());
    }
    if t.is_empty() {
        return Err(CtlError::Usage(
            "user-data is empty: nothing to seed".into(),
        ));
    }
    Ok(())
}

/// Writes `bytes` to `path` with mode 0600: a fresh file, or (with `force`) a temporary
/// file renamed over the old one so a reader never sees half a seed.
fn write_private(path: &Path, bytes: &[u8], force: bool) -> Result<(), CtlError> {
    let fail = |e: std::io::Error| CtlError::Usage(format!("write {}: {e}", path.display()));
    let target = if force {
        let mut name = path.file_name().unwrap_or_default().to_os_string();
        name.push(format!(".tmp-{}", std::process::id()));
        path.with_file_name(name)
    } else {
        path.to_path_buf()
    };
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&target)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => CtlError::Usage(format!(
                "--iso {} exists: pass --force to replace it",
                path.display()
            )),
            _ => fail(e),
        })?;
    f.write_all(bytes)
        .and_then(|_| f.sync_all())
        .map_err(fail)?;
    if force {
        std::fs::rename(&target, path).map_err(|e| {
            let _ = std::fs::remove_file(&target);
            fail(e)
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod claim_code_tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Wrap {
        #[command(flatten)]
        a: SeedArgs,
    }

    fn parse(args: &[&str]) -> SeedArgs {
        let mut argv = vec!["seed"];
        argv.extend_from_slice(args);
        Wrap::try_parse_from(argv)
            .unwrap_or_else(|e| panic!("{args:?}: {e}"))
            .a
    }

    #[test]
    fn the_environment_code_only_feeds_a_claim_seed_that_mints_nothing() {
        let env = || Some("7KQ2-M9XD-4".to_string());
        let at = "2026-12-01T00:00:00Z";
        let cases: [(&[&str], Option<String>, Option<&str>); 7] = [
            // Other seeds ignore the variable, in either argument order.
            (&["--iso", "a.iso", "--user-data", "u"], env(), None),
            (&["--user-data", "u", "--iso", "a.iso"], env(), None),
            (&["--from-secret", "s.yaml", "--iso", "a.iso"], env(), None),
            // Minting ignores it too.
            (&["--iso", "a.iso", "--site", "s1", "--claim"], env(), None),
            // A site seed that mints nothing takes it...
            (
                &["--iso", "a.iso", "--site", "s1", "--expires-at", at],
                env(),
                Some("7KQ2-M9XD-4"),
            ),
            // ...unless the flag gives one, or the variable is blank.
            (
                &[
                    "--iso",
                    "a.iso",
                    "--site",
                    "s1",
                    "--claim-code",
                    "AAAA-BBBB-C",
                    "--expires-at",
                    at,
                ],
                env(),
                Some("AAAA-BBBB-C"),
            ),
            (
                &["--iso", "a.iso", "--site", "s1", "--expires-at", at],
                Some("  ".into()),
                None,
            ),
        ];
        for (args, env, want) in cases {
            let a = parse(args);
            assert_eq!(claim_code_of(&a, env).as_deref(), want, "{args:?}");
        }
    }
}
