//! Redacting the spent one-time registration token from the copies of the bootstrap data
//! that the boot system keeps.
//!
//! Deleting the token file is not enough: cloud-init keeps the user-data it ran in its
//! instance cache (`/var/lib/cloud/instances/<id>/user-data.txt`, `user-data.txt.i`,
//! `cloud-config.txt`, `obj.pkl`), where the token sits base64-encoded. Once the token is
//! spent, every occurrence in those files is overwritten **in place with filler of the
//! same length**: the files keep their size and structure (YAML stays YAML, the pickle
//! stays loadable), so cloud-init on a later boot sees the same instance and re-runs
//! nothing, yet no copy of the token is left on the disk. Deleting the cache instead
//! would make cloud-init treat the next boot as a new instance.
//!
//! [`needles`] and [`redact`] are pure; [`scrub`] walks the directories and rewrites
//! files atomically (temp file beside, fsync, rename, same permissions).

use std::path::{Path, PathBuf};

use base64::Engine;

/// Files larger than this are not read (cloud-init's cache files are kilobytes).
const MAX_FILE: u64 = 64 << 20;
/// Directory depth walked below each configured directory.
const MAX_DEPTH: usize = 6;
/// Shorter needles are never searched for (they could match unrelated bytes).
const MIN_NEEDLE: usize = 16;

/// The forms the token takes in stored bootstrap data: as is, and base64 as
/// `write_files` carries it (of the exact file bytes, of the trimmed token, and of the
/// trimmed token with a newline).
pub fn needles(token_file: &[u8]) -> Vec<Vec<u8>> {
    let b64 = |b: &[u8]| {
        base64::engine::general_purpose::STANDARD
            .encode(b)
            .into_bytes()
    };
    let trimmed = token_file.trim_ascii();
    let mut with_newline = trimmed.to_vec();
    with_newline.push(b'\n');
    let mut out = vec![
        trimmed.to_vec(),
        b64(token_file),
        b64(trimmed),
        b64(&with_newline),
    ];
    out.retain(|n| n.len() >= MIN_NEEDLE);
    out.sort();
    out.dedup();
    out
}

/// `data` with every occurrence of every needle overwritten by `A`s of the same length
/// (`A` is valid in base64 and in a token's alphabet-free context alike); `None` when
/// nothing matched.
pub fn redact(data: &[u8], needles: &[Vec<u8>]) -> Option<Vec<u8>> {
    let mut out = data.to_vec();
    let mut hit = false;
    for n in needles.iter().filter(|n| !n.is_empty()) {
        let mut i = 0;
        while i + n.len() <= out.len() {
            if out[i..i + n.len()] == n[..] {
                out[i..i + n.len()].fill(b'A');
                hit = true;
                i += n.len();
            } else {
                i += 1;
            }
        }
    }
    hit.then_some(out)
}

/// Redacts the needles from every regular file under `dirs` (symlinks are not
/// followed; missing directories are skipped). Returns the files rewritten.
pub fn scrub(dirs: &[PathBuf], needles: &[Vec<u8>]) -> std::io::Result<Vec<PathBuf>> {
    let mut done = Vec::new();
    if needles.is_empty() {
        return Ok(done);
    }
    for d in dirs {
        walk(d, 0, needles, &mut done)?;
    }
    Ok(done)
}

fn walk(
    dir: &Path,
    depth: usize,
    needles: &[Vec<u8>],
    done: &mut Vec<PathBuf>,
) -> std::io::Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let ty = entry.file_type()?;
        let path = entry.path();
        if ty.is_dir() && depth < MAX_DEPTH {
            walk(&path, depth + 1, needles, done)?;
        } else if ty.is_file() && entry.metadata()?.len() <= MAX_FILE {
            let data = std::fs::read(&path)?;
            if let Some(clean) = redact(&data, needles) {
                rewrite(&path, &clean)?;
                done.push(path);
            }
        }
    }
    Ok(())
}

/// Replaces `path`'s content atomically, keeping its permissions.
fn rewrite(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let perms = std::fs::metadata(path)?.permissions();
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
    let tmp = dir.join(format!(".{}.siteboot-scrub", name.unwrap_or_default()));
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.set_permissions(perms)?;
        f.write_all(data)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "sbt1.0123456789.ABCDEFGHJKMNPQRSTVWXYZ0123";

    #[test]
    fn needles_cover_the_raw_and_base64_forms() {
        let n = needles(format!("{TOKEN}\n").as_bytes());
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        assert!(n.contains(&TOKEN.as_bytes().to_vec()));
        assert!(n.contains(&b64(&format!("{TOKEN}\n")).into_bytes()));
        assert!(n.contains(&b64(TOKEN).into_bytes()));
        assert_eq!(n.len(), 3, "duplicates removed");
        assert!(needles(b"short\n").is_empty(), "short needles are refused");
    }

    #[test]
    fn redaction_keeps_length_and_structure() {
        let b64 = base64::engine::general_purpose::STANDARD.encode(format!("{TOKEN}\n"));
        let rows: Vec<(&str, String, bool)> = vec![
            ("raw token", format!("token: {TOKEN}\nnext: 1\n"), true),
            (
                "base64 in write_files",
                format!("write_files:\n- encoding: b64\n  content: {b64}\n  path: /etc/t\n"),
                true,
            ),
            ("twice", format!("{TOKEN} and {TOKEN}"), true),
            ("nothing", "write_files: []\n".into(), false),
        ];
        let n = needles(format!("{TOKEN}\n").as_bytes());
        for (name, input, hit) in rows {
            let out = redact(input.as_bytes(), &n);
            assert_eq!(out.is_some(), hit, "{name}");
            if let Some(out) = out {
                assert_eq!(out.len(), input.len(), "{name}");
                let text = String::from_utf8(out).unwrap();
                assert!(
                    !text.contains(TOKEN) && !text.contains(&b64),
                    "{name}: {text}"
                );
                assert_eq!(text.lines().count(), input.lines().count(), "{name}");
            }
        }
    }

    #[test]
    fn scrub_rewrites_only_files_that_hold_the_token() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let inst = dir.path().join("instances/iid-1");
        std::fs::create_dir_all(&inst).unwrap();
        let b64 = base64::engine::general_purpose::STANDARD.encode(format!("{TOKEN}\n"));
        let ud = inst.join("user-data.txt");
        std::fs::write(
            &ud,
            format!("#cloud-config\nwrite_files:\n- content: {b64}\n"),
        )
        .unwrap();
        std::fs::set_permissions(&ud, std::fs::Permissions::from_mode(0o600)).unwrap();
        let other = inst.join("boot-finished");
        std::fs::write(&other, "done\n").unwrap();
        let n = needles(format!("{TOKEN}\n").as_bytes());
        let done = scrub(
            &[dir.path().join("instances"), dir.path().join("missing")],
            &n,
        )
        .unwrap();
        assert_eq!(done, vec![ud.clone()]);
        let text = std::fs::read_to_string(&ud).unwrap();
        assert!(!text.contains(&b64), "{text}");
        assert!(text.starts_with("#cloud-config\nwrite_files:\n- content: AAAA"));
        let mode = std::fs::metadata(&ud).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(std::fs::read_to_string(&other).unwrap(), "done\n");
        // Idempotent: a second pass finds nothing.
        assert!(scrub(&[dir.path().join("instances")], &n)
            .unwrap()
            .is_empty());
    }
}
