//! What every handler shares: the registry (reg-core's domain), the CA, the operator
//! credential, metrics, rate limiters and the knobs from [`crate::ServeConfig`].

use std::time::{Duration, Instant};

use siteboot_wire::ApiError;

use crate::ca::ServiceCa;
use crate::config::Limits;
use crate::metrics::Metrics;
use crate::operator_auth::OperatorCredential;
use crate::ratelimit::{retry_after_seconds, Limiter, Rate};
use crate::registry::Registry;

use super::error::rate_limited;

/// Rate limiters by purpose.
#[derive(Debug)]
pub struct Limiters {
    /// Registrations and polls per source address.
    pub register_ip: Limiter,
    /// Attempts per token id / claim id / batch serial / pending id.
    pub credential: Limiter,
}

impl Limiters {
    /// Limiters for the configured limits.
    pub fn new(limits: &Limits) -> Self {
        Self {
            register_ip: Limiter::new(Rate::per_second(
                limits.register_per_second,
                limits.register_burst,
            )),
            credential: Limiter::new(Rate::per_minute(limits.credential_per_minute)),
        }
    }
}

/// Shared handler state.
pub struct AppState {
    /// The domain.
    pub registry: Registry,
    /// The service CA.
    pub ca: ServiceCa,
    /// The operator credential.
    pub operator: OperatorCredential,
    /// Metrics.
    pub metrics: Metrics,
    /// Rate limiters.
    pub limiters: Limiters,
    /// Device certificate lifetime.
    pub cert_ttl: Duration,
    /// Body cap.
    pub max_body_bytes: usize,
    /// Check-in interval told to devices on registration.
    pub checkin_interval_seconds: u64,
    /// Bounds concurrent device-path domain calls (see [`DOMAIN_CONCURRENCY`]).
    pub domain: tokio::sync::Semaphore,
}

/// Device-path registry calls in flight at once. The SQLite store runs each read on the
/// blocking pool; without a bound, a burst of 1,000 check-ins spawns hundreds of blocking
/// threads that contend on a few connections (p99 in the hundreds of ms). Waiting here is a
/// cheap async queue instead.
pub const DOMAIN_CONCURRENCY: usize = 32;

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AppState")
    }
}

impl AppState {
    /// Takes a token from `limiter` for `key` or answers 429 (and counts it).
    pub fn limit(&self, which: &'static str, key: &str, what: &str) -> Result<(), ApiError> {
        let limiter = match which {
            "register_ip" => &self.limiters.register_ip,
            _ => &self.limiters.credential,
        };
        limiter.check(key, Instant::now()).map_err(|wait| {
            self.metrics.limited(which);
            rate_limited(retry_after_seconds(wait), what)
        })
    }
}
