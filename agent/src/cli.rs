//! Command line: `siteboot-agent [run|render|status]` with config overrides as flags and
//! environment variables. Parses, resolves the config (one line naming a bad field,
//! exit code 2) and dispatches. `run` exits 3 when the service refused the registration
//! for good (see [`EXIT_REFUSED`]), 1 for any other failure.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use siteboot_wire::labels::Labels;
use siteboot_wire::SecretString;

use crate::config::{self, EnrollmentConfig, FileConfig};
use crate::register::RegisterError;
use crate::run::{render_command, run, status_command, RunOptions};

/// The siteboot on-site agent.
#[derive(Debug, Parser)]
#[command(
    name = "siteboot-agent",
    version,
    about = "siteboot on-site agent: register, check in, hydrate the local cluster from Git"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    overrides: Overrides,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Register if needed, then reconcile forever (default).
    Run {
        /// Apply manifests from this local directory instead of the assigned Git source.
        #[arg(long, env = "SITEBOOT_SOURCE_DIR")]
        source_dir: Option<PathBuf>,
    },
    /// Print the YAML that would be applied.
    Render {
        /// Render this local directory instead of the last fetched checkout.
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Substitution variable `key=value` (repeatable).
        #[arg(long = "labels", value_name = "KEY=VALUE", value_parser = parse_label)]
        labels: Vec<(String, String)>,
        /// Layer path inside `--dir`, in order (repeatable; default: the assignment's
        /// paths, else the whole directory).
        #[arg(long = "path")]
        paths: Vec<String>,
    },
    /// Print the local status file.
    Status,
}

/// Config overrides; each beats the config file.
#[derive(Debug, Args)]
struct Overrides {
    /// Config file.
    #[arg(long, global = true, env = "SITEBOOT_AGENT_CONFIG")]
    config: Option<PathBuf>,
    /// Registration service URL (https://).
    #[arg(long, global = true, env = "SITEBOOT_REGISTRATION_URL")]
    registration_url: Option<String>,
    /// CA bundle for the service.
    #[arg(long, global = true, env = "SITEBOOT_CA_FILE")]
    ca_file: Option<PathBuf>,
    /// SHA-256 pin of the CA certificate.
    #[arg(long, global = true, env = "SITEBOOT_CA_SHA256")]
    ca_sha256: Option<String>,
    /// Expected site id.
    #[arg(long, global = true, env = "SITEBOOT_SITE_ID")]
    site_id: Option<String>,
    /// One-time registration token file.
    #[arg(long, global = true, env = "SITEBOOT_TOKEN_FILE")]
    token_file: Option<PathBuf>,
    /// Enrollment batch.
    #[arg(long, global = true, env = "SITEBOOT_ENROLLMENT_BATCH")]
    enrollment_batch: Option<String>,
    /// Enrollment secret file.
    #[arg(long, global = true, env = "SITEBOOT_ENROLLMENT_SECRET_FILE")]
    enrollment_secret_file: Option<PathBuf>,
    /// Claim code file.
    #[arg(long, global = true, env = "SITEBOOT_CLAIM_CODE_FILE")]
    claim_code_file: Option<PathBuf>,
    /// Claim code.
    #[arg(
        long,
        global = true,
        env = "SITEBOOT_CLAIM_CODE",
        hide_env_values = true
    )]
    claim_code: Option<String>,
    /// Data directory.
    #[arg(long, global = true, env = "SITEBOOT_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Kubeconfig of the local cluster.
    #[arg(long, global = true, env = "SITEBOOT_KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
    /// Seconds between Git polls.
    #[arg(long, global = true, env = "SITEBOOT_POLL_INTERVAL_SECONDS")]
    poll_interval_seconds: Option<u64>,
    /// Seconds between drift repairs.
    #[arg(long, global = true, env = "SITEBOOT_RESYNC_INTERVAL_SECONDS")]
    resync_interval_seconds: Option<u64>,
    /// Device serial (instead of DMI).
    #[arg(long, global = true, env = "SITEBOOT_SERIAL")]
    serial: Option<String>,
    /// Resolve every absolute path (config file included) under this directory, as in a
    /// chroot (an extracted bootstrap tree or a mounted image).
    #[arg(long, global = true, env = "SITEBOOT_ROOT")]
    root: Option<PathBuf>,
    /// Seed medium (ISO image, block device) or directory holding siteboot-claim.yaml
    /// (repeatable; default: /dev/disk/by-label/cidata, .../CIDATA, /run/siteboot/seed).
    #[arg(
        long = "seed",
        global = true,
        env = "SITEBOOT_SEED_PATHS",
        value_delimiter = ','
    )]
    seed: Vec<PathBuf>,
}

impl Overrides {
    fn as_file_config(&self) -> FileConfig {
        let enrollment = (self.enrollment_batch.is_some() || self.enrollment_secret_file.is_some())
            .then(|| EnrollmentConfig {
                batch: self.enrollment_batch.clone(),
                secret_file: self.enrollment_secret_file.clone(),
            });
        FileConfig {
            registration_url: self.registration_url.clone(),
            ca_file: self.ca_file.clone(),
            ca_sha256: self.ca_sha256.clone(),
            site_id: self.site_id.clone(),
            token_file: self.token_file.clone(),
            enrollment,
            claim_code_file: self.claim_code_file.clone(),
            claim_code: self.claim_code.clone().map(SecretString::new),
            data_dir: self.data_dir.clone(),
            kubeconfig: self.kubeconfig.clone(),
            poll_interval_seconds: self.poll_interval_seconds,
            resync_interval_seconds: self.resync_interval_seconds,
            seed_paths: (!self.seed.is_empty()).then(|| self.seed.clone()),
            bootstrap_copy_dirs: None,
        }
    }

    /// The file (explicit path must exist; the default may be absent) overlaid with flags.
    fn merged(&self) -> Result<FileConfig, config::ConfigError> {
        let (path, explicit) = match &self.config {
            Some(p) => (p.clone(), true),
            None => (PathBuf::from(config::DEFAULT_CONFIG), false),
        };
        let path = match &self.root {
            Some(root) => crate::root::under_root(root, &path),
            None => path,
        };
        let shown = path.display().to_string();
        let file = match std::fs::read_to_string(&path) {
            Ok(text) => FileConfig::parse(&text, &shown)?,
            Err(e) if !explicit && e.kind() == std::io::ErrorKind::NotFound => {
                FileConfig::default()
            }
            Err(e) => {
                return Err(config::ConfigError {
                    field: shown,
                    reason: format!("cannot read the config file: {e}"),
                })
            }
        };
        let merged = file.overlay(self.as_file_config());
        Ok(match &self.root {
            Some(root) => crate::root::reroot(merged, root),
            None => merged,
        })
    }
}

fn parse_label(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.trim().to_string(), v.to_string()))
        .filter(|(k, _)| !k.is_empty())
        .ok_or_else(|| format!("{s:?} is not key=value"))
}

/// Entry point used by `main`.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    let merged = match cli.overrides.merged() {
        Ok(m) => m,
        Err(e) => return fail_config(e),
    };
    match cli.command.unwrap_or(Command::Run { source_dir: None }) {
        Command::Status => print(status_command(&merged.data_dir_or_default())),
        Command::Render { dir, labels, paths } => {
            let labels: Labels = labels.into_iter().collect();
            print(render_command(
                &merged.data_dir_or_default(),
                dir.as_deref(),
                labels,
                paths,
            ))
        }
        Command::Run { source_dir } => {
            let settings = match config::resolve(merged) {
                Ok(s) => s,
                Err(e) => return fail_config(e),
            };
            let opts = RunOptions {
                serial: cli.overrides.serial.clone(),
                source_dir,
            };
            // Current-thread runtime: the agent does one thing at a time and stays small.
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("siteboot-agent: cannot start the runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match rt.block_on(run(settings, opts)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!("{e:#}");
                    eprintln!("siteboot-agent: {e:#}");
                    ExitCode::from(exit_status(&e))
                }
            }
        }
    }
}

/// Exit status of `run` for anything else that stopped it (systemd restarts it).
pub const EXIT_FAILURE: u8 = 1;
/// Exit status for a bad config (one line naming the field).
pub const EXIT_CONFIG: u8 = 2;
/// Exit status when the service refused the registration for good (invalid or spent
/// credential, cloned serial, rejected): an operator must act first. The systemd units
/// set `RestartPreventExitStatus=3`, so the box tries again once per boot or
/// `systemctl restart`, never in a loop.
pub const EXIT_REFUSED: u8 = 3;

/// The exit status for an error that stopped `run`.
pub fn exit_status(e: &anyhow::Error) -> u8 {
    match e.downcast_ref::<RegisterError>() {
        Some(r) if r.needs_operator() => EXIT_REFUSED,
        _ => EXIT_FAILURE,
    }
}

fn fail_config(e: config::ConfigError) -> ExitCode {
    eprintln!("siteboot-agent: {e}");
    ExitCode::from(EXIT_CONFIG)
}

fn print(result: anyhow::Result<String>) -> ExitCode {
    match result {
        Ok(text) => {
            println!("{}", text.trim_end());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("siteboot-agent: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SITEBOOT_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
