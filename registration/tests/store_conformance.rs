//! The store conformance suite run against SQLite, plus SQLite-specific durability
//! checks: two stores (as two replicas) on one file, a full disk, and a kill -9 of a
//! process in the middle of a burst of registrations.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::TimeDelta;
use siteboot_registration::store::conformance::{self, t0};
use siteboot_registration::store::sqlite::SqliteStore;
use siteboot_registration::store::{
    BindCredential, BindOutcome, Binding, NewDevice, Store, StoreError, TokenRecord,
};
use siteboot_wire::facts::DeviceFacts;
use siteboot_wire::operator::DeviceStatus;

fn token(id: &str, site: &str, hash: &str) -> TokenRecord {
    TokenRecord {
        id: id.into(),
        secret_hash: hash.into(),
        site_id: site.into(),
        machine: None,
        created_at: t0(),
        expires_at: t0() + TimeDelta::hours(24),
        redeemed_at: None,
        revoked_at: None,
        device_id: None,
    }
}

fn binding(token_id: &str, hash: &str, device: &str, site: &str, serial: &str) -> Binding {
    Binding {
        credential: BindCredential::Token {
            id: token_id.into(),
            secret_hash: hash.into(),
        },
        device: NewDevice {
            id: device.into(),
            site_id: site.into(),
            facts: DeviceFacts {
                serial: serial.into(),
                ..DeviceFacts::default()
            },
            machine: None,
            key_sha256: None,
        },
        now: t0() + TimeDelta::minutes(1),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_passes_the_conformance_suite() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().to_path_buf();
    let n = Arc::new(AtomicUsize::new(0));
    conformance::run_all(|| {
        let path = base.join(format!("store-{}.db", n.fetch_add(1, Ordering::SeqCst)));
        async move {
            let store = tokio::task::spawn_blocking(move || SqliteStore::open(path))
                .await
                .unwrap()
                .unwrap();
            Arc::new(store) as Arc<dyn Store>
        }
    })
    .await;
    assert_eq!(n.load(Ordering::SeqCst), conformance::checks().len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_stores_on_one_file_redeem_a_token_once() {
    // Two SqliteStore values on one file behave like two service replicas: separate
    // writer connections, so only BEGIN IMMEDIATE + the conditional UPDATE protect us.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shared.db");
    let a = Arc::new(SqliteStore::open(&path).unwrap());
    let b = Arc::new(SqliteStore::open(&path).unwrap());
    a.insert_token(&token("T1", "site-a", "h1")).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..100 {
        let s: Arc<dyn Store> = if i % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move {
            s.bind_device(&binding(
                "T1",
                "h1",
                &format!("d{i}"),
                "site-a",
                &format!("SN{i}"),
            ))
            .await
        }));
    }
    let mut wins = 0;
    for t in tasks {
        match t.await.unwrap().unwrap() {
            BindOutcome::Bound { .. } => wins += 1,
            BindOutcome::CredentialRejected => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(wins, 1);
    assert_eq!(b.devices(None).await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_full_disk_is_unavailable_and_loses_nothing_committed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("full.db");
    let store = SqliteStore::open(&path).unwrap();
    let pages: i64 = {
        let c = rusqlite::Connection::open(&path).unwrap();
        c.query_row("PRAGMA page_count", [], |r| r.get(0)).unwrap()
    };
    store.set_max_pages(pages as u64 + 4).await.unwrap();
    let mut committed = Vec::new();
    let failure = loop {
        let i = committed.len();
        let id = format!("T{i:05}");
        // Large hashes fill pages quickly.
        let t = token(&id, "site-a", &format!("{i}-{}", "f".repeat(2000)));
        match store.insert_token(&t).await {
            Ok(()) => committed.push(id),
            Err(e) => break e,
        }
        assert!(committed.len() < 10_000, "the page limit never hit");
    };
    assert!(
        matches!(failure, StoreError::Unavailable { .. }),
        "{failure:?}"
    );
    assert!(!committed.is_empty());
    drop(store);
    let reopened = SqliteStore::open(&path).unwrap();
    for id in &committed {
        assert!(reopened.token(id).await.unwrap().is_some(), "{id} lost");
    }
    // With the quota lifted (a fresh connection has none), writes work again.
    reopened
        .insert_token(&token("after", "site-a", "h"))
        .await
        .unwrap();
}

#[tokio::test]
async fn schema_is_versioned_and_reopens() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v.db");
    let s = SqliteStore::open(&path).unwrap();
    assert_eq!(s.schema_version().await.unwrap(), 2);
    drop(s);
    let c = rusqlite::Connection::open(&path).unwrap();
    c.pragma_update(None, "user_version", 99).unwrap();
    drop(c);
    let err = SqliteStore::open(&path).unwrap_err();
    assert!(err.to_string().contains("newer than this binary"), "{err}");
}

const CRASH_DB: &str = "SITEBOOT_CRASH_WRITER_DB";

/// Writes registrations in a loop, printing each device id after its commit returned.
/// Run by the crash test below as a child process that gets SIGKILLed; run directly
/// (no env var) it writes a short burst and checks it reads back.
#[tokio::test]
async fn crash_writer() {
    let dir = tempfile::tempdir().unwrap();
    let (path, endless) = match std::env::var(CRASH_DB) {
        Ok(p) => (PathBuf::from(p), true),
        Err(_) => (dir.path().join("burst.db"), false),
    };
    let store = SqliteStore::open(&path).unwrap();
    let mut out = std::io::stdout().lock();
    let mut i = 0u64;
    loop {
        let id = format!("T{i}");
        store
            .insert_token(&token(&id, &format!("site-{i}"), "h"))
            .await
            .unwrap();
        let outcome = store
            .bind_device(&binding(
                &id,
                "h",
                &format!("dev-{i}"),
                &format!("site-{i}"),
                &format!("SN-{i}"),
            ))
            .await
            .unwrap();
        assert!(matches!(outcome, BindOutcome::Bound { .. }));
        if endless {
            // Written straight to the process stdout (not the test capture) for the parent.
            writeln!(out, "COMMITTED dev-{i}").unwrap();
            out.flush().unwrap();
        }
        i += 1;
        if !endless && i == 20 {
            break;
        }
    }
    assert_eq!(store.devices(None).await.unwrap().len(), 20);
}

#[tokio::test]
async fn kill_9_mid_burst_keeps_every_committed_registration() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crash.db");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "crash_writer", "--nocapture", "--test-threads=1"])
        .env(CRASH_DB, &path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    let mut committed = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut line = String::new();
    while committed.len() < 40 && Instant::now() < deadline {
        line.clear();
        if reader.read_line(&mut line).unwrap() == 0 {
            break;
        }
        if let Some(id) = line.trim().strip_prefix("COMMITTED ") {
            committed.push(id.to_string());
        }
    }
    // SIGKILL while the writer is in the middle of its next transactions.
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        committed.len() >= 40,
        "writer produced only {}",
        committed.len()
    );
    check_after_crash(&path, &committed).await;
}

async fn check_after_crash(path: &Path, committed: &[String]) {
    let c = rusqlite::Connection::open(path).unwrap();
    let ok: String = c
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(ok, "ok");
    drop(c);
    let store = SqliteStore::open(path).unwrap();
    let devices = store.devices(None).await.unwrap();
    for id in committed {
        let d = devices.iter().find(|d| &d.id == id);
        assert_eq!(d.map(|d| d.status), Some(DeviceStatus::Active), "{id} lost");
    }
    // Nothing bound twice: every device redeemed its own token exactly once.
    for d in &devices {
        let n: usize = d.id.trim_start_matches("dev-").parse().unwrap();
        let t = store.token(&format!("T{n}")).await.unwrap().unwrap();
        assert_eq!(t.device_id.as_deref(), Some(d.id.as_str()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failing_write_in_a_commit_batch_fails_alone() {
    // 200 concurrent inserts over 100 ids: the writer batches them; each duplicate fails
    // in its own savepoint while the rest of its batch commits.
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(dir.path().join("batch.db")).unwrap());
    let mut tasks = Vec::new();
    for i in 0..200 {
        let s = store.clone();
        tasks.push(tokio::spawn(async move {
            s.insert_token(&token(&format!("T{}", i % 100), "site-a", "h"))
                .await
        }));
    }
    let (mut ok, mut conflicts) = (0, 0);
    for t in tasks {
        match t.await.unwrap() {
            Ok(()) => ok += 1,
            Err(StoreError::Conflict { .. }) => conflicts += 1,
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!((ok, conflicts), (100, 100));
    for i in 0..100 {
        assert!(store.token(&format!("T{i}")).await.unwrap().is_some());
    }
}

/// A database written by a version-1 binary (no `key_sha256` column) is migrated on open
/// and keeps its devices.
#[tokio::test]
async fn a_version_1_database_migrates_and_keeps_its_devices() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v1.db");
    let s = SqliteStore::open(&path).unwrap();
    conformance::register(&s, "d1", "site-a", "SN-1", t0()).await;
    drop(s);
    // Turn it back into what version 1 wrote.
    let c = rusqlite::Connection::open(&path).unwrap();
    c.execute_batch("ALTER TABLE devices DROP COLUMN key_sha256;")
        .unwrap();
    c.pragma_update(None, "user_version", 1).unwrap();
    drop(c);
    let s = SqliteStore::open(&path).unwrap();
    assert_eq!(s.schema_version().await.unwrap(), 2);
    let d = s.device("d1").await.unwrap().expect("device kept");
    assert_eq!(d.serial, "SN-1");
    assert_eq!(d.key_sha256, None);
}
