//! The in-memory object store: objects by resource type, namespace and name; the global
//! `resourceVersion` counter; the bounded event history watches resume from; and the
//! broadcast channel live watches follow. Guarded by one mutex in [`super::server`]; no
//! method blocks or awaits.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use serde_json::Value;
use tokio::sync::broadcast;

use super::meta;
use super::registry::{GroupResource, Registry};

/// What happened to an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Added,
    Modified,
    Deleted,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Added => "ADDED",
            EventKind::Modified => "MODIFIED",
            EventKind::Deleted => "DELETED",
        }
    }
}

/// One committed change, as kept in history and sent to watches.
#[derive(Debug, Clone)]
pub struct Event {
    pub rv: u64,
    pub kind: EventKind,
    pub gr: GroupResource,
    /// Empty for cluster-scoped objects.
    pub namespace: String,
    pub object: Value,
    /// The state before a MODIFIED change, so selector watches can tell objects that left or
    /// entered their selection.
    pub prev: Option<Value>,
}

/// A watch that starts too far back: the oldest resume point still held.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Expired {
    pub requested: u64,
    pub oldest: u64,
}

type Key = (String, String);

/// Objects, versions and history.
pub struct Store {
    rv: u64,
    objects: HashMap<GroupResource, BTreeMap<Key, Value>>,
    history: VecDeque<Arc<Event>>,
    history_limit: usize,
    /// The highest resourceVersion whose event was dropped from history.
    compacted: u64,
    tx: broadcast::Sender<Arc<Event>>,
    pub registry: Registry,
}

impl Store {
    /// An empty store keeping the last `history_limit` events.
    pub fn new(history_limit: usize) -> Self {
        let (tx, _) = broadcast::channel(16_384);
        Store {
            rv: 0,
            objects: HashMap::new(),
            history: VecDeque::new(),
            history_limit: history_limit.max(1),
            compacted: 0,
            tx,
            registry: Registry::builtin(),
        }
    }

    /// The current (latest committed) resourceVersion.
    pub fn rv(&self) -> u64 {
        self.rv
    }

    pub fn get(&self, gr: &GroupResource, namespace: &str, name: &str) -> Option<&Value> {
        self.objects
            .get(gr)?
            .get(&(namespace.to_string(), name.to_string()))
    }

    /// Objects of a type, in one namespace or (with `None`) all, ordered by namespace and name.
    pub fn list<'a>(
        &'a self,
        gr: &GroupResource,
        namespace: Option<&'a str>,
    ) -> impl Iterator<Item = &'a Value> + 'a {
        self.objects
            .get(gr)
            .into_iter()
            .flat_map(|m| m.iter())
            .filter(move |((ns, _), _)| namespace.is_none_or(|want| ns == want))
            .map(|(_, v)| v)
    }

    /// Every stored object with its type, for garbage collection scans.
    pub fn all(&self) -> impl Iterator<Item = (&GroupResource, &Value)> {
        self.objects
            .iter()
            .flat_map(|(gr, m)| m.values().map(move |v| (gr, v)))
    }

    /// Stores `obj` under a new resourceVersion and records the event; returns the stored copy.
    pub fn put(&mut self, gr: &GroupResource, mut obj: Value, kind: EventKind) -> Value {
        self.rv += 1;
        meta::metadata_mut(&mut obj)
            .insert("resourceVersion".into(), Value::String(self.rv.to_string()));
        let key = key_of(&obj);
        let prev = self
            .objects
            .entry(gr.clone())
            .or_default()
            .insert(key.clone(), obj.clone());
        self.emit(Event {
            rv: self.rv,
            kind,
            gr: gr.clone(),
            namespace: key.0,
            object: obj.clone(),
            prev,
        });
        obj
    }

    /// Replaces a stored object without a new version or event; only for a state that is
    /// removed right after (the DELETED event then carries it).
    pub fn replace_quiet(&mut self, gr: &GroupResource, obj: Value) {
        let key = key_of(&obj);
        self.objects.entry(gr.clone()).or_default().insert(key, obj);
    }

    /// Removes an object; the DELETED event carries its last state under a new resourceVersion.
    pub fn remove(&mut self, gr: &GroupResource, namespace: &str, name: &str) -> Option<Value> {
        let mut obj = self
            .objects
            .get_mut(gr)?
            .remove(&(namespace.to_string(), name.to_string()))?;
        self.rv += 1;
        meta::metadata_mut(&mut obj)
            .insert("resourceVersion".into(), Value::String(self.rv.to_string()));
        self.emit(Event {
            rv: self.rv,
            kind: EventKind::Deleted,
            gr: gr.clone(),
            namespace: namespace.to_string(),
            object: obj.clone(),
            prev: None,
        });
        Some(obj)
    }

    fn emit(&mut self, event: Event) {
        let event = Arc::new(event);
        self.history.push_back(event.clone());
        while self.history.len() > self.history_limit {
            if let Some(old) = self.history.pop_front() {
                self.compacted = old.rv;
            }
        }
        // No receivers is fine: nobody is watching.
        let _ = self.tx.send(event);
    }

    /// A receiver of every event committed after this call (take it under the same lock as
    /// [`Store::since`] so nothing falls between replay and live events).
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.tx.subscribe()
    }

    /// Events after `rv` still in history, or [`Expired`] when some were already dropped.
    pub fn since(&self, rv: u64) -> Result<Vec<Arc<Event>>, Expired> {
        if rv < self.compacted {
            return Err(Expired {
                requested: rv,
                oldest: self.compacted,
            });
        }
        Ok(self.history.iter().filter(|e| e.rv > rv).cloned().collect())
    }

    /// Drops the whole event history, as if etcd had compacted up to now (for tests of 410).
    pub fn compact(&mut self) {
        self.history.clear();
        self.compacted = self.rv;
    }
}

/// `(namespace, name)` of an object ("" namespace when cluster scoped).
pub fn key_of(obj: &Value) -> Key {
    (
        meta::meta_str(obj, "namespace")
            .unwrap_or_default()
            .to_string(),
        meta::meta_str(obj, "name").unwrap_or_default().to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn gr() -> GroupResource {
        GroupResource {
            group: String::new(),
            resource: "configmaps".into(),
        }
    }

    #[test]
    fn versions_history_and_expiry() {
        let mut s = Store::new(3);
        let mut rx = s.subscribe();
        for i in 0..5 {
            s.put(
                &gr(),
                json!({"metadata": {"name": format!("c{i}"), "namespace": "ns"}}),
                EventKind::Added,
            );
        }
        assert_eq!(s.rv(), 5);
        assert_eq!(
            s.get(&gr(), "ns", "c4").unwrap()["metadata"]["resourceVersion"],
            "5"
        );
        assert_eq!(
            s.since(1).unwrap_err(),
            Expired {
                requested: 1,
                oldest: 2
            }
        );
        let tail: Vec<u64> = s.since(2).unwrap().iter().map(|e| e.rv).collect();
        assert_eq!(tail, [3, 4, 5]);
        let gone = s.remove(&gr(), "ns", "c0").unwrap();
        assert_eq!(gone["metadata"]["resourceVersion"], "6");
        assert_eq!(s.list(&gr(), Some("ns")).count(), 4);
        assert_eq!(s.list(&gr(), Some("other")).count(), 0);
        assert_eq!(rx.try_recv().unwrap().rv, 1);
        s.compact();
        assert!(s.since(5).is_err());
        assert!(s.since(6).unwrap().is_empty());
    }
}
