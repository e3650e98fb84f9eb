//! Appliance images for the VM tests, built by the recipe in `bootstrap-images/`
//! (`build.sh`, cached by content under [`cache_dir`]), plus the per-batch copy with an
//! injected enrollment config (`inject-enrollment.sh`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::process::binaries;

/// Which image the recipe builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageKind {
    /// Plain cloud-init Debian (NoCloud), no agent.
    Plain,
    /// Factory appliance: agent, first-boot unit, enrollment config.
    Factory,
}

impl ImageKind {
    fn arg(self) -> &'static str {
        match self {
            ImageKind::Plain => "plain",
            ImageKind::Factory => "factory",
        }
    }
}

/// A built image: raw ext4 disk plus the kernel and initrd for direct kernel boot.
#[derive(Debug, Clone)]
pub struct Image {
    pub dir: PathBuf,
    pub disk: PathBuf,
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    /// How long `build.sh` took (cached builds: well under a second).
    pub build_time: Duration,
}

impl Image {
    fn in_dir(dir: PathBuf, build_time: Duration) -> Result<Image> {
        let img = Image {
            disk: dir.join("disk.img"),
            kernel: dir.join("vmlinuz"),
            initrd: dir.join("initrd.img"),
            dir,
            build_time,
        };
        for p in [&img.disk, &img.kernel, &img.initrd] {
            anyhow::ensure!(p.is_file(), "image file {} missing", p.display());
        }
        Ok(img)
    }

    /// Apparent and allocated size of the disk in bytes.
    pub fn disk_sizes(&self) -> Result<(u64, u64)> {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(&self.disk)?;
        Ok((m.len(), m.blocks() * 512))
    }
}

/// The image cache: `$SITEBOOT_IMAGE_CACHE`, else `<workspace>/target/siteboot-images`.
pub fn cache_dir() -> PathBuf {
    std::env::var_os("SITEBOOT_IMAGE_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| binaries::workspace_root().join("target/siteboot-images"))
}

fn recipe(name: &str) -> PathBuf {
    binaries::workspace_root()
        .join("bootstrap-images")
        .join(name)
}

/// What goes into an image besides the recipe.
#[derive(Debug, Default, Clone)]
pub struct ImageInputs {
    pub agent: Option<PathBuf>,
    pub enrollment: Option<PathBuf>,
    pub site_kubeconfig: Option<PathBuf>,
}

/// Builds `kind` (or finds it cached); the recipe's progress goes to `log`.
pub fn build(kind: ImageKind, inputs: &ImageInputs, log: &Path) -> Result<Image> {
    let mut cmd = Command::new(recipe("build.sh"));
    cmd.arg(kind.arg()).arg("--cache-dir").arg(cache_dir());
    if let Some(a) = &inputs.agent {
        cmd.arg("--agent").arg(a);
    }
    if let Some(e) = &inputs.enrollment {
        cmd.arg("--enrollment").arg(e);
    }
    if let Some(k) = &inputs.site_kubeconfig {
        cmd.arg("--site-kubeconfig").arg(k);
    }
    let started = Instant::now();
    let stdout = run_logged(&mut cmd, log)?;
    let dir = stdout
        .lines()
        .last()
        .map(PathBuf::from)
        .context("build.sh printed no image directory")?;
    Image::in_dir(dir, started.elapsed())
}

/// Runs `cmd` with stderr appended to `log`; returns stdout, or fails with the log tail.
fn run_logged(cmd: &mut Command, log: &Path) -> Result<String> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)?;
    let out = cmd
        .stderr(file)
        .output()
        .with_context(|| format!("run {cmd:?}"))?;
    if !out.status.success() {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(30).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        bail!("{cmd:?} failed ({}):\n{}", out.status, tail.join("\n"));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The `siteboot-agent` binary the e2e harness builds, stripped of debug info into the
/// cache (what a release would ship is smaller still; the VM only needs it to run).
pub fn stripped_agent() -> Result<PathBuf> {
    let src = binaries::binary("siteboot-agent")?;
    let dir = cache_dir().join("agent");
    std::fs::create_dir_all(&dir)?;
    let dest = dir.join("siteboot-agent");
    let tmp = dir.join(format!("siteboot-agent.{}.tmp", std::process::id()));
    let status = Command::new("strip")
        .arg("--strip-debug")
        .arg("-o")
        .arg(&tmp)
        .arg(&src)
        .status()
        .context("run strip (binutils)")?;
    anyhow::ensure!(status.success(), "strip {} failed", src.display());
    let same = std::fs::read(&dest).ok() == Some(std::fs::read(&tmp)?);
    if same {
        std::fs::remove_file(&tmp)?;
    } else {
        std::fs::rename(&tmp, &dest)?;
    }
    Ok(dest)
}

/// Writes `text` to `<cache>/inputs/<name>` unless it already holds exactly that (so
/// the image cache key, which hashes contents, stays stable).
pub fn cached_input(name: &str, text: &str) -> Result<PathBuf> {
    let dir = cache_dir().join("inputs");
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(name);
    if std::fs::read_to_string(&path).ok().as_deref() != Some(text) {
        let tmp = dir.join(format!("{name}.{}.tmp", std::process::id()));
        std::fs::write(&tmp, text)?;
        std::fs::rename(&tmp, &path)?;
    }
    Ok(path)
}

/// Copies `image`'s disk to `dest` (sparse) and injects the enrollment directory into
/// the copy with `bootstrap-images/inject-enrollment.sh`: one batch's image.
pub fn batch_copy(image: &Image, enrollment: &Path, dest: &Path, log: &Path) -> Result<()> {
    let status = Command::new("cp")
        .arg("--sparse=always")
        .arg(&image.disk)
        .arg(dest)
        .status()?;
    anyhow::ensure!(status.success(), "copy {} failed", image.disk.display());
    run_logged(
        Command::new(recipe("inject-enrollment.sh"))
            .arg(dest)
            .arg(enrollment),
        log,
    )?;
    Ok(())
}
