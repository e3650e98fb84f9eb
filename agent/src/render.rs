//! Rendering: the ordered layers of a checkout become the list of objects to apply.
//!
//! Pure: files come in as plain values (path + text), objects go out as JSON values.
//! Each file is split into YAML documents, `${name}` variables are substituted from the
//! site's labels, documents are parsed, and an object from a later layer with the same
//! group/kind/namespace/name is merged over the earlier one with JSON merge patch
//! (RFC 7386) semantics. Every error names the file, the 1-based document and the reason.

mod merge;
mod subst;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use siteboot_wire::labels::Labels;

pub use merge::merge_patch;
pub use subst::{substitute, SubstError};

/// One manifest file of a layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFile {
    /// Path relative to the checkout root, e.g. `baseline/namespace.yaml`.
    pub path: String,
    /// File text.
    pub text: String,
}

/// One layer (an assigned path) with its files in apply order (sorted by path).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layer {
    /// The assigned path, e.g. `regions/eu-west/`.
    pub path: String,
    /// The YAML files below it.
    pub files: Vec<SourceFile>,
}

/// What identifies an object in a layer and in the cluster.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectRef {
    /// `apps/v1`, `v1`.
    pub api_version: String,
    /// `Deployment`.
    pub kind: String,
    /// Namespace, absent for cluster-scoped objects (and for namespaced objects that
    /// leave it to the default namespace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// `metadata.name`.
    pub name: String,
}

impl ObjectRef {
    /// The API group (`""` for the core group).
    pub fn group(&self) -> &str {
        self.api_version
            .rsplit_once('/')
            .map(|(g, _)| g)
            .unwrap_or("")
    }

    /// The identity layers merge on: group, kind, namespace, name (not the version).
    fn merge_key(&self) -> (String, String, Option<String>, String) {
        (
            self.group().to_string(),
            self.kind.clone(),
            self.namespace.clone(),
            self.name.clone(),
        )
    }

    /// Reads the reference of a parsed object.
    pub fn of(object: &Value) -> Result<ObjectRef, String> {
        let s = |v: Option<&Value>, what: &str| -> Result<String, String> {
            match v.and_then(Value::as_str) {
                Some(x) if !x.trim().is_empty() => Ok(x.to_string()),
                _ => Err(format!("{what} is missing or not a string")),
            }
        };
        if !object.is_object() {
            return Err("document is not a mapping (expected a Kubernetes object)".into());
        }
        let meta = object.get("metadata");
        Ok(ObjectRef {
            api_version: s(object.get("apiVersion"), "apiVersion")?,
            kind: s(object.get("kind"), "kind")?,
            namespace: meta
                .and_then(|m| m.get("namespace"))
                .and_then(Value::as_str)
                .filter(|n| !n.is_empty())
                .map(str::to_string),
            name: s(meta.and_then(|m| m.get("name")), "metadata.name")?,
        })
    }
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(ns) => write!(
                f,
                "{} {}/{} ({})",
                self.kind, ns, self.name, self.api_version
            ),
            None => write!(f, "{} {} ({})", self.kind, self.name, self.api_version),
        }
    }
}

/// Why rendering failed, located at a file and a document.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("render {file} document {document}: {reason}")]
pub struct RenderError {
    /// File path relative to the checkout.
    pub file: String,
    /// 1-based document index within the file.
    pub document: usize,
    /// What is wrong.
    pub reason: String,
}

/// The rendered objects, in order of first appearance across layers.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Rendered {
    /// Objects ready to apply.
    pub objects: Vec<Value>,
}

impl Rendered {
    /// References of all objects, in order.
    pub fn refs(&self) -> Vec<ObjectRef> {
        self.objects
            .iter()
            .filter_map(|o| ObjectRef::of(o).ok())
            .collect()
    }

    /// Multi-document YAML, for `siteboot-agent render`.
    pub fn to_yaml(&self) -> String {
        let mut out = String::new();
        for o in &self.objects {
            out.push_str("---\n");
            out.push_str(&serde_norway::to_string(o).unwrap_or_default());
        }
        out
    }
}

/// Renders layers in order with `labels` as substitution variables.
pub fn render(layers: &[Layer], labels: &Labels) -> Result<Rendered, RenderError> {
    let mut order: Vec<(String, String, Option<String>, String)> = Vec::new();
    let mut objects: BTreeMap<(String, String, Option<String>, String), Value> = BTreeMap::new();
    for layer in layers {
        // Keys seen in this layer: a duplicate within one layer is ambiguous.
        let mut seen: BTreeMap<(String, String, Option<String>, String), String> = BTreeMap::new();
        for file in &layer.files {
            for (index, doc) in split_documents(&file.text).into_iter().enumerate() {
                let at = |reason: String| RenderError {
                    file: file.path.clone(),
                    document: index + 1,
                    reason,
                };
                if is_blank(doc) {
                    continue;
                }
                let text = substitute(doc, labels).map_err(|e| at(e.to_string()))?;
                let value: Value =
                    serde_norway::from_str(&text).map_err(|e| at(format!("invalid YAML: {e}")))?;
                if value.is_null() {
                    continue;
                }
                let oref = ObjectRef::of(&value).map_err(at)?;
                let key = oref.merge_key();
                if let Some(first) = seen.insert(key.clone(), file.path.clone()) {
                    return Err(at(format!(
                        "{oref} is defined twice in layer {} (also in {first})",
                        layer.path
                    )));
                }
                match objects.get_mut(&key) {
                    Some(existing) => merge_patch(existing, &value),
                    None => {
                        order.push(key.clone());
                        objects.insert(key, value);
                    }
                }
            }
        }
    }
    Ok(Rendered {
        objects: order
            .into_iter()
            .filter_map(|k| objects.remove(&k))
            .collect(),
    })
}

/// Splits YAML text into documents at `---` lines (a leading `---` opens the first one).
fn split_documents(text: &str) -> Vec<&str> {
    let mut docs = Vec::new();
    let mut start = 0;
    let mut offset = 0;
    let mut first_content_seen = false;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim_end();
        let is_marker =
            trimmed == "---" || trimmed.starts_with("--- ") || trimmed.starts_with("---\t");
        if is_marker {
            // A marker before any content does not end an (empty) first document.
            if first_content_seen {
                docs.push(&text[start..offset]);
            }
            start = offset + line.len();
            first_content_seen = true;
        } else if !is_blank(line) {
            first_content_seen = true;
        }
        offset += line.len();
    }
    docs.push(&text[start..]);
    docs
}

/// Only whitespace and comments.
fn is_blank(doc: &str) -> bool {
    doc.lines().all(|l| {
        let t = l.trim();
        t.is_empty() || t.starts_with('#') || t == "..."
    })
}
