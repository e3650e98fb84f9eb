//! Where manifests come from: the assigned Git source (through [`crate::git`]) or, for
//! tests and `siteboot-agent render --dir`, a plain local directory.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use siteboot_wire::Assignment;

use crate::checkout::load_layers;

/// A fetched revision on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    /// Commit id (Git) or content hash (`dir:<sha256>`).
    pub revision: String,
    /// Directory holding the assigned paths.
    pub root: PathBuf,
}

/// A failed fetch.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct SourceError {
    /// The source was unreachable (offline), as opposed to misconfigured or broken.
    pub offline: bool,
    /// Secret-free description.
    pub message: String,
}

/// The two kinds of source.
#[derive(Debug, Clone)]
pub enum Source {
    /// The assignment's Git source; `workdir` holds the object store and checkouts.
    Git {
        /// Working directory (`<dataDir>/checkout`).
        workdir: PathBuf,
    },
    /// A local directory used as is.
    Dir(PathBuf),
}

impl Source {
    /// Fetches the assignment's current revision. `known` is the last fetched revision.
    pub async fn fetch(
        &self,
        assignment: &Assignment,
        known: Option<&str>,
    ) -> Result<Fetched, SourceError> {
        match self {
            Source::Git { workdir } => {
                let out = crate::git::fetch(&assignment.source, &assignment.paths, workdir, known)
                    .await
                    .map_err(|e| SourceError {
                        offline: e.is_offline(),
                        message: e.to_string(),
                    })?;
                Ok(Fetched {
                    revision: out.commit,
                    root: out.root,
                })
            }
            Source::Dir(dir) => Ok(Fetched {
                revision: dir_revision(dir, &assignment.paths)?,
                root: dir.clone(),
            }),
        }
    }

    /// The checkout of a revision fetched earlier, if still on disk (offline restarts).
    pub fn existing(&self, assignment: &Assignment, revision: &str) -> Option<PathBuf> {
        match self {
            Source::Git { workdir } => {
                crate::git::existing_checkout(workdir, revision, &assignment.paths)
            }
            Source::Dir(dir) => Some(dir.clone()),
        }
    }
}

/// `dir:<sha256 of the assigned files' paths and contents>`.
pub fn dir_revision(dir: &Path, paths: &[String]) -> Result<String, SourceError> {
    let layers = load_layers(dir, paths).map_err(|e| SourceError {
        offline: false,
        message: e.to_string(),
    })?;
    let mut h = Sha256::new();
    for f in layers.iter().flat_map(|l| &l.files) {
        h.update(f.path.as_bytes());
        h.update([0]);
        h.update(f.text.as_bytes());
        h.update([0]);
    }
    Ok(format!("dir:{}", &hex::encode(h.finalize())[..16]))
}
