//! The assignment: what a registered site pulls from Git and how it renders it.

use serde::{Deserialize, Serialize};

use crate::labels::Labels;
use crate::secret::SecretString;

/// Where and what a site hydrates from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Assignment {
    /// The site this device serves.
    pub site_id: String,
    /// The fleet Git repository.
    pub source: GitSource,
    /// Ordered directories to render, later layers override earlier ones:
    /// `baseline/`, `regions/<region>/`, `clusters/<site-id>/`.
    pub paths: Vec<String>,
    /// Substitution variables for `${name}` in manifests (the site's labels).
    pub labels: Labels,
}

/// A Git source and how to authenticate to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GitSource {
    /// `https://`, `ssh://` (or `git@host:path`), `git://` or `file://` URL.
    pub url: String,
    /// Branch head or pinned commit, chosen by the site's ring.
    pub revision: RevisionPolicy,
    /// Name of the credential in the service's credential set (safe to show).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_ref: Option<String>,
    /// The credential material itself, sent only over mTLS to a registered device.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<GitAuth>,
}

/// Which revision of the source a site follows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    rename_all = "camelCase",
    rename_all_fields = "camelCase",
    tag = "type"
)]
pub enum RevisionPolicy {
    /// Follow the head of a branch.
    Branch {
        /// Branch name, without `refs/heads/`.
        name: String,
    },
    /// Stay on one commit.
    Commit {
        /// Full 40-hex commit id.
        sha: String,
    },
}

/// Credentials for a Git source. `Debug` redacts every secret field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    rename_all = "camelCase",
    rename_all_fields = "camelCase",
    tag = "type"
)]
pub enum GitAuth {
    /// HTTPS with a bearer token.
    Token {
        /// The token.
        token: SecretString,
        /// PEM CA bundle to trust for the Git server, if not a public CA.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ca_pem: Option<String>,
    },
    /// HTTPS with basic auth.
    Basic {
        /// User name.
        username: String,
        /// Password.
        password: SecretString,
        /// PEM CA bundle to trust for the Git server, if not a public CA.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ca_pem: Option<String>,
    },
    /// SSH with a deploy key and a pinned host key.
    Ssh {
        /// OpenSSH private key (PEM).
        private_key: SecretString,
        /// The server's public host key in `known_hosts` form (`ssh-ed25519 AAAA...`).
        known_host_key: String,
    },
    /// HTTPS with no credentials but a private CA.
    Ca {
        /// PEM CA bundle.
        ca_pem: String,
    },
}

/// The canonical ordered layer paths for a site.
pub fn layer_paths(region: &str, site_id: &str) -> Vec<String> {
    vec![
        "baseline/".into(),
        format!("regions/{region}/"),
        format!("clusters/{site_id}/"),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layer_paths_are_ordered() {
        assert_eq!(
            layer_paths("eu-west", "store-0142"),
            vec!["baseline/", "regions/eu-west/", "clusters/store-0142/"]
        );
    }

    #[test]
    fn auth_debug_redacts() {
        let a = GitAuth::Basic {
            username: "bot".into(),
            password: SecretString::new("pa55word-xyz"),
            ca_pem: None,
        };
        assert!(!format!("{a:?}").contains("pa55word"));
        let json = serde_json::to_string(&a).unwrap();
        assert!(json.contains("\"type\":\"basic\""));
        let back: GitAuth = serde_json::from_str(&json).unwrap();
        assert_eq!(back, a);
    }
}
