//! Fleet status endpoints (operator-authenticated by the router):
//! `GET /v1/operator/fleet?region=&ring=&state=` and `GET /v1/operator/fleet/sites/{id}`,
//! plus `/metrics`, which refreshes the `siteboot_sites{state}` gauge from the fleet view
//! at scrape time before rendering.
//!
//! Thin: parse the query ([`parse_fleet_query`], pure), call the registry, encode.

use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use siteboot_wire::fleet::{FleetQuery, SiteState};
use siteboot_wire::{ApiError, ErrorCode};

use super::error::Failure;
use super::health;
use super::state::AppState;

/// Query parameters `GET /v1/operator/fleet` accepts.
pub const FLEET_QUERY_PARAMS: [&str; 3] = ["region", "ring", "state"];

fn invalid(field: &str, message: String) -> ApiError {
    ApiError {
        field: Some(field.to_string()),
        ..ApiError::new(ErrorCode::InvalidRequest, format!("{field}: {message}"))
    }
}

/// Parses the fleet filter from query pairs. Empty values mean "any" (as an HTML form
/// with an unselected field sends them); unknown or repeated parameters and unknown
/// states are refused, naming the parameter.
pub fn parse_fleet_query(pairs: &[(String, String)]) -> Result<FleetQuery, ApiError> {
    let mut q = FleetQuery::default();
    let mut seen: Vec<&str> = Vec::new();
    for (key, value) in pairs {
        if seen.contains(&key.as_str()) {
            return Err(invalid(key, "given more than once: pass one value".into()));
        }
        seen.push(key);
        let value = value.trim();
        match key.as_str() {
            "region" if !value.is_empty() => q.region = Some(value.to_string()),
            "ring" if !value.is_empty() => q.ring = Some(value.to_string()),
            "state" if !value.is_empty() => {
                q.state = Some(SiteState::parse(value).ok_or_else(|| {
                    let all: Vec<&str> = SiteState::ALL.iter().map(|s| s.as_str()).collect();
                    invalid(
                        "state",
                        format!("unknown state {value:?}: use one of {}", all.join(", ")),
                    )
                })?)
            }
            k if FLEET_QUERY_PARAMS.contains(&k) => {}
            other => {
                return Err(invalid(
                    other,
                    format!(
                        "unknown query parameter: filter by {}",
                        FLEET_QUERY_PARAMS.join(", ")
                    ),
                ))
            }
        }
    }
    Ok(q)
}

fn query_rejected(e: QueryRejection) -> Failure {
    Failure(ApiError::new(
        ErrorCode::InvalidRequest,
        format!("query string: {}", e.body_text()),
    ))
}

/// `GET /v1/operator/fleet[?region=&ring=&state=]`.
pub async fn fleet(
    State(state): State<Arc<AppState>>,
    q: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Response, Failure> {
    let Query(pairs) = q.map_err(query_rejected)?;
    let query = parse_fleet_query(&pairs)?;
    let view = state
        .registry
        .fleet(&query, Utc::now())
        .await
        .map_err(|e| Failure(e.to_api_error()))?;
    if query == FleetQuery::default() {
        // The unfiltered view is the whole fleet: keep the gauge current for free.
        state.metrics.set_sites(&view.counts.total);
    }
    Ok((StatusCode::OK, axum::Json(view)).into_response())
}

/// `GET /v1/operator/fleet/sites/{site_id}`.
pub async fn site(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Response, Failure> {
    let detail = state
        .registry
        .site_detail(&id, Utc::now())
        .await
        .map_err(|e| Failure(e.to_api_error()))?;
    Ok((StatusCode::OK, axum::Json(detail)).into_response())
}

/// `GET /metrics`: refreshes `siteboot_sites{state}` from the fleet view, then renders
/// every metric. If the store cannot be read the gauge keeps its previous values (the
/// scrape still answers; the failure is logged).
pub async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    match state
        .registry
        .fleet(&FleetQuery::default(), Utc::now())
        .await
    {
        Ok(view) => state.metrics.set_sites(&view.counts.total),
        Err(e) => {
            tracing::warn!(error = %e, "could not refresh siteboot_sites; serving the previous values")
        }
    }
    health::metrics(State(state)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(q: &[(&str, &str)]) -> Vec<(String, String)> {
        q.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn query_table() {
        let ok: Vec<(&[(&str, &str)], FleetQuery)> = vec![
            (&[], FleetQuery::default()),
            (
                &[("region", "eu-west"), ("state", "offline")],
                FleetQuery {
                    region: Some("eu-west".into()),
                    state: Some(SiteState::Offline),
                    ..Default::default()
                },
            ),
            (
                &[("ring", "canary"), ("state", "never-seen")],
                FleetQuery {
                    ring: Some("canary".into()),
                    state: Some(SiteState::NeverSeen),
                    ..Default::default()
                },
            ),
            (
                &[("region", ""), ("ring", " "), ("state", "")],
                FleetQuery::default(),
            ),
        ];
        for (q, want) in ok {
            assert_eq!(parse_fleet_query(&pairs(q)).unwrap(), want, "{q:?}");
        }
        type Bad<'a> = (&'a [(&'a str, &'a str)], &'a str, &'a str);
        let bad: Vec<Bad> = vec![
            (&[("state", "Ready")], "state", "unknown state \"Ready\""),
            (&[("state", "up")], "state", "never-seen, pending, offline"),
            (&[("statte", "ready")], "statte", "unknown query parameter"),
            (&[("ring", "a"), ("ring", "b")], "ring", "more than once"),
        ];
        for (q, field, msg) in bad {
            let e = parse_fleet_query(&pairs(q)).unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidRequest, "{q:?}");
            assert_eq!(e.field.as_deref(), Some(field), "{q:?}");
            assert!(e.message.contains(msg), "{q:?}: {}", e.message);
        }
    }
}
