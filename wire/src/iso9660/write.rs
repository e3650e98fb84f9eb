//! Writing a single-directory ISO 9660 image with a Joliet tree.
//!
//! Layout (sector numbers): 16 primary descriptor, 17 Joliet descriptor, 18 terminator,
//! 19-22 the little- and big-endian path tables of both trees, then the primary root
//! directory, the Joliet root directory and one extent per file. Both trees point at the
//! same file extents. Everything is decided from the inputs (names, bytes, a timestamp),
//! so equal inputs give byte-identical images.

use chrono::{DateTime, Datelike, Timelike, Utc};

use super::{both16, both32, IsoWriteError, MAX_NAME, MAX_VOLUME_ID, SECTOR};

/// One file of the root directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IsoFile {
    /// Name as readers should show it (`user-data`).
    pub name: String,
    /// Contents.
    pub data: Vec<u8>,
}

impl IsoFile {
    /// A file named `name` holding `data`.
    pub fn new(name: impl Into<String>, data: impl Into<Vec<u8>>) -> Self {
        Self {
            name: name.into(),
            data: data.into(),
        }
    }
}

const PVD: u32 = 16;
const SVD: u32 = 17;
const TERMINATOR: u32 = 18;
const PATH_TABLES: u32 = 19; // L primary, M primary, L Joliet, M Joliet
const ROOT: u32 = 23;
/// A path table holding only the root: 8 bytes + 1-byte id + 1 pad byte.
const PATH_TABLE_SIZE: u32 = 10;

/// One directory record to place (name bytes already encoded).
struct Record {
    name: Vec<u8>,
    extent: u32,
    size: u32,
    dir: bool,
}

/// Writes an image with volume id `volume_id` holding `files` in its root directory,
/// every time stamp set to `recorded_at`.
pub fn write_image(
    volume_id: &str,
    files: &[IsoFile],
    recorded_at: DateTime<Utc>,
) -> Result<Vec<u8>, IsoWriteError> {
    validate(volume_id, files)?;
    // Extents follow name order, so the input order does not change the image.
    let mut sorted: Vec<&IsoFile> = files.iter().collect();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    let files: Vec<IsoFile> = sorted.into_iter().cloned().collect();
    let files = files.as_slice();
    let primary_names = level1_names(files);
    let joliet_names: Vec<Vec<u8>> = files.iter().map(|f| ucs2(&f.name)).collect();

    // Directory sizes depend only on the names, so they are known before any extent.
    let dir_len = |names: &[Vec<u8>]| -> u32 {
        let mut lens = vec![record_len(1), record_len(1)];
        lens.extend(names.iter().map(|n| record_len(n.len())));
        sectors_for_records(&lens) * SECTOR as u32
    };
    let primary_dir = dir_len(&primary_names);
    let joliet_dir = dir_len(&joliet_names);
    let joliet_root = ROOT + primary_dir / SECTOR as u32;
    let mut next = joliet_root + joliet_dir / SECTOR as u32;
    let mut extents = Vec::with_capacity(files.len());
    for f in files {
        extents.push(next);
        next += sectors(f.data.len());
    }
    let total = next;

    let mut img = vec![0u8; total as usize * SECTOR];
    let stamp = record_date(recorded_at);
    let dir_entries = |names: &[Vec<u8>]| -> Vec<Record> {
        let mut recs: Vec<Record> = names
            .iter()
            .zip(files.iter().zip(&extents))
            .map(|(n, (f, &extent))| Record {
                name: n.clone(),
                extent,
                size: f.data.len() as u32,
                dir: false,
            })
            .collect();
        recs.sort_by(|a, b| a.name.cmp(&b.name));
        recs
    };
    let mut primary = dir_entries(&primary_names);
    primary.sort_by_key(|r| level1_key(&r.name));
    write_directory(&mut img, ROOT, primary_dir, &primary, &stamp);
    write_directory(
        &mut img,
        joliet_root,
        joliet_dir,
        &dir_entries(&joliet_names),
        &stamp,
    );
    for (f, &extent) in files.iter().zip(&extents) {
        let at = extent as usize * SECTOR;
        img[at..at + f.data.len()].copy_from_slice(&f.data);
    }

    let long_date = volume_date(recorded_at);
    let pvd = descriptor(
        DescriptorKind::Primary,
        volume_id,
        total,
        ROOT,
        primary_dir,
        &stamp,
        &long_date,
    );
    put(&mut img, PVD, &pvd);
    let svd = descriptor(
        DescriptorKind::Joliet,
        volume_id,
        total,
        joliet_root,
        joliet_dir,
        &stamp,
        &long_date,
    );
    put(&mut img, SVD, &svd);
    let mut term = [0u8; 7];
    term[0] = 255;
    term[1..6].copy_from_slice(b"CD001");
    term[6] = 1;
    put(&mut img, TERMINATOR, &term);
    for (i, root) in [ROOT, ROOT, joliet_root, joliet_root]
        .into_iter()
        .enumerate()
    {
        let big = i % 2 == 1;
        let mut rec = [0u8; PATH_TABLE_SIZE as usize];
        rec[0] = 1;
        let loc = if big {
            root.to_be_bytes()
        } else {
            root.to_le_bytes()
        };
        rec[2..6].copy_from_slice(&loc);
        let parent: u16 = 1;
        let parent = if big {
            parent.to_be_bytes()
        } else {
            parent.to_le_bytes()
        };
        rec[6..8].copy_from_slice(&parent);
        put(&mut img, PATH_TABLES + i as u32, &rec);
    }
    Ok(img)
}

fn validate(volume_id: &str, files: &[IsoFile]) -> Result<(), IsoWriteError> {
    let ok_volume = !volume_id.is_empty()
        && volume_id.len() <= MAX_VOLUME_ID
        && volume_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if !ok_volume {
        return Err(IsoWriteError::VolumeId(volume_id.into()));
    }
    let mut seen = std::collections::BTreeSet::new();
    for f in files {
        let n = &f.name;
        let bad = n.is_empty()
            || n.chars().count() > MAX_NAME
            || n == "."
            || n == ".."
            || n.chars()
                .any(|c| c == '/' || c == ';' || c == '\\' || c.is_control())
            || n.chars().any(|c| (c as u32) > 0xFFFF);
        if bad {
            return Err(IsoWriteError::FileName(n.clone()));
        }
        if !seen.insert(n.clone()) {
            return Err(IsoWriteError::Duplicate(n.clone()));
        }
        if u32::try_from(f.data.len()).is_err() {
            return Err(IsoWriteError::TooLarge(n.clone()));
        }
    }
    Ok(())
}

/// Sectors needed for `len` bytes.
fn sectors(len: usize) -> u32 {
    len.div_ceil(SECTOR) as u32
}

/// Length of a directory record with a `name_len`-byte identifier (even, as required).
fn record_len(name_len: usize) -> u32 {
    (33 + name_len + (1 - name_len % 2)) as u32
}

/// Sectors a directory needs: records never straddle a sector boundary.
fn sectors_for_records(lens: &[u32]) -> u32 {
    let mut sectors = 1;
    let mut used = 0;
    for &l in lens {
        if used + l > SECTOR as u32 {
            sectors += 1;
            used = 0;
        }
        used += l;
    }
    sectors
}

/// Level-1 identifiers (`USER_DAT.;1`): d-characters, 8.3, unique.
fn level1_names(files: &[IsoFile]) -> Vec<Vec<u8>> {
    let clean = |s: &str, max: usize| -> String {
        s.chars()
            .map(|c| {
                let c = c.to_ascii_uppercase();
                if c.is_ascii_uppercase() || c.is_ascii_digit() {
                    c
                } else {
                    '_'
                }
            })
            .take(max)
            .collect()
    };
    let mut used = std::collections::BTreeSet::new();
    let mut out = Vec::with_capacity(files.len());
    for f in files {
        let (stem, ext) = match f.name.rsplit_once('.') {
            Some((s, e)) if !s.is_empty() => (s, e),
            _ => (f.name.as_str(), ""),
        };
        let (stem, ext) = (clean(stem, 8), clean(ext, 3));
        let mut candidate = format!("{stem}.{ext}");
        let mut n = 0u32;
        while used.contains(&candidate) {
            n += 1;
            let suffix = n.to_string();
            let keep = 8usize.saturating_sub(suffix.len()).min(stem.len());
            candidate = format!("{}{suffix}.{ext}", &stem[..keep]);
        }
        used.insert(candidate.clone());
        out.push(format!("{candidate};1").into_bytes());
    }
    out
}

/// ISO 9660 ordering key of a level-1 identifier: name, then extension, space padded.
fn level1_key(id: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let text = String::from_utf8_lossy(id);
    let base = text.split(';').next().unwrap_or_default();
    let (stem, ext) = base.split_once('.').unwrap_or((base, ""));
    let pad = |s: &str, n: usize| {
        let mut v = s.as_bytes().to_vec();
        v.resize(n.max(v.len()), b' ');
        v
    };
    (pad(stem, 8), pad(ext, 3))
}

/// UCS-2 big-endian, as Joliet stores identifiers.
fn ucs2(s: &str) -> Vec<u8> {
    s.encode_utf16().flat_map(|u| u.to_be_bytes()).collect()
}

/// The 7-byte directory record date (UTC).
fn record_date(t: DateTime<Utc>) -> [u8; 7] {
    [
        (t.year() - 1900).clamp(0, 255) as u8,
        t.month() as u8,
        t.day() as u8,
        t.hour() as u8,
        t.minute() as u8,
        t.second().min(59) as u8,
        0,
    ]
}

/// The 17-byte volume descriptor date (`YYYYMMDDHHMMSScc` + UTC offset 0).
fn volume_date(t: DateTime<Utc>) -> [u8; 17] {
    let mut out = [0u8; 17];
    let text = format!(
        "{:04}{:02}{:02}{:02}{:02}{:02}00",
        t.year().clamp(0, 9999),
        t.month(),
        t.day(),
        t.hour(),
        t.minute(),
        t.second().min(59)
    );
    out[..16].copy_from_slice(text.as_bytes());
    out
}

/// Encodes one directory record.
fn encode_record(r: &Record, stamp: &[u8; 7]) -> Vec<u8> {
    let len = record_len(r.name.len()) as usize;
    let mut out = vec![0u8; len];
    out[0] = len as u8;
    out[2..10].copy_from_slice(&both32(r.extent));
    out[10..18].copy_from_slice(&both32(r.size));
    out[18..25].copy_from_slice(stamp);
    out[25] = if r.dir { 2 } else { 0 };
    out[28..32].copy_from_slice(&both16(1));
    out[32] = r.name.len() as u8;
    out[33..33 + r.name.len()].copy_from_slice(&r.name);
    out
}

/// Writes a root directory (`.`, `..`, then `entries`) at sector `at`.
fn write_directory(img: &mut [u8], at: u32, size: u32, entries: &[Record], stamp: &[u8; 7]) {
    let dot = |name: u8| Record {
        name: vec![name],
        extent: at,
        size,
        dir: true,
    };
    let mut pos = at as usize * SECTOR;
    let mut used = 0usize;
    for r in [dot(0), dot(1)].iter().chain(entries) {
        let bytes = encode_record(r, stamp);
        if used + bytes.len() > SECTOR {
            pos += SECTOR - used;
            used = 0;
        }
        img[pos..pos + bytes.len()].copy_from_slice(&bytes);
        pos += bytes.len();
        used += bytes.len();
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum DescriptorKind {
    Primary,
    Joliet,
}

/// A primary or Joliet volume descriptor.
fn descriptor(
    kind: DescriptorKind,
    volume_id: &str,
    total: u32,
    root: u32,
    root_size: u32,
    stamp: &[u8; 7],
    date: &[u8; 17],
) -> Vec<u8> {
    let joliet = kind == DescriptorKind::Joliet;
    let mut d = vec![0u8; SECTOR];
    d[0] = if joliet { 2 } else { 1 };
    d[1..6].copy_from_slice(b"CD001");
    d[6] = 1;
    // Identifier fields: a/d-characters space padded, or UCS-2 padded with U+0020.
    let text = |d: &mut [u8], at: usize, len: usize, s: &str| {
        let field = &mut d[at..at + len];
        if joliet {
            for (i, b) in field.iter_mut().enumerate() {
                *b = if i % 2 == 0 { 0 } else { b' ' };
            }
            let enc = ucs2(s);
            field[..enc.len().min(len)].copy_from_slice(&enc[..enc.len().min(len)]);
        } else {
            field.fill(b' ');
            field[..s.len().min(len)].copy_from_slice(&s.as_bytes()[..s.len().min(len)]);
        }
    };
    text(&mut d, 8, 32, "LINUX");
    text(&mut d, 40, 32, volume_id);
    d[80..88].copy_from_slice(&both32(total));
    if joliet {
        d[88..91].copy_from_slice(b"%/E");
    }
    d[120..124].copy_from_slice(&both16(1));
    d[124..128].copy_from_slice(&both16(1));
    d[128..132].copy_from_slice(&both16(SECTOR as u16));
    d[132..140].copy_from_slice(&both32(PATH_TABLE_SIZE));
    let tables = if joliet { PATH_TABLES + 2 } else { PATH_TABLES };
    d[140..144].copy_from_slice(&tables.to_le_bytes());
    d[148..152].copy_from_slice(&(tables + 1).to_be_bytes());
    let root_rec = encode_record(
        &Record {
            name: vec![0],
            extent: root,
            size: root_size,
            dir: true,
        },
        stamp,
    );
    d[156..156 + root_rec.len()].copy_from_slice(&root_rec);
    text(&mut d, 190, 128, "");
    text(&mut d, 318, 128, "");
    text(&mut d, 446, 128, "");
    text(&mut d, 574, 128, "SITEBOOT SEED");
    text(&mut d, 702, 37, "");
    text(&mut d, 739, 37, "");
    text(&mut d, 776, 37, "");
    d[813..830].copy_from_slice(date);
    d[830..847].copy_from_slice(date);
    // Expiration and effective dates "not specified": sixteen '0' digits and offset 0.
    d[847..863].fill(b'0');
    d[864..880].fill(b'0');
    d[881] = 1;
    d
}

fn put(img: &mut [u8], sector: u32, bytes: &[u8]) {
    let at = sector as usize * SECTOR;
    img[at..at + bytes.len()].copy_from_slice(bytes);
}
