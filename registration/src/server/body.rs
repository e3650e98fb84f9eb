//! Reading request bodies: a byte cap (413 `payload_too_large`) and JSON decoding that
//! names the offending field (422 `invalid_request` with `field`).
//!
//! serde's own messages can quote the offending value, which may be a secret sent in the
//! wrong place, so only the field path and the "expected ..." part (schema text, not user
//! text) ever reach an error body.

use axum::body::Body;
use axum::http::HeaderMap;
use http_body_util::BodyExt;
use serde::de::DeserializeOwned;
use siteboot_wire::{ApiError, ErrorCode};

/// Bytes of an oversized body read and discarded before answering 413, so an ordinary
/// client still receives the answer instead of a reset; beyond this the connection closes.
const DRAIN_LIMIT: usize = 1024 * 1024;

/// Reads at most `cap` bytes; an oversized body answers 413 (`payload_too_large`).
pub async fn read_capped(headers: &HeaderMap, body: Body, cap: usize) -> Result<Vec<u8>, ApiError> {
    let declared = headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let mut body = body;
    let mut buf = Vec::new();
    let mut seen = 0usize;
    let read = async {
        while let Some(frame) = body.frame().await {
            let frame =
                frame.map_err(|_| ApiError::invalid("body", "request body could not be read"))?;
            if let Some(data) = frame.data_ref() {
                seen += data.len();
                if seen <= cap {
                    buf.extend_from_slice(data);
                } else if seen > DRAIN_LIMIT {
                    break;
                }
            }
        }
        Ok::<(), ApiError>(())
    };
    if declared.is_some_and(|n| n > DRAIN_LIMIT as u64) {
        return Err(too_large(cap));
    }
    match tokio::time::timeout(std::time::Duration::from_secs(30), read).await {
        Ok(Ok(())) if seen <= cap => Ok(buf),
        Ok(Ok(())) => Err(too_large(cap)),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(ApiError::invalid(
            "body",
            "request body was not sent within 30 seconds",
        )),
    }
}

fn too_large(cap: usize) -> ApiError {
    ApiError::new(
        ErrorCode::PayloadTooLarge,
        format!("request body is larger than {cap} bytes"),
    )
}

/// Reads and decodes a JSON body.
pub async fn json<T: DeserializeOwned>(
    headers: &HeaderMap,
    body: Body,
    cap: usize,
) -> Result<T, ApiError> {
    let bytes = read_capped(headers, body, cap).await?;
    decode(&bytes)
}

/// Decodes JSON, naming the field on failure.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    // Fast path for well-formed bodies; the path-tracking decoder runs only to explain an
    // error (it is measurably slower on the check-in hot path).
    if let Ok(v) = serde_json::from_slice::<T>(bytes) {
        return Ok(v);
    }
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    let e = match serde_path_to_error::deserialize::<_, T>(de) {
        Ok(v) => return Ok(v),
        Err(e) => e,
    };
    let raw = e.path().to_string();
    let inner = e.into_inner();
    // "." is the root; "?" means serde_path_to_error could not tell (e.g. truncated JSON).
    let path = if raw == "?" { ".".to_string() } else { raw };
    let at = |p: &str| {
        if p == "." {
            "body".to_string()
        } else {
            p.to_string()
        }
    };
    match inner.classify() {
        serde_json::error::Category::Syntax | serde_json::error::Category::Eof => {
            Err(ApiError::invalid(
                at(&path),
                format!(
                    "request body is not valid json (line {}, column {})",
                    inner.line(),
                    inner.column()
                ),
            ))
        }
        serde_json::error::Category::Io => {
            Err(ApiError::invalid("body", "request body could not be read"))
        }
        serde_json::error::Category::Data => {
            let text = inner.to_string();
            if let Some(name) = text
                .strip_prefix("missing field `")
                .and_then(|r| r.split('`').next())
            {
                let field = if path == "." {
                    name.to_string()
                } else {
                    format!("{path}.{name}")
                };
                return Err(ApiError::invalid(
                    field.clone(),
                    format!("{field} is required"),
                ));
            }
            let field = at(&path);
            let expected = text
                .rsplit_once("expected ")
                .map(|(_, exp)| exp.split(" at line").next().unwrap_or(exp).to_string());
            let message = match expected {
                Some(exp) => format!("{field} has an invalid value: expected {exp}"),
                None => format!("{field} has an invalid value"),
            };
            Err(ApiError::invalid(field, message))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use siteboot_wire::api::RegisterRequest;

    #[test]
    fn names_fields_and_never_echoes_values() {
        let cases: [(&str, &str); 6] = [
            ("{", "body"),
            ("[]", "body"),
            (r#"{"csr":"x","facts":{"serial":"s"}}"#, "credential"),
            (
                r#"{"credential":{"type":"token","token":"t"},"facts":{"serial":"s"}}"#,
                "csr",
            ),
            (
                r#"{"credential":{"type":"telepathy","token":"sbt1.SECRETVALUE"},"csr":"x","facts":{"serial":"s"}}"#,
                "credential.type",
            ),
            (
                r#"{"credential":{"type":"token","token":"t"},"csr":"x","facts":{"serial":"s","macs":"SECRETVALUE"}}"#,
                "facts.macs",
            ),
        ];
        for (body, field) in cases {
            let e = decode::<RegisterRequest>(body.as_bytes()).unwrap_err();
            assert_eq!(e.field.as_deref(), Some(field), "{body}: {e:?}");
            assert_eq!(e.code, ErrorCode::InvalidRequest);
            assert!(!e.message.contains("SECRETVALUE"), "{}", e.message);
        }
    }
}
