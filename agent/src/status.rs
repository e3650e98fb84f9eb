//! The local status file (`status.json` in the data directory): what the agent would tell
//! the hub, readable on the box with `siteboot-agent status` when the hub is unreachable.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use siteboot_wire::api::{AgentState, HealthSummary};

use crate::attempts::Attempts;
use crate::offline::Offline;

/// Everything the agent reports, plus local detail.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LocalStatus {
    /// Site served.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site_id: Option<String>,
    /// Device id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
    /// Registration progress: `unregistered`, `pending`, `registered`, `revoked`.
    pub registration: String,
    /// Reconcile state.
    pub state: AgentState,
    /// Last revision applied successfully.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied_revision: Option<String>,
    /// Last revision attempted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempted_revision: Option<String>,
    /// Last fetched revision (may wait for the maintenance window).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fetched_revision: Option<String>,
    /// Error of the attempted revision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// A fetched revision waiting for the maintenance window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting_for_window: Option<String>,
    /// Health of the applied objects.
    #[serde(default)]
    pub health: HealthSummary,
    /// Offline periods (open and not yet reported).
    #[serde(default)]
    pub offline: Offline,
    /// Apply-attempt timings not yet reported (sent with each check-in, removed once one
    /// succeeded).
    #[serde(default)]
    pub attempts: Attempts,
    /// Last successful check-in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_checkin: Option<DateTime<Utc>>,
    /// Last drift repair of the applied revision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_resync: Option<DateTime<Utc>>,
    /// Set when the service revoked this device (replaced, or by an operator): the agent
    /// is parked and makes no further changes to the cluster.
    #[serde(default)]
    pub revoked: bool,
    /// When this file was written.
    pub updated_at: DateTime<Utc>,
}

impl LocalStatus {
    /// A fresh status.
    pub fn new(now: DateTime<Utc>) -> LocalStatus {
        LocalStatus {
            site_id: None,
            device_id: None,
            registration: "unregistered".into(),
            state: AgentState::Applying,
            applied_revision: None,
            attempted_revision: None,
            fetched_revision: None,
            error: None,
            waiting_for_window: None,
            health: HealthSummary::default(),
            offline: Offline::default(),
            attempts: Attempts::default(),
            last_checkin: None,
            last_resync: None,
            revoked: false,
            updated_at: now,
        }
    }
}

/// Cuts error text to what a check-in carries (4 KiB), on a character boundary.
pub fn clip_error(text: &str) -> String {
    const MAX: usize = 4096;
    if text.len() <= MAX {
        return text.to_string();
    }
    let mut end = MAX - 3;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clip_table() {
        assert_eq!(clip_error("short"), "short");
        let long = "é".repeat(3000);
        let clipped = clip_error(&long);
        assert!(clipped.len() <= 4096 && clipped.ends_with("..."));
    }
}
