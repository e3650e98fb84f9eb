//! Write the blobs under the assigned path prefixes of one commit into a fresh directory,
//! then rename it into place: `checkouts/<commit>-<paths hash>/`. The rest of the tree is
//! never written. Symlinks and submodules are skipped (a manifest tree needs neither, and
//! a symlink could point outside the checkout).

use std::path::{Path, PathBuf};

use gix::objs::tree::EntryKind;
use gix::ObjectId;
use sha2::{Digest, Sha256};

use super::error::FetchError;

/// How many checkouts to keep besides the new one and the one named as kept.
const KEEP: usize = 8;

/// Normalise and check assigned paths: relative, `/`-separated, no `.`/`..` parts.
pub(crate) fn normalise_paths(paths: &[String]) -> Result<Vec<String>, FetchError> {
    paths
        .iter()
        .map(|p| {
            let trimmed = p.trim_matches('/');
            let ok = !trimmed.is_empty()
                && trimmed
                    .split('/')
                    .all(|c| !c.is_empty() && c != "." && c != ".." && c != ".git" && !c.contains('\\'));
            if ok {
                Ok(trimmed.to_owned())
            } else {
                Err(FetchError::Config(format!(
                    "assigned path {p:?} must be a relative directory without '.', '..' or '.git' parts"
                )))
            }
        })
        .collect()
}

/// The directory name for `commit` with these `paths`.
pub(crate) fn checkout_name(commit: &str, paths: &[String]) -> String {
    let mut hash = Sha256::new();
    for p in paths {
        hash.update(p.as_bytes());
        hash.update(b"\n");
    }
    format!("{commit}-{}", &hex::encode(hash.finalize())[..12])
}

/// Materialise `paths` of `commit` under `checkouts/`, returning the root and the paths
/// the commit does not have.
pub(crate) fn materialise(
    repo: &gix::Repository,
    commit: ObjectId,
    paths: &[String],
    checkouts: &Path,
) -> Result<(PathBuf, Vec<String>), FetchError> {
    let storage = |e: &dyn std::fmt::Display| FetchError::storage(checkouts, e);
    let final_dir = checkouts.join(checkout_name(&commit.to_string(), paths));
    let tree = repo
        .find_commit(commit)
        .and_then(|c| c.tree())
        .map_err(|e| storage(&format!("commit {commit} is not in the object store: {e}")))?;
    std::fs::create_dir_all(checkouts).map_err(|e| storage(&e))?;
    let tmp = checkouts.join(format!(".tmp-{commit}-{}", std::process::id()));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(|e| storage(&e))?;
    }
    std::fs::create_dir_all(&tmp).map_err(|e| storage(&e))?;
    let mut missing = Vec::new();
    for p in paths {
        let entry = tree
            .lookup_entry_by_path(p)
            .map_err(|e| storage(&format!("reading {p} of {commit}: {e}")))?;
        match entry {
            None => missing.push(p.clone()),
            Some(entry) => {
                let dest = tmp.join(p);
                write_entry(repo, entry.mode().kind(), entry.object_id(), &dest)?;
            }
        }
    }
    if final_dir.exists() {
        std::fs::remove_dir_all(&final_dir).map_err(|e| storage(&e))?;
    }
    std::fs::rename(&tmp, &final_dir).map_err(|e| storage(&e))?;
    Ok((final_dir, missing))
}

fn write_entry(
    repo: &gix::Repository,
    kind: EntryKind,
    id: ObjectId,
    dest: &Path,
) -> Result<(), FetchError> {
    let storage = |e: &dyn std::fmt::Display| FetchError::storage(dest, e);
    match kind {
        EntryKind::Blob | EntryKind::BlobExecutable => {
            if let Some(parent) = dest.parent() {
                std::fs::create_dir_all(parent).map_err(|e| storage(&e))?;
            }
            let blob = repo.find_blob(id).map_err(|e| storage(&e))?;
            std::fs::write(dest, &blob.data).map_err(|e| storage(&e))
        }
        EntryKind::Tree => {
            std::fs::create_dir_all(dest).map_err(|e| storage(&e))?;
            let tree = repo.find_tree(id).map_err(|e| storage(&e))?;
            for entry in tree.iter() {
                let entry = entry.map_err(|e| storage(&e))?;
                let name = entry.filename().to_string();
                if name.is_empty()
                    || name == "."
                    || name == ".."
                    || name.contains(['/', '\\', '\0'])
                {
                    return Err(storage(&format!(
                        "tree entry {name:?} is not a safe file name"
                    )));
                }
                write_entry(
                    repo,
                    entry.mode().kind(),
                    entry.object_id(),
                    &dest.join(&name),
                )?;
            }
            Ok(())
        }
        EntryKind::Link | EntryKind::Commit => {
            tracing::warn!(path = %dest.display(), "skipping symlink or submodule in assigned path");
            Ok(())
        }
    }
}

/// Blobs under the assigned paths of `commit` that are not in the object store (after a
/// `blob:none` fetch). Errors when the commit or one of its trees is missing.
pub(crate) fn missing_blobs(
    repo: &gix::Repository,
    commit: ObjectId,
    paths: &[String],
) -> Result<Vec<ObjectId>, String> {
    let tree = repo
        .find_commit(commit)
        .map_err(|e| e.to_string())?
        .tree()
        .map_err(|e| e.to_string())?;
    let mut missing = Vec::new();
    let mut stack = Vec::new();
    for p in paths {
        if let Some(entry) = tree.lookup_entry_by_path(p).map_err(|e| e.to_string())? {
            stack.push((entry.mode().kind(), entry.object_id()));
        }
    }
    while let Some((kind, id)) = stack.pop() {
        match kind {
            EntryKind::Blob | EntryKind::BlobExecutable => {
                if !repo.has_object(id) && !missing.contains(&id) {
                    missing.push(id);
                }
            }
            EntryKind::Tree => {
                let tree = repo.find_tree(id).map_err(|e| e.to_string())?;
                for entry in tree.iter() {
                    let entry = entry.map_err(|e| e.to_string())?;
                    stack.push((entry.mode().kind(), entry.object_id()));
                }
            }
            EntryKind::Link | EntryKind::Commit => {}
        }
    }
    Ok(missing)
}

/// Remove old checkouts and stale temporary directories: keep `current`, `keep` and the
/// newest [`KEEP`] others.
pub(crate) fn prune(checkouts: &Path, current: &Path, keep: Option<&str>) {
    let Ok(dir) = std::fs::read_dir(checkouts) else {
        return;
    };
    let mut others: Vec<(std::time::SystemTime, PathBuf)> = dir
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.as_path() != current)
        .filter(|p| {
            let name = p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            if name.starts_with(".tmp-") {
                // Left over by an interrupted run (ours finished before pruning).
                std::fs::remove_dir_all(p).ok();
                return false;
            }
            !keep.is_some_and(|k| name.starts_with(k))
        })
        .filter_map(|p| Some((p.metadata().ok()?.modified().ok()?, p)))
        .collect();
    others.sort_by_key(|o| std::cmp::Reverse(o.0));
    for (_, old) in others.into_iter().skip(KEEP) {
        std::fs::remove_dir_all(&old).ok();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalise_paths_table() {
        let ok = normalise_paths(&[
            "baseline/".into(),
            "/regions/eu/".into(),
            "clusters/s1".into(),
        ])
        .unwrap();
        assert_eq!(ok, vec!["baseline", "regions/eu", "clusters/s1"]);
        for bad in ["", "/", "../etc", "a/../b", "./a", "a/.git", "a\\b"] {
            assert!(normalise_paths(&[bad.into()]).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn checkout_name_depends_on_paths() {
        let a = checkout_name("abc", &["baseline".into()]);
        let b = checkout_name("abc", &["baseline".into(), "regions/eu".into()]);
        assert_ne!(a, b);
        assert!(a.starts_with("abc-"));
    }
}
