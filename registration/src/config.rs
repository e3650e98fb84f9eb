//! Service configuration: the plain [`ServeConfig`] that [`crate::serve`] takes, and the
//! command-line flags (with environment fallbacks) of the `siteboot-registration` binary.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use crate::datadir::DEFAULT_DATA_DIR;

/// Inventory used when `--inventory` is absent and this file exists (relative to cwd).
pub const SAMPLE_INVENTORY: &str = "config/samples/inventory.yaml";

/// Rate limits (token buckets).
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// `POST /v1/register` and polls: requests per second per source address.
    pub register_per_second: f64,
    /// Burst per source address.
    pub register_burst: u32,
    /// Attempts per minute per token id, claim id, or batch+serial.
    pub credential_per_minute: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            register_per_second: 10.0,
            register_burst: 20,
            credential_per_minute: 5,
        }
    }
}

impl Limits {
    /// Limits high enough to never trigger (load tests, storms).
    pub fn unlimited() -> Self {
        Self {
            register_per_second: 1e9,
            register_burst: u32::MAX,
            credential_per_minute: u32::MAX,
        }
    }
}

/// Everything `serve` needs.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Data directory (database, CA, credentials).
    pub data_dir: PathBuf,
    /// Address to listen on; port 0 picks a free port.
    pub listen: SocketAddr,
    /// Inventory YAML; `None` serves an empty inventory.
    pub inventory: Option<PathBuf>,
    /// DNS names and IPs in the server certificate.
    pub server_names: Vec<String>,
    /// Lifetime of device client certificates.
    pub cert_ttl: Duration,
    /// Rate limits.
    pub limits: Limits,
    /// Request body cap in bytes.
    pub max_body_bytes: usize,
    /// How often coalesced heartbeats are written.
    pub heartbeat_flush_interval: Duration,
    /// Default lifetime of registration tokens.
    pub token_ttl: Duration,
    /// Default lifetime of claim codes.
    pub claim_ttl: Duration,
    /// Seconds between check-ins told to devices.
    pub checkin_interval_seconds: u64,
    /// How long an HTTP/1.1 connection may sit without a complete request before the
    /// server closes it (also bounds how slowly a client may send request headers).
    pub idle_timeout: Duration,
    /// Written with the bound URL once listening.
    pub ready_file: Option<PathBuf>,
}

impl ServeConfig {
    /// Defaults for a data directory, listening on 127.0.0.1:8443.
    pub fn embedded(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            listen: SocketAddr::from(([127, 0, 0, 1], 8443)),
            inventory: None,
            server_names: default_server_names(),
            cert_ttl: Duration::from_secs(7 * 86400),
            limits: Limits::default(),
            max_body_bytes: 64 * 1024,
            heartbeat_flush_interval: Duration::from_secs(60),
            token_ttl: Duration::from_secs(24 * 3600),
            claim_ttl: Duration::from_secs(72 * 3600),
            checkin_interval_seconds: 60,
            idle_timeout: Duration::from_secs(120),
            ready_file: None,
        }
    }
}

fn default_server_names() -> Vec<String> {
    vec!["localhost".into(), "127.0.0.1".into()]
}

/// Parses `90s`, `15m`, `24h`, `7d` or plain seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let (num, mult) = match t.char_indices().last() {
        Some((i, 's')) => (&t[..i], 1),
        Some((i, 'm')) => (&t[..i], 60),
        Some((i, 'h')) => (&t[..i], 3600),
        Some((i, 'd')) => (&t[..i], 86400),
        _ => (t, 1),
    };
    num.parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .filter(|n| *n > 0)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("{text:?} is not a duration: use e.g. 90s, 15m, 24h or 7d"))
}

/// `siteboot-registration` flags.
#[derive(Debug, Parser)]
#[command(
    name = "siteboot-registration",
    version,
    about = "siteboot site registration service (HTTPS, embedded SQLite, service CA)",
    after_help = "With no flags: data in ./.siteboot/registration, HTTPS on 127.0.0.1:8443, inventory from config/samples/inventory.yaml when present."
)]
pub struct ServerArgs {
    /// Data directory (database, CA, operator credential, batches, git credentials).
    #[arg(long, env = "SITEBOOT_DATA_DIR", default_value = DEFAULT_DATA_DIR)]
    pub data_dir: PathBuf,
    /// Address to listen on (port 0: any free port; the bound address is logged).
    #[arg(long, env = "SITEBOOT_LISTEN", default_value = "127.0.0.1:8443")]
    pub listen: SocketAddr,
    /// Inventory YAML (default: config/samples/inventory.yaml when present).
    #[arg(long, env = "SITEBOOT_INVENTORY")]
    pub inventory: Option<PathBuf>,
    /// Extra DNS name for the server certificate (localhost and 127.0.0.1 are always in).
    #[arg(long = "server-name", value_name = "NAME")]
    pub server_name: Option<String>,
    /// Extra subject alternative name (DNS name or IP); repeatable.
    #[arg(long = "san", value_name = "NAME_OR_IP")]
    pub sans: Vec<String>,
    /// Lifetime of device client certificates.
    #[arg(long, default_value = "7d", value_parser = parse_duration)]
    pub cert_ttl: Duration,
    /// Default lifetime of registration tokens.
    #[arg(long, default_value = "24h", value_parser = parse_duration)]
    pub token_ttl: Duration,
    /// Default lifetime of claim codes.
    #[arg(long, default_value = "72h", value_parser = parse_duration)]
    pub claim_ttl: Duration,
    /// Registration requests per second per source address.
    #[arg(long, default_value_t = 10.0)]
    pub register_rate: f64,
    /// Registration burst per source address.
    #[arg(long, default_value_t = 20)]
    pub register_burst: u32,
    /// Attempts per minute per token id, claim id or batch serial.
    #[arg(long, default_value_t = 5)]
    pub credential_attempts_per_minute: u32,
    /// Request body cap in bytes.
    #[arg(long, default_value_t = 65536)]
    pub max_body_bytes: usize,
    /// How often coalesced check-in heartbeats are written to the store.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub heartbeat_flush_interval: Duration,
    /// Seconds between agent check-ins.
    #[arg(long, default_value_t = 60)]
    pub checkin_interval_seconds: u64,
    /// Close HTTP/1.1 connections that carry no complete request for this long (dead
    /// links, idle or slow clients). Keep it above the check-in interval so agents reuse
    /// their connection.
    #[arg(long, default_value = "120s", value_parser = parse_duration)]
    pub idle_timeout: Duration,
    /// Write the bound URL (`https://127.0.0.1:PORT`) to this file once listening.
    #[arg(long)]
    pub ready_file: Option<PathBuf>,
    /// Log as JSON lines instead of text.
    #[arg(long)]
    pub log_json: bool,
    /// Print the OpenAPI document and exit.
    #[arg(long)]
    pub print_openapi: bool,
    /// Add an enrollment batch (secret written to <data-dir>/batch-NAME.secret) and exit.
    #[arg(long, value_name = "NAME")]
    pub add_batch: Option<String>,
}

impl ServerArgs {
    /// The plain config these flags describe.
    pub fn to_config(&self) -> Result<ServeConfig, String> {
        if self.register_rate.is_nan() || self.register_rate <= 0.0 {
            return Err("--register-rate must be greater than 0".into());
        }
        if self.max_body_bytes < 1024 {
            return Err("--max-body-bytes must be at least 1024".into());
        }
        if self.idle_timeout < Duration::from_secs(1) {
            return Err("--idle-timeout must be at least 1s".into());
        }
        if self.idle_timeout.as_secs() <= self.checkin_interval_seconds {
            tracing::warn!(
                idle_timeout_seconds = self.idle_timeout.as_secs(),
                checkin_interval_seconds = self.checkin_interval_seconds,
                "--idle-timeout is not above the check-in interval: agents will open a new TLS connection for every check-in"
            );
        }
        let inventory = match &self.inventory {
            Some(p) if !p.is_file() => {
                return Err(format!(
                "--inventory {}: no such file (see config/samples/inventory.yaml for the format)",
                p.display()
            ))
            }
            Some(p) => Some(p.clone()),
            None => Some(PathBuf::from(SAMPLE_INVENTORY)).filter(|p| p.is_file()),
        };
        let mut names = default_server_names();
        for n in self.server_name.iter().chain(&self.sans) {
            if n.trim().is_empty() || n.contains(char::is_whitespace) {
                return Err(format!(
                    "--server-name/--san {n:?} must be a DNS name or IP address"
                ));
            }
            if !names.contains(n) {
                names.push(n.clone());
            }
        }
        Ok(ServeConfig {
            data_dir: self.data_dir.clone(),
            listen: self.listen,
            inventory,
            server_names: names,
            cert_ttl: self.cert_ttl,
            limits: Limits {
                register_per_second: self.register_rate,
                register_burst: self.register_burst,
                credential_per_minute: self.credential_attempts_per_minute,
            },
            max_body_bytes: self.max_body_bytes,
            heartbeat_flush_interval: self.heartbeat_flush_interval,
            token_ttl: self.token_ttl,
            claim_ttl: self.claim_ttl,
            checkin_interval_seconds: self.checkin_interval_seconds,
            idle_timeout: self.idle_timeout,
            ready_file: self.ready_file.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let cases = [
            ("90s", Some(90)),
            ("15m", Some(900)),
            ("24h", Some(86400)),
            ("7d", Some(604800)),
            ("42", Some(42)),
            ("0s", None),
            ("h", None),
            ("1w", None),
            ("-3h", None),
        ];
        for (text, want) in cases {
            assert_eq!(
                parse_duration(text).ok().map(|d| d.as_secs()),
                want,
                "{text}"
            );
        }
    }

    #[test]
    fn flags_become_config() {
        let args = ServerArgs::parse_from([
            "x",
            "--listen",
            "127.0.0.1:0",
            "--san",
            "10.0.0.5",
            "--server-name",
            "reg.example",
            "--register-rate",
            "1000",
        ]);
        let cfg = args.to_config().unwrap();
        assert_eq!(cfg.listen.port(), 0);
        assert!(cfg.server_names.contains(&"reg.example".to_string()));
        assert!(cfg.server_names.contains(&"10.0.0.5".to_string()));
        assert_eq!(cfg.limits.register_per_second, 1000.0);
        let bad = ServerArgs::parse_from(["x", "--inventory", "/nonexistent/inv.yaml"]);
        assert!(bad.to_config().unwrap_err().contains("no such file"));
        assert!(ServerArgs::try_parse_from(["x", "--cert-ttl", "soon"]).is_err());
    }
}
