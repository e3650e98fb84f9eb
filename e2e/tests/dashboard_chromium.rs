//! The fleet dashboard in real headless Chromium against the real `siteboot-registration`
//! binary (HTTPS with its own CA, SQLite).
//!
//! The fleet is built through the device API as agents would: sites registered with
//! one-time tokens and checking in ready, failed (with a hostile error text) or applying,
//! a site with a live token (pending), sites never seen, and a site whose per-site
//! threshold (`offlineAfterMissedCheckins: 1`, check-in interval 2 s) makes it offline.
//! Chromium trusts the service by pinning its certificate's public key. The test signs in
//! through the form, reads the counts matrix and the table from the DOM, filters with the
//! form, opens a site page (history lists the registration and the revision), watches the
//! page reload itself to show a state change, checks the 404 page and logout, and writes
//! full-page screenshots to `e2e/artifacts/dashboard.png` and `dashboard-site.png`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use serde_json::{json, Value};
use siteboot_e2e::browser::{spki_sha256_base64, Browser, LaunchOptions};
use siteboot_e2e::process::TestRun;
use siteboot_registration::testkit::{client, token, Device};
use siteboot_wire::api::Registered;

const DEADLINE: Duration = Duration::from_secs(90);
/// The dashboard reloads every 10 s; allow for a loaded machine.
const REFRESH_WAIT: Duration = Duration::from_secs(45);

const REV1: &str = "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678";
const REV2: &str = "feedfacecafebeef00112233445566778899aabb";
const HOSTILE_ERROR: &str =
    "apply Deployment shop/web: <script>alert('x')</script><img src=x onerror=alert(1)>";

/// (site, ring, region, state the scenario puts it in).
const SITES: [(&str, &str, &str, &str); 8] = [
    ("store-r1", "canary", "eu-west", "ready"),
    ("store-r2", "broad", "eu-west", "ready"),
    ("store-f1", "canary", "us-east", "failed"),
    ("store-a1", "broad", "us-east", "applying"),
    ("store-p1", "broad", "eu-west", "pending"),
    ("store-n1", "broad", "us-east", "never-seen"),
    ("store-n2", "canary", "eu-west", "never-seen"),
    ("store-o1", "broad", "eu-west", "offline"),
];

fn inventory() -> String {
    let mut y = String::from(
        "apiVersion: siteboot.io/v1alpha1\nkind: Inventory\n# Check-ins every 2 s: sites may miss many before they count as offline...\nofflineAfterMissedCheckins: 1000\ngit:\n  url: https://git.example.com/fleet.git\n  rings:\n    canary: {branch: canary}\n    broad: {branch: main}\nsites:\n",
    );
    for (i, (id, ring, region, _)) in SITES.iter().enumerate() {
        y.push_str(&format!(
            "  - id: {id}\n    region: {region}\n    ring: {ring}\n    country: DE\n    expectedSerials: [SN-{i:03}]\n    labels:\n      city: city-{i}\n"
        ));
        if *id == "store-o1" {
            // ...but this one is offline after one missed check-in.
            y.push_str("    offlineAfterMissedCheckins: 1\n");
        }
    }
    y
}

struct Service {
    url: String,
    ca_pem: String,
    operator: String,
    http: reqwest::Client,
}

impl Service {
    async fn operator(&self, method: &str, path: &str, body: Value) -> Result<Value> {
        let url = format!("{}{path}", self.url);
        let req = match method {
            "GET" => self.http.get(url),
            _ => self.http.post(url).json(&body),
        };
        let resp = req.bearer_auth(&self.operator).send().await?;
        let status = resp.status();
        let v: Value = resp.json().await.unwrap_or(Value::Null);
        ensure!(status.is_success(), "{method} {path}: {status} {v}");
        Ok(v)
    }

    async fn mint_token(&self, run: &TestRun, site: &str) -> Result<String> {
        let v = self
            .operator("POST", "/v1/operator/tokens", json!({"siteId": site}))
            .await?;
        let t = v["token"].as_str().context("token in answer")?.to_string();
        run.register_secret(&format!("token-{site}"), &t);
        Ok(t)
    }

    /// Registers a new box for `site` with a one-time token; returns an mTLS client.
    async fn register(&self, run: &TestRun, site: &str, serial: &str) -> Result<reqwest::Client> {
        let t = self.mint_token(run, site).await?;
        let device = Device::new(serial);
        run.register_pem(&format!("key-{site}"), &device.key_pem);
        let resp = self
            .http
            .post(format!("{}/v1/register", self.url))
            .json(&device.request(token(&t)))
            .send()
            .await?;
        ensure!(
            resp.status().as_u16() == 201,
            "register {site}: {}",
            resp.status()
        );
        let reg: Registered = resp.json().await?;
        Ok(client(
            &self.ca_pem,
            Some((&reg.certificate, &device.key_pem)),
        ))
    }

    async fn checkin(&self, device: &reqwest::Client, body: Value) -> Result<()> {
        let resp = device
            .post(format!("{}/v1/checkin", self.url))
            .json(&body)
            .send()
            .await?;
        ensure!(resp.status().is_success(), "check-in: {}", resp.status());
        Ok(())
    }

    async fn fleet_state(&self, site: &str) -> Result<String> {
        let v = self
            .operator(
                "GET",
                &format!("/v1/operator/fleet/sites/{site}"),
                Value::Null,
            )
            .await?;
        Ok(v["site"]["state"].as_str().unwrap_or_default().to_string())
    }
}

fn ready(rev: &str) -> Value {
    json!({"appliedRevision": rev, "attemptedRevision": rev, "state": "ready"})
}

/// Reads the counts matrix `#by-<dimension>` as {key: {state: count}}.
const MATRIX_JS: &str = r#"(dim) => Object.fromEntries([...document.querySelectorAll(`#by-${dim} tbody tr[data-key]`)].map(tr => [tr.dataset.key, Object.fromEntries([...tr.querySelectorAll('td[data-state]')].map(td => [td.dataset.state, Number(td.textContent.trim())]))]))"#;

/// The sites table as [[site, state], ...].
const ROWS_JS: &str = r#"[...document.querySelectorAll('#sites tbody tr[data-site]')].map(tr => [tr.dataset.site, tr.dataset.state])"#;

fn expected_matrix(dim: usize) -> Value {
    let mut m: BTreeMap<&str, BTreeMap<&str, u64>> = BTreeMap::new();
    for site in SITES {
        let key = if dim == 1 { site.1 } else { site.2 };
        let row = m.entry(key).or_insert_with(|| {
            [
                "never-seen",
                "pending",
                "offline",
                "applying",
                "ready",
                "failed",
                "total",
            ]
            .into_iter()
            .map(|s| (s, 0))
            .collect()
        });
        *row.get_mut(site.3).unwrap() += 1;
        *row.get_mut("total").unwrap() += 1;
    }
    serde_json::to_value(m).unwrap()
}

fn expected_rows(filter: impl Fn(&(&str, &str, &str, &str)) -> bool) -> Value {
    // The table is ordered by site id.
    let mut rows: Vec<[&str; 2]> = SITES
        .iter()
        .filter(|s| filter(s))
        .map(|s| [s.0, s.3])
        .collect();
    rows.sort();
    json!(rows)
}

async fn eventually<F, Fut>(what: &str, mut check: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<bool>>,
{
    let deadline = Instant::now() + DEADLINE;
    while !check().await? {
        ensure!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_in_headless_chromium() -> Result<()> {
    let run = TestRun::new("dashboard_chromium");
    let started = Instant::now();
    let inv = run.dir().join("inventory.yaml");
    std::fs::write(&inv, inventory())?;
    let data = run.dir().join("data");
    let ready_file = run.dir().join("ready");
    let mut server = run.spawn_binary(
        "siteboot-registration",
        [
            "--data-dir".into(),
            data.display().to_string(),
            "--listen".into(),
            "127.0.0.1:0".into(),
            "--ready-file".into(),
            ready_file.display().to_string(),
            "--inventory".into(),
            inv.display().to_string(),
            "--checkin-interval-seconds".into(),
            "2".into(),
        ],
        &[("RUST_LOG", "info")],
    )?;
    let ready_by = Instant::now() + DEADLINE;
    let url = loop {
        if let Ok(t) = std::fs::read_to_string(&ready_file) {
            if t.ends_with('\n') {
                break t.trim().to_string();
            }
        }
        ensure!(
            server.try_exit()?.is_none(),
            "service exited:\n{}",
            server.log()
        );
        ensure!(
            Instant::now() < ready_by,
            "service not ready:\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let ca_pem = std::fs::read_to_string(data.join("ca.pem"))?;
    let operator = std::fs::read_to_string(data.join("operator-token"))?
        .trim()
        .to_string();
    run.register_secret("operator-credential", &operator);
    let svc = Service {
        http: client(&ca_pem, None),
        url: url.clone(),
        ca_pem,
        operator: operator.clone(),
    };

    // The fleet, through the device API.
    let mut devices = BTreeMap::new();
    for (i, (site, _, _, state)) in SITES.iter().enumerate() {
        if ["ready", "failed", "applying", "offline"].contains(state) {
            devices.insert(
                *site,
                svc.register(&run, site, &format!("SN-{i:03}")).await?,
            );
        }
    }
    svc.checkin(&devices["store-o1"], ready(REV1)).await?;
    svc.checkin(&devices["store-r1"], ready(REV1)).await?;
    svc.checkin(&devices["store-r2"], ready(REV1)).await?;
    svc.checkin(
        &devices["store-f1"],
        json!({"appliedRevision": REV1, "attemptedRevision": REV2, "state": "failed", "error": HOSTILE_ERROR}),
    )
    .await?;
    svc.checkin(
        &devices["store-a1"],
        json!({"appliedRevision": REV1, "attemptedRevision": REV2, "state": "applying"}),
    )
    .await?;
    svc.mint_token(&run, "store-p1").await?;
    eventually("store-o1 to miss its check-in", || async {
        Ok(svc.fleet_state("store-o1").await? == "offline")
    })
    .await?;

    // Chromium, trusting exactly the service's certificate key.
    let pin = spki_sha256_base64(&std::fs::read_to_string(data.join("server.pem"))?)?;
    let mut b = Browser::launch(&LaunchOptions {
        dir: run.dir().to_path_buf(),
        spki_pins: vec![pin],
        window: (1440, 1000),
    })
    .await?;
    run.add_log("chromium", b.log_path());

    // Not signed in: the login form.
    b.goto(&format!("{url}/")).await?;
    assert_eq!(b.eval("location.pathname").await?, "/login");
    assert_eq!(
        b.eval("document.querySelectorAll('form#login input[type=password]').length")
            .await?,
        1
    );
    b.type_into("#credential", "sbop1_not-the-credential")
        .await?;
    b.click_and_wait("#sign-in").await?;
    assert_eq!(b.eval("location.pathname").await?, "/login");
    let err = b
        .eval("document.querySelector('#login-error').textContent")
        .await?;
    assert!(
        err.as_str()
            .unwrap_or_default()
            .contains("not the operator credential"),
        "{err}"
    );
    b.type_into("#credential", &operator).await?;
    b.click_and_wait("#sign-in").await?;
    assert_eq!(b.eval("location.pathname").await?, "/");
    assert_eq!(
        b.eval("document.cookie").await?,
        "",
        "the session cookie is HttpOnly"
    );

    // Counts: tiles, the ring and region matrices, the table.
    let tiles = b
        .eval("Object.fromEntries([...document.querySelectorAll('#totals .tile')].map(t => [t.dataset.state, Number(t.querySelector('.n').textContent)]))")
        .await?;
    assert_eq!(
        tiles,
        json!({"all": 8, "never-seen": 2, "pending": 1, "offline": 1, "applying": 1, "ready": 2, "failed": 1})
    );
    assert_eq!(
        b.eval(&format!("({MATRIX_JS})('ring')")).await?,
        expected_matrix(1)
    );
    assert_eq!(
        b.eval(&format!("({MATRIX_JS})('region')")).await?,
        expected_matrix(2)
    );
    assert_eq!(b.eval(ROWS_JS).await?, expected_rows(|_| true));
    assert_eq!(
        b.eval("document.querySelector('tr[data-site=\"store-f1\"] td.err').textContent")
            .await?,
        HOSTILE_ERROR,
        "the hostile error is shown as text"
    );
    assert_eq!(
        b.eval("document.querySelectorAll('script, img').length")
            .await?,
        0
    );
    assert_eq!(
        b.eval("document.querySelector('tr[data-site=\"store-a1\"] .differs').textContent")
            .await?,
        format!("→ {}", &REV2[..12])
    );
    assert_eq!(
        b.eval("document.querySelector('meta[http-equiv=refresh]').content")
            .await?,
        "10"
    );

    // Filters through the form (a plain GET).
    b.select("#f-ring", "canary").await?;
    b.click_and_wait("#apply-filter").await?;
    assert_eq!(
        b.eval("location.search").await?,
        "?region=&ring=canary&state="
    );
    assert_eq!(b.eval(ROWS_JS).await?, expected_rows(|s| s.1 == "canary"));
    b.select("#f-state", "ready").await?;
    b.click_and_wait("#apply-filter").await?;
    assert_eq!(b.eval(ROWS_JS).await?, json!([["store-r1", "ready"]]));
    b.select("#f-ring", "").await?;
    b.select("#f-region", "eu-west").await?;
    b.select("#f-state", "").await?;
    b.click_and_wait("#apply-filter").await?;
    assert_eq!(b.eval(ROWS_JS).await?, expected_rows(|s| s.2 == "eu-west"));
    assert_eq!(
        b.eval("document.querySelector('#f-region').value").await?,
        "eu-west"
    );

    // A site page: labels, devices, history with the registration and the revision.
    b.click_and_wait("tr[data-site=\"store-r1\"] a").await?;
    assert_eq!(b.eval("location.pathname").await?, "/sites/store-r1");
    assert_eq!(
        b.eval("document.querySelector('#site-state').dataset.state")
            .await?,
        "ready"
    );
    assert_eq!(
        b.eval("document.querySelector('[data-fact=applied]').textContent")
            .await?,
        REV1
    );
    assert_eq!(
        b.eval("document.querySelector('#labels tr[data-label=city] td').textContent")
            .await?,
        "city-0"
    );
    assert_eq!(
        b.eval(
            "[...document.querySelectorAll('#devices tr[data-device]')].map(r => r.dataset.status)"
        )
        .await?,
        json!(["active"])
    );
    let history = b
        .eval("[...document.querySelectorAll('#history tr[data-kind]')].map(r => [r.dataset.kind, r.textContent])")
        .await?;
    let rows = history.as_array().cloned().unwrap_or_default();
    assert!(
        rows.iter().any(|r| r[0] == "registered"),
        "history lists the registration: {history}"
    );
    assert!(
        rows.iter()
            .any(|r| r[1].as_str().unwrap_or_default().contains(REV1)),
        "history lists the revision: {history}"
    );
    assert_eq!(
        rows.last().map(|r| r[0].clone()),
        Some(json!("registered")),
        "newest first: the registration is the oldest line: {history}"
    );
    let shots = run
        .dir()
        .parent()
        .map(PathBuf::from)
        .unwrap_or_else(|| run.dir().to_path_buf());
    let site_png = shots.join("dashboard-site.png");
    b.screenshot_full_page(&site_png).await?;
    println!("site page screenshot: {}", site_png.display());

    // Unknown site: the 404 page.
    b.goto(&format!("{url}/sites/no-such-store")).await?;
    let h1 = b.eval("document.querySelector('h1').textContent").await?;
    assert!(
        h1.as_str().unwrap_or_default().contains("No such site"),
        "{h1}"
    );

    // Self-refresh: the page shows a state change without the test reloading it.
    b.goto(&format!("{url}/")).await?;
    assert_eq!(
        b.eval("document.querySelector('tr[data-site=\"store-a1\"]').dataset.state")
            .await?,
        "applying"
    );
    b.mark_document().await?;
    svc.checkin(&devices["store-a1"], ready(REV2)).await?;
    b.wait_for(
        "the dashboard to reload itself and show store-a1 ready",
        "window.__sitebootMark !== true && document.readyState === 'complete' && document.querySelector('tr[data-site=\"store-a1\"]')?.dataset.state === 'ready'",
        REFRESH_WAIT,
    )
    .await?;
    assert_eq!(b.eval("location.pathname + location.search").await?, "/");
    let png = shots.join("dashboard.png");
    b.screenshot_full_page(&png).await?;
    println!("dashboard screenshot: {}", png.display());

    // Logout: back to the form, and the pages are closed again.
    b.click_and_wait("#logout").await?;
    assert_eq!(b.eval("location.pathname").await?, "/login");
    b.goto(&format!("{url}/sites/store-r1")).await?;
    assert_eq!(
        b.eval("location.pathname + location.search").await?,
        "/login?next=%2Fsites%2Fstore-r1"
    );

    b.close().await;
    server.terminate_async(Duration::from_secs(20)).await?;
    let log = std::fs::read_to_string(server.log_path()).unwrap_or_default();
    assert!(
        log.contains("dashboard login refused"),
        "the wrong attempt is logged"
    );
    println!(
        "dashboard chromium test: {:.1} s",
        started.elapsed().as_secs_f64()
    );
    run.finish();
    Ok(())
}
