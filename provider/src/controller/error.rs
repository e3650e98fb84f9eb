//! Reconcile errors, one variant per pipeline stage, each with a `category()` used as the
//! metric label and the event reason. Messages name what failed and never carry secrets.

use crate::operator_client::OperatorError;
use crate::render::RenderError;

/// A failed reconcile.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// Reading an object from the API server failed.
    #[error("fetch {what}: {source}")]
    Fetch { what: String, source: kube::Error },
    /// A referenced input (credential Secret, CA bundle) is missing or unusable.
    #[error("read {what}: {reason}")]
    Input { what: String, reason: String },
    /// The registration service call failed.
    #[error(transparent)]
    Registration(#[from] OperatorError),
    /// Rendering the bootstrap data failed after a token was minted.
    #[error("render bootstrap data: {0}")]
    Render(#[from] RenderError),
    /// Writing the Secret or the finalizer failed.
    #[error("apply {what}: {source}")]
    Apply {
        what: &'static str,
        source: kube::Error,
    },
    /// Patching the status failed.
    #[error("patch status: {0}")]
    Status(kube::Error),
}

impl ReconcileError {
    /// Short stable label for metrics and event reasons.
    pub fn category(&self) -> &'static str {
        match self {
            Self::Fetch { .. } => "fetch",
            Self::Input { .. } => "input",
            Self::Registration(e) => e.category(),
            Self::Render(_) => "render",
            Self::Apply { .. } => "apply",
            Self::Status(_) => "status",
        }
    }

    /// CamelCase event reason for this failure.
    pub fn event_reason(&self) -> &'static str {
        match self {
            Self::Fetch { .. } => "FetchFailed",
            Self::Input { .. } => "InputMissing",
            Self::Registration(crate::operator_client::OperatorError::Unavailable { .. }) => {
                "RegistrationServiceUnavailable"
            }
            Self::Registration(_) => "RegistrationServiceRejected",
            Self::Render(_) => "DataSecretGenerationFailed",
            Self::Apply { .. } => "ApplyFailed",
            Self::Status(_) => "StatusPatchFailed",
        }
    }
}
