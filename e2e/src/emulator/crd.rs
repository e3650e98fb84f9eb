//! `CustomResourceDefinition` side effects: a written CRD registers (or re-registers) the
//! type it defines and gets the status the API server's CRD controllers would set
//! (`NamesAccepted` and `Established` True, `acceptedNames`, `storedVersions`).

use serde_json::{json, Value};

use super::ops::Target;
use super::registry;
use super::status::ApiError;
use super::store::Store;

/// Status conditions the API server's CRD controllers set once names are accepted.
pub fn crd_status(crd: &Value, now: &str) -> Value {
    let storage = crd["spec"]["versions"]
        .as_array()
        .and_then(|vs| vs.iter().find(|v| v["storage"] == true))
        .map(|v| v["name"].clone())
        .unwrap_or(Value::Null);
    let mut names = crd["spec"]["names"].clone();
    if names["singular"].is_null() {
        names["singular"] = json!(names["kind"].as_str().unwrap_or_default().to_lowercase());
    }
    if names["listKind"].is_null() {
        names["listKind"] = json!(format!(
            "{}List",
            names["kind"].as_str().unwrap_or_default()
        ));
    }
    json!({
        "conditions": [
            {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "message": "no conflicts found", "lastTransitionTime": now},
            {"type": "Established", "status": "True", "reason": "InitialNamesAccepted", "message": "the initial names have been accepted", "lastTransitionTime": now}
        ],
        "acceptedNames": names,
        "storedVersions": [storage]
    })
}

/// Registers the type a CRD defines and fills the CRD's status; `Invalid` when it cannot.
pub fn register_crd(
    store: &mut Store,
    t: &Target,
    obj: &mut Value,
    now: &str,
    dry_run: bool,
) -> Result<(), ApiError> {
    let invalid = |field: &str, why: &str| {
        ApiError::invalid(t.subject(), "CustomResourceDefinition", field, why)
    };
    let def = registry::crd_to_def(obj).map_err(|(field, why)| invalid(&field, &why))?;
    if !dry_run {
        store
            .registry
            .upsert_crd(def)
            .map_err(|why| invalid("spec.names.plural", &why))?;
    }
    obj["status"] = crd_status(obj, now);
    Ok(())
}
