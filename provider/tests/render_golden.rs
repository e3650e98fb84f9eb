//! Golden-file tests for rendered bootstrap data.
//!
//! Each fixture is rendered in both formats, compared byte for byte with the committed
//! file under `tests/golden/` (`UPDATE_GOLDEN=1` rewrites them after review), and run
//! through the real validators. Structure is then checked by parsing, not by substrings.

mod render_support;

use render_support::*;
use siteboot_provider::render::{render_cloud_init, render_ignition, RenderInput};

fn check(name: &str, input: &RenderInput) {
    let cloud = render_cloud_init(input).expect("render cloud-init");
    assert_golden(&format!("{name}.cloud-init.yaml"), &cloud);
    assert_cloud_init_valid(name, &cloud);
    let ign = render_ignition(input).expect("render ignition");
    assert_golden(&format!("{name}.ignition.json"), &ign);
    assert_ignition_valid(name, &ign);
}

#[test]
fn minimal_matches_golden_and_validates() {
    check("minimal", &minimal());
}

#[test]
fn full_matches_golden_and_validates() {
    check("full", &full());
}

#[test]
fn preinstalled_matches_golden_and_validates() {
    check("preinstalled", &preinstalled());
}

/// AWS EC2 caps raw user data at 16 KiB; the default document (real CA, token, agent
/// download) must fit with room to spare, and so must the full one.
#[test]
fn cloud_init_fits_the_aws_user_data_limit() {
    const AWS_USER_DATA_LIMIT: usize = 16 * 1024;
    for (name, input) in [
        ("minimal", minimal()),
        ("full", full()),
        ("preinstalled", preinstalled()),
    ] {
        let len = render_cloud_init(&input).expect("render").len();
        assert!(
            len < AWS_USER_DATA_LIMIT,
            "{name} cloud-init is {len} bytes, over {AWS_USER_DATA_LIMIT}"
        );
    }
}

/// Rendering is a pure function: same input, same bytes.
#[test]
fn rendering_is_deterministic() {
    let input = full();
    assert_eq!(
        render_cloud_init(&input).unwrap(),
        render_cloud_init(&input).unwrap()
    );
    assert_eq!(
        render_ignition(&input).unwrap(),
        render_ignition(&input).unwrap()
    );
}
