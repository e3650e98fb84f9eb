//! What a box does with bootstrap data before anything runs: the files a rendered
//! `#cloud-config` (`write_files`, every encoding cloud-init knows) or an Ignition config
//! (`storage.files` with `data:` URLs, optionally gzip-compressed) puts on disk, read back
//! into plain [`BootFile`]s and written under a directory that stands in for the box's `/`.
//!
//! Pure parsing (table-tested below) plus one writer. The journeys start the agent from
//! exactly these files; nothing about the agent's configuration is built separately.

use std::io::Read as _;
use std::path::Path;

use base64::Engine as _;

/// One file the bootstrap data writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootFile {
    /// Absolute path on the box.
    pub path: String,
    /// Permission bits, when the data sets them.
    pub mode: Option<u32>,
    /// Decoded content.
    pub content: Vec<u8>,
}

/// Bootstrap data that cannot be read back.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BootDataError {
    /// The document does not parse.
    #[error("bootstrap data does not parse as {format}: {reason}")]
    Parse {
        /// `cloud-config` or `ignition`.
        format: &'static str,
        /// Parser message.
        reason: String,
    },
    /// A file entry is malformed.
    #[error("file {path:?}: {reason}")]
    File {
        /// The entry's path (or its index when it has none).
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// The Secret's `format` key names something else.
    #[error("unknown bootstrap data format {0:?}: expected cloud-config or ignition")]
    Format(String),
}

fn file_err(path: &str, reason: impl Into<String>) -> BootDataError {
    BootDataError::File {
        path: path.to_string(),
        reason: reason.into(),
    }
}

/// The files of bootstrap data in `format` (the CAPI data Secret's `format` key).
pub fn files(format: &str, data: &[u8]) -> Result<Vec<BootFile>, BootDataError> {
    let text = std::str::from_utf8(data).map_err(|e| BootDataError::Parse {
        format: if format == "ignition" {
            "ignition"
        } else {
            "cloud-config"
        },
        reason: e.to_string(),
    })?;
    match format {
        "cloud-config" => cloud_config_files(text),
        "ignition" => ignition_files(text),
        other => Err(BootDataError::Format(other.to_string())),
    }
}

fn gunzip(path: &str, bytes: &[u8]) -> Result<Vec<u8>, BootDataError> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut out)
        .map_err(|e| file_err(path, format!("gzip: {e}")))?;
    Ok(out)
}

fn b64(path: &str, text: &str) -> Result<Vec<u8>, BootDataError> {
    let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    base64::engine::general_purpose::STANDARD
        .decode(compact)
        .map_err(|e| file_err(path, format!("base64: {e}")))
}

/// `write_files` of a `#cloud-config` document, decoded as cloud-init does
/// (`encoding`: text, `b64`/`base64`, `gz`/`gzip`, `gz+b64` and its spellings).
pub fn cloud_config_files(text: &str) -> Result<Vec<BootFile>, BootDataError> {
    if !text.starts_with("#cloud-config") {
        return Err(BootDataError::Parse {
            format: "cloud-config",
            reason: "the first line is not #cloud-config".into(),
        });
    }
    let doc: serde_json::Value =
        serde_norway::from_str(text).map_err(|e| BootDataError::Parse {
            format: "cloud-config",
            reason: e.to_string(),
        })?;
    let Some(entries) = doc.get("write_files") else {
        return Ok(Vec::new());
    };
    let entries = entries.as_array().ok_or_else(|| BootDataError::Parse {
        format: "cloud-config",
        reason: "write_files is not a list".into(),
    })?;
    entries
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let path = f["path"]
                .as_str()
                .ok_or_else(|| file_err(&format!("write_files[{i}]"), "no path"))?
                .to_string();
            let content = f["content"].as_str().unwrap_or_default();
            let encoding = f["encoding"].as_str().unwrap_or("text/plain");
            let content = match encoding.to_ascii_lowercase().as_str() {
                "text/plain" => content.as_bytes().to_vec(),
                "b64" | "base64" => b64(&path, content)?,
                "gz" | "gzip" => gunzip(&path, content.as_bytes())?,
                "gz+b64" | "gz+base64" | "gzip+b64" | "gzip+base64" => {
                    gunzip(&path, &b64(&path, content)?)?
                }
                other => return Err(file_err(&path, format!("unknown encoding {other:?}"))),
            };
            let mode = match f["permissions"].as_str() {
                None => None,
                Some(p) => Some(
                    u32::from_str_radix(p.trim_start_matches("0o"), 8)
                        .map_err(|_| file_err(&path, format!("permissions {p:?} are not octal")))?,
                ),
            };
            Ok(BootFile {
                path,
                mode,
                content,
            })
        })
        .collect()
}

/// `storage.files` of an Ignition config: `contents.source` as a `data:` URL (base64 or
/// percent-encoded), `contents.compression` `gzip` or none, `mode` in decimal.
pub fn ignition_files(text: &str) -> Result<Vec<BootFile>, BootDataError> {
    let doc: serde_json::Value = serde_json::from_str(text).map_err(|e| BootDataError::Parse {
        format: "ignition",
        reason: e.to_string(),
    })?;
    if doc["ignition"]["version"].as_str().is_none() {
        return Err(BootDataError::Parse {
            format: "ignition",
            reason: "no ignition.version".into(),
        });
    }
    let Some(entries) = doc["storage"]["files"].as_array() else {
        return Ok(Vec::new());
    };
    entries
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let path = f["path"]
                .as_str()
                .ok_or_else(|| file_err(&format!("storage.files[{i}]"), "no path"))?
                .to_string();
            let raw = match f["contents"]["source"].as_str() {
                None => Vec::new(),
                Some(source) => data_url(source).map_err(|reason| file_err(&path, reason))?,
            };
            let content = match f["contents"]["compression"].as_str() {
                None | Some("") => raw,
                Some("gzip") => gunzip(&path, &raw)?,
                Some(other) => {
                    return Err(file_err(&path, format!("unknown compression {other:?}")))
                }
            };
            let mode = f["mode"].as_u64().map(|m| m as u32);
            Ok(BootFile {
                path,
                mode,
                content,
            })
        })
        .collect()
}

/// Decodes an RFC 2397 `data:[<mediatype>][;base64],<data>` URL.
pub fn data_url(url: &str) -> Result<Vec<u8>, String> {
    let rest = url
        .strip_prefix("data:")
        .ok_or_else(|| format!("source is not a data: URL ({})", scheme(url)))?;
    let (meta, data) = rest
        .split_once(',')
        .ok_or_else(|| "data: URL has no ','".to_string())?;
    let bytes = percent_decode(data)?;
    if meta.ends_with(";base64") {
        let text = String::from_utf8(bytes).map_err(|_| "base64 payload is not ASCII")?;
        base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .map_err(|e| format!("base64: {e}"))
    } else {
        Ok(bytes)
    }
}

/// The scheme of a URL for error messages (never the rest: it may hold a secret).
fn scheme(url: &str) -> &str {
    url.split_once(':').map_or("no scheme", |(s, _)| s)
}

fn percent_decode(s: &str) -> Result<Vec<u8>, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| format!("bad percent escape at byte {i}"))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Ok(out)
}

/// The file at `path`, if the data writes it.
pub fn find<'a>(files: &'a [BootFile], path: &str) -> Option<&'a BootFile> {
    files.iter().find(|f| f.path == path)
}

/// `ExecStart=` of a systemd unit, split into words (the units we render use no quoting).
pub fn exec_start(unit: &str) -> Option<Vec<String>> {
    unit.lines()
        .find_map(|l| l.trim().strip_prefix("ExecStart="))
        .map(|cmd| cmd.split_whitespace().map(str::to_string).collect())
}

/// Writes `files` under `root` (standing in for `/`), with their modes.
pub fn write_tree(root: &Path, files: &[BootFile]) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    for f in files {
        let rel = f.path.trim_start_matches('/');
        if rel.is_empty() || rel.split('/').any(|c| c == "..") {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("refusing to write {:?} outside the root", f.path),
            ));
        }
        let dest = root.join(rel);
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&dest, &f.content)?;
        if let Some(mode) = f.mode {
            std::fs::set_permissions(&dest, std::fs::Permissions::from_mode(mode))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
