//! Apply-attempt timings reported in check-ins, over real HTTPS with mTLS: accepted ones
//! land in `siteboot_site_render_duration_seconds` / `siteboot_site_apply_duration_seconds`
//! by outcome; invalid ones answer 422 naming the field, and neither they nor a refused
//! (revoked) check-in observe anything, because the agent resends until a 2xx.

use serde_json::{json, Value};
use siteboot_registration::testkit::{Device, Harness};
use siteboot_registration::Limits;

fn attempt(revision: &str, outcome: &str, render: f64, apply: f64) -> Value {
    json!({"revision": revision, "outcome": outcome, "renderSeconds": render,
           "applySeconds": apply, "finishedAt": "2026-11-22T09:00:00Z"})
}

fn body(attempts: Vec<Value>) -> Value {
    json!({"state": "ready", "appliedRevision": "0123abcd", "attemptedRevision": "0123abcd",
           "attempts": attempts})
}

async fn checkin(c: &reqwest::Client, url: &str, body: &Value) -> (u16, Value) {
    let resp = c
        .post(format!("{url}/v1/checkin"))
        .json(body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// The value of one exposition line (`name{labels} value`), if present.
async fn sample(h: &Harness, series: &str) -> Option<f64> {
    let text = h.metrics().await;
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

const RENDER_APPLIED: &str = "siteboot_site_render_duration_seconds_count{outcome=\"applied\"}";
const RENDER_APPLIED_SUM: &str = "siteboot_site_render_duration_seconds_sum{outcome=\"applied\"}";
const APPLY_APPLIED_SUM: &str = "siteboot_site_apply_duration_seconds_sum{outcome=\"applied\"}";
const APPLY_FAILED: &str = "siteboot_site_apply_duration_seconds_count{outcome=\"failed\"}";
const RENDER_FAILED_SUM: &str = "siteboot_site_render_duration_seconds_sum{outcome=\"failed\"}";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepted_timings_are_observed_by_outcome_and_invalid_ones_answer_422() {
    let dir = tempfile::tempdir().unwrap();
    let h = Harness::start(dir.path(), 3, Limits::unlimited())
        .await
        .unwrap();
    let device = Device::new("SN-T-1");
    let reg = h.register_with_token("site-001", &device).await;
    let c = h.device_client(&reg, &device);

    // A check-in without attempts (every older agent) creates no series.
    let (st, v) = checkin(&c, &h.url, &body(vec![])).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(sample(&h, RENDER_APPLIED).await, None);

    let (st, v) = checkin(
        &c,
        &h.url,
        &body(vec![
            attempt("aaa", "applied", 0.5, 2.0),
            attempt("bbb", "failed", 0.25, 0.0),
            attempt("ccc", "applied", 1.5, 598.0),
        ]),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(sample(&h, RENDER_APPLIED).await, Some(2.0));
    assert_eq!(sample(&h, RENDER_APPLIED_SUM).await, Some(2.0));
    assert_eq!(sample(&h, APPLY_APPLIED_SUM).await, Some(600.0));
    assert_eq!(sample(&h, APPLY_FAILED).await, Some(1.0));
    assert_eq!(sample(&h, RENDER_FAILED_SUM).await, Some(0.25));

    let ok = attempt("ddd", "applied", 1.0, 1.0);
    let too_many = vec![ok.clone(); 33];
    let cases: Vec<(&str, Vec<Value>, &str)> = vec![
        ("too many", too_many, "attempts"),
        (
            "negative render",
            vec![ok.clone(), attempt("ddd", "applied", -1.0, 1.0)],
            "attempts[1].renderSeconds",
        ),
        (
            "a day of apply",
            vec![attempt("ddd", "applied", 1.0, 86_400.0)],
            "attempts[0].applySeconds",
        ),
        (
            "revision over 256 bytes",
            vec![attempt(&"r".repeat(257), "applied", 1.0, 1.0)],
            "attempts[0].revision",
        ),
    ];
    for (name, attempts, field) in cases {
        let (st, v) = checkin(&c, &h.url, &body(attempts)).await;
        assert_eq!(st, 422, "{name}: {v}");
        assert_eq!(v["code"], "invalid_request", "{name}: {v}");
        assert_eq!(v["field"], field, "{name}: {v}");
    }
    // A non-number (what a NaN would become) is refused by the JSON parser.
    let mut nan = body(vec![ok.clone()]);
    nan["attempts"][0]["renderSeconds"] = Value::Null;
    assert_eq!(checkin(&c, &h.url, &nan).await.0, 422);

    // Nothing of the refused check-ins was observed (the valid entry of the mixed one
    // included: the agent sends it again).
    assert_eq!(sample(&h, RENDER_APPLIED).await, Some(2.0));
    assert_eq!(sample(&h, APPLY_APPLIED_SUM).await, Some(600.0));

    // A revoked device's check-in is refused (403) and observes nothing either.
    let (st, v) = h
        .operator(
            "POST",
            &format!("/v1/operator/devices/{}/revoke", reg.device_id),
            Some(json!({"reason": "test"})),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let (st, v) = checkin(&c, &h.url, &body(vec![ok])).await;
    assert_eq!(st, 403, "{v}");
    assert_eq!(sample(&h, RENDER_APPLIED).await, Some(2.0));
    h.handle.shutdown().await.unwrap();
}
