//! Running the real `siteboot-registration` binary as a child process: waits for its ready
//! file, captures stdout and stderr (so tests can assert no secret is ever logged), and
//! stops it with SIGTERM or kills it with SIGKILL.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A running service process.
pub struct ServerProcess {
    child: Child,
    /// `https://127.0.0.1:PORT`.
    pub url: String,
    logs: Arc<Mutex<String>>,
    readers: Vec<std::thread::JoinHandle<()>>,
}

fn capture(
    mut r: impl Read + Send + 'static,
    sink: Arc<Mutex<String>>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        while let Ok(n) = r.read(&mut buf) {
            if n == 0 {
                break;
            }
            let text = String::from_utf8_lossy(&buf[..n]).to_string();
            sink.lock()
                .unwrap_or_else(|e| e.into_inner())
                .push_str(&text);
        }
    })
}

impl ServerProcess {
    /// Starts `bin --data-dir DIR --listen 127.0.0.1:0 --ready-file ... ARGS` and waits up
    /// to 60 s for it to be listening.
    pub fn start(bin: &Path, data_dir: &Path, args: &[&str]) -> std::io::Result<Self> {
        let ready: PathBuf = data_dir.with_extension(format!("ready-{}", std::process::id()));
        let _ = std::fs::remove_file(&ready);
        let mut child = Command::new(bin)
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--listen", "127.0.0.1:0", "--ready-file"])
            .arg(&ready)
            .args(args)
            .env("RUST_LOG", "debug")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let logs = Arc::new(Mutex::new(String::new()));
        let readers = vec![
            capture(child.stdout.take().expect("stdout"), logs.clone()),
            capture(child.stderr.take().expect("stderr"), logs.clone()),
        ];
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(text) = std::fs::read_to_string(&ready) {
                if text.ends_with('\n') {
                    return Ok(Self {
                        child,
                        url: text.trim().to_string(),
                        logs,
                        readers,
                    });
                }
            }
            if let Some(status) = child.try_wait()? {
                let logs = logs.lock().unwrap_or_else(|e| e.into_inner()).clone();
                return Err(std::io::Error::other(format!(
                    "server exited early ({status}): {logs}"
                )));
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                return Err(std::io::Error::other("server not ready within 60 s"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Everything written to stdout and stderr so far.
    pub fn logs(&self) -> String {
        self.logs.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// SIGKILL, then waits; returns the captured output.
    pub fn kill9(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.join()
    }

    /// SIGTERM (graceful), waits up to 30 s; returns (exit success, captured output).
    pub fn terminate(mut self) -> (bool, String) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(30);
        let ok = loop {
            match self.child.try_wait() {
                Ok(Some(status)) => break status.success(),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50))
                }
                _ => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    break false;
                }
            }
        };
        (ok, self.join())
    }

    fn join(&mut self) -> String {
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
        self.logs()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
