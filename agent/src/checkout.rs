//! Reading the layers of a checkout from disk (the only I/O before rendering): every
//! `.yaml` / `.yml` file below each assigned path, recursively, sorted by path.
//! `kustomization.yaml` files are skipped (the agent applies plain manifests).
//!
//! An assigned path missing from the revision is an empty layer: Git cannot hold an empty
//! directory, so deleting the last file of a site overlay (or a site that never had one)
//! must not fail the revision. When *no* assigned path exists the revision fails: that is
//! a wrong repository, branch or path list, and applying it would prune everything.

use std::fs;
use std::path::Path;

use crate::render::{Layer, SourceFile};

/// Why a layer could not be read.
#[derive(Debug, thiserror::Error)]
pub enum CheckoutError {
    /// None of the assigned paths exists in the revision.
    #[error("none of the assigned paths ({0}) exists in this revision: check the repository, branch and paths")]
    NoPaths(String),
    /// An assigned path escapes the checkout.
    #[error("assigned path {0:?} is not a relative path inside the repository")]
    BadPath(String),
    /// Read failure.
    #[error("read {path}: {source}")]
    Read {
        /// File.
        path: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// A manifest is not UTF-8.
    #[error("{0} is not UTF-8 text")]
    NotText(String),
}

/// Reads `paths` (in order) below `root`; missing ones are empty layers.
pub fn load_layers(root: &Path, paths: &[String]) -> Result<Vec<Layer>, CheckoutError> {
    if let Some(bad) = paths.iter().find(|p| p.split('/').any(|c| c == "..")) {
        return Err(CheckoutError::BadPath(bad.clone()));
    }
    let missing = missing_paths(root, paths);
    if !paths.is_empty() && missing.len() == paths.len() {
        return Err(CheckoutError::NoPaths(paths.join(", ")));
    }
    paths.iter().map(|p| load_layer(root, p)).collect()
}

/// Assigned paths absent from the checkout.
pub fn missing_paths(root: &Path, paths: &[String]) -> Vec<String> {
    paths
        .iter()
        .filter(|p| !root.join(p.trim_matches('/')).exists())
        .cloned()
        .collect()
}

fn load_layer(root: &Path, path: &str) -> Result<Layer, CheckoutError> {
    let rel = path.trim_matches('/');
    if rel.split('/').any(|c| c == "..") {
        return Err(CheckoutError::BadPath(path.into()));
    }
    let dir = root.join(rel);
    let mut files = Vec::new();
    if !dir.exists() {
        // Empty layer (see the module docs).
    } else if dir.is_file() {
        files.push(read_file(root, &dir)?);
    } else {
        walk(root, &dir, &mut files)?;
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(Layer {
        path: path.to_string(),
        files,
    })
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<SourceFile>) -> Result<(), CheckoutError> {
    let read = |source| CheckoutError::Read {
        path: dir.display().to_string(),
        source,
    };
    for entry in fs::read_dir(dir).map_err(read)? {
        let entry = entry.map_err(read)?;
        let p = entry.path();
        let name = entry.file_name().to_string_lossy().to_string();
        if name.starts_with('.') {
            continue;
        }
        if p.is_dir() {
            walk(root, &p, out)?;
        } else if (name.ends_with(".yaml") || name.ends_with(".yml"))
            && name != "kustomization.yaml"
            && name != "kustomization.yml"
        {
            out.push(read_file(root, &p)?);
        }
    }
    Ok(())
}

fn read_file(root: &Path, p: &Path) -> Result<SourceFile, CheckoutError> {
    let rel = p.strip_prefix(root).unwrap_or(p).display().to_string();
    let bytes = fs::read(p).map_err(|source| CheckoutError::Read {
        path: rel.clone(),
        source,
    })?;
    let text = String::from_utf8(bytes).map_err(|_| CheckoutError::NotText(rel.clone()))?;
    Ok(SourceFile { path: rel, text })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loads_sorted_yaml_and_reports_missing_paths() {
        let tmp = tempfile::tempdir().unwrap();
        let r = tmp.path();
        fs::create_dir_all(r.join("baseline/sub")).unwrap();
        fs::write(r.join("baseline/b.yaml"), "b").unwrap();
        fs::write(r.join("baseline/a.yml"), "a").unwrap();
        fs::write(r.join("baseline/sub/c.yaml"), "c").unwrap();
        fs::write(r.join("baseline/README.md"), "x").unwrap();
        fs::write(r.join("baseline/kustomization.yaml"), "k").unwrap();
        let layers = load_layers(r, &["baseline/".into()]).unwrap();
        let names: Vec<&str> = layers[0].files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(
            names,
            ["baseline/a.yml", "baseline/b.yaml", "baseline/sub/c.yaml"]
        );
        let two = load_layers(r, &["baseline/".into(), "clusters/x/".into()]).unwrap();
        assert!(
            two[1].files.is_empty(),
            "a missing overlay is an empty layer"
        );
        assert_eq!(
            missing_paths(r, &["baseline/".into(), "clusters/x/".into()]),
            ["clusters/x/"]
        );
        let err = load_layers(r, &["regions/y/".into(), "clusters/x/".into()]).unwrap_err();
        assert!(matches!(err, CheckoutError::NoPaths(_)), "{err}");
        assert!(matches!(
            load_layers(r, &["../etc/".into()]),
            Err(CheckoutError::BadPath(_))
        ));
    }
}
