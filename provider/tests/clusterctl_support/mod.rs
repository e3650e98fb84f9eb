//! Shared helpers for the clusterctl artifact tests: clusterctl's variable substitution,
//! the kustomize build, and multi-document YAML parsing.
//!
//! clusterctl substitutes variables with drone/envsubst. [`envsubst`] implements the
//! subset clusterctl documents (`${VAR}`, `${VAR:=default}`, `${VAR=default}`,
//! `${VAR:-default}`, `${VAR-default}`, space padding) and, like `clusterctl`, refuses to
//! produce output while a variable without a default is unset. A bare `$VAR` or `$$` is an
//! error: drone/envsubst would rewrite it, so our artifacts must not contain one.

#![allow(dead_code)]

use serde::Deserialize;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Repository root (provider/..).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("repo root")
        .to_path_buf()
}

/// One `${...}` occurrence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Var {
    pub name: String,
    /// `(operator, default)`, e.g. `(":=", "v1")`.
    pub default: Option<(String, String)>,
}

/// Why substitution failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubstError {
    /// Variables with no value and no default, sorted (clusterctl's "value for variables [..] is not set").
    Missing(Vec<String>),
    /// Syntax clusterctl/envsubst would not treat as documented.
    Syntax(String),
}

fn parse_var(inner: &str) -> Result<Var, SubstError> {
    let inner = inner.trim();
    let end = inner
        .char_indices()
        .find(|&(_, c)| !(c.is_ascii_alphanumeric() || c == '_'))
        .map_or(inner.len(), |(i, _)| i);
    let name = &inner[..end];
    if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
        return Err(SubstError::Syntax(format!(
            "bad variable name in ${{{inner}}}"
        )));
    }
    let rest = &inner[end..];
    if rest.is_empty() {
        return Ok(Var {
            name: name.into(),
            default: None,
        });
    }
    for op in [":=", ":-", "=", "-"] {
        if let Some(d) = rest.strip_prefix(op) {
            if d.contains('$') {
                return Err(SubstError::Syntax(format!(
                    "nested variables are not supported: ${{{inner}}}"
                )));
            }
            return Ok(Var {
                name: name.into(),
                default: Some((op.into(), d.into())),
            });
        }
    }
    Err(SubstError::Syntax(format!(
        "unsupported operator in ${{{inner}}}"
    )))
}

/// Every `${...}` in `text`, in order.
pub fn variables(text: &str) -> Result<Vec<Var>, SubstError> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find('$') {
        let after = &rest[i + 1..];
        let Some(body) = after.strip_prefix('{') else {
            return Err(SubstError::Syntax(format!(
                "bare '$' at ...{}",
                &rest[i..(i + 20).min(rest.len())]
            )));
        };
        let close = body
            .find('}')
            .ok_or_else(|| SubstError::Syntax("unterminated ${".into()))?;
        out.push(parse_var(&body[..close])?);
        rest = &body[close + 1..];
    }
    Ok(out)
}

/// Substitutes like clusterctl: `env` holds the variables that are set (possibly empty).
pub fn envsubst(text: &str, env: &BTreeMap<String, String>) -> Result<String, SubstError> {
    let mut env = env.clone();
    let mut missing = BTreeSet::new();
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let Some(body) = after.strip_prefix('{') else {
            return Err(SubstError::Syntax(format!(
                "bare '$' at ...{}",
                &rest[i..(i + 20).min(rest.len())]
            )));
        };
        let close = body
            .find('}')
            .ok_or_else(|| SubstError::Syntax("unterminated ${".into()))?;
        let var = parse_var(&body[..close])?;
        let current = env.get(&var.name).cloned();
        let value = match (&var.default, current) {
            (None, Some(v)) => v,
            (None, None) => {
                missing.insert(var.name.clone());
                String::new()
            }
            (Some((op, d)), current) => {
                let use_default = match op.as_str() {
                    ":=" | ":-" => current.as_deref().is_none_or(str::is_empty),
                    _ => current.is_none(),
                };
                if use_default {
                    if op.ends_with('=') {
                        env.insert(var.name.clone(), d.clone());
                    }
                    d.clone()
                } else {
                    current.unwrap_or_default()
                }
            }
        };
        out.push_str(&value);
        rest = &body[close + 1..];
    }
    out.push_str(rest);
    if missing.is_empty() {
        Ok(out)
    } else {
        Err(SubstError::Missing(missing.into_iter().collect()))
    }
}

/// Variables without a default anywhere in `text` (what a user must set).
pub fn required_variables(text: &str) -> BTreeSet<String> {
    let vars = variables(text).expect("variables parse");
    let defaulted: BTreeSet<&str> = vars
        .iter()
        .filter(|v| v.default.is_some())
        .map(|v| v.name.as_str())
        .collect();
    vars.iter()
        .filter(|v| v.default.is_none() && !defaulted.contains(v.name.as_str()))
        .map(|v| v.name.clone())
        .collect()
}

/// `kubectl kustomize <dir>` relative to the repository root.
pub fn kustomize(dir: &str) -> String {
    let kubectl = ["/usr/local/bin/kubectl", "/usr/bin/kubectl"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .unwrap_or_else(|| {
            panic!("kubectl is missing: install the kubectl client (>= 1.27, bundles kustomize v5)")
        });
    let out = Command::new(kubectl)
        .arg("kustomize")
        .arg(repo_root().join(dir))
        .output()
        .expect("run kubectl kustomize");
    assert!(
        out.status.success(),
        "kubectl kustomize {dir} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

/// Parses every YAML document; empty documents are skipped.
pub fn documents(text: &str) -> Vec<Value> {
    serde_norway::Deserializer::from_str(text)
        .map(|d| Value::deserialize(d).expect("every document parses"))
        .filter(|v| !v.is_null())
        .collect()
}

pub fn kind(v: &Value) -> &str {
    v["kind"].as_str().unwrap_or_default()
}

pub fn name(v: &Value) -> &str {
    v["metadata"]["name"].as_str().unwrap_or_default()
}

pub fn namespace(v: &Value) -> Option<&str> {
    v["metadata"]["namespace"].as_str()
}

/// The API group of an `apiVersion` (`""` for core).
pub fn group_of(api_version: &str) -> &str {
    api_version.rsplit_once('/').map_or("", |(g, _)| g)
}

/// The one object of `kind` named `name`, if any.
pub fn find<'a>(docs: &'a [Value], kind_: &str, name_: &str) -> Option<&'a Value> {
    let mut it = docs.iter().filter(|d| kind(d) == kind_ && name(d) == name_);
    let first = it.next();
    assert!(it.next().is_none(), "duplicate {kind_} {name_}");
    first
}
