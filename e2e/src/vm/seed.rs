//! NoCloud seeds: a `cidata` ISO 9660 volume with `user-data` and `meta-data`, as
//! `cloud-localds` makes, built with `genisoimage` (used where the test supplies the
//! user-data itself; the claim-code seeds come from `sitebootctl seed`).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};

/// Writes `<dir>/seed.iso` holding `user_data` and a meta-data naming `instance_id`.
pub fn nocloud_iso(
    dir: &Path,
    user_data: &[u8],
    instance_id: &str,
    hostname: &str,
) -> Result<PathBuf> {
    let files = dir.join("seed-files");
    std::fs::create_dir_all(&files)?;
    std::fs::write(files.join("user-data"), user_data)?;
    std::fs::write(
        files.join("meta-data"),
        format!("instance-id: {instance_id}\nlocal-hostname: {hostname}\n"),
    )?;
    let iso = dir.join("seed.iso");
    let out = Command::new("genisoimage")
        .args(["-quiet", "-volid", "cidata", "-joliet", "-rock", "-output"])
        .arg(&iso)
        .arg(files.join("user-data"))
        .arg(files.join("meta-data"))
        .output()
        .context("run genisoimage")?;
    anyhow::ensure!(
        out.status.success(),
        "genisoimage: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The user-data carries a one-time token: keep only the ISO the VM reads.
    std::fs::remove_dir_all(&files)?;
    Ok(iso)
}
