//! The CA pin: SHA-256 of the DER of the first certificate in the registration CA bundle.
//!
//! The agent compares `caSha256` with the certificates in `caFile`, so the pin must be
//! computed from the DER bytes, not the PEM text. A tiny strict PEM reader keeps the
//! provider free of an X.509 dependency for this one digest.

use super::RenderError;
use base64::Engine as _;

const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
const END: &str = "-----END CERTIFICATE-----";
/// Largest accepted CA bundle.
pub const MAX_BUNDLE_BYTES: usize = 64 * 1024;

/// Lower-case hex SHA-256 of the first certificate's DER in `pem`.
pub fn first_cert_sha256(pem: &str) -> Result<String, RenderError> {
    let field = "registrationCaPem";
    if pem.len() > MAX_BUNDLE_BYTES || !pem.is_ascii() || pem.contains('\0') {
        return Err(RenderError::invalid(
            field,
            format!("must be ASCII PEM of at most {MAX_BUNDLE_BYTES} bytes"),
        ));
    }
    let start = pem
        .find(BEGIN)
        .ok_or_else(|| RenderError::invalid(field, "contains no CERTIFICATE block"))?
        + BEGIN.len();
    let len = pem[start..]
        .find(END)
        .ok_or_else(|| RenderError::invalid(field, "CERTIFICATE block is not terminated"))?;
    let body: String = pem[start..start + len]
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(body)
        .map_err(|e| {
            RenderError::invalid(field, format!("CERTIFICATE block is not base64: {e}"))
        })?;
    if der.first() != Some(&0x30) {
        return Err(RenderError::invalid(field, "CERTIFICATE block is not DER"));
    }
    Ok(siteboot_wire::secret::sha256_hex(&der))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_the_der_of_the_first_certificate() {
        // DER bytes 0x30 0x03 0x02 0x01 0x00 -> base64 "MAMCAQA=".
        let pem = format!("{BEGIN}\nMAMCAQA=\n{END}\n{BEGIN}\nMAA=\n{END}\n");
        assert_eq!(
            first_cert_sha256(&pem).unwrap(),
            siteboot_wire::secret::sha256_hex(&[0x30, 0x03, 0x02, 0x01, 0x00])
        );
    }

    #[test]
    fn rejects_what_is_not_a_certificate() {
        for bad in [
            "",
            "hello",
            &format!("{BEGIN}\n!!!\n{END}"),
            &format!("{BEGIN}\nMAMCAQA=\n"),
            &format!("{BEGIN}\nAAAA\n{END}"),
        ] {
            assert!(first_cert_sha256(bad).is_err(), "{bad:?}");
        }
    }
}
