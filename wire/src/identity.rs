//! How device certificates name their site and device: two URI SANs.

/// URI SAN prefix naming the site: `urn:siteboot:site:<site-id>`.
pub const SITE_URI_PREFIX: &str = "urn:siteboot:site:";
/// URI SAN prefix naming the device: `urn:siteboot:device:<device-id>`.
pub const DEVICE_URI_PREFIX: &str = "urn:siteboot:device:";

/// The URI SAN for a site.
pub fn site_uri(site_id: &str) -> String {
    format!("{SITE_URI_PREFIX}{site_id}")
}

/// The URI SAN for a device.
pub fn device_uri(device_id: &str) -> String {
    format!("{DEVICE_URI_PREFIX}{device_id}")
}

/// Site and device ids read back from a certificate's URI SANs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerIdentity {
    /// Site id.
    pub site_id: String,
    /// Device id.
    pub device_id: String,
}

/// Finds the site and device among URI SANs; `None` unless both are present once.
pub fn peer_identity<'a>(uris: impl IntoIterator<Item = &'a str>) -> Option<PeerIdentity> {
    let (mut site, mut device) = (None, None);
    for uri in uris {
        if let Some(s) = uri.strip_prefix(SITE_URI_PREFIX) {
            if site.replace(s.to_string()).is_some() {
                return None;
            }
        } else if let Some(d) = uri.strip_prefix(DEVICE_URI_PREFIX) {
            if device.replace(d.to_string()).is_some() {
                return None;
            }
        }
    }
    Some(PeerIdentity {
        site_id: site?,
        device_id: device?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_both_sans() {
        let uris = [site_uri("store-1"), device_uri("dev-9"), "https://x".into()];
        let got = peer_identity(uris.iter().map(String::as_str)).unwrap();
        assert_eq!(
            got,
            PeerIdentity {
                site_id: "store-1".into(),
                device_id: "dev-9".into()
            }
        );
        assert!(peer_identity([site_uri("a").as_str()]).is_none());
        let dup = [site_uri("a"), site_uri("b"), device_uri("d")];
        assert!(peer_identity(dup.iter().map(String::as_str)).is_none());
    }
}
