//! Round trips through the writer and the reader, layout facts a kernel relies on, and
//! malformed input. Checks against the real `isoinfo`/`genisoimage` live in
//! `wire/tests/iso9660_tools.rs`.

use std::io::Cursor;

use chrono::{TimeZone, Utc};

use super::*;

fn at() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 22, 5, 0, 0).unwrap()
}

fn files(specs: &[(&str, usize)]) -> Vec<IsoFile> {
    specs
        .iter()
        .enumerate()
        .map(|(i, (name, len))| {
            let data: Vec<u8> = (0..*len).map(|b| (b * 31 + i * 7) as u8).collect();
            IsoFile::new(*name, data)
        })
        .collect()
}

#[test]
fn round_trips_tables_of_files() {
    let many: Vec<(String, usize)> = (0..60)
        .map(|i| (format!("file-number-{i:03}.txt"), i * 3))
        .collect();
    let many: Vec<(&str, usize)> = many.iter().map(|(n, l)| (n.as_str(), *l)).collect();
    let cases: Vec<(&str, Vec<(&str, usize)>)> = vec![
        ("nocloud", vec![("user-data", 14), ("meta-data", 22)]),
        (
            "empty file",
            vec![("user-data", 0), ("meta-data", 5), ("network-config", 0)],
        ),
        (
            "sector edges",
            vec![("a", SECTOR - 1), ("b", SECTOR), ("c", SECTOR + 1)],
        ),
        (
            "level-1 collisions",
            vec![("user-data", 3), ("user-datb", 4), ("USER_DAT", 5)],
        ),
        (
            "dots and case",
            vec![
                ("siteboot-claim.yaml", 300),
                ("Read.Me.txt", 9),
                (".hidden", 2),
            ],
        ),
        ("no files", vec![]),
        ("directory spans sectors", many),
    ];
    for (what, spec) in cases {
        let input = files(&spec);
        let img = write_image("cidata", &input, at()).unwrap();
        assert_eq!(img.len() % SECTOR, 0, "{what}");
        let mut r = IsoReader::open(Cursor::new(&img)).unwrap();
        assert_eq!(r.volume_id(), "cidata", "{what}");
        assert!(r.is_joliet(), "{what}");
        let mut listed: Vec<String> = r
            .list(&r.root())
            .unwrap()
            .into_iter()
            .map(|e| e.name)
            .collect();
        listed.sort();
        let mut want: Vec<String> = input.iter().map(|f| f.name.clone()).collect();
        want.sort();
        assert_eq!(listed, want, "{what}");
        for f in &input {
            assert_eq!(
                r.read_file(&f.name, 1 << 20).unwrap(),
                f.data,
                "{what}: {}",
                f.name
            );
        }
    }
}

#[test]
fn equal_inputs_give_identical_images() {
    let input = files(&[("user-data", 10), ("meta-data", 10)]);
    let mut reversed = input.clone();
    reversed.reverse();
    // (assert! not assert_eq!: a failing image diff would print megabytes)
    assert!(
        write_image("cidata", &input, at()).unwrap()
            == write_image("cidata", &reversed, at()).unwrap()
    );
}

#[test]
fn descriptors_sit_where_readers_look() {
    let img = write_image("cidata", &files(&[("user-data", 1)]), at()).unwrap();
    let pvd = &img[16 * SECTOR..17 * SECTOR];
    assert_eq!(&pvd[..7], b"\x01CD001\x01");
    assert_eq!(&pvd[40..72], format!("{:<32}", "cidata").as_bytes());
    let total = u32::from_le_bytes(pvd[80..84].try_into().unwrap());
    assert_eq!(total as usize * SECTOR, img.len());
    assert_eq!(u32::from_be_bytes(pvd[84..88].try_into().unwrap()), total);
    let svd = &img[17 * SECTOR..18 * SECTOR];
    assert_eq!(&svd[..7], b"\x02CD001\x01");
    assert_eq!(&svd[88..91], b"%/E");
    assert_eq!(&svd[40..52], b"\0c\0i\0d\0a\0t\0a");
    assert_eq!(&img[18 * SECTOR..18 * SECTOR + 7], b"\xffCD001\x01");
}

#[test]
fn primary_names_are_level_one_and_unique() {
    let input = files(&[
        ("user-data", 1),
        ("user-datb", 1),
        ("meta-data", 1),
        ("siteboot-claim.yaml", 1),
    ]);
    let mut img = write_image("cidata", &input, at()).unwrap();
    // Hide the Joliet descriptor: turn it into the terminator.
    let term = img[18 * SECTOR..18 * SECTOR + 7].to_vec();
    img[17 * SECTOR..17 * SECTOR + 7].copy_from_slice(&term);
    let mut r = IsoReader::open(Cursor::new(&img)).unwrap();
    assert!(!r.is_joliet());
    let mut names: Vec<String> = r
        .list(&r.root())
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    names.sort();
    assert_eq!(names, ["meta_dat", "siteboot.yam", "user_da1", "user_dat"]);
    for n in &names {
        assert!(n.len() <= 12, "{n}");
    }
}

#[test]
fn rock_ridge_names_are_read() {
    // NM entries: continued "user-" + "data", a PX before them to skip.
    let mut area = vec![b'P', b'X', 12, 1, 0, 0, 0, 0, 0, 0, 0, 0];
    area.extend([b'N', b'M', 10, 1, 1]);
    area.extend(b"user-");
    area.extend([b'N', b'M', 9, 1, 0]);
    area.extend(b"data");
    assert_eq!(read::rock_ridge_name(&area).as_deref(), Some("user-data"));
    assert_eq!(read::rock_ridge_name(b"PX\x04\x01").as_deref(), None);
    // A truncated entry stops parsing instead of reading past the area.
    assert_eq!(read::rock_ridge_name(b"NM\x40\x01\x00ab").as_deref(), None);
}

#[test]
fn writer_refuses_bad_input() {
    let ok = files(&[("user-data", 1)]);
    let cases: Vec<(&str, Vec<IsoFile>, IsoWriteError)> = vec![
        ("", ok.clone(), IsoWriteError::VolumeId(String::new())),
        (
            "seventeen-chars-x",
            ok.clone(),
            IsoWriteError::VolumeId("seventeen-chars-x".into()),
        ),
        (
            "ci data",
            ok.clone(),
            IsoWriteError::VolumeId("ci data".into()),
        ),
        (
            "cidata",
            files(&[("a/b", 1)]),
            IsoWriteError::FileName("a/b".into()),
        ),
        (
            "cidata",
            files(&[("x;1", 1)]),
            IsoWriteError::FileName("x;1".into()),
        ),
        (
            "cidata",
            files(&[("", 1)]),
            IsoWriteError::FileName(String::new()),
        ),
        (
            "cidata",
            files(&[("..", 1)]),
            IsoWriteError::FileName("..".into()),
        ),
        (
            "cidata",
            files(&[("tab\t", 1)]),
            IsoWriteError::FileName("tab\t".into()),
        ),
        (
            "cidata",
            files(&[(&"n".repeat(65), 1)]),
            IsoWriteError::FileName("n".repeat(65)),
        ),
        (
            "cidata",
            files(&[("a", 1), ("a", 2)]),
            IsoWriteError::Duplicate("a".into()),
        ),
    ];
    for (volume, input, want) in cases {
        assert_eq!(
            write_image(volume, &input, at()),
            Err(want),
            "{volume} {:?}",
            input.first().map(|f| &f.name)
        );
    }
}

#[test]
fn reader_refuses_malformed_media() {
    // Not an image at all, and too short to hold a descriptor.
    assert!(matches!(
        IsoReader::open(Cursor::new(vec![0u8; 40 * SECTOR])),
        Err(IsoReadError::NotIso)
    ));
    assert!(matches!(
        IsoReader::open(Cursor::new(vec![0u8; 100])),
        Err(IsoReadError::NotIso)
    ));
    let img = write_image("cidata", &files(&[("user-data", 5000)]), at()).unwrap();
    // Truncated: the file's extent runs past the end.
    let cut = img[..img.len() - SECTOR].to_vec();
    let mut r = IsoReader::open(Cursor::new(&cut)).unwrap();
    assert!(matches!(
        r.read_file("user-data", 1 << 20),
        Err(IsoReadError::Corrupt(_))
    ));
    let mut r = IsoReader::open(Cursor::new(&img)).unwrap();
    assert!(matches!(
        r.read_file("meta-data", 1 << 20),
        Err(IsoReadError::NotFound(_))
    ));
    assert!(matches!(
        r.read_file("user-data", 4999),
        Err(IsoReadError::TooLarge {
            size: 5000,
            limit: 4999,
            ..
        })
    ));
    // A directory record claiming a huge length is corrupt, not a panic.
    let mut bad = img.clone();
    let root = 23 * SECTOR + 34 + 34; // past `.` and `..` of the primary root
    bad[root] = 20;
    let term = bad[18 * SECTOR..18 * SECTOR + 7].to_vec();
    bad[17 * SECTOR..17 * SECTOR + 7].copy_from_slice(&term);
    let mut r = IsoReader::open(Cursor::new(&bad)).unwrap();
    let root = r.root();
    assert!(matches!(r.list(&root), Err(IsoReadError::Corrupt(_))));
}
