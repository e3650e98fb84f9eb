//! Watch streams: newline-delimited `{"type": ..., "object": ...}` events over a chunked
//! HTTP body. A watch starts from a `resourceVersion` (replaying retained history, or an
//! `ERROR` event with a 410 `Status` when that history is gone), from "now" with synthetic
//! `ADDED` events for existing objects (no or `0` resourceVersion), or as a streaming list
//! (`sendInitialEvents=true`, ending with the `k8s.io/initial-events-end` bookmark). It
//! sends `BOOKMARK`s every bookmark interval when asked and ends after `timeoutSeconds`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use serde_json::{json, Value};
use tokio::sync::{broadcast, mpsc, watch};

use super::ops::serve;
use super::registry::ResourceDef;
use super::selectors::{FieldSelector, LabelSelector};
use super::status::ApiError;
use super::store::{Event, EventKind, Store};

/// Where a watch starts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Start {
    /// Synthetic ADDED events for every current object, then live events.
    Current,
    /// Events after this resourceVersion.
    After(u64),
    /// A streaming list: like `Current`, then the initial-events-end bookmark.
    InitialEvents,
}

/// A parsed watch request.
#[derive(Debug, Clone)]
pub struct WatchSpec {
    pub def: ResourceDef,
    pub version: String,
    /// `None` for a cluster-wide watch.
    pub namespace: Option<String>,
    pub labels: LabelSelector,
    pub fields: FieldSelector,
    pub start: Start,
    pub bookmarks: bool,
    pub timeout: Duration,
    pub bookmark_interval: Duration,
}

impl WatchSpec {
    fn selects(&self, obj: &Value) -> bool {
        self.labels.matches(obj) && self.fields.matches(obj)
    }

    fn line(&self, kind: &str, obj: &Value) -> Bytes {
        let mut line = serde_json::to_vec(
            &json!({"type": kind, "object": serve(obj.clone(), &self.def, &self.version)}),
        )
        .expect("json values serialise");
        line.push(b'\n');
        Bytes::from(line)
    }

    fn bookmark(&self, rv: u64, initial_end: bool) -> Bytes {
        let mut meta = json!({"resourceVersion": rv.to_string()});
        if initial_end {
            meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        self.line("BOOKMARK", &json!({"metadata": meta}))
    }

    /// The line to send for a committed event, if this watch sees it: selector watches turn
    /// an object entering their selection into ADDED and one leaving it into DELETED.
    fn translate(&self, e: &Event) -> Option<Bytes> {
        if e.gr != self.def.gr() || self.namespace.as_ref().is_some_and(|ns| *ns != e.namespace) {
            return None;
        }
        let now = self.selects(&e.object);
        let kind = match e.kind {
            EventKind::Modified => {
                let before = e.prev.as_ref().is_some_and(|p| self.selects(p));
                match (before, now) {
                    (true, true) => "MODIFIED",
                    (false, true) => "ADDED",
                    (true, false) => "DELETED",
                    (false, false) => return None,
                }
            }
            k if now => k.as_str(),
            _ => return None,
        };
        Some(self.line(kind, &e.object))
    }
}

fn error_line(err: &ApiError) -> Bytes {
    let mut line = serde_json::to_vec(&json!({"type": "ERROR", "object": err.to_status()}))
        .expect("json values serialise");
    line.push(b'\n');
    Bytes::from(line)
}

/// Subscribes and computes the first lines (replay or synthetic ADDED events) under the
/// store lock, so no event falls between them and the live stream. `Err` is the 410 line.
#[allow(clippy::type_complexity)]
fn begin(
    s: &Store,
    spec: &WatchSpec,
) -> Result<(broadcast::Receiver<Arc<Event>>, Vec<Bytes>, u64), Bytes> {
    let rx = s.subscribe();
    let mut first = Vec::new();
    match spec.start {
        Start::After(rv) => match s.since(rv) {
            Ok(events) => first.extend(events.iter().filter_map(|e| spec.translate(e))),
            Err(exp) => {
                let err = ApiError::expired(format!(
                    "too old resource version: {} ({})",
                    exp.requested,
                    exp.oldest + 1
                ));
                return Err(error_line(&err));
            }
        },
        Start::Current | Start::InitialEvents => {
            for obj in s
                .list(&spec.def.gr(), spec.namespace.as_deref())
                .filter(|o| spec.selects(o))
            {
                first.push(spec.line("ADDED", obj));
            }
            if spec.start == Start::InitialEvents {
                first.push(spec.bookmark(s.rv(), true));
            }
        }
    }
    // The replay above holds everything up to the current version.
    let last = match spec.start {
        Start::After(rv) => rv.max(s.rv()),
        _ => s.rv(),
    };
    Ok((rx, first, last))
}

/// Runs one watch, writing lines into `out` until the timeout, a shutdown, a lagging
/// receiver (answered with 410 like an expired watch) or the client going away.
pub async fn run(
    store: Arc<Mutex<Store>>,
    spec: WatchSpec,
    out: mpsc::Sender<Bytes>,
    mut shutdown: watch::Receiver<bool>,
) {
    let begun = {
        let s = store.lock().unwrap_or_else(|e| e.into_inner());
        begin(&s, &spec)
    };
    let (mut rx, first, mut last) = match begun {
        Ok(parts) => parts,
        Err(expired) => {
            let _ = out.send(expired).await;
            return;
        }
    };
    for line in first {
        if out.send(line).await.is_err() {
            return;
        }
    }
    let deadline = tokio::time::sleep(spec.timeout);
    tokio::pin!(deadline);
    let mut ticker = tokio::time::interval(spec.bookmark_interval);
    ticker.tick().await;
    loop {
        tokio::select! {
            received = rx.recv() => match received {
                Ok(e) if e.rv > last => {
                    last = e.rv;
                    if let Some(line) = spec.translate(&e) {
                        if out.send(line).await.is_err() {
                            return;
                        }
                    }
                }
                Ok(_) => {}
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    let _ = out.send(error_line(&ApiError::expired("the watch fell behind the event stream; list and watch again"))).await;
                    return;
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
            _ = ticker.tick(), if spec.bookmarks => {
                let rv = store.lock().unwrap_or_else(|e| e.into_inner()).rv();
                // Everything up to `rv` was broadcast before we read it: deliver it first.
                while let Ok(e) = rx.try_recv() {
                    if e.rv > last {
                        last = e.rv;
                        if let Some(line) = spec.translate(&e) {
                            if out.send(line).await.is_err() {
                                return;
                            }
                        }
                    }
                }
                last = last.max(rv);
                if out.send(spec.bookmark(last, false)).await.is_err() {
                    return;
                }
            }
            _ = &mut deadline => return,
            _ = shutdown.changed() => return,
            _ = out.closed() => return,
        }
    }
}
