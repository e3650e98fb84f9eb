//! Writes the CRD manifests into `config/crd/bases/` (or the directory given as the only
//! argument).
#![forbid(unsafe_code)]

use std::path::PathBuf;

fn main() -> anyhow::Result<()> {
    let dir = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../config/crd/bases"));
    std::fs::create_dir_all(&dir)?;
    for (file, yaml) in siteboot_provider::crdgen::manifests()? {
        let path = dir.join(file);
        std::fs::write(&path, yaml)?;
        println!("wrote {}", path.display());
    }
    Ok(())
}
