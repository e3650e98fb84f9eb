//! Kubernetes `Status` errors: every failure the emulator answers is a real `meta/v1 Status`
//! object (kind `Status`, `code`, `reason`, `message`, `details`) so `kube::Error::Api`
//! parses it exactly as it parses an API server's answer.

use serde_json::{json, Value};

/// A failed API request, rendered as a `Status` body with the same HTTP status code.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// HTTP status code, also `Status.code`.
    pub code: u16,
    /// Machine-readable `Status.reason` (`NotFound`, `Conflict`, ...).
    pub reason: &'static str,
    /// Human-readable `Status.message`.
    pub message: String,
    /// `Status.details`, when the real API server would fill it.
    pub details: Option<Value>,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.reason, self.code, self.message)
    }
}

impl std::error::Error for ApiError {}

/// Who a `Status` is about: the group, the resource (plural) and the object name.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    pub group: &'a str,
    pub resource: &'a str,
    pub name: &'a str,
}

impl Subject<'_> {
    fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.resource.to_string()
        } else {
            format!("{}.{}", self.resource, self.group)
        }
    }

    fn details(&self) -> Value {
        json!({"name": self.name, "group": self.group, "kind": self.resource})
    }
}

impl ApiError {
    fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            code,
            reason,
            message: message.into(),
            details: None,
        }
    }

    fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }

    pub fn not_found(s: Subject<'_>) -> Self {
        Self::new(
            404,
            "NotFound",
            format!("{} \"{}\" not found", s.qualified(), s.name),
        )
        .with_details(s.details())
    }

    pub fn already_exists(s: Subject<'_>) -> Self {
        Self::new(
            409,
            "AlreadyExists",
            format!("{} \"{}\" already exists", s.qualified(), s.name),
        )
        .with_details(s.details())
    }

    /// The optimistic-concurrency failure of a write carrying a stale `resourceVersion`.
    pub fn conflict(s: Subject<'_>) -> Self {
        Self::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{}\": the object has been modified; \
                 please apply your changes to the latest version and try again",
                s.qualified(),
                s.name
            ),
        )
        .with_details(s.details())
    }

    /// A server-side apply conflict: `conflicts` are `(manager, field path)` pairs.
    pub fn apply_conflict(
        s: Subject<'_>,
        api_version: &str,
        conflicts: &[(String, String)],
    ) -> Self {
        let lines: Vec<String> = conflicts
            .iter()
            .map(|(m, f)| format!("conflict with \"{m}\" using {api_version}: {f}"))
            .collect();
        let plural = if conflicts.len() == 1 { "" } else { "s" };
        let message = if lines.len() == 1 {
            format!("Apply failed with 1 conflict: {}", lines[0])
        } else {
            format!(
                "Apply failed with {} conflict{plural}: {}",
                lines.len(),
                lines.join("\n")
            )
        };
        let causes: Vec<Value> = conflicts
            .iter()
            .map(|(m, f)| {
                json!({"reason": "FieldManagerConflict",
                       "message": format!("conflict with \"{m}\" using {api_version}"),
                       "field": f})
            })
            .collect();
        let mut details = s.details();
        details["causes"] = Value::Array(causes);
        Self::new(409, "Conflict", message).with_details(details)
    }

    /// A semantically invalid object (HTTP 422); `field` names the offending path.
    pub fn invalid(s: Subject<'_>, kind: &str, field: &str, why: &str) -> Self {
        let mut details = s.details();
        details["kind"] = Value::String(kind.to_string());
        details["causes"] =
            json!([{"reason": "FieldValueInvalid", "message": why, "field": field}]);
        Self::new(
            422,
            "Invalid",
            format!("{kind} \"{}\" is invalid: {field}: {why}", s.name),
        )
        .with_details(details)
    }

    /// A resourceVersion older than the retained history (HTTP 410, reason `Expired`, as the
    /// API server answers watches and continue tokens that are too old).
    pub fn expired(message: impl Into<String>) -> Self {
        Self::new(410, "Expired", message)
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(403, "Forbidden", message)
    }

    pub fn method_not_allowed(message: impl Into<String>) -> Self {
        Self::new(405, "MethodNotAllowed", message)
    }

    pub fn unsupported_media_type(content_type: &str) -> Self {
        Self::new(
            415,
            "UnsupportedMediaType",
            format!("the body of the request was in an unknown format: {content_type}"),
        )
    }

    /// A path the emulator serves nothing at.
    pub fn no_route(path: &str) -> Self {
        Self::new(
            404,
            "NotFound",
            format!("the server could not find the requested resource ({path})"),
        )
    }

    /// The `Status` object body.
    pub fn to_status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let Some(details) = &self.details {
            status["details"] = details.clone();
        }
        status
    }
}

/// The `Status` a successful immediate delete answers with.
pub fn success_status(s: Subject<'_>, uid: &str) -> Value {
    let mut details = s.details();
    details["uid"] = Value::String(uid.to_string());
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details})
}

#[cfg(test)]
mod tests {
    use super::*;

    const CM: Subject<'static> = Subject {
        group: "",
        resource: "configmaps",
        name: "a",
    };

    #[test]
    fn statuses_carry_code_reason_and_message() {
        let cases = [
            (
                ApiError::not_found(CM),
                404,
                "NotFound",
                "configmaps \"a\" not found",
            ),
            (
                ApiError::already_exists(CM),
                409,
                "AlreadyExists",
                "configmaps \"a\" already exists",
            ),
            (ApiError::expired("too old"), 410, "Expired", "too old"),
            (ApiError::bad_request("no"), 400, "BadRequest", "no"),
        ];
        for (err, code, reason, message) in cases {
            let s = err.to_status();
            assert_eq!(s["kind"], "Status");
            assert_eq!(s["code"], code);
            assert_eq!(s["reason"], reason);
            assert_eq!(s["message"], message);
        }
    }

    #[test]
    fn apply_conflict_lists_every_field() {
        let d = Subject {
            group: "apps",
            resource: "deployments",
            name: "web",
        };
        let e = ApiError::apply_conflict(
            d,
            "apps/v1",
            &[
                ("a".into(), ".spec.replicas".into()),
                ("b".into(), ".spec.paused".into()),
            ],
        );
        assert_eq!(e.code, 409);
        assert!(
            e.message.starts_with("Apply failed with 2 conflicts"),
            "{}",
            e.message
        );
        let causes = e.to_status()["details"]["causes"]
            .as_array()
            .cloned()
            .unwrap();
        let fields: Vec<&str> = causes
            .iter()
            .map(|c| c["field"].as_str().unwrap())
            .collect();
        assert_eq!(fields, [".spec.replicas", ".spec.paused"]);
        assert_eq!(ApiError::conflict(CM).reason, "Conflict");
    }
}
