//! Reading files from an ISO 9660 image over `Read + Seek`, without mounting it.
//!
//! Opening reads the volume descriptors (at most [`MAX_DESCRIPTORS`]); lookups walk the
//! directory tree from the root, one directory extent at a time (each at most
//! [`MAX_DIRECTORY`] bytes). Names come from the Joliet tree when the image has one, else
//! from Rock Ridge `NM` entries, else from the primary identifiers (`USER_DAT.;1` is
//! shown as `user_dat.`, as Linux's `map=normal` does).

use std::io::{Read, Seek, SeekFrom};

use super::{IsoReadError, FIRST_DESCRIPTOR, JOLIET_ESCAPES, SECTOR};

/// Volume descriptors examined before giving up on finding the terminator.
pub const MAX_DESCRIPTORS: u64 = 32;
/// Largest directory extent read.
pub const MAX_DIRECTORY: u64 = 1 << 20;

/// One directory entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IsoEntry {
    /// Name as a reader shows it.
    pub name: String,
    /// First sector of the data.
    pub extent: u32,
    /// Size in bytes.
    pub size: u32,
    /// Whether it is a directory.
    pub is_dir: bool,
}

/// An opened image.
#[derive(Debug)]
pub struct IsoReader<R> {
    inner: R,
    volume_id: String,
    root: IsoEntry,
    joliet: bool,
}

fn corrupt(what: impl Into<String>) -> IsoReadError {
    IsoReadError::Corrupt(what.into())
}

fn le32(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

impl<R: Read + Seek> IsoReader<R> {
    /// Opens the image: finds the primary descriptor and, when present, a Joliet one.
    pub fn open(mut inner: R) -> Result<Self, IsoReadError> {
        let mut primary: Option<Vec<u8>> = None;
        let mut joliet: Option<Vec<u8>> = None;
        for i in 0..MAX_DESCRIPTORS {
            let mut d = vec![0u8; SECTOR];
            inner.seek(SeekFrom::Start((FIRST_DESCRIPTOR + i) * SECTOR as u64))?;
            if let Err(e) = inner.read_exact(&mut d) {
                if e.kind() == std::io::ErrorKind::UnexpectedEof && i == 0 {
                    return Err(IsoReadError::NotIso);
                }
                return Err(e.into());
            }
            if &d[1..6] != b"CD001" {
                if i == 0 {
                    return Err(IsoReadError::NotIso);
                }
                return Err(corrupt(format!("volume descriptor {i} lacks CD001")));
            }
            match d[0] {
                1 if primary.is_none() => primary = Some(d),
                2 if JOLIET_ESCAPES.iter().any(|e| &d[88..91] == *e) && joliet.is_none() => {
                    joliet = Some(d)
                }
                255 => break,
                _ => {}
            }
        }
        let primary = primary.ok_or(IsoReadError::NotIso)?;
        let volume_id = String::from_utf8_lossy(&primary[40..72])
            .trim_end_matches([' ', '\0'])
            .to_string();
        let (desc, is_joliet) = match &joliet {
            Some(j) => (j, true),
            None => (&primary, false),
        };
        let root = parse_root(&desc[156..190])?;
        if !root.is_dir {
            return Err(corrupt("root directory record is not a directory"));
        }
        Ok(Self {
            inner,
            volume_id,
            root,
            joliet: is_joliet,
        })
    }

    /// The primary volume identifier (`cidata`).
    pub fn volume_id(&self) -> &str {
        &self.volume_id
    }

    /// Whether names come from a Joliet tree.
    pub fn is_joliet(&self) -> bool {
        self.joliet
    }

    /// Entries of the directory `dir` (without `.` and `..`).
    pub fn list(&mut self, dir: &IsoEntry) -> Result<Vec<IsoEntry>, IsoReadError> {
        if !dir.is_dir {
            return Err(corrupt(format!("{:?} is not a directory", dir.name)));
        }
        if u64::from(dir.size) > MAX_DIRECTORY {
            return Err(corrupt(format!(
                "directory {:?} is implausibly large",
                dir.name
            )));
        }
        let bytes = self.read_extent(dir.extent, dir.size)?;
        let mut out = Vec::new();
        let mut pos = 0usize;
        while pos < bytes.len() {
            let len = bytes[pos] as usize;
            if len == 0 {
                // Records never straddle sectors: the rest of this sector is padding.
                pos = (pos / SECTOR + 1) * SECTOR;
                continue;
            }
            if len < 34 || pos + len > bytes.len() {
                return Err(corrupt(format!("bad directory record at byte {pos}")));
            }
            if let Some(entry) = parse_record(&bytes[pos..pos + len], self.joliet)? {
                out.push(entry);
            }
            pos += len;
        }
        Ok(out)
    }

    /// The root directory.
    pub fn root(&self) -> IsoEntry {
        self.root.clone()
    }

    /// Finds `path` (`user-data`, `siteboot/claim.yaml`); names compare exactly.
    pub fn find(&mut self, path: &str) -> Result<IsoEntry, IsoReadError> {
        let mut cur = self.root.clone();
        for part in path.split('/').filter(|p| !p.is_empty()) {
            let entries = self.list(&cur)?;
            cur = entries
                .into_iter()
                .find(|e| e.name == part)
                .ok_or_else(|| IsoReadError::NotFound(path.to_string()))?;
        }
        Ok(cur)
    }

    /// Reads the file at `path`, refusing files larger than `limit` bytes.
    pub fn read_file(&mut self, path: &str, limit: u64) -> Result<Vec<u8>, IsoReadError> {
        let entry = self.find(path)?;
        if entry.is_dir {
            return Err(IsoReadError::NotFound(path.to_string()));
        }
        if u64::from(entry.size) > limit {
            return Err(IsoReadError::TooLarge {
                name: path.to_string(),
                size: entry.size.into(),
                limit,
            });
        }
        self.read_extent(entry.extent, entry.size)
    }

    fn read_extent(&mut self, extent: u32, size: u32) -> Result<Vec<u8>, IsoReadError> {
        let mut buf = vec![0u8; size as usize];
        self.inner
            .seek(SeekFrom::Start(u64::from(extent) * SECTOR as u64))?;
        self.inner.read_exact(&mut buf).map_err(|e| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                corrupt(format!(
                    "extent at sector {extent} runs past the end of the medium"
                ))
            } else {
                e.into()
            }
        })?;
        Ok(buf)
    }
}

/// Parses one directory record; `None` for `.` and `..`.
fn parse_record(rec: &[u8], joliet: bool) -> Result<Option<IsoEntry>, IsoReadError> {
    if rec.len() < 34 {
        return Err(corrupt("directory record shorter than 34 bytes"));
    }
    let name_len = rec[32] as usize;
    if 33 + name_len > rec.len() {
        return Err(corrupt("directory record name runs past the record"));
    }
    let raw = &rec[33..33 + name_len];
    let extent = le32(&rec[2..6]);
    let size = le32(&rec[10..14]);
    let is_dir = rec[25] & 2 != 0;
    if name_len == 1 && (raw[0] == 0 || raw[0] == 1) {
        return Ok(None);
    }
    let name = if joliet {
        let units: Vec<u16> = raw
            .chunks_exact(2)
            .map(|c| u16::from_be_bytes([c[0], c[1]]))
            .collect();
        strip_version(&String::from_utf16_lossy(&units))
    } else {
        let system_use_at = 33 + name_len + (1 - name_len % 2);
        match rock_ridge_name(rec.get(system_use_at..rec[0] as usize).unwrap_or_default()) {
            Some(n) => n,
            None => strip_version(&String::from_utf8_lossy(raw)).to_ascii_lowercase(),
        }
    };
    Ok(Some(IsoEntry {
        name,
        extent,
        size,
        is_dir,
    }))
}

/// The root directory record stored in a volume descriptor.
fn parse_root(rec: &[u8]) -> Result<IsoEntry, IsoReadError> {
    if rec.len() < 34 || rec[0] < 34 {
        return Err(corrupt("root directory record is malformed"));
    }
    Ok(IsoEntry {
        name: String::new(),
        extent: le32(&rec[2..6]),
        size: le32(&rec[10..14]),
        is_dir: rec[25] & 2 != 0,
    })
}

/// `NAME.EXT;1` -> `NAME.EXT`; a trailing `.` left by an empty extension goes too.
fn strip_version(name: &str) -> String {
    let base = name.split(';').next().unwrap_or(name);
    base.strip_suffix('.').unwrap_or(base).to_string()
}

/// The Rock Ridge alternate name (`NM` entries, concatenated) in a system use area.
pub(super) fn rock_ridge_name(mut area: &[u8]) -> Option<String> {
    let mut name = Vec::new();
    let mut found = false;
    while area.len() >= 4 {
        let len = area[2] as usize;
        if len < 4 || len > area.len() {
            break;
        }
        if &area[..2] == b"NM" && len >= 5 {
            let flags = area[4];
            // Flags 2 and 4 mean "current" / "parent" directory: not a real name.
            if flags & 0b110 == 0 {
                name.extend_from_slice(&area[5..len]);
                found = true;
            }
        }
        area = &area[len..];
    }
    found.then(|| String::from_utf8_lossy(&name).into_owned())
}
