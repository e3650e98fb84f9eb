//! The siteboot on-site agent: register, keep an identity, check in, fetch the assigned
//! Git paths, render layers, apply and prune, offline-first.
//!
//! Pure core: [`render`] (layers, merge patch, substitution), [`window`] (maintenance
//! windows), [`backoff`] (full-jitter delays), [`offline`], [`apply::plan`], [`config`].
//! I/O edges: [`store`] (atomic files), [`client`] (HTTP), [`apply`] (kube), [`git`],
//! [`register`] and [`reconcile`] (the loops), [`cli`] (arguments).
#![forbid(unsafe_code)]

pub mod apply;
pub mod attempts;
pub mod backoff;
pub mod checkout;
pub mod cli;
pub mod client;
pub mod config;
pub mod facts;
pub mod git;
pub mod identity;
pub mod offline;
pub mod reconcile;
pub mod register;
pub mod render;
pub mod root;
pub mod run;
pub mod scrub;
pub mod seed;
pub mod source;
pub mod status;
pub mod store;
pub mod tls;
pub mod window;
