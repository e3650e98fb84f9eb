//! `--root DIR` (`SITEBOOT_ROOT`): resolve every absolute path of the configuration under
//! `DIR`, as if the agent ran in a chroot at `DIR`. The config file path itself, the CA
//! bundle, credential files, the data directory and the kubeconfig move; URLs, ids and
//! intervals do not. Relative paths stay relative (to the working directory).
//!
//! Used to run the agent against a file tree that holds exactly what bootstrap data or a
//! factory image would put on a box (the e2e journeys extract cloud-init and Ignition
//! files under a temporary root), and to inspect a mounted image from a rescue system.

use std::path::{Component, Path, PathBuf};

use crate::config::FileConfig;

/// `path` as seen from inside `root`: `/etc/x` under `/tmp/r` is `/tmp/r/etc/x`.
/// Relative paths are returned unchanged.
pub fn under_root(root: &Path, path: &Path) -> PathBuf {
    if !path.is_absolute() {
        return path.to_path_buf();
    }
    // Drop the root component (and any `..` that would climb above it, as in a chroot).
    let mut out = root.to_path_buf();
    for c in path.components() {
        match c {
            Component::Normal(part) => out.push(part),
            Component::ParentDir => {
                if out != root {
                    out.pop();
                }
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    out
}

/// Moves every path field of `cfg` under `root`.
pub fn reroot(mut cfg: FileConfig, root: &Path) -> FileConfig {
    let map = |p: &mut Option<PathBuf>| {
        if let Some(path) = p.as_mut() {
            *path = under_root(root, path);
        }
    };
    map(&mut cfg.ca_file);
    map(&mut cfg.token_file);
    map(&mut cfg.claim_code_file);
    map(&mut cfg.kubeconfig);
    if let Some(e) = cfg.enrollment.as_mut() {
        map(&mut e.secret_file);
    }
    // Seed paths (default ones included) move too: a rooted run never reads host media.
    let seeds = cfg.seed_paths.take().unwrap_or_else(|| {
        crate::seed::DEFAULT_SEED_PATHS
            .iter()
            .map(PathBuf::from)
            .collect()
    });
    cfg.seed_paths = Some(seeds.iter().map(|p| under_root(root, p)).collect());
    // So do the bootstrap-copy directories: a rooted run never scrubs the host's.
    let copies = cfg.bootstrap_copy_dirs.take().unwrap_or_else(|| {
        crate::config::DEFAULT_BOOTSTRAP_COPY_DIRS
            .iter()
            .map(PathBuf::from)
            .collect()
    });
    cfg.bootstrap_copy_dirs = Some(copies.iter().map(|p| under_root(root, p)).collect());
    // The default data directory is an absolute path too: it moves with the rest.
    cfg.data_dir = Some(under_root(root, &cfg.data_dir_or_default()));
    cfg
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::EnrollmentConfig;

    #[test]
    fn paths_under_root() {
        let root = Path::new("/tmp/box");
        let rows = [
            (
                "/etc/siteboot/agent.yaml",
                "/tmp/box/etc/siteboot/agent.yaml",
            ),
            ("/", "/tmp/box"),
            ("/var/lib/../lib/siteboot", "/tmp/box/var/lib/siteboot"),
            ("/../../etc/shadow", "/tmp/box/etc/shadow"),
            ("/./etc//x", "/tmp/box/etc/x"),
            ("relative/file", "relative/file"),
        ];
        for (input, want) in rows {
            assert_eq!(
                under_root(root, Path::new(input)),
                PathBuf::from(want),
                "{input}"
            );
        }
    }

    #[test]
    fn every_path_field_moves_and_nothing_else() {
        let cfg = FileConfig {
            registration_url: Some("https://reg.example:8443".into()),
            ca_file: Some("/etc/siteboot/registration-ca.pem".into()),
            ca_sha256: Some("ab".repeat(32)),
            site_id: Some("store-0142".into()),
            token_file: Some("/etc/siteboot/registration-token".into()),
            enrollment: Some(EnrollmentConfig {
                batch: Some("b1".into()),
                secret_file: Some("/etc/siteboot/batch.secret".into()),
            }),
            claim_code_file: Some("claim.txt".into()),
            kubeconfig: Some("/etc/rancher/k3s/k3s.yaml".into()),
            poll_interval_seconds: Some(5),
            ..FileConfig::default()
        };
        let got = reroot(cfg.clone(), Path::new("/r"));
        let want = FileConfig {
            ca_file: Some("/r/etc/siteboot/registration-ca.pem".into()),
            token_file: Some("/r/etc/siteboot/registration-token".into()),
            enrollment: Some(EnrollmentConfig {
                batch: Some("b1".into()),
                secret_file: Some("/r/etc/siteboot/batch.secret".into()),
            }),
            claim_code_file: Some("claim.txt".into()),
            kubeconfig: Some("/r/etc/rancher/k3s/k3s.yaml".into()),
            data_dir: Some("/r/var/lib/siteboot".into()),
            seed_paths: Some(vec![
                "/r/dev/disk/by-label/cidata".into(),
                "/r/dev/disk/by-label/CIDATA".into(),
                "/r/run/siteboot/seed".into(),
            ]),
            bootstrap_copy_dirs: Some(vec!["/r/var/lib/cloud/instances".into()]),
            ..cfg
        };
        assert_eq!(got, want);
    }
}
