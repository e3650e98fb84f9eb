//! The committed CRDs under `config/crd/bases/` must equal what `crdgen` generates from
//! the Rust types. Regenerate with `cargo run -p siteboot-provider --bin crdgen`.

#[test]
fn committed_crds_match_the_rust_types() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/crd/bases");
    for (file, fresh) in siteboot_provider::crdgen::manifests().expect("generate crds") {
        let committed = std::fs::read_to_string(dir.join(&file)).unwrap_or_default();
        assert!(
            committed == fresh,
            "config/crd/bases/{file} is stale or missing: run `cargo run -p siteboot-provider --bin crdgen` and commit the result"
        );
    }
}
