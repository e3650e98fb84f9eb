//! The OpenAPI 3.1 document of the registration API, built from Rust in one function.
//!
//! `registration/openapi.json` is this document, committed; `tests/api_openapi.rs` fails if
//! they differ. Regenerate with `cargo run -p siteboot-registration -- --print-openapi >
//! registration/openapi.json`. Schemas mirror the wire types (camelCase, tagged enums).

use serde_json::{json, Map, Value};

fn r(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

fn s() -> Value {
    json!({"type": "string"})
}

fn dt() -> Value {
    json!({"type": "string", "format": "date-time"})
}

fn int() -> Value {
    json!({"type": "integer", "format": "int64", "minimum": 0})
}

/// A duration in seconds as agents report it: `0 <= x < 86400`.
fn seconds_below_a_day() -> Value {
    json!({"type": "number", "minimum": 0, "exclusiveMaximum": 86400})
}

fn arr(items: Value) -> Value {
    json!({"type": "array", "items": items})
}

fn map_of_strings() -> Value {
    json!({"type": "object", "additionalProperties": {"type": "string"}})
}

/// An object schema: `(name, schema, required)`.
fn obj(fields: &[(&str, Value, bool)]) -> Value {
    let mut props = Map::new();
    let mut required = Vec::new();
    for (name, schema, req) in fields {
        props.insert((*name).to_string(), schema.clone());
        if *req {
            required.push(json!(name));
        }
    }
    json!({"type": "object", "properties": props, "required": required})
}

/// A tagged variant: `tag` is the constant discriminator.
fn variant(tag: &str, value: &str, fields: &[(&str, Value, bool)]) -> Value {
    let mut all = vec![(tag, json!({"const": value}), true)];
    all.extend(fields.iter().cloned());
    obj(&all)
}

fn site_state() -> Value {
    json!({"type": "string", "enum": ["never-seen", "pending", "offline", "applying", "ready", "failed"]})
}

/// Sites per state: every state present, zeros included.
fn state_counts() -> Value {
    let props: Map<String, Value> = [
        "never-seen",
        "pending",
        "offline",
        "applying",
        "ready",
        "failed",
    ]
    .iter()
    .map(|k| (k.to_string(), int()))
    .collect();
    json!({"type": "object", "properties": props, "additionalProperties": false})
}

/// Schemas of the fleet status API (`/v1/operator/fleet*`).
fn fleet_schemas() -> Map<String, Value> {
    let by = json!({"type": "object", "additionalProperties": r("StateCounts")});
    let entries = [
        ("SiteState", site_state()),
        ("StateCounts", state_counts()),
        (
            "FleetSite",
            obj(&[
                ("siteId", s(), true),
                ("state", r("SiteState"), true),
                ("ring", s(), false),
                ("region", s(), false),
                ("deviceId", s(), false),
                ("lastSeen", dt(), false),
                ("appliedRevision", s(), false),
                ("attemptedRevision", s(), false),
                ("lastError", s(), false),
                ("offlineAfterMissed", int(), true),
            ]),
        ),
        (
            "FleetCounts",
            obj(&[
                ("total", r("StateCounts"), true),
                ("byRing", by.clone(), true),
                ("byRegion", by, true),
            ]),
        ),
        (
            "FleetResponse",
            obj(&[
                ("generatedAt", dt(), true),
                ("counts", r("FleetCounts"), true),
                ("sites", arr(r("FleetSite")), true),
            ]),
        ),
        (
            "HistoryEntry",
            obj(&[
                ("at", dt(), true),
                (
                    "kind",
                    json!({"type": "string", "description": "registered, replaced, revoked, serial-conflict, pending-created, pending-rejected, state-changed, offline, claim-locked"}),
                    true,
                ),
                ("deviceId", s(), false),
                ("detail", s(), true),
            ]),
        ),
        (
            "SiteDetail",
            obj(&[
                ("site", r("FleetSite"), true),
                ("labels", map_of_strings(), true),
                ("devices", arr(r("DeviceInfo")), true),
                ("history", arr(r("HistoryEntry")), true),
            ]),
        ),
    ];
    entries
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
}

fn schemas() -> Value {
    let mut all = core_schemas();
    if let Value::Object(m) = &mut all {
        m.extend(fleet_schemas());
    }
    all
}

fn core_schemas() -> Value {
    json!({
        "ApiError": obj(&[
            ("code", json!({"type": "string", "enum": [
                "invalid_request", "payload_too_large", "invalid_credential", "unauthenticated",
                "forbidden", "device_revoked", "serial_conflict", "conflict", "not_found",
                "rate_limited", "pending", "rejected", "unavailable", "internal"]}), true),
            ("message", s(), true),
            ("field", s(), false),
            ("retryAfterSeconds", int(), false),
        ]),
        "DeviceFacts": obj(&[
            ("serial", s(), true),
            ("macs", arr(s()), false),
            ("tpmEkSha256", s(), false),
            ("hostname", s(), false),
            ("arch", s(), false),
            ("os", s(), false),
        ]),
        "Credential": {"oneOf": [
            variant("type", "token", &[("token", s(), true)]),
            variant("type", "enrollment", &[("batch", s(), true), ("secret", s(), true)]),
            variant("type", "claim", &[("code", s(), true)]),
        ], "discriminator": {"propertyName": "type"}},
        "RegisterRequest": obj(&[
            ("credential", r("Credential"), true),
            ("csr", json!({"type": "string", "description": "PKCS#10 CSR, PEM"}), true),
            ("facts", r("DeviceFacts"), true),
        ]),
        "RevisionPolicy": {"oneOf": [
            variant("type", "branch", &[("name", s(), true)]),
            variant("type", "commit", &[("sha", s(), true)]),
        ]},
        "GitAuth": {"oneOf": [
            variant("type", "token", &[("token", s(), true), ("caPem", s(), false)]),
            variant("type", "basic", &[("username", s(), true), ("password", s(), true), ("caPem", s(), false)]),
            variant("type", "ssh", &[("privateKey", s(), true), ("knownHostKey", s(), true)]),
            variant("type", "ca", &[("caPem", s(), true)]),
        ]},
        "GitSource": obj(&[
            ("url", s(), true),
            ("revision", r("RevisionPolicy"), true),
            ("authRef", s(), false),
            ("auth", r("GitAuth"), false),
        ]),
        "Assignment": obj(&[
            ("siteId", s(), true),
            ("source", r("GitSource"), true),
            ("paths", arr(s()), true),
            ("labels", map_of_strings(), true),
        ]),
        "Registered": obj(&[
            ("deviceId", s(), true),
            ("siteId", s(), true),
            ("certificate", s(), true),
            ("caBundle", s(), true),
            ("assignment", r("Assignment"), true),
            ("checkinIntervalSeconds", int(), true),
        ]),
        "PendingRegistration": obj(&[
            ("pendingId", s(), true),
            ("pollSecret", s(), true),
            ("pollAfterSeconds", int(), true),
        ]),
        "PollResponse": {"oneOf": [
            variant("status", "pending", &[("pollAfterSeconds", int(), true)]),
            {"allOf": [variant("status", "approved", &[]), r("Registered")]},
            variant("status", "rejected", &[("reason", s(), true)]),
        ]},
        "HealthSummary": obj(&[
            ("total", int(), false), ("healthy", int(), false),
            ("progressing", int(), false), ("failed", int(), false),
        ]),
        "OfflinePeriod": obj(&[("from", dt(), true), ("to", dt(), true), ("what", s(), true)]),
        "AttemptTiming": obj(&[
            ("revision", json!({"type": "string", "maxLength": 256}), true),
            ("outcome", json!({"type": "string", "enum": ["applied", "failed"]}), true),
            ("renderSeconds", seconds_below_a_day(), true),
            ("applySeconds", seconds_below_a_day(), true),
            ("finishedAt", dt(), true),
        ]),
        "CheckinRequest": obj(&[
            ("appliedRevision", s(), false),
            ("attemptedRevision", s(), false),
            ("state", json!({"type": "string", "enum": ["applying", "ready", "failed", "degraded"]}), true),
            ("error", json!({"type": "string", "maxLength": 4096}), false),
            ("health", r("HealthSummary"), false),
            ("offlinePeriods", arr(r("OfflinePeriod")), false),
            ("facts", r("DeviceFacts"), false),
            ("attempts", json!({"type": "array", "items": r("AttemptTiming"), "maxItems": 32}), false),
        ]),
        "CheckinResponse": obj(&[
            ("assignment", r("Assignment"), true),
            ("nextCheckinSeconds", int(), true),
        ]),
        "RenewRequest": obj(&[("csr", s(), true)]),
        "RenewResponse": obj(&[("certificate", s(), true), ("caBundle", s(), true), ("notAfter", dt(), true)]),
        "MachineRef": obj(&[("namespace", s(), true), ("name", s(), true), ("uid", s(), false)]),
        "MintTokenRequest": obj(&[("siteId", s(), true), ("machine", r("MachineRef"), false), ("ttlSeconds", int(), false)]),
        "TokenInfo": obj(&[
            ("tokenId", s(), true), ("siteId", s(), true), ("machine", r("MachineRef"), false),
            ("state", json!({"type": "string", "enum": ["unused", "redeemed", "expired", "revoked"]}), true),
            ("expiresAt", dt(), true), ("deviceId", s(), false),
        ]),
        "MintTokenResponse": obj(&[("token", s(), true), ("info", r("TokenInfo"), true)]),
        "ExtendTokenRequest": obj(&[("ttlSeconds", int(), true)]),
        "MintClaimRequest": obj(&[("siteId", s(), true), ("ttlSeconds", int(), false)]),
        "MintClaimResponse": obj(&[("code", s(), true), ("claimId", s(), true), ("siteId", s(), true), ("expiresAt", dt(), true)]),
        "SiteInfo": obj(&[
            ("siteId", s(), true), ("labels", map_of_strings(), true), ("deviceId", s(), false),
            ("lastSeen", dt(), false), ("appliedRevision", s(), false), ("attemptedRevision", s(), false),
            ("agentState", s(), false), ("lastError", s(), false),
        ]),
        "DeviceInfo": obj(&[
            ("deviceId", s(), true), ("siteId", s(), true),
            ("status", json!({"type": "string", "enum": ["active", "revoked"]}), true),
            ("facts", r("DeviceFacts"), true), ("registeredVia", s(), true),
            ("registeredAt", dt(), true), ("lastSeen", dt(), false),
        ]),
        "PendingInfo": obj(&[("pendingId", s(), true), ("batch", s(), true), ("facts", r("DeviceFacts"), true), ("requestedAt", dt(), true)]),
        "ApproveRequest": obj(&[("siteId", s(), true)]),
        "ReasonRequest": obj(&[("reason", s(), false)]),
    })
}

/// Error responses by status.
fn errors(statuses: &[u16]) -> Map<String, Value> {
    let mut m = Map::new();
    for st in statuses {
        let desc = match st {
            401 => "credential missing, wrong, unknown, expired or already used",
            403 => "forbidden, device revoked, or rejected",
            404 => "no such object",
            409 => "conflict (e.g. serial held by an active device)",
            413 => "body larger than the cap",
            422 => "malformed field (see `field`)",
            429 => "rate limited (see Retry-After)",
            _ => "service unavailable",
        };
        let mut resp = json!({"description": desc, "content": {"application/json": {"schema": r("ApiError")}}});
        if *st == 429 {
            resp["headers"] = json!({"Retry-After": {"schema": {"type": "integer"}}});
        }
        m.insert(st.to_string(), resp);
    }
    m
}

struct Op<'a> {
    summary: &'a str,
    security: &'a str,
    request: Option<&'a str>,
    ok: (u16, Option<Value>),
    errors: &'a [u16],
    params: Vec<Value>,
}

fn op(o: Op<'_>) -> Value {
    let mut responses = errors(o.errors);
    let ok_body = match o.ok.1 {
        Some(schema) => {
            json!({"description": "success", "content": {"application/json": {"schema": schema}}})
        }
        None => json!({"description": "success"}),
    };
    responses.insert(o.ok.0.to_string(), ok_body);
    let mut v = json!({"summary": o.summary, "responses": responses});
    match o.security {
        "operator" => v["security"] = json!([{"operator": []}]),
        "mtls" => v["security"] = json!([{"mtls": []}]),
        _ => v["security"] = json!([]),
    }
    if let Some(req) = o.request {
        v["requestBody"] =
            json!({"required": true, "content": {"application/json": {"schema": r(req)}}});
    }
    if !o.params.is_empty() {
        v["parameters"] = Value::Array(o.params);
    }
    v
}

fn o(
    summary: &str,
    security: &str,
    request: Option<&str>,
    ok: (u16, Option<Value>),
    errors: &[u16],
    params: Vec<Value>,
) -> Value {
    op(Op {
        summary,
        security,
        request,
        ok,
        errors,
        params,
    })
}

fn path_param(name: &str) -> Value {
    json!({"name": name, "in": "path", "required": true, "schema": s()})
}

fn query_param(name: &str) -> Value {
    json!({"name": name, "in": "query", "required": false, "schema": s()})
}

fn plain(summary: &str, content_type: &str) -> Value {
    json!({"summary": summary, "security": [], "responses": {"200": {"description": "success", "content": {content_type: {"schema": s()}}}}})
}

/// Paths of the fleet status API.
fn fleet_paths() -> Map<String, Value> {
    let state =
        json!({"name": "state", "in": "query", "required": false, "schema": r("SiteState")});
    let mut m = Map::new();
    m.insert(
        siteboot_wire::fleet::PATH_FLEET.to_string(),
        json!({"get": o("sites with their derived state, filtered, with counts per state, ring and region", "operator", None,
            (200, Some(r("FleetResponse"))), &[401, 422], vec![query_param("region"), query_param("ring"), state])}),
    );
    m.insert(
        format!("{}/{{site_id}}", siteboot_wire::fleet::PATH_FLEET_SITES),
        json!({"get": o("one site with its devices and history (newest first)", "operator", None,
            (200, Some(r("SiteDetail"))), &[401, 404], vec![path_param("site_id")])}),
    );
    m
}

/// The whole document.
pub fn document() -> Value {
    let mut doc = core_document();
    if let Some(Value::Object(paths)) = doc.get_mut("paths") {
        paths.extend(fleet_paths());
    }
    doc
}

fn core_document() -> Value {
    let operator_errs: &[u16] = &[401, 404, 422];
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "siteboot registration API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Device registration (one-time tokens, factory enrollment, claim codes), mTLS check-ins and renewals, and the operator API. Every error is an ApiError with a stable code."
        },
        "components": {
            "schemas": schemas(),
            "securitySchemes": {
                "operator": {"type": "http", "scheme": "bearer", "description": "contents of the data directory's operator-token file"},
                "mtls": {"type": "mutualTLS", "description": "client certificate issued by POST /v1/register"}
            }
        },
        "paths": {
            "/healthz": {"get": plain("liveness", "application/json")},
            "/readyz": {"get": plain("readiness: store reachable and inventory loaded", "application/json")},
            "/metrics": {"get": plain("Prometheus metrics", "application/openmetrics-text")},
            "/openapi.json": {"get": plain("this document", "application/json")},
            "/v1/register": {"post": {
                "summary": "register a device with exactly one credential and a CSR",
                "security": [],
                "requestBody": {"required": true, "content": {"application/json": {"schema": r("RegisterRequest")}}},
                "responses": {
                    "201": {"description": "registered", "content": {"application/json": {"schema": r("Registered")}}},
                    "202": {"description": "pending operator approval", "content": {"application/json": {"schema": r("PendingRegistration")}}},
                    "401": errors(&[401])["401"], "403": errors(&[403])["403"], "409": errors(&[409])["409"],
                    "413": errors(&[413])["413"], "422": errors(&[422])["422"], "429": errors(&[429])["429"]
                }
            }},
            "/v1/register/{pending_id}": {"get": o("poll a pending registration", "", None, (200, Some(r("PollResponse"))), &[401, 404, 429],
                vec![path_param("pending_id"), json!({"name": "x-siteboot-poll-secret", "in": "header", "required": true, "schema": s()})])},
            "/v1/checkin": {"post": o("report state; receive the assignment and next delay", "mtls", Some("CheckinRequest"), (200, Some(r("CheckinResponse"))), &[401, 403, 413, 422], vec![])},
            "/v1/certificate": {"post": o("renew the client certificate with a new CSR", "mtls", Some("RenewRequest"), (200, Some(r("RenewResponse"))), &[401, 403, 413, 422], vec![])},
            "/v1/assignment": {"get": o("the current assignment", "mtls", None, (200, Some(r("Assignment"))), &[401, 403], vec![])},
            "/v1/operator/tokens": {"post": o("mint a registration token", "operator", Some("MintTokenRequest"), (201, Some(r("MintTokenResponse"))), operator_errs, vec![])},
            "/v1/operator/tokens/{token_id}": {"get": o("inspect a token", "operator", None, (200, Some(r("TokenInfo"))), operator_errs, vec![path_param("token_id")])},
            "/v1/operator/tokens/{token_id}/extend": {"post": o("extend an unused token", "operator", Some("ExtendTokenRequest"), (200, Some(r("TokenInfo"))), &[401, 404, 409, 422], vec![path_param("token_id")])},
            "/v1/operator/tokens/{token_id}/revoke": {"post": o("revoke a token", "operator", None, (200, Some(r("TokenInfo"))), operator_errs, vec![path_param("token_id")])},
            "/v1/operator/claims": {"post": o("mint a claim code", "operator", Some("MintClaimRequest"), (201, Some(r("MintClaimResponse"))), operator_errs, vec![])},
            "/v1/operator/sites": {"get": o("list sites", "operator", None, (200, Some(arr(r("SiteInfo")))), operator_errs, vec![query_param("region"), query_param("ring")])},
            "/v1/operator/sites/{site_id}": {"get": o("one site", "operator", None, (200, Some(r("SiteInfo"))), operator_errs, vec![path_param("site_id")])},
            "/v1/operator/devices": {"get": o("list devices", "operator", None, (200, Some(arr(r("DeviceInfo")))), operator_errs, vec![query_param("site")])},
            "/v1/operator/devices/{device_id}": {"get": o("one device", "operator", None, (200, Some(r("DeviceInfo"))), operator_errs, vec![path_param("device_id")])},
            "/v1/operator/devices/{device_id}/revoke": {"post": o("revoke a device; its certificate is refused from now on", "operator", Some("ReasonRequest"), (200, Some(r("DeviceInfo"))), operator_errs, vec![path_param("device_id")])},
            "/v1/operator/pending": {"get": o("devices waiting for approval", "operator", None, (200, Some(arr(r("PendingInfo")))), operator_errs, vec![])},
            "/v1/operator/pending/{pending_id}/approve": {"post": o("approve a pending device for a site", "operator", Some("ApproveRequest"), (200, None), &[401, 404, 409, 422], vec![path_param("pending_id")])},
            "/v1/operator/pending/{pending_id}/reject": {"post": o("reject a pending device", "operator", Some("ReasonRequest"), (200, None), operator_errs, vec![path_param("pending_id")])},
            "/v1/operator/inventory/reload": {"post": o("reload the inventory file; a bad file keeps the previous inventory", "operator", None, (200, Some(obj(&[("sites", int(), true)]))), operator_errs, vec![])}
        }
    })
}

/// The document as committed: pretty JSON with a trailing newline.
pub fn document_text() -> String {
    let mut s = serde_json::to_string_pretty(&document()).unwrap_or_default();
    s.push('\n');
    s
}
