//! Per-connection facts handlers need: the source address (for rate limits) and the
//! identity named by a verified client certificate (for mTLS routes).

use std::net::SocketAddr;

use siteboot_wire::identity::PeerIdentity;

/// Inserted into every request's extensions by the accept loop.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    /// Source address of the TCP connection.
    pub remote: SocketAddr,
    /// Site and device from the client certificate, when one was presented and verified
    /// against the service CA during the handshake.
    pub peer: Option<PeerIdentity>,
}
