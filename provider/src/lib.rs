//! The siteboot Cluster API bootstrap provider: `SiteBootstrapConfig` types, the
//! reconcile pipeline (fetch, plan, render, apply, status) and clusterctl artifacts.
#![forbid(unsafe_code)]
pub mod render;
