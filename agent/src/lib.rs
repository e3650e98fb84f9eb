//! The siteboot on-site agent: register, keep an identity, check in, fetch the assigned
//! Git paths, render layers, apply and prune, offline-first.
#![forbid(unsafe_code)]
