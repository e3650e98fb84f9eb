//! One QEMU VM: TCG, direct kernel boot, a qcow2 overlay over the image's raw disk, the
//! SMBIOS serial, an optional NoCloud seed, and a restricted user network whose only
//! exits are `guestfwd` ports relayed to loopback services. The serial console is the
//! process log (so a failing test prints it, secrets redacted, and a passing one scans it).

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use super::image::Image;
use super::SERVICE_IP;
use crate::process::{Process, Spec, TestRun};

/// A guest port on [`SERVICE_IP`] relayed to `127.0.0.1:host_port`.
#[derive(Debug, Clone, Copy)]
pub struct Forward {
    pub guest_port: u16,
    pub host_port: u16,
}

/// What to boot.
#[derive(Debug, Clone)]
pub struct VmSpec {
    /// Log name and file prefix (`<name>.log` is the serial console).
    pub name: String,
    pub image: Image,
    /// SMBIOS type 1 serial (`/sys/class/dmi/id/product_serial` in the guest).
    pub serial: String,
    /// A NoCloud seed ISO attached as a second, read-only disk.
    pub seed: Option<PathBuf>,
    pub forwards: Vec<Forward>,
    /// The relay program QEMU runs per guest connection (`siteboot-vm-relay`).
    pub relay: PathBuf,
    pub memory_mib: u32,
    pub cpus: u32,
}

impl VmSpec {
    /// 1 GiB, 2 vCPUs, no seed, no forwards.
    pub fn new(name: &str, image: &Image, serial: &str, relay: &Path) -> VmSpec {
        VmSpec {
            name: name.into(),
            image: image.clone(),
            serial: serial.into(),
            seed: None,
            forwards: Vec::new(),
            relay: relay.into(),
            memory_mib: 1024,
            cpus: 2,
        }
    }

    pub fn forward(mut self, guest_port: u16, host_port: u16) -> Self {
        self.forwards.push(Forward {
            guest_port,
            host_port,
        });
        self
    }

    pub fn seed(mut self, iso: &Path) -> Self {
        self.seed = Some(iso.into());
        self
    }

    /// The QEMU command line (without the program), pure.
    pub fn qemu_args(&self, overlay: &Path, qmp: &Path) -> Vec<String> {
        let mut netdev = "user,id=n0,restrict=on".to_string();
        for f in &self.forwards {
            netdev.push_str(&format!(
                ",guestfwd=tcp:{SERVICE_IP}:{}-cmd:{} 127.0.0.1:{}",
                f.guest_port,
                self.relay.display(),
                f.host_port
            ));
        }
        let mut args: Vec<String> = [
            "-accel",
            "tcg",
            "-machine",
            "q35",
            "-cpu",
            "max",
            "-nodefaults",
            "-no-user-config",
            "-display",
            "none",
            "-serial",
            "stdio",
            "-no-reboot",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend([
            "-m".into(),
            self.memory_mib.to_string(),
            "-smp".into(),
            self.cpus.to_string(),
            "-smbios".into(),
            format!(
                "type=1,manufacturer=siteboot-e2e,product=vm,serial={}",
                self.serial
            ),
            "-kernel".into(),
            self.image.kernel.display().to_string(),
            "-initrd".into(),
            self.image.initrd.display().to_string(),
            "-append".into(),
            "root=/dev/vda rw console=ttyS0 panic=-1".into(),
            "-drive".into(),
            format!(
                "file={},format=qcow2,if=virtio,cache=unsafe",
                overlay.display()
            ),
            "-netdev".into(),
            netdev,
            "-device".into(),
            "virtio-net-pci,netdev=n0".into(),
            "-device".into(),
            "virtio-rng-pci".into(),
            "-qmp".into(),
            format!("unix:{},server=on,wait=off", qmp.display()),
        ]);
        if let Some(seed) = &self.seed {
            args.extend([
                "-drive".into(),
                format!("file={},format=raw,if=virtio,readonly=on", seed.display()),
            ]);
        }
        args
    }
}

/// A running VM. Dropping it kills QEMU.
#[derive(Debug)]
pub struct Vm {
    name: String,
    process: Process,
    overlay: PathBuf,
    qmp: PathBuf,
    started: Instant,
}

impl Vm {
    /// Creates the overlay in the run's directory and starts QEMU.
    pub fn start(run: &TestRun, spec: &VmSpec) -> Result<Vm> {
        let overlay = run.dir().join(format!("{}-overlay.qcow2", spec.name));
        let qmp = run.dir().join(format!("{}.qmp", spec.name));
        let _ = std::fs::remove_file(&overlay);
        let _ = std::fs::remove_file(&qmp);
        let out = Command::new("qemu-img")
            .args(["create", "-q", "-f", "qcow2", "-F", "raw", "-b"])
            .arg(&spec.image.disk)
            .arg(&overlay)
            .output()
            .context("run qemu-img (qemu-utils)")?;
        anyhow::ensure!(
            out.status.success(),
            "qemu-img create {}: {}",
            overlay.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        let started = Instant::now();
        let process = run.spawn(
            &spec.name,
            &Spec::new("qemu-system-x86_64").args(spec.qemu_args(&overlay, &qmp)),
        )?;
        Ok(Vm {
            name: spec.name.clone(),
            process,
            overlay,
            qmp,
            started,
        })
    }

    /// When QEMU was started (boot time is measured from here).
    pub fn started(&self) -> Instant {
        self.started
    }

    /// The serial console so far.
    pub fn console(&self) -> String {
        self.process.log()
    }

    /// The VM's copy-on-write disk.
    pub fn overlay(&self) -> &Path {
        &self.overlay
    }

    /// Fails with the console tail if QEMU has exited.
    pub fn check_running(&mut self) -> Result<()> {
        if let Some(status) = self.process.try_exit()? {
            anyhow::bail!("VM {} exited ({status})", self.name);
        }
        Ok(())
    }

    /// Waits until the console contains `needle`; returns the time since start.
    pub async fn wait_console(&mut self, needle: &str, timeout: Duration) -> Result<Duration> {
        self.process
            .wait_for_log_line_async(needle, timeout)
            .await
            .with_context(|| format!("VM {}: console never showed {needle:?}", self.name))?;
        Ok(self.started.elapsed())
    }

    /// ACPI power-off through QMP, waiting up to `timeout` for the guest to shut down
    /// cleanly; kills QEMU otherwise. Returns whether the shutdown was clean.
    pub async fn power_off(&mut self, timeout: Duration) -> Result<bool> {
        if self.process.try_exit()?.is_some() {
            return Ok(true);
        }
        if let Err(e) = qmp_command(&self.qmp, "system_powerdown") {
            tracing::warn!(vm = %self.name, error = %e, "qmp system_powerdown failed; killing");
            self.process.kill()?;
            return Ok(false);
        }
        match self.process.wait_exit_async(timeout).await {
            Ok(_) => Ok(true),
            Err(_) => {
                self.process.kill()?;
                Ok(false)
            }
        }
    }

    /// Kills QEMU at once (the box loses power).
    pub fn kill(&mut self) -> Result<()> {
        self.process.kill()?;
        Ok(())
    }
}

/// Sends one QMP command (no arguments) and reads its reply.
fn qmp_command(socket: &Path, command: &str) -> Result<String> {
    let stream =
        UnixStream::connect(socket).with_context(|| format!("connect qmp {}", socket.display()))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut writer = stream;
    let mut line = String::new();
    reader.read_line(&mut line)?; // greeting
    writer.write_all(b"{\"execute\":\"qmp_capabilities\"}\n")?;
    line.clear();
    reader.read_line(&mut line)?;
    writer.write_all(format!("{{\"execute\":\"{command}\"}}\n").as_bytes())?;
    // Skip asynchronous events until the command's return.
    loop {
        line.clear();
        anyhow::ensure!(reader.read_line(&mut line)? > 0, "qmp closed");
        if line.contains("\"return\"") || line.contains("\"error\"") {
            return Ok(line);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image() -> Image {
        Image {
            dir: "/img".into(),
            disk: "/img/disk.img".into(),
            kernel: "/img/vmlinuz".into(),
            initrd: "/img/initrd.img".into(),
            build_time: Duration::ZERO,
        }
    }

    #[test]
    fn network_is_restricted_to_the_forwards() {
        let spec = VmSpec::new("vm", &image(), "SN-1", Path::new("/bin/relay"))
            .forward(8443, 31001)
            .forward(6443, 31002)
            .seed(Path::new("/run/seed.iso"));
        let args = spec.qemu_args(Path::new("/run/o.qcow2"), Path::new("/run/q"));
        let joined = args.join(" ");
        let netdev = &args[args.iter().position(|a| a == "-netdev").unwrap() + 1];
        assert_eq!(
            netdev,
            "user,id=n0,restrict=on,guestfwd=tcp:10.0.2.100:8443-cmd:/bin/relay 127.0.0.1:31001,guestfwd=tcp:10.0.2.100:6443-cmd:/bin/relay 127.0.0.1:31002"
        );
        for want in [
            "-accel tcg",
            "type=1,manufacturer=siteboot-e2e,product=vm,serial=SN-1",
            "-kernel /img/vmlinuz",
            "file=/run/o.qcow2,format=qcow2",
            "file=/run/seed.iso,format=raw,if=virtio,readonly=on",
            "root=/dev/vda",
        ] {
            assert!(joined.contains(want), "{want} missing from {joined}");
        }
    }
}
