//! The siteboot Cluster API bootstrap provider: `SiteBootstrapConfig` types, the
//! reconcile pipeline (fetch, plan, render, apply, status) and clusterctl artifacts.
#![forbid(unsafe_code)]

pub mod api;
pub mod bootstrap_input;
pub mod capi;
pub mod conditions;
pub mod consts;
pub mod controller;
pub mod crdgen;
pub mod metrics;
pub mod operator_client;
pub mod plan;
pub mod render;
pub mod webhook;
