//! The heartbeat flush timer: a coalesced (held in memory) check-in reaches the store on
//! the server's flush timer, while the server keeps running (no shutdown flush).
//!
//! The flush period is configured short (250 ms); the test polls the database through a
//! second store handle on the same file with a generous deadline, so a loaded machine
//! only makes it slower, never flaky. Without the timer the held heartbeat would stay in
//! memory for the whole 5-minute heartbeat interval and the poll would time out.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde_json::json;
use siteboot_registration::store::sqlite::SqliteStore;
use siteboot_registration::store::Store;
use siteboot_registration::testkit::{inventory_yaml, Device, Harness};
use siteboot_registration::{Limits, ServeConfig};

/// Flush period under test.
const FLUSH: Duration = Duration::from_millis(250);
/// Longest wait for the store to show the heartbeat (many flush periods; CI is loaded).
const DEADLINE: Duration = Duration::from_secs(30);

async fn stored_last_seen(store: &SqliteStore, device_id: &str) -> Option<DateTime<Utc>> {
    store
        .device(device_id)
        .await
        .expect("read the device")
        .expect("device is stored")
        .last_seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coalesced_heartbeat_reaches_the_store_on_the_flush_timer() {
    let dir = tempfile::tempdir().unwrap();
    let inv = dir.path().join("inventory.yaml");
    std::fs::write(&inv, inventory_yaml(3)).unwrap();
    let mut cfg = ServeConfig::embedded(dir.path().join("data"));
    cfg.listen = "127.0.0.1:0".parse().unwrap();
    cfg.inventory = Some(inv);
    cfg.limits = Limits::unlimited();
    cfg.heartbeat_flush_interval = FLUSH;
    let h = Harness::start_with(cfg).await.unwrap();

    let device = Device::new("SN-001");
    let reg = h.register_with_token("site-001", &device).await;
    let agent = h.device_client(&reg, &device);
    let body =
        json!({"state": "ready", "appliedRevision": "0123abcd", "attemptedRevision": "0123abcd"});
    let checkin = || async {
        let resp = agent
            .post(format!("{}/v1/checkin", h.url))
            .json(&body)
            .send()
            .await
            .expect("check-in");
        assert_eq!(resp.status().as_u16(), 200);
    };

    let db = h.handle.info().data_dir.database.clone();
    let store = tokio::task::spawn_blocking(move || SqliteStore::open(db))
        .await
        .unwrap()
        .expect("open a second handle on the database");

    // First report: a state change, written through at once.
    checkin().await;
    let first = stored_last_seen(&store, &reg.device_id)
        .await
        .expect("the state change was written through");
    // Let the millisecond clock move past the first write so the heartbeat is newer.
    while Utc::now() <= first + chrono::TimeDelta::milliseconds(2) {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }

    // Second, identical report: a heartbeat, held in memory (5-minute heartbeat interval).
    // The store keeps milliseconds.
    let before = DateTime::from_timestamp_millis(Utc::now().timestamp_millis()).unwrap();
    checkin().await;

    // The flush timer writes it; the server is not shut down.
    let started = Instant::now();
    let seen = loop {
        let seen = stored_last_seen(&store, &reg.device_id).await;
        if seen.is_some_and(|s| s > first) {
            break seen.unwrap();
        }
        assert!(
            started.elapsed() < DEADLINE,
            "the held heartbeat did not reach the store within {DEADLINE:?} (flush period {FLUSH:?}); last seen in the store: {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(
        seen >= before,
        "stored last-seen {seen} predates the heartbeat ({before})"
    );
    assert!(seen <= Utc::now());
    eprintln!(
        "heartbeat reached the store {:?} after the check-in returned (flush period {FLUSH:?})",
        started.elapsed()
    );
    h.handle.shutdown().await.unwrap();
}
