//! The siteboot registration service: token redemption, factory enrollment, claim codes,
//! device certificates, check-ins, assignments, the inventory and the store.
#![forbid(unsafe_code)]
