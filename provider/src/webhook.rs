//! Validating admission webhook for `SiteBootstrapConfigTemplate` and `SiteBootstrapConfig`
//! (CAPI contract §3.1, like CABPK's `KubeadmConfigTemplate` webhook).
//!
//! - A template's `spec.template.spec` is immutable after creation, except for the
//!   ClusterClass topology controller's server-side-apply dry run (request `dryRun: true`
//!   and annotation [`TOPOLOGY_DRY_RUN_ANNOTATION`] on the object), as CAPI's own template
//!   webhooks do.
//! - A created or changed spec is validated the way the controller validates it: the spec
//!   is rendered with a placeholder token ([`bootstrap_input::validate`]); the site id and
//!   CA bundle that are only known per Machine are replaced by placeholders.
//! - Updates that leave the spec unchanged (metadata, finalizers) and deletes are allowed.
//!
//! [`decide`] is the pure core (plain values in, decision out); [`review`] adapts it to
//! `AdmissionRequest`/`AdmissionResponse`; [`server`] is the thin HTTPS edge.

use std::collections::BTreeMap;

use kube::core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview, Operation};
use kube::core::{DynamicObject, Status};
use serde_json::Value;

use crate::api::SiteBootstrapConfigSpec;
use crate::{bootstrap_input, plan};

pub mod server;

/// Annotation the CAPI topology controller sets on objects it sends as SSA dry runs
/// (`clusterv1.TopologyDryRunAnnotation`).
pub const TOPOLOGY_DRY_RUN_ANNOTATION: &str = "topology.cluster.x-k8s.io/dry-run";
/// Webhook path for `SiteBootstrapConfigTemplate` (controller-runtime naming).
pub const TEMPLATE_PATH: &str =
    "/validate-bootstrap-cluster-x-k8s-io-v1alpha1-sitebootstrapconfigtemplate";
/// Webhook path for `SiteBootstrapConfig`.
pub const CONFIG_PATH: &str = "/validate-bootstrap-cluster-x-k8s-io-v1alpha1-sitebootstrapconfig";
/// Site id used for the validation render when the spec reads it from a label.
pub const PLACEHOLDER_SITE_ID: &str = "webhook-validation";
/// Well-formed CA bundle used for the validation render when the spec reads the CA from a
/// Secret or ConfigMap (DER `30 03 02 01 00`).
pub const PLACEHOLDER_CA_PEM: &str =
    "-----BEGIN CERTIFICATE-----\nMAMCAQA=\n-----END CERTIFICATE-----\n";

/// Which resource a request is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `SiteBootstrapConfigTemplate`: spec at `spec.template.spec`, immutable.
    Template,
    /// `SiteBootstrapConfig`: spec at `spec`, validated when created or changed.
    Config,
}

impl Kind {
    /// Parses the `kind` of an admission request.
    pub fn from_kind(kind: &str) -> Option<Kind> {
        match kind {
            "SiteBootstrapConfigTemplate" => Some(Kind::Template),
            "SiteBootstrapConfig" => Some(Kind::Config),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Kind::Template => "SiteBootstrapConfigTemplate",
            Kind::Config => "SiteBootstrapConfig",
        }
    }

    /// Field path of the bootstrap spec inside the object.
    pub fn spec_field(self) -> &'static str {
        match self {
            Kind::Template => "spec.template.spec",
            Kind::Config => "spec",
        }
    }

    fn spec_of(self, object: &Value) -> Option<&Value> {
        match self {
            Kind::Template => object.get("spec")?.get("template")?.get("spec"),
            Kind::Config => object.get("spec"),
        }
    }
}

/// The admission operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Create,
    Update,
    Delete,
    Connect,
}

/// Everything [`decide`] looks at. `old`/`new` are the objects' JSON (at least `spec`).
#[derive(Clone, Copy, Debug)]
pub struct Review<'a> {
    pub kind: Kind,
    pub operation: Op,
    pub old: Option<&'a Value>,
    pub new: Option<&'a Value>,
    /// The request's `dryRun`.
    pub dry_run: bool,
    /// Annotations of the new object.
    pub annotations: &'a BTreeMap<String, String>,
}

/// Why a request is denied; the message is what `kubectl` shows.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Denial {
    #[error("{field}: invalid value: {reason}")]
    Invalid { field: String, reason: String },
    #[error("{field}: forbidden: {kind} {field} is immutable; create a new {kind} and point the MachineDeployment or ClusterClass at it")]
    Immutable {
        kind: &'static str,
        field: &'static str,
    },
    #[error("{0} request carries no object")]
    MissingObject(&'static str),
    #[error("kind {0:?} is not validated here; the webhook configuration should only send SiteBootstrapConfigTemplate and SiteBootstrapConfig")]
    UnsupportedKind(String),
}

impl Denial {
    /// The `status` of the admission response (422 Invalid like CAPI's field errors).
    pub fn status(&self) -> Status {
        let (reason, code) = match self {
            Denial::Invalid { .. } | Denial::Immutable { .. } => ("Invalid", 422),
            Denial::MissingObject(_) | Denial::UnsupportedKind(_) => ("BadRequest", 400),
        };
        Status::failure(&self.to_string(), reason).with_code(code)
    }
}

/// The pure decision: `Ok(())` admits the request.
pub fn decide(r: &Review<'_>) -> Result<(), Denial> {
    let op_name = match r.operation {
        Op::Delete | Op::Connect => return Ok(()),
        Op::Create => "CREATE",
        Op::Update => "UPDATE",
    };
    let field = r.kind.spec_field();
    let new = r.new.ok_or(Denial::MissingObject(op_name))?;
    let new_raw = r.kind.spec_of(new).ok_or_else(|| Denial::Invalid {
        field: field.to_string(),
        reason: "required".to_string(),
    })?;
    let spec: SiteBootstrapConfigSpec =
        serde_json::from_value(new_raw.clone()).map_err(|e| Denial::Invalid {
            field: field.to_string(),
            reason: e.to_string(),
        })?;
    if r.operation == Op::Update {
        if let Some(old_raw) = r.old.and_then(|o| r.kind.spec_of(o)) {
            // Compare the typed specs so defaulted fields (format) do not count as changes.
            let changed = match serde_json::from_value::<SiteBootstrapConfigSpec>(old_raw.clone()) {
                Ok(old) => old != spec,
                Err(_) => old_raw != new_raw,
            };
            if !changed {
                return Ok(());
            }
            let topology_dry_run =
                r.dry_run && r.annotations.contains_key(TOPOLOGY_DRY_RUN_ANNOTATION);
            if r.kind == Kind::Template && !topology_dry_run {
                return Err(Denial::Immutable {
                    kind: r.kind.name(),
                    field,
                });
            }
        }
    }
    validate_spec(&spec, field)
}

/// Validates a spec as the controller would, with placeholders for per-Machine inputs.
pub fn validate_spec(spec: &SiteBootstrapConfigSpec, field: &str) -> Result<(), Denial> {
    let invalid = |sub: &str, reason: String| Denial::Invalid {
        field: format!("{field}{sub}"),
        reason,
    };
    let site_id = if spec.site.site_id.as_deref().is_some_and(|s| !s.is_empty()) {
        plan::resolve_site(spec, None, None).map_err(|e| invalid(".site.siteId", e))?
    } else if let Some(from) = &spec.site.site_id_from {
        if from.label.trim().is_empty() {
            return Err(invalid(
                ".site.siteIdFrom.label",
                "must not be empty".into(),
            ));
        }
        PLACEHOLDER_SITE_ID.to_string()
    } else {
        return Err(invalid(".site", "needs siteId or siteIdFrom".into()));
    };
    if let Some(ttl) = &spec.token_ttl {
        plan::parse_ttl(ttl).map_err(|e| invalid(".tokenTTL", e))?;
    }
    let reg = &spec.registration;
    let ca = match reg.ca_bundle.as_deref().filter(|p| !p.trim().is_empty()) {
        Some(pem) => pem,
        None if reg.ca_bundle_from.is_some() => PLACEHOLDER_CA_PEM,
        None => {
            return Err(invalid(
                ".registration",
                "needs caBundle or caBundleFrom".into(),
            ))
        }
    };
    bootstrap_input::validate(spec, &site_id, ca).map_err(|e| invalid("", e))
}

fn op(o: &Operation) -> Op {
    match o {
        Operation::Create => Op::Create,
        Operation::Update => Op::Update,
        Operation::Delete => Op::Delete,
        Operation::Connect => Op::Connect,
    }
}

/// Answers one admission request (uid echoed).
pub fn review(req: &AdmissionRequest<DynamicObject>) -> AdmissionResponse {
    let empty = BTreeMap::new();
    let decision = match Kind::from_kind(&req.kind.kind) {
        None => Err(Denial::UnsupportedKind(req.kind.kind.clone())),
        Some(kind) => decide(&Review {
            kind,
            operation: op(&req.operation),
            old: req.old_object.as_ref().map(|o| &o.data),
            new: req.object.as_ref().map(|o| &o.data),
            dry_run: req.dry_run,
            annotations: req
                .object
                .as_ref()
                .and_then(|o| o.metadata.annotations.as_ref())
                .unwrap_or(&empty),
        }),
    };
    let mut resp = AdmissionResponse::from(req);
    if let Err(denial) = decision {
        resp.allowed = false;
        resp.result = denial.status();
    }
    resp
}

/// Answers a raw `AdmissionReview` body; an unreadable body gets an `invalid` response.
pub fn review_body(body: &[u8]) -> AdmissionReview<DynamicObject> {
    let parsed: Result<AdmissionRequest<DynamicObject>, String> =
        serde_json::from_slice::<AdmissionReview<DynamicObject>>(body)
            .map_err(|e| format!("admission review is not valid JSON: {e}"))
            .and_then(|r| {
                r.try_into()
                    .map_err(|_| "admission review has no request".to_string())
            });
    match parsed {
        Ok(req) => review(&req).into_review(),
        Err(e) => AdmissionResponse::invalid(e).into_review(),
    }
}

#[cfg(test)]
mod tests;
