//! The ISO 9660 writer and reader against the real tools: images we write are read by
//! `isoinfo` (primary and Joliet trees) and `blkid -p` (libblkid's prober, where udev's
//! `/dev/disk/by-label/cidata` link comes from) as a `cidata` ISO 9660 volume; images `genisoimage` writes (Joliet + Rock Ridge, Rock Ridge only, plain) are
//! read by our reader with the names and bytes that went in.
//!
//! Needs `isoinfo`/`genisoimage` (Debian `genisoimage`, which `scripts/test.sh` installs)
//! and `blkid` (util-linux, essential).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;

use chrono::{TimeZone, Utc};
use siteboot_wire::iso9660::{write_image, IsoFile, IsoReader};

struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("siteboot-iso-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn run(cmd: &str, args: &[&str]) -> Vec<u8> {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run {cmd} (install it: scripts/test.sh does): {e}"));
    assert!(
        out.status.success(),
        "{cmd} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn inputs() -> Vec<IsoFile> {
    let big: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8).collect();
    vec![
        IsoFile::new("user-data", "#cloud-config\nhostname: store-0142\n"),
        IsoFile::new("meta-data", "instance-id: iid-store-0142\n"),
        IsoFile::new("network-config", big),
        IsoFile::new("siteboot-claim.yaml", "siteId: store-0142\n"),
    ]
}

#[test]
fn isoinfo_and_blkid_read_our_images() {
    let dir = Scratch::new("ours");
    let iso = dir.0.join("seed.iso");
    let at = Utc.with_ymd_and_hms(2026, 11, 22, 5, 0, 0).unwrap();
    std::fs::write(&iso, write_image("cidata", &inputs(), at).unwrap()).unwrap();
    let path = iso.to_str().unwrap();

    let d = String::from_utf8(run("isoinfo", &["-d", "-i", path])).unwrap();
    assert!(d.contains("Volume id: cidata\n"), "{d}");
    assert!(d.contains("Joliet with UCS level 3 found"), "{d}");
    for f in inputs() {
        let joliet = run(
            "isoinfo",
            &["-J", "-i", path, "-x", &format!("/{}", f.name)],
        );
        assert!(joliet == f.data, "joliet {} differs", f.name);
    }
    let listing = String::from_utf8(run("isoinfo", &["-J", "-l", "-i", path])).unwrap();
    for f in inputs() {
        assert!(listing.contains(&format!(" {} ", f.name)), "{listing}");
    }
    // The primary tree serves readers without Joliet, under 8.3 names.
    let primary = run("isoinfo", &["-i", path, "-x", "/USER_DAT.;1"]);
    assert!(primary == inputs()[0].data);

    let blkid = String::from_utf8(run("blkid", &["-p", "-o", "export", path])).unwrap();
    assert!(blkid.contains("TYPE=iso9660"), "{blkid}");
    assert!(blkid.contains("LABEL=cidata"), "{blkid}");
}

fn genisoimage(dir: &Path, name: &str, flags: &[&str]) -> PathBuf {
    let src = dir.join("src");
    std::fs::create_dir_all(&src).unwrap();
    let mut names = Vec::new();
    for f in inputs() {
        std::fs::write(src.join(&f.name), &f.data).unwrap();
        names.push(f.name);
    }
    let iso = dir.join(name);
    let mut args = vec!["-quiet", "-o", iso.to_str().unwrap(), "-volid", "cidata"];
    args.extend_from_slice(flags);
    args.push(src.to_str().unwrap());
    run("genisoimage", &args);
    iso
}

#[test]
fn our_reader_reads_genisoimage_output() {
    let dir = Scratch::new("geniso");
    // (flags, whether real names survive: Joliet and Rock Ridge carry them)
    let cases: [(&str, &[&str], bool); 3] = [
        ("cloud-localds.iso", &["-joliet", "-rock"], true),
        ("rock.iso", &["-rock"], true),
        ("plain.iso", &[], false),
    ];
    for (name, flags, real_names) in cases {
        let iso = genisoimage(&dir.0, name, flags);
        let mut r = IsoReader::open(File::open(&iso).unwrap()).unwrap();
        assert_eq!(r.volume_id(), "cidata", "{name}");
        for f in inputs() {
            let shown = if real_names {
                f.name.clone()
            } else {
                // Level-1 names as Linux shows them with map=normal.
                let lower = f.name.to_lowercase().replace('-', "_");
                let (stem, ext) = lower.rsplit_once('.').unwrap_or((&lower, ""));
                let stem: String = stem.chars().take(8).collect();
                let ext: String = ext.chars().take(3).collect();
                if ext.is_empty() {
                    stem
                } else {
                    format!("{stem}.{ext}")
                }
            };
            let got = r
                .read_file(&shown, 1 << 20)
                .unwrap_or_else(|e| panic!("{name}: {shown}: {e}"));
            assert!(got == f.data, "{name}: {shown} differs");
        }
    }
}
