//! Reads a VM's disk after shutdown without mounting it: `qemu-img convert` flattens the
//! overlay to a scratch raw image, `e2fsck` replays the journal (as the next boot would),
//! and `debugfs` answers questions about paths and dumps files.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

/// A flattened, checked copy of one VM disk (deleted on drop).
#[derive(Debug)]
pub struct DiskView {
    raw: PathBuf,
    /// The scratch copy is ours to delete.
    owned: bool,
}

impl DiskView {
    /// Flattens `disk` (qcow2 overlay or raw) to `<scratch>/<name>.raw` and checks it.
    pub fn open(disk: &Path, scratch: &Path) -> Result<DiskView> {
        let name = disk
            .file_name()
            .context("disk has no file name")?
            .to_string_lossy()
            .into_owned();
        let raw = scratch.join(format!("{name}.raw"));
        let out = Command::new("qemu-img")
            .args(["convert", "-O", "raw"])
            .arg(disk)
            .arg(&raw)
            .output()
            .context("run qemu-img convert")?;
        anyhow::ensure!(
            out.status.success(),
            "qemu-img convert {}: {}",
            disk.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        let view = DiskView { raw, owned: true };
        // Exit codes 0 (clean) and 1 (errors corrected, e.g. journal replayed) are fine.
        let out = Command::new("e2fsck")
            .args(["-f", "-y"])
            .arg(&view.raw)
            .output()
            .context("run e2fsck")?;
        match out.status.code() {
            Some(0 | 1) => Ok(view),
            _ => bail!(
                "e2fsck {}: {}{}",
                view.raw.display(),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        }
    }

    /// Opens a raw ext4 image in place, read-only (no copy, no check).
    pub fn raw(image: &Path) -> DiskView {
        DiskView {
            raw: image.into(),
            owned: false,
        }
    }

    fn debugfs(&self, request: &str) -> Result<(String, String)> {
        let out = Command::new("debugfs")
            .arg("-R")
            .arg(request)
            .arg(&self.raw)
            .output()
            .context("run debugfs (e2fsprogs)")?;
        Ok((
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ))
    }

    /// Whether `path` exists (any file type).
    pub fn exists(&self, path: &str) -> Result<bool> {
        let (stdout, stderr) = self.debugfs(&format!("stat {path}"))?;
        if stdout.contains("Inode:") {
            return Ok(true);
        }
        if stderr.contains("File not found") {
            return Ok(false);
        }
        bail!("debugfs stat {path}: {stderr}")
    }

    /// The file's permission bits as debugfs prints them (e.g. `0o600`), if it exists.
    pub fn mode(&self, path: &str) -> Result<Option<u32>> {
        if !self.exists(path)? {
            return Ok(None);
        }
        let (stdout, _) = self.debugfs(&format!("stat {path}"))?;
        let mode = stdout
            .split_whitespace()
            .skip_while(|w| *w != "Mode:")
            .nth(1)
            .and_then(|m| u32::from_str_radix(m, 8).ok())
            .with_context(|| format!("no mode in debugfs stat {path}"))?;
        Ok(Some(mode))
    }

    /// The file's content, if it exists.
    pub fn read(&self, path: &str) -> Result<Option<Vec<u8>>> {
        if !self.exists(path)? {
            return Ok(None);
        }
        let out = Command::new("debugfs")
            .arg("-R")
            .arg(format!("cat {path}"))
            .arg(&self.raw)
            .output()?;
        Ok(Some(out.stdout))
    }

    /// Names in directory `path` (without `.` and `..`); empty when it does not exist.
    pub fn list(&self, path: &str) -> Result<Vec<String>> {
        if !self.exists(path)? {
            return Ok(Vec::new());
        }
        let (stdout, _) = self.debugfs(&format!("ls -p {path}"))?;
        // `ls -p` lines: /inode/mode/uid/gid/name/size/
        Ok(stdout
            .lines()
            .filter_map(|l| l.split('/').nth(5).map(str::to_string))
            .filter(|n| !n.is_empty() && n != "." && n != "..")
            .collect())
    }

    /// Every regular file under `dir` (recursively) whose content contains `needle`.
    /// The tree is dumped with `debugfs rdump` into `scratch`, searched and removed.
    pub fn files_containing(
        &self,
        dir: &str,
        needle: &[u8],
        scratch: &Path,
    ) -> Result<Vec<String>> {
        if !self.exists(dir)? {
            return Ok(Vec::new());
        }
        let out_dir = tempfile::tempdir_in(scratch)?;
        let (_, stderr) = self.debugfs(&format!("rdump {dir} {}", out_dir.path().display()))?;
        let base = dir.trim_end_matches('/');
        let top = out_dir
            .path()
            .join(Path::new(base).file_name().context("rdump of /")?);
        anyhow::ensure!(top.exists(), "debugfs rdump {dir}: {stderr}");
        let mut hits = Vec::new();
        let mut stack = vec![top.clone()];
        while let Some(p) = stack.pop() {
            let meta = std::fs::symlink_metadata(&p)?;
            if meta.is_dir() {
                for e in std::fs::read_dir(&p)? {
                    stack.push(e?.path());
                }
            } else if meta.is_file() {
                let data = std::fs::read(&p)?;
                if data.windows(needle.len()).any(|w| w == needle) {
                    let rel = p.strip_prefix(&top).unwrap_or(&p);
                    hits.push(format!("{base}/{}", rel.display()));
                }
            }
        }
        hits.sort();
        Ok(hits)
    }
}

impl Drop for DiskView {
    fn drop(&mut self) {
        if self.owned {
            let _ = std::fs::remove_file(&self.raw);
        }
    }
}
