//! The siteboot registration service: token redemption, factory enrollment, claim codes,
//! device certificates, check-ins, assignments, the inventory and the store.
//!
//! Domain (reg-core): [`registry`], [`store`], [`inventory`]. Serving (this layer):
//! [`server`] (HTTPS, routes, mTLS), [`ca`], [`tls`], [`datadir`], [`ratelimit`],
//! [`metrics`], [`openapi`], [`operator_auth`], [`config`], and the `sitebootctl` client in
//! [`ctl`].
#![forbid(unsafe_code)]
pub mod ca;
pub mod config;
pub mod ctl;
pub mod dashboard;
pub mod datadir;
pub mod metrics;
pub mod openapi;
pub mod operator_auth;
pub mod ratelimit;
mod run;
pub mod server;
pub mod testkit;
pub mod tls;

pub use config::{Limits, ServeConfig};
pub use run::{banner, run};
pub use server::{serve, ServeError, ServerHandle, ServerInfo};

pub mod inventory;
pub mod registry;
pub mod store;
