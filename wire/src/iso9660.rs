//! A small ISO 9660 image writer and reader for NoCloud seeds (`cidata` volumes).
//!
//! The writer lays out what `genisoimage -volid cidata -joliet` makes for a handful of
//! small files in the root directory: a primary volume descriptor with level-1 (8.3,
//! upper-case) names, a Joliet supplementary descriptor carrying the real names
//! (`user-data`, `meta-data`) in UCS-2, path tables and one data extent per file. Linux's
//! iso9660 driver shows the Joliet names when no Rock Ridge is present, which is what
//! cloud-init's NoCloud datasource reads after mounting the volume.
//!
//! The reader opens such an image (ours, or one made by genisoimage/xorriso) read-only
//! over any `Read + Seek`, with no mount: Joliet names when present, else Rock Ridge `NM`
//! names, else the primary names with `;1` stripped and lower-cased. It never allocates
//! more than the caller's size limit, so a corrupt or hostile medium is a typed error.
//!
//! Pure: no file system access; the caller hands bytes in or a reader over a device.

mod read;
mod write;

#[cfg(test)]
mod tests;

pub use read::{IsoEntry, IsoReader};
pub use write::{write_image, IsoFile};

/// Bytes per logical sector (and block).
pub const SECTOR: usize = 2048;
/// First volume descriptor sector (the first 16 are the system area).
pub const FIRST_DESCRIPTOR: u64 = 16;
/// Longest volume identifier the writer accepts (Joliet holds 16 UCS-2 characters).
pub const MAX_VOLUME_ID: usize = 16;
/// Longest file name the writer accepts (Joliet's 64-character limit).
pub const MAX_NAME: usize = 64;

/// Why an image could not be written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IsoWriteError {
    /// The volume identifier is empty, too long or has characters outside `[A-Za-z0-9_-]`.
    #[error("volume id {0:?} must be 1 to 16 characters of A-Z, a-z, 0-9, '_' or '-'")]
    VolumeId(String),
    /// A file name is empty, too long or holds `/`, `;`, `\\` or a control character.
    #[error(
        "file name {0:?} must be 1 to 64 characters without '/', ';', '\\\\' or control characters"
    )]
    FileName(String),
    /// Two files share a name.
    #[error("file name {0:?} appears twice")]
    Duplicate(String),
    /// A file is larger than an ISO 9660 extent can hold (4 GiB - 1).
    #[error("file {0:?} is too large for one ISO 9660 extent")]
    TooLarge(String),
}

/// Why an image could not be read.
#[derive(Debug, thiserror::Error)]
pub enum IsoReadError {
    /// Reading the medium failed.
    #[error("read the medium: {0}")]
    Io(#[from] std::io::Error),
    /// No `CD001` primary volume descriptor at sector 16.
    #[error("not an ISO 9660 image (no CD001 volume descriptor at sector 16)")]
    NotIso,
    /// A structure points outside what was read or is inconsistent.
    #[error("corrupt ISO 9660 image: {0}")]
    Corrupt(String),
    /// The path names no file on the volume.
    #[error("no file {0:?} on the volume")]
    NotFound(String),
    /// The file is larger than the caller allows.
    #[error("file {name:?} is {size} bytes, more than the {limit} allowed")]
    TooLarge {
        /// Path asked for.
        name: String,
        /// Size recorded on the volume.
        size: u64,
        /// The caller's limit.
        limit: u64,
    },
}

/// Both-endian 32-bit field (little-endian then big-endian), as ISO 9660 stores sizes.
fn both32(v: u32) -> [u8; 8] {
    let mut out = [0u8; 8];
    out[..4].copy_from_slice(&v.to_le_bytes());
    out[4..].copy_from_slice(&v.to_be_bytes());
    out
}

/// Both-endian 16-bit field.
fn both16(v: u16) -> [u8; 4] {
    let mut out = [0u8; 4];
    out[..2].copy_from_slice(&v.to_le_bytes());
    out[2..].copy_from_slice(&v.to_be_bytes());
    out
}

/// Joliet escape sequences (UCS-2 levels 1, 2 and 3) in a supplementary descriptor.
const JOLIET_ESCAPES: [&[u8; 3]; 3] = [b"%/@", b"%/C", b"%/E"];
