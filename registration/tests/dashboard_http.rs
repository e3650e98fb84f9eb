//! The dashboard over real HTTPS against an in-process server: access control (login
//! form, wrong credential, missing/tampered/expired cookie, logout, rate limit), security
//! headers, pages and their errors, and hostile inventory text staying text.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::routing;
use axum::Router;
use chrono::{TimeDelta, Utc};
use siteboot_registration::dashboard::format::encode;
use siteboot_registration::dashboard::{auth, DashboardConfig, CSP};
use siteboot_registration::operator_auth::OperatorCredential;
use siteboot_registration::testkit::{inventory_yaml, Harness};
use siteboot_registration::{Limits, ServeConfig};
use tower::ServiceExt;

/// A client that shows redirects instead of following them.
fn browser(h: &Harness) -> reqwest::Client {
    let tls = siteboot_registration::tls::client_config(&h.ca_pem, None).unwrap();
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

fn header(resp: &reqwest::Response, name: &str) -> String {
    resp.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

async fn post_login(
    c: &reqwest::Client,
    h: &Harness,
    credential: &str,
    next: &str,
) -> reqwest::Response {
    c.post(format!("{}/login", h.url))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!(
            "credential={}&next={}",
            encode(credential),
            encode(next)
        ))
        .send()
        .await
        .unwrap()
}

/// Logs in; returns the `name=value` cookie pair.
async fn login(c: &reqwest::Client, h: &Harness) -> String {
    let resp = post_login(c, h, h.operator.expose(), "/").await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let set = header(&resp, "set-cookie");
    set.split(';').next().unwrap().to_string()
}

async fn get(
    c: &reqwest::Client,
    h: &Harness,
    path: &str,
    cookie: Option<&str>,
) -> reqwest::Response {
    let mut req = c.get(format!("{}{path}", h.url));
    if let Some(cookie) = cookie {
        req = req.header("cookie", cookie);
    }
    req.send().await.unwrap()
}

async fn start(sites: usize) -> (tempfile::TempDir, Harness) {
    let dir = tempfile::tempdir().unwrap();
    let h = Harness::start(dir.path(), sites, Limits::unlimited())
        .await
        .unwrap();
    (dir, h)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_need_a_session_from_the_login_form() {
    let (_dir, h) = start(6).await;
    let c = browser(&h);

    // No cookie: every page redirects to the login form, which comes back afterwards.
    for (path, to) in [
        ("/", "/login"),
        ("/sites/site-001", "/login?next=%2Fsites%2Fsite-001"),
        ("/?ring=canary", "/login?next=%2F%3Fring%3Dcanary"),
    ] {
        let resp = get(&c, &h, path, None).await;
        assert_eq!(resp.status(), StatusCode::SEE_OTHER, "{path}");
        assert_eq!(header(&resp, "location"), to, "{path}");
        assert_eq!(header(&resp, "content-security-policy"), CSP);
    }
    let form = get(&c, &h, "/login?next=%2Fsites%2Fsite-001", None).await;
    assert_eq!(form.status(), StatusCode::OK);
    for (name, want) in [
        ("content-security-policy", CSP),
        ("x-content-type-options", "nosniff"),
        ("x-frame-options", "DENY"),
        ("referrer-policy", "no-referrer"),
        ("cache-control", "no-store"),
    ] {
        assert_eq!(header(&form, name), want, "{name}");
    }
    let body = form.text().await.unwrap();
    assert!(body.contains("name=\"credential\""));
    assert!(body.contains("value=\"/sites/site-001\""));

    // Wrong credential: 401, the form again, no cookie, the attempt not echoed.
    let wrong = format!("{}x", h.operator.expose());
    let resp = post_login(&c, &h, &wrong, "/").await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(header(&resp, "set-cookie"), "");
    let body = resp.text().await.unwrap();
    assert!(body.contains("That is not the operator credential"));
    assert!(!body.contains(&wrong) && !body.contains(h.operator.expose()));

    // Right credential: a hardened session cookie and back to where the user was going.
    let resp = post_login(&c, &h, h.operator.expose(), "/sites/site-001").await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(header(&resp, "location"), "/sites/site-001");
    let set = header(&resp, "set-cookie");
    assert!(set.starts_with("siteboot_session="), "{set}");
    for attr in [
        "HttpOnly",
        "Secure",
        "SameSite=Strict",
        "Path=/",
        "Max-Age=28800",
    ] {
        assert!(
            set.split("; ").any(|a| a == attr),
            "{attr} missing in {set}"
        );
    }
    assert!(!set.contains(h.operator.expose()));
    let cookie = set.split(';').next().unwrap().to_string();

    // An open redirect is refused: `next` must be a local path.
    let resp = post_login(&c, &h, h.operator.expose(), "//evil.example/").await;
    assert_eq!(header(&resp, "location"), "/");

    let page = get(&c, &h, "/", Some(&cookie)).await;
    assert_eq!(page.status(), StatusCode::OK);
    assert_eq!(header(&page, "x-frame-options"), "DENY");
    let body = page.text().await.unwrap();
    assert!(body.contains("<meta http-equiv=\"refresh\" content=\"10\">"));
    // 6 sites, none registered: all never seen.
    assert!(
        body.contains("data-state=\"never-seen\"><span class=\"n\">6</span>"),
        "{body}"
    );
    assert_eq!(body.matches("<tr data-site=").count(), 6);
    assert!(!body.contains(h.operator.expose()));

    // Signed in, the login form sends the user on.
    let resp = get(&c, &h, "/login", Some(&cookie)).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(header(&resp, "location"), "/");

    // Tampered and malformed cookies are refused (and cleared).
    let value = cookie.split_once('=').unwrap().1;
    let flipped: String = value
        .chars()
        .enumerate()
        .map(|(i, ch)| {
            if i == 5 {
                if ch == 'A' {
                    'B'
                } else {
                    'A'
                }
            } else {
                ch
            }
        })
        .collect();
    for bad in [
        format!("siteboot_session={flipped}"),
        format!("siteboot_session={value}x"),
        "siteboot_session=".to_string(),
        format!("other={value}"),
    ] {
        let resp = get(&c, &h, "/", Some(&bad)).await;
        assert_eq!(resp.status(), StatusCode::SEE_OTHER, "{bad}");
        assert_eq!(header(&resp, "location"), "/login");
    }
    let resp = get(&c, &h, "/", Some(&format!("siteboot_session={flipped}"))).await;
    assert!(header(&resp, "set-cookie").contains("Max-Age=0"));

    // Logout ends the session server-side: the old cookie no longer works.
    let resp = c
        .post(format!("{}/logout", h.url))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(header(&resp, "location"), "/login");
    assert!(header(&resp, "set-cookie").contains("Max-Age=0"));
    let resp = get(&c, &h, "/", Some(&cookie)).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_attempts_are_rate_limited() {
    let (_dir, h) = start(1).await;
    let c = browser(&h);
    for i in 0..10 {
        let resp = post_login(&c, &h, "sbop1_guess", "/").await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "attempt {i}");
    }
    // Even the right credential waits once the bucket is empty.
    let resp = post_login(&c, &h, h.operator.expose(), "/").await;
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = header(&resp, "retry-after").parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    assert_eq!(header(&resp, "set-cookie"), "");
    assert!(resp
        .text()
        .await
        .unwrap()
        .contains("Too many sign-in attempts"));
    let metrics = h
        .http
        .get(format!("{}/metrics", h.url))
        .send()
        .await
        .unwrap();
    let text = metrics.text().await.unwrap();
    assert!(
        text.lines()
            .any(|l| l.contains("limiter=\"dashboard_login\"") && l.ends_with(" 1")),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn site_pages_not_found_bad_filters_and_hostile_labels() {
    let dir = tempfile::tempdir().unwrap();
    let inv = dir.path().join("inventory.yaml");
    let hostile = "<script>alert(1)</script>\\\"'><img src=x onerror=alert(2)>";
    let mut yaml = inventory_yaml(3);
    yaml.push_str(&format!(
        "  - id: evil-site\n    region: eu-west\n    ring: broad\n    labels:\n      city: \"{hostile}\"\n"
    ));
    std::fs::write(&inv, yaml).unwrap();
    let mut cfg = ServeConfig::embedded(dir.path().join("data"));
    cfg.listen = "127.0.0.1:0".parse().unwrap();
    cfg.inventory = Some(inv);
    let h = Harness::start_with(cfg).await.unwrap();
    let c = browser(&h);
    let cookie = login(&c, &h).await;

    let resp = get(&c, &h, "/sites/evil-site", Some(&cookie)).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let body = resp.text().await.unwrap();
    assert!(body.contains("id=\"site-id\">evil-site</span>"));
    assert!(
        !body.contains("<script") && !body.contains("<img"),
        "{body}"
    );
    assert!(
        body.contains("&#60;script&#62;alert(1)&#60;/script&#62;"),
        "{body}"
    );

    let resp = get(&c, &h, "/sites/no-such-site%3Cb%3E", Some(&cookie)).await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    assert_eq!(header(&resp, "content-security-policy"), CSP);
    let body = resp.text().await.unwrap();
    assert!(body.contains("No such site"));
    assert!(
        body.contains("no-such-site&#60;b&#62;") && !body.contains("<b>"),
        "{body}"
    );

    let resp = get(&c, &h, "/?state=bogus", Some(&cookie)).await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert!(resp
        .text()
        .await
        .unwrap()
        .contains("choose one of never-seen"));

    let resp = get(
        &c,
        &h,
        "/?ring=canary&state=never-seen&region=",
        Some(&cookie),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let body = resp.text().await.unwrap();
    // inventory_yaml(3): site-000 is the only canary site.
    let rows: Vec<&str> = body
        .split("<tr data-site=\"")
        .skip(1)
        .map(|r| r.split('"').next().unwrap())
        .collect();
    assert_eq!(rows, ["site-000"]);
    assert!(body.contains("<option value=\"canary\" selected>"));
}

/// Session expiry through the real middleware, with a clock the test moves.
#[tokio::test]
async fn expired_sessions_go_back_to_login() {
    let offset = Arc::new(AtomicI64::new(0));
    let o = offset.clone();
    let cfg = DashboardConfig {
        clock: Arc::new(move || Utc::now() + TimeDelta::seconds(o.load(Ordering::SeqCst))),
        ..DashboardConfig::default()
    };
    let cred = OperatorCredential::from_random(&[3; 32]);
    let a = auth::Auth::new(cred.clone(), &cfg, None);
    let app: Router = Router::new()
        .route("/", routing::get(|| async { "fleet" }))
        .route_layer(axum::middleware::from_fn_with_state(
            a.clone(),
            auth::require_session,
        ))
        .merge(auth::routes(a));
    let login = Request::post("/login")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from(format!(
            "credential={}&next=%2F",
            encode(cred.secret().expose())
        )))
        .unwrap();
    let resp = app.clone().oneshot(login).await.unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let set = resp.headers()["set-cookie"].to_str().unwrap().to_string();
    let cookie = set.split(';').next().unwrap().to_string();
    let page = |cookie: String| {
        Request::get("/")
            .header("cookie", cookie)
            .body(Body::empty())
            .unwrap()
    };
    let rows = [
        (0, StatusCode::OK),
        (8 * 3600 - 60, StatusCode::OK),
        (8 * 3600 + 1, StatusCode::SEE_OTHER),
        // Forgotten once expired: turning the clock back does not revive it.
        (0, StatusCode::SEE_OTHER),
    ];
    for (secs, want) in rows {
        offset.store(secs, Ordering::SeqCst);
        let resp = app.clone().oneshot(page(cookie.clone())).await.unwrap();
        assert_eq!(resp.status(), want, "at +{secs} s");
    }
}
