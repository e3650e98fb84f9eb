//! `sitebootctl` flags and subcommands, and how each maps to an operator API call.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};
use serde_json::{json, Value};
use siteboot_wire::fleet::{SiteState, PATH_FLEET, PATH_FLEET_SITES};
use siteboot_wire::operator;

use super::client::{Client, CtlError};
use crate::config::parse_duration;
use crate::datadir::DEFAULT_DATA_DIR;

/// Exit codes, as `--help` shows them (see [`super::CtlError::exit_code`]).
pub const EXIT_CODES_HELP: &str = "\
Exit codes:
  0  ok
  1  usage or local configuration (bad flag, unreadable CA or credential file)
  2  the service refused the request (invalid field, conflict, rate limited: see message)
  3  service unreachable or failing (connection refused, TLS, 5xx): retry later
  4  authentication refused (wrong operator credential file)
  5  not found (no such site, device, token or pending registration)";

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// Human tables.
    Table,
    /// The API's JSON.
    Json,
}

/// `sitebootctl` flags.
#[derive(Debug, Parser)]
#[command(
    name = "sitebootctl",
    version,
    about = "operate a siteboot registration service",
    after_help = EXIT_CODES_HELP
)]
pub struct Cli {
    /// Service URL.
    #[arg(
        long,
        global = true,
        env = "SITEBOOT_SERVER",
        default_value = "https://127.0.0.1:8443"
    )]
    pub server: String,
    /// Data directory of an embedded service (defaults for --ca-file and --token-file).
    #[arg(long, global = true, env = "SITEBOOT_DATA_DIR", default_value = DEFAULT_DATA_DIR)]
    pub data_dir: PathBuf,
    /// CA bundle to trust (default: <data-dir>/ca.pem).
    #[arg(long, global = true, env = "SITEBOOT_CA_FILE")]
    pub ca_file: Option<PathBuf>,
    /// Operator credential file (default: <data-dir>/operator-token).
    #[arg(long, global = true, env = "SITEBOOT_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
    /// Output format.
    #[arg(short = 'o', long, global = true, value_enum, default_value = "table")]
    pub output: Output,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Registration tokens.
    #[command(subcommand)]
    Token(TokenCmd),
    /// Claim codes for replacement boxes.
    #[command(subcommand)]
    Claim(ClaimCmd),
    /// Sites from the inventory with their device state.
    #[command(subcommand)]
    Sites(SitesCmd),
    /// Registered devices.
    #[command(subcommand)]
    Devices(DevicesCmd),
    /// Devices waiting for approval.
    #[command(subcommand)]
    Pending(PendingCmd),
    /// The inventory file.
    #[command(subcommand)]
    Inventory(InventoryCmd),
    /// Write a NoCloud seed ISO (cidata): bootstrap data, or a claim for a replacement box.
    Seed(super::seed::SeedArgs),
}

/// `token ...`.
#[derive(Debug, Subcommand)]
pub enum TokenCmd {
    /// Mint a one-time registration token (printed once).
    Create {
        /// Site the token registers a device for.
        #[arg(long)]
        site: String,
        /// Lifetime (e.g. 24h).
        #[arg(long, value_parser = parse_duration)]
        ttl: Option<std::time::Duration>,
        /// Bind to a CAPI Machine: NAMESPACE/NAME.
        #[arg(long)]
        machine: Option<String>,
    },
    /// Show a token's state.
    Show {
        /// Token id.
        id: String,
    },
    /// Extend an unused token to now + TTL.
    Extend {
        /// Token id.
        id: String,
        /// New lifetime from now (e.g. 24h).
        #[arg(long, value_parser = parse_duration)]
        ttl: std::time::Duration,
    },
    /// Revoke a token.
    Revoke {
        /// Token id.
        id: String,
    },
}

/// `claim ...`.
#[derive(Debug, Subcommand)]
pub enum ClaimCmd {
    /// Mint a claim code for a site (printed once).
    Create {
        /// Site the replacement box takes over.
        #[arg(long)]
        site: String,
        /// Lifetime (e.g. 72h).
        #[arg(long, value_parser = parse_duration)]
        ttl: Option<std::time::Duration>,
    },
}

/// `sites ...`.
#[derive(Debug, Subcommand)]
pub enum SitesCmd {
    /// List sites with their state, and counts per state.
    List {
        /// Only this region.
        #[arg(long)]
        region: Option<String>,
        /// Only this ring.
        #[arg(long)]
        ring: Option<String>,
        /// Only this state: never-seen, pending, offline, applying, ready, failed.
        #[arg(long, value_parser = parse_state)]
        state: Option<SiteState>,
    },
    /// One site: state, device, revisions, last error, devices and history.
    Show {
        /// Site id.
        id: String,
    },
}

/// `devices ...`.
#[derive(Debug, Subcommand)]
pub enum DevicesCmd {
    /// List devices.
    List {
        /// Only this site.
        #[arg(long)]
        site: Option<String>,
    },
    /// One device.
    Show {
        /// Device id.
        id: String,
    },
    /// Revoke a device: its certificate is refused from now on.
    Revoke {
        /// Device id.
        id: String,
        /// Why (audit trail).
        #[arg(long, default_value = "")]
        reason: String,
    },
}

/// `pending ...`.
#[derive(Debug, Subcommand)]
pub enum PendingCmd {
    /// List pending devices.
    List,
    /// Approve a pending device for a site.
    Approve {
        /// Pending id.
        id: String,
        /// Site to bind it to.
        #[arg(long)]
        site: String,
    },
    /// Reject a pending device.
    Reject {
        /// Pending id.
        id: String,
        /// Why.
        #[arg(long, default_value = "")]
        reason: String,
    },
}

/// `inventory ...`.
#[derive(Debug, Subcommand)]
pub enum InventoryCmd {
    /// Reload the inventory file (a bad file keeps the previous inventory serving).
    Reload,
}

fn parse_state(s: &str) -> Result<SiteState, String> {
    SiteState::parse(s).ok_or_else(|| {
        let all: Vec<&str> = SiteState::ALL.iter().map(|s| s.as_str()).collect();
        format!("unknown state {s:?}: use one of {}", all.join(", "))
    })
}

fn seg(s: &str) -> String {
    // Ids are plain tokens; refuse anything that would change the path.
    s.chars()
        .filter(|c| c.is_ascii_alphanumeric() || "-_.".contains(*c))
        .collect()
}

fn machine_ref(text: &str) -> Result<operator::MachineRef, CtlError> {
    match text.split_once('/') {
        Some((ns, name)) if !ns.is_empty() && !name.is_empty() => Ok(operator::MachineRef {
            namespace: ns.into(),
            name: name.into(),
            uid: None,
        }),
        _ => Err(CtlError::Usage(format!(
            "--machine {text:?} must be NAMESPACE/NAME"
        ))),
    }
}

fn query(pairs: &[(&str, &Option<String>)]) -> String {
    let parts: Vec<String> = pairs
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={}", seg(v))))
        .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!("?{}", parts.join("&"))
    }
}

/// Performs the API call for a command.
pub async fn dispatch(c: &Client, cmd: &Command) -> Result<Value, CtlError> {
    use operator::*;
    match cmd {
        Command::Token(TokenCmd::Create { site, ttl, machine }) => {
            let req = MintTokenRequest {
                site_id: site.clone(),
                machine: machine.as_deref().map(machine_ref).transpose()?,
                ttl_seconds: ttl.map(|d| d.as_secs()),
            };
            c.post(PATH_TOKENS, &json!(req)).await
        }
        Command::Token(TokenCmd::Show { id }) => c.get(&format!("{PATH_TOKENS}/{}", seg(id))).await,
        Command::Token(TokenCmd::Extend { id, ttl }) => {
            let req = ExtendTokenRequest {
                ttl_seconds: ttl.as_secs(),
            };
            c.post(&format!("{PATH_TOKENS}/{}/extend", seg(id)), &json!(req))
                .await
        }
        Command::Token(TokenCmd::Revoke { id }) => {
            c.post(&format!("{PATH_TOKENS}/{}/revoke", seg(id)), &json!({}))
                .await
        }
        Command::Claim(ClaimCmd::Create { site, ttl }) => {
            let req = MintClaimRequest {
                site_id: site.clone(),
                ttl_seconds: ttl.map(|d| d.as_secs()),
            };
            c.post(PATH_CLAIMS, &json!(req)).await
        }
        Command::Sites(SitesCmd::List {
            region,
            ring,
            state,
        }) => {
            let state = state.map(|s| s.as_str().to_string());
            c.get(&format!(
                "{PATH_FLEET}{}",
                query(&[("region", region), ("ring", ring), ("state", &state)])
            ))
            .await
        }
        Command::Sites(SitesCmd::Show { id }) => {
            c.get(&format!("{PATH_FLEET_SITES}/{}", seg(id))).await
        }
        Command::Devices(DevicesCmd::List { site }) => {
            c.get(&format!("{PATH_DEVICES}{}", query(&[("site", site)])))
                .await
        }
        Command::Devices(DevicesCmd::Show { id }) => {
            c.get(&format!("{PATH_DEVICES}/{}", seg(id))).await
        }
        Command::Devices(DevicesCmd::Revoke { id, reason }) => {
            let req = ReasonRequest {
                reason: reason.clone(),
            };
            c.post(&format!("{PATH_DEVICES}/{}/revoke", seg(id)), &json!(req))
                .await
        }
        Command::Pending(PendingCmd::List) => c.get(PATH_PENDING).await,
        Command::Pending(PendingCmd::Approve { id, site }) => {
            let req = ApproveRequest {
                site_id: site.clone(),
            };
            c.post(&format!("{PATH_PENDING}/{}/approve", seg(id)), &json!(req))
                .await
        }
        Command::Pending(PendingCmd::Reject { id, reason }) => {
            let req = ReasonRequest {
                reason: reason.clone(),
            };
            c.post(&format!("{PATH_PENDING}/{}/reject", seg(id)), &json!(req))
                .await
        }
        Command::Inventory(InventoryCmd::Reload) => c.post(PATH_INVENTORY_RELOAD, &json!({})).await,
        // Needs no operator credential for bootstrap data: run by `execute` itself.
        Command::Seed(_) => Err(CtlError::Usage("seed is run by ctl::execute".into())),
    }
}
