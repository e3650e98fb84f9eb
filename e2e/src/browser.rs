//! Headless Chromium driven over the DevTools protocol (CDP), for the dashboard tests.
//!
//! A deliberately small client: Debian's `/usr/bin/chromium` is started with
//! `--remote-debugging-port=0` and a fresh profile; the test talks to the browser's
//! WebSocket endpoint (from `<profile>/DevToolsActivePort`) with `tokio-tungstenite`,
//! opens one tab, attaches to it in flat session mode and sends commands one at a time
//! (`Page.navigate`, `Runtime.evaluate`, `Input.insertText`, `Page.captureScreenshot`).
//! Events are read and dropped: waits poll the DOM instead, so they do not depend on
//! event ordering. (The CDP crates generate bindings for the whole protocol, minutes of
//! compile time on a loaded 2-core machine for the five commands used here.)
//!
//! TLS: the service's self-signed server certificate is trusted by pinning its public key
//! (`--ignore-certificate-errors-spki-list`, see [`spki_sha256_base64`]), not by ignoring
//! certificate errors wholesale.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use base64::Engine;
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// Where Debian installs Chromium (`apt-get install chromium`); `SITEBOOT_CHROMIUM`
/// overrides it.
pub const DEFAULT_CHROMIUM: &str = "/usr/bin/chromium";

/// How long one CDP command may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// Base64 of the SHA-256 of a PEM certificate's SubjectPublicKeyInfo: the value
/// `--ignore-certificate-errors-spki-list` takes.
pub fn spki_sha256_base64(cert_pem: &str) -> Result<String> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(cert_pem.as_bytes())
        .map_err(|e| anyhow!("parse certificate PEM: {e}"))?;
    let cert = pem
        .parse_x509()
        .map_err(|e| anyhow!("parse certificate: {e}"))?;
    let spki = cert.tbs_certificate.subject_pki.raw;
    Ok(base64::engine::general_purpose::STANDARD.encode(Sha256::digest(spki)))
}

/// How to start the browser.
#[derive(Debug, Clone)]
pub struct LaunchOptions {
    /// Directory for the profile and `chromium.log`.
    pub dir: PathBuf,
    /// Base64 SHA-256 SPKI hashes of certificates to accept despite an unknown issuer.
    pub spki_pins: Vec<String>,
    /// Viewport width and height in CSS pixels.
    pub window: (u32, u32),
}

/// A headless Chromium with one tab. Dropping it kills the browser's process group.
pub struct Browser {
    child: tokio::process::Child,
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    session: String,
    next_id: u64,
    log: PathBuf,
}

impl std::fmt::Debug for Browser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Browser")
            .field("pid", &self.child.id())
            .finish_non_exhaustive()
    }
}

fn chromium_path() -> Result<PathBuf> {
    let path = std::env::var_os("SITEBOOT_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_CHROMIUM));
    if !path.is_file() {
        bail!(
            "{} not found: install Debian's chromium package (`apt-get install chromium`, as scripts/test.sh does) or set SITEBOOT_CHROMIUM",
            path.display()
        );
    }
    Ok(path)
}

async fn devtools_url(
    profile: &Path,
    child: &mut tokio::process::Child,
    log: &Path,
) -> Result<String> {
    let file = profile.join("DevToolsActivePort");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(text) = std::fs::read_to_string(&file) {
            let mut lines = text.lines();
            if let (Some(port), Some(path)) = (lines.next(), lines.next()) {
                return Ok(format!("ws://127.0.0.1:{}{}", port.trim(), path.trim()));
            }
        }
        if let Some(status) = child.try_wait()? {
            bail!(
                "chromium exited ({status}) before opening DevTools; its log:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        if Instant::now() > deadline {
            bail!(
                "chromium did not open DevTools within 60 s; see {}",
                log.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

impl Browser {
    /// Starts headless Chromium with a new profile under `opts.dir` and opens a tab.
    pub async fn launch(opts: &LaunchOptions) -> Result<Browser> {
        let bin = chromium_path()?;
        let profile = opts.dir.join("chromium-profile");
        let _ = std::fs::remove_dir_all(&profile);
        std::fs::create_dir_all(&profile)?;
        let log = opts.dir.join("chromium.log");
        let log_file = std::fs::File::create(&log)?;
        let mut cmd = tokio::process::Command::new(bin);
        cmd.args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-extensions",
            "--disable-dev-shm-usage",
            "--hide-scrollbars",
            "--mute-audio",
            "--password-store=basic",
            "--remote-debugging-address=127.0.0.1",
            "--remote-debugging-port=0",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--window-size={},{}", opts.window.0, opts.window.1));
        if !opts.spki_pins.is_empty() {
            cmd.arg(format!(
                "--ignore-certificate-errors-spki-list={}",
                opts.spki_pins.join(",")
            ));
        }
        cmd.arg("about:blank")
            .env_remove("HTTPS_PROXY")
            .env_remove("https_proxy")
            .env_remove("HTTP_PROXY")
            .env_remove("http_proxy")
            .stdin(Stdio::null())
            .stdout(Stdio::from(log_file.try_clone()?))
            .stderr(Stdio::from(log_file))
            // Its own process group, so Drop can stop the renderer and GPU helpers too.
            .process_group(0)
            .kill_on_drop(true);
        let mut child = cmd.spawn().context("start chromium")?;
        let url = devtools_url(&profile, &mut child, &log).await?;
        let (ws, _) = tokio_tungstenite::connect_async(&url)
            .await
            .with_context(|| format!("connect to chromium's DevTools at {url}"))?;
        let mut b = Browser {
            child,
            ws,
            session: String::new(),
            next_id: 0,
            log,
        };
        let target = b
            .call(None, "Target.createTarget", json!({"url": "about:blank"}))
            .await?;
        let target_id = target["targetId"]
            .as_str()
            .ok_or_else(|| anyhow!("Target.createTarget returned no targetId: {target}"))?
            .to_string();
        let attached = b
            .call(
                None,
                "Target.attachToTarget",
                json!({"targetId": target_id, "flatten": true}),
            )
            .await?;
        b.session = attached["sessionId"]
            .as_str()
            .ok_or_else(|| anyhow!("Target.attachToTarget returned no sessionId: {attached}"))?
            .to_string();
        b.page_call("Page.enable", json!({})).await?;
        b.page_call("Runtime.enable", json!({})).await?;
        Ok(b)
    }

    /// The browser's log file.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// Sends one command and waits for its answer (events in between are dropped).
    async fn call(&mut self, session: Option<&str>, method: &str, params: Value) -> Result<Value> {
        self.next_id += 1;
        let id = self.next_id;
        let mut msg = json!({"id": id, "method": method, "params": params});
        if let Some(s) = session {
            msg["sessionId"] = json!(s);
        }
        self.ws
            .send(Message::text(msg.to_string()))
            .await
            .with_context(|| format!("send {method}"))?;
        let deadline = tokio::time::Instant::now() + COMMAND_TIMEOUT;
        loop {
            let next = tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .map_err(|_| {
                    anyhow!("{method}: no answer from chromium within {COMMAND_TIMEOUT:?}")
                })?;
            let frame = match next {
                Some(Ok(Message::Text(t))) => t,
                Some(Ok(Message::Close(_))) | None => bail!("{method}: chromium closed DevTools"),
                Some(Ok(_)) => continue,
                Some(Err(e)) => bail!("{method}: DevTools connection failed: {e}"),
            };
            let v: Value = serde_json::from_str(frame.as_str())?;
            if v["id"].as_u64() != Some(id) {
                continue;
            }
            if let Some(err) = v.get("error") {
                bail!("{method}: {err}");
            }
            return Ok(v["result"].clone());
        }
    }

    async fn page_call(&mut self, method: &str, params: Value) -> Result<Value> {
        let session = self.session.clone();
        self.call(Some(&session), method, params).await
    }

    /// Evaluates a JavaScript expression in the page; returns its JSON value.
    pub async fn eval(&mut self, expression: &str) -> Result<Value> {
        let r = self
            .page_call(
                "Runtime.evaluate",
                json!({"expression": expression, "returnByValue": true, "awaitPromise": true}),
            )
            .await?;
        if let Some(ex) = r.get("exceptionDetails") {
            bail!("javascript `{expression}` threw: {ex}");
        }
        Ok(r["result"]["value"].clone())
    }

    /// Evaluates `expression` until it returns something other than `null`/`false`/`undefined`
    /// (errors while a page is loading count as not yet); returns that value.
    pub async fn wait_for(
        &mut self,
        what: &str,
        expression: &str,
        timeout: Duration,
    ) -> Result<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let last = match self.eval(expression).await {
                Ok(v) if !(v.is_null() || v == Value::Bool(false)) => return Ok(v),
                Ok(v) => v,
                Err(e) => json!(e.to_string()),
            };
            if Instant::now() > deadline {
                bail!("timed out after {timeout:?} waiting for {what} (last: {last})");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Marks the current document so [`Browser::wait_for_new_document`] can tell a new one.
    pub async fn mark_document(&mut self) -> Result<()> {
        self.eval("window.__sitebootMark = true").await?;
        Ok(())
    }

    /// Waits until a document without the mark has finished loading.
    pub async fn wait_for_new_document(&mut self, timeout: Duration) -> Result<()> {
        self.wait_for(
            "a new document to load",
            "window.__sitebootMark !== true && document.readyState === 'complete'",
            timeout,
        )
        .await
        .map(|_| ())
    }

    /// Navigates and waits for the new document to load.
    pub async fn goto(&mut self, url: &str) -> Result<()> {
        self.mark_document().await?;
        let r = self.page_call("Page.navigate", json!({"url": url})).await?;
        if let Some(err) = r.get("errorText").and_then(Value::as_str) {
            bail!("navigate to {url}: {err}");
        }
        self.wait_for_new_document(Duration::from_secs(60)).await
    }

    /// Clicks the element matching `selector` (which must exist) and waits for the
    /// document it leads to.
    pub async fn click_and_wait(&mut self, selector: &str) -> Result<()> {
        self.mark_document().await?;
        let sel = serde_json::to_string(selector)?;
        let found = self
            .eval(&format!(
                "(() => {{ const e = document.querySelector({sel}); if (!e) return false; e.click(); return true; }})()"
            ))
            .await?;
        if found != Value::Bool(true) {
            bail!("no element matches {selector}");
        }
        self.wait_for_new_document(Duration::from_secs(60)).await
    }

    /// Focuses the element matching `selector` and types `text` into it as keyboard input.
    pub async fn type_into(&mut self, selector: &str, text: &str) -> Result<()> {
        let sel = serde_json::to_string(selector)?;
        let found = self
            .eval(&format!(
                "(() => {{ const e = document.querySelector({sel}); if (!e) return false; e.focus(); e.value = ''; return true; }})()"
            ))
            .await?;
        if found != Value::Bool(true) {
            bail!("no element matches {selector}");
        }
        self.page_call("Input.insertText", json!({"text": text}))
            .await?;
        Ok(())
    }

    /// Chooses `value` in the `<select>` matching `selector`.
    pub async fn select(&mut self, selector: &str, value: &str) -> Result<()> {
        let sel = serde_json::to_string(selector)?;
        let val = serde_json::to_string(value)?;
        let ok = self
            .eval(&format!(
                "(() => {{ const e = document.querySelector({sel}); if (!e) return false; e.value = {val}; return e.value === {val}; }})()"
            ))
            .await?;
        if ok != Value::Bool(true) {
            bail!("cannot choose {value:?} in {selector}");
        }
        Ok(())
    }

    /// Writes a PNG of the whole page (not just the viewport) to `path`.
    pub async fn screenshot_full_page(&mut self, path: &Path) -> Result<()> {
        let metrics = self.page_call("Page.getLayoutMetrics", json!({})).await?;
        let size = &metrics["cssContentSize"];
        let width = size["width"].as_f64().unwrap_or(1400.0).ceil();
        let height = size["height"].as_f64().unwrap_or(1000.0).ceil();
        let shot = self
            .page_call(
                "Page.captureScreenshot",
                json!({
                    "format": "png",
                    "captureBeyondViewport": true,
                    "clip": {"x": 0, "y": 0, "width": width, "height": height, "scale": 1},
                }),
            )
            .await?;
        let data = shot["data"]
            .as_str()
            .ok_or_else(|| anyhow!("Page.captureScreenshot returned no data"))?;
        let png = base64::engine::general_purpose::STANDARD.decode(data)?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(path, png).with_context(|| format!("write {}", path.display()))?;
        Ok(())
    }

    /// Asks the browser to close, then stops its process group.
    pub async fn close(mut self) {
        let _ = tokio::time::timeout(
            Duration::from_secs(5),
            self.call(None, "Browser.close", json!({})),
        )
        .await;
        let _ = tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await;
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let Some(pid) = self.child.id().and_then(|p| i32::try_from(p).ok()) {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}
