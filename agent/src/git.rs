//! Hydrate from Git: a shallow (depth 1) fetch of the assigned source at its revision
//! policy with gix, then only the assigned paths are written out.
//!
//! Layout under the work directory:
//! - `repo.git/`: a bare, shallow object store reused across polls (so a later fetch only
//!   downloads what changed); rebuilt from scratch when it collected too many packs.
//! - `checkouts/<commit>-<paths hash>/<path>/...`: the materialised paths of one commit,
//!   built in a temporary directory and renamed into place. The newest few are kept so the
//!   agent can keep enforcing the last good revision.
//!
//! A poll whose branch head equals `known` (and whose checkout exists) costs a handshake
//! and `ls-refs` only: no pack is requested. A pinned commit already in the object store
//! costs nothing on the wire. A new commit is fetched with depth 1; when the server speaks
//! protocol v2 with `filter`, as commit and trees only (`blob:none`, with the previous
//! commit as `have`), followed by exactly the blobs under the assigned paths that the
//! object store lacks (see `git/protocol.rs`). Bytes on the wire are counted per fetch.

mod classify;
mod counting;
mod error;
mod http;
mod materialise;
mod protocol;
mod ssh;
mod transport;

use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use gix::protocol::fetch::Shallow;
use gix::ObjectId;
use siteboot_wire::assignment::{GitSource, RevisionPolicy};

pub use error::{redact_url, ErrorCategory, FetchError};

use counting::Counter;
use protocol::Conversation;

/// Rebuild the object store once it holds more packs than this (each fetch adds one).
const MAX_PACKS: usize = 32;

/// Bytes exchanged with the Git server during one fetch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WireBytes {
    /// Bytes sent to the server.
    pub sent: u64,
    /// Bytes received from the server.
    pub received: u64,
}

impl WireBytes {
    /// Both directions.
    pub fn total(&self) -> u64 {
        self.sent + self.received
    }
}

/// The result of a successful fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchOutcome {
    /// The commit now materialised (40 hex).
    pub commit: String,
    /// Directory holding the assigned paths of `commit` (e.g. `<root>/baseline/...`).
    pub root: PathBuf,
    /// `false` when `commit` equals the `known` commit and its checkout was reused.
    pub changed: bool,
    /// Whether a pack was downloaded (false for a ref-check-only poll).
    pub pack_received: bool,
    /// Assigned paths that do not exist in `commit` (rendered as empty layers).
    pub missing_paths: Vec<String>,
    /// Bytes on the wire: git protocol bytes for `file://`, `git://` and http(s) (request
    /// line and headers estimated, TLS not counted); the whole TCP stream for ssh.
    pub wire: WireBytes,
}

/// Fetch `source` and materialise `paths` under `workdir` (see the module docs).
/// `known` is the commit of the last successful fetch, if any. Runs the blocking work on
/// tokio's blocking pool.
pub async fn fetch(
    source: &GitSource,
    paths: &[String],
    workdir: &Path,
    known: Option<&str>,
) -> Result<FetchOutcome, FetchError> {
    let rt = tokio::runtime::Handle::current();
    let (source, paths, workdir) = (source.clone(), paths.to_vec(), workdir.to_path_buf());
    let known = known.map(str::to_owned);
    tokio::task::spawn_blocking(move || {
        fetch_blocking(&source, &paths, &workdir, known.as_deref(), &rt)
    })
    .await
    .map_err(|e| FetchError::storage(Path::new("git fetch task"), e))?
}

/// The checkout of `commit` for `paths`, without network (for a restart while offline:
/// keep enforcing the last applied revision). Re-materialised from the local object store
/// when the directory was pruned; `None` when the commit is not stored locally either.
pub fn existing_checkout(workdir: &Path, commit: &str, paths: &[String]) -> Option<PathBuf> {
    let paths = materialise::normalise_paths(paths).ok()?;
    let checkouts = workdir.join("checkouts");
    let dir = checkouts.join(materialise::checkout_name(commit, &paths));
    if dir.is_dir() {
        return Some(dir);
    }
    let id = ObjectId::from_hex(commit.as_bytes()).ok()?;
    let store = workdir.join("repo.git");
    if !store.join("HEAD").is_file() {
        return None;
    }
    let repo = gix::open_opts(&store, gix::open::Options::isolated()).ok()?;
    if !repo.has_object(id) {
        return None;
    }
    materialise::materialise(&repo, id, &paths, &checkouts)
        .map(|(root, _)| root)
        .ok()
}

/// Blocking form of [`fetch`]; must run outside async context (ssh uses `rt`).
pub fn fetch_blocking(
    source: &GitSource,
    paths: &[String],
    workdir: &Path,
    known: Option<&str>,
    rt: &tokio::runtime::Handle,
) -> Result<FetchOutcome, FetchError> {
    let paths = materialise::normalise_paths(paths)?;
    if paths.is_empty() {
        return Err(FetchError::Config("the assignment names no paths".into()));
    }
    let display = redact_url(&source.url);
    let url = gix::url::parse(source.url.as_bytes())
        .map_err(|e| FetchError::Config(format!("{display} is not a git url: {e}")))?;
    let want = Want::from_policy(&source.revision)?;
    let checkouts = workdir.join("checkouts");
    let repo = open_repo(&workdir.join("repo.git"))?;
    let counter = Counter::default();
    let finish = |commit: ObjectId,
                  pack_received: bool,
                  counter: &Counter|
     -> Result<FetchOutcome, FetchError> {
        let commit_hex = commit.to_string();
        let changed = known != Some(commit_hex.as_str());
        let existing = checkouts.join(materialise::checkout_name(&commit_hex, &paths));
        let (root, missing_paths) = if !changed && existing.is_dir() {
            (existing.clone(), missing_in(&existing, &paths))
        } else {
            materialise::materialise(&repo, commit, &paths, &checkouts)?
        };
        materialise::prune(&checkouts, &root, known);
        Ok(FetchOutcome {
            commit: commit_hex,
            root,
            changed,
            pack_received,
            missing_paths,
            wire: WireBytes {
                sent: counter.sent(),
                received: counter.received(),
            },
        })
    };
    let complete = |id: ObjectId| {
        repo.has_object(id)
            && materialise::missing_blobs(&repo, id, &paths).is_ok_and(|m| m.is_empty())
    };
    if let Want::Commit(id) = want {
        if complete(id) {
            return finish(id, false, &counter);
        }
    }

    let connected = transport::connect(&url, &display, source.auth.as_ref(), &counter, rt)?;
    let secrets = classify::secrets(source.auth.as_ref());
    let auth_asked = Arc::new(AtomicBool::new(false));
    let ctx = classify::Context {
        display: &display,
        auth_asked: auth_asked.clone(),
        stderr: connected.stderr.clone(),
        secrets: &secrets,
    };
    let mut conv = Conversation::open(connected.transport, connected.options, auth_asked)
        .map_err(|e| ctx.classify(&e))?;
    let remote_id = match &want {
        Want::Commit(id) => *id,
        Want::Branch(name) => conv
            .branch_head(name)
            .map_err(|e| ctx.classify(&e))?
            .ok_or_else(|| FetchError::BranchNotFound {
                url: display.clone(),
                branch: name.clone(),
            })?,
    };
    let unchanged = known == Some(remote_id.to_string().as_str())
        && checkouts
            .join(materialise::checkout_name(&remote_id.to_string(), &paths))
            .is_dir();
    if unchanged || complete(remote_id) {
        conv.end();
        return finish(remote_id, false, &counter);
    }
    if !repo.has_object(remote_id) {
        let filter = conv.supports_filter();
        // Exact haves let the server leave out what we hold; only where a second
        // request can make up for blobs an earlier filtered fetch skipped.
        let haves: Vec<ObjectId> = known
            .and_then(|k| ObjectId::from_hex(k.as_bytes()).ok())
            .filter(|k| filter && repo.has_object(*k))
            .into_iter()
            .collect();
        let depth = NonZeroU32::new(1).expect("non-zero");
        conv.fetch(
            &repo,
            &[remote_id],
            &haves,
            Shallow::DepthAtRemote(depth),
            filter.then_some("blob:none"),
        )
        .map_err(|e| ctx.classify(&e))?;
        if !repo.has_object(remote_id) {
            return Err(FetchError::Protocol {
                url: display,
                reason: format!("server did not send commit {remote_id}"),
            });
        }
    }
    let blobs = materialise::missing_blobs(&repo, remote_id, &paths).map_err(|reason| {
        FetchError::Protocol {
            url: display.clone(),
            reason: format!("incomplete trees for commit {remote_id}: {reason}"),
        }
    })?;
    if !blobs.is_empty() {
        conv.fetch(&repo, &blobs, &[], Shallow::NoChange, None)
            .map_err(|e| ctx.classify(&e))?;
    }
    conv.end();
    finish(remote_id, true, &counter)
}

/// What to ask the server for.
enum Want {
    Branch(String),
    Commit(ObjectId),
}

impl Want {
    fn from_policy(policy: &RevisionPolicy) -> Result<Self, FetchError> {
        match policy {
            RevisionPolicy::Branch { name } => {
                let ok = !name.is_empty()
                    && !name.starts_with(['-', '/'])
                    && !name.contains("..")
                    && !name.contains(|c: char| {
                        c.is_whitespace() || c.is_control() || "~^:?*[\\".contains(c)
                    });
                if !ok {
                    return Err(FetchError::Config(format!(
                        "{name:?} is not a valid branch name"
                    )));
                }
                Ok(Want::Branch(name.clone()))
            }
            RevisionPolicy::Commit { sha } => match ObjectId::from_hex(sha.as_bytes()) {
                Ok(id) if sha.len() == 40 => Ok(Want::Commit(id)),
                _ => Err(FetchError::Config(format!(
                    "pinned commit {sha:?} is not a full 40-hex commit id"
                ))),
            },
        }
    }
}

fn missing_in(root: &Path, paths: &[String]) -> Vec<String> {
    paths
        .iter()
        .filter(|p| !root.join(p).exists())
        .cloned()
        .collect()
}

/// Open (or create) the bare object store, isolated from user and system git config.
fn open_repo(dir: &Path) -> Result<gix::Repository, FetchError> {
    let packs = std::fs::read_dir(dir.join("objects/pack"))
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| e.path().extension().is_some_and(|x| x == "pack"))
                .count()
        })
        .unwrap_or(0);
    if packs > MAX_PACKS {
        std::fs::remove_dir_all(dir).map_err(|e| FetchError::storage(dir, e))?;
    }
    let opts = gix::open::Options::isolated();
    let repo = if dir.join("HEAD").is_file() {
        gix::open_opts(dir, opts)
    } else {
        std::fs::create_dir_all(dir).map_err(|e| FetchError::storage(dir, e))?;
        gix::ThreadSafeRepository::init_opts(dir, gix::create::Kind::Bare, Default::default(), opts)
            .map(Into::into)
    };
    repo.map_err(|e| FetchError::storage(dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revision_policy_table() {
        let branch = |n: &str| RevisionPolicy::Branch { name: n.into() };
        let commit = |s: &str| RevisionPolicy::Commit { sha: s.into() };
        let sha = "0123456789abcdef0123456789abcdef01234567";
        let cases = [
            (branch("main"), true),
            (branch("release/2026-w14"), true),
            (branch(""), false),
            (branch("-upload-pack"), false),
            (branch("a..b"), false),
            (branch("with space"), false),
            (branch("x:y"), false),
            (commit(sha), true),
            (commit(&sha[..12]), false),
            (commit("not-hex-not-hex-not-hex-not-hex-not-hex!"), false),
        ];
        for (policy, ok) in cases {
            assert_eq!(Want::from_policy(&policy).is_ok(), ok, "{policy:?}");
        }
    }
}
