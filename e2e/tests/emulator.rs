//! The Kubernetes API emulator driven by real `kube::Api` calls over HTTP: discovery and
//! CRDs, optimistic concurrency, server-side apply conflicts, the status subresource,
//! generation, selectors, watches (resume, bookmarks, 410), finalizers, cascading and
//! namespace deletion.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{
    Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams, WatchEvent,
    WatchParams,
};
use kube::core::{ApiResource, GroupVersionKind};
use kube::discovery::{Discovery, Scope};
use kube::ResourceExt;
use serde_json::{json, Value};
use siteboot_e2e::emulator::{Emulator, EmulatorHandle};

pub(crate) const DEADLINE: Duration = Duration::from_secs(30);

pub(crate) fn cm(name: &str, data: Value) -> ConfigMap {
    serde_json::from_value(
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data}),
    )
    .unwrap()
}

pub(crate) fn api_code<T: std::fmt::Debug>(r: kube::Result<T>) -> (u16, String, String) {
    match r {
        Err(kube::Error::Api(s)) => (s.code, s.reason.clone(), s.message.clone()),
        other => panic!("expected an API error, got {other:?}"),
    }
}

pub(crate) async fn start() -> Result<(EmulatorHandle, kube::Client)> {
    let emu = Emulator::start().await?;
    let client = emu.client().await?;
    Ok((emu, client))
}

#[path = "emulator/discovery.rs"]
mod discovery;

#[path = "emulator/objects.rs"]
mod objects;

#[path = "emulator/watch.rs"]
mod watch;

#[path = "emulator/deletion.rs"]
mod deletion;
