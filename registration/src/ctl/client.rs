//! The operator API client: reqwest over rustls (ring), trusting only the given CA,
//! sending the operator credential as a bearer token. Maps outcomes to exit codes.

use std::time::Duration;

use serde_json::Value;
use siteboot_wire::{ApiError, SecretString};

use super::args::Cli;

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum CtlError {
    /// Bad flags or local configuration (exit 1).
    #[error("{0}")]
    Usage(String),
    /// The server refused (exit 2 for 4xx, 4 for 401/403, 5 for 404, 3 for 5xx).
    #[error("server answered {status}: {}{}", .error.message, .error.field.as_ref().map(|f| format!(" (field {f})")).unwrap_or_default())]
    Server {
        /// HTTP status.
        status: u16,
        /// The error body.
        error: ApiError,
    },
    /// The server could not be reached or answered garbage (exit 3).
    #[error("{0}")]
    Unreachable(String),
}

impl CtlError {
    /// The process exit code (listed in `sitebootctl --help`).
    pub fn exit_code(&self) -> u8 {
        match self {
            CtlError::Usage(_) => 1,
            CtlError::Server {
                status: 401 | 403, ..
            } => 4,
            CtlError::Server { status: 404, .. } => 5,
            CtlError::Server { status, .. } if *status < 500 => 2,
            _ => 3,
        }
    }
}

/// An operator API client.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    credential: SecretString,
}

impl Client {
    /// Builds a client from the CLI's flags and defaults.
    pub fn from_cli(cli: &Cli) -> Result<Self, CtlError> {
        let ca_file = cli
            .ca_file
            .clone()
            .unwrap_or_else(|| cli.data_dir.join("ca.pem"));
        let token_file = cli
            .token_file
            .clone()
            .unwrap_or_else(|| cli.data_dir.join("operator-token"));
        let ca = std::fs::read_to_string(&ca_file).map_err(|e| {
            CtlError::Usage(format!(
                "read ca file {}: {e}; pass --ca-file or --data-dir of the running service",
                ca_file.display()
            ))
        })?;
        let token = std::fs::read_to_string(&token_file).map_err(|e| {
            CtlError::Usage(format!(
                "read operator credential file {}: {e}; pass --token-file or --data-dir",
                token_file.display()
            ))
        })?;
        Self::new(&cli.server, &ca, SecretString::new(token.trim()))
    }

    /// A client for `server` trusting `ca_pem`.
    pub fn new(server: &str, ca_pem: &str, credential: SecretString) -> Result<Self, CtlError> {
        if !server.starts_with("https://") {
            return Err(CtlError::Usage(format!(
                "--server {server:?} must be an https:// url"
            )));
        }
        let tls = crate::tls::client_config(ca_pem, None)
            .map_err(|e| CtlError::Usage(format!("ca file: {e}")))?;
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| CtlError::Usage(format!("build http client: {e}")))?;
        Ok(Self {
            http,
            base: server.trim_end_matches('/').to_string(),
            credential,
        })
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> Result<Value, CtlError> {
        self.send(self.http.get(format!("{}{path}", self.base)))
            .await
    }

    /// `POST path` with a JSON body.
    pub async fn post(&self, path: &str, body: &Value) -> Result<Value, CtlError> {
        self.send(self.http.post(format!("{}{path}", self.base)).json(body))
            .await
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Result<Value, CtlError> {
        let resp = req
            .bearer_auth(self.credential.expose())
            .send()
            .await
            .map_err(|e| {
                CtlError::Unreachable(format!("cannot reach {}: {}", self.base, error_chain(&e)))
            })?;
        let status = resp.status().as_u16();
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| CtlError::Unreachable(format!("read answer from {}: {e}", self.base)))?;
        if (200..300).contains(&status) {
            return serde_json::from_slice(&bytes)
                .map_err(|e| CtlError::Unreachable(format!("server answered invalid json: {e}")));
        }
        let error = serde_json::from_slice::<ApiError>(&bytes).unwrap_or_else(|_| {
            ApiError::new(
                siteboot_wire::ErrorCode::Internal,
                format!("http {status} without an error body"),
            )
        });
        Err(CtlError::Server { status, error })
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(inner) = cur {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        cur = inner.source();
    }
    s
}
