//! SQLite implementation of [`Store`].
//!
//! Writes go to one writer thread that owns the write connection and commits queued
//! writes together (group commit, see [`writer`]); reads use a few reader connections
//! from `spawn_blocking`. Every write batch is one `BEGIN IMMEDIATE` transaction, so it
//! takes the database write lock before reading anything it decides on: another replica
//! process on the same file serialises behind it, and `busy_timeout` makes it wait
//! instead of failing. A dropped future does not cancel a write half-way: the writer
//! runs it to COMMIT or ROLLBACK on its own.
//!
//! Durability: WAL with `synchronous=FULL`. WAL with NORMAL already survives a kill -9
//! of the process, but can lose the last commits on power loss or an OS crash, and the
//! service promises that every registration answered 201 is still there. FULL costs an
//! fsync per COMMIT; group commit shares it among every write queued meanwhile, and
//! check-in heartbeats are coalesced before they reach the store.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use rusqlite::{Connection, ErrorCode, OpenFlags};

use super::{
    BindOutcome, Binding, CheckinWrite, ClaimRecord, DeviceRecord, Event, HeartbeatWrite,
    NewPending, PendingRecord, Store, StoreError, TokenRecord,
};

mod cached;
mod credentials;
mod devices;
mod fleet;
mod pending;
mod rows;
mod schema;
mod writer;

/// How long a writer waits for another writer's lock before answering Unavailable.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// Reader connections (WAL readers never block the writer or each other).
const READERS: usize = 2;

/// The SQLite store.
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    writer: mpsc::Sender<Box<dyn writer::WriteJob>>,
    readers: Vec<Arc<Mutex<Connection>>>,
    next_reader: AtomicUsize,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.inner.path)
            .finish()
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and migrates its schema.
    /// Blocking: call from startup code or `spawn_blocking`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        let mut conn = connect(&path, false)?;
        schema::migrate(&mut conn)?;
        let writer = writer::spawn(conn)?;
        let readers = (0..READERS)
            .map(|_| connect(&path, true).map(|c| Arc::new(Mutex::new(c))))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            inner: Arc::new(Inner {
                path,
                writer,
                readers,
                next_reader: AtomicUsize::new(0),
            }),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Caps the database at `pages` pages (a disk quota): writes beyond it fail like a
    /// full disk, with [`StoreError::Unavailable`], and nothing committed is lost.
    pub async fn set_max_pages(&self, pages: u64) -> Result<u64, StoreError> {
        self.write("set the size limit", move |c| {
            Ok(
                c.query_row(&format!("PRAGMA max_page_count = {pages}"), [], |r| {
                    r.get::<_, i64>(0)
                })? as u64,
            )
        })
        .await
    }

    /// Schema version (`PRAGMA user_version`).
    pub async fn schema_version(&self) -> Result<i64, StoreError> {
        self.read("read the schema version", |c| {
            Ok(c.query_row("PRAGMA user_version", [], |r| r.get(0))?)
        })
        .await
    }

    async fn write<T, F>(&self, action: &'static str, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, Fail> + Send + 'static,
    {
        let stopped = || StoreError::Unavailable {
            action,
            detail: "the store writer has stopped".into(),
        };
        let (job, answer) = writer::Job::queue(action, f);
        self.inner.writer.send(job).map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }

    async fn read<T, F>(&self, action: &'static str, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, Fail> + Send + 'static,
    {
        let i = self.inner.next_reader.fetch_add(1, Ordering::Relaxed) % self.inner.readers.len();
        run(self.inner.readers[i].clone(), action, f).await
    }
}

/// An error inside a blocking store closure, mapped to [`StoreError`] with the action.
#[derive(Debug)]
pub(crate) enum Fail {
    Sqlite(rusqlite::Error),
    Data(String),
}

impl From<rusqlite::Error> for Fail {
    fn from(e: rusqlite::Error) -> Self {
        Fail::Sqlite(e)
    }
}

impl Fail {
    fn into_store(self, action: &'static str) -> StoreError {
        match self {
            Fail::Data(detail) => StoreError::Data { action, detail },
            Fail::Sqlite(e) => {
                // rusqlite messages name the failing statement's error, never bound
                // parameter values, so no hash or secret can leak through `detail`.
                let detail = e.to_string();
                match e.sqlite_error_code() {
                    Some(ErrorCode::ConstraintViolation) => StoreError::Conflict { action, detail },
                    Some(
                        ErrorCode::DiskFull
                        | ErrorCode::SystemIoFailure
                        | ErrorCode::DatabaseBusy
                        | ErrorCode::DatabaseLocked
                        | ErrorCode::CannotOpen
                        | ErrorCode::ReadOnly
                        | ErrorCode::FileLockingProtocolFailed
                        | ErrorCode::OutOfMemory
                        | ErrorCode::PermissionDenied
                        | ErrorCode::DatabaseCorrupt
                        | ErrorCode::NotADatabase,
                    ) => StoreError::Unavailable { action, detail },
                    _ => StoreError::Data { action, detail },
                }
            }
        }
    }
}

async fn run<T, F>(
    conn: Arc<Mutex<Connection>>,
    action: &'static str,
    f: F,
) -> Result<T, StoreError>
where
    T: Send + 'static,
    F: FnOnce(&mut Connection) -> Result<T, Fail> + Send + 'static,
{
    tokio::task::spawn_blocking(move || {
        // A panic while holding the lock dropped its Transaction, which rolled back:
        // the connection is still consistent, so a poisoned lock is safe to reuse.
        let mut c = conn.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut c).map_err(|e| e.into_store(action))
    })
    .await
    .map_err(|e| StoreError::Unavailable {
        action,
        detail: format!("store task failed: {e}"),
    })?
}

fn connect(path: &Path, read_only: bool) -> Result<Connection, StoreError> {
    let action = "open the database";
    // Readers open read-write too (they only ever SELECT): a read-only connection
    // cannot create the WAL index file if the writer has not yet.
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let setup = || -> Result<Connection, Fail> {
        let c = Connection::open_with_flags(path, flags)?;
        c.busy_timeout(BUSY_TIMEOUT)?;
        c.set_prepared_statement_cache_capacity(cached::CAPACITY);
        if !read_only {
            let mode: String = c.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
            if !mode.eq_ignore_ascii_case("wal") {
                return Err(Fail::Data(format!(
                    "journal mode is {mode}, WAL is required"
                )));
            }
        }
        c.pragma_update(None, "synchronous", "FULL")?;
        c.pragma_update(None, "foreign_keys", "ON")?;
        Ok(c)
    };
    setup().map_err(|e| e.into_store(action))
}

#[async_trait::async_trait]
impl Store for SqliteStore {
    async fn insert_token(&self, token: &TokenRecord) -> Result<(), StoreError> {
        let t = token.clone();
        self.write("insert a token", move |c| credentials::insert_token(c, &t))
            .await
    }

    async fn token(&self, id: &str) -> Result<Option<TokenRecord>, StoreError> {
        let id = id.to_string();
        self.read("read a token", move |c| credentials::token(c, &id))
            .await
    }

    async fn extend_token(
        &self,
        id: &str,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Option<TokenRecord>, StoreError> {
        let id = id.to_string();
        self.write("extend a token", move |c| {
            credentials::extend_token(c, &id, expires_at, now)
        })
        .await
    }

    async fn revoke_token(
        &self,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<TokenRecord>, StoreError> {
        let id = id.to_string();
        self.write("revoke a token", move |c| {
            credentials::revoke_token(c, &id, now)
        })
        .await
    }

    async fn insert_claim(&self, claim: &ClaimRecord) -> Result<(), StoreError> {
        let cl = claim.clone();
        self.write("insert a claim", move |c| credentials::insert_claim(c, &cl))
            .await
    }

    async fn claim(&self, id: &str) -> Result<Option<ClaimRecord>, StoreError> {
        let id = id.to_string();
        self.read("read a claim", move |c| credentials::claim(c, &id))
            .await
    }

    async fn record_claim_failure(&self, id: &str, now: DateTime<Utc>) -> Result<u32, StoreError> {
        let id = id.to_string();
        self.write("count a failed claim attempt", move |c| {
            credentials::record_claim_failure(c, &id, now)
        })
        .await
    }

    async fn bind_device(&self, binding: &Binding) -> Result<BindOutcome, StoreError> {
        let b = binding.clone();
        self.write("bind a device", move |c| devices::bind(c, &b))
            .await
    }

    async fn device(&self, id: &str) -> Result<Option<DeviceRecord>, StoreError> {
        let id = id.to_string();
        self.read("read a device", move |c| devices::device(c, &id))
            .await
    }

    async fn devices(&self, site_id: Option<&str>) -> Result<Vec<DeviceRecord>, StoreError> {
        let site = site_id.map(str::to_string);
        self.read("list devices", move |c| {
            devices::devices(c, site.as_deref())
        })
        .await
    }

    async fn active_device_by_serial(
        &self,
        serial: &str,
    ) -> Result<Option<DeviceRecord>, StoreError> {
        let serial = serial.to_string();
        self.read("find a device by serial", move |c| {
            devices::active_by_serial(c, &serial)
        })
        .await
    }

    async fn revoke_device(
        &self,
        id: &str,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<DeviceRecord>, StoreError> {
        let (id, reason) = (id.to_string(), reason.to_string());
        self.write("revoke a device", move |c| {
            devices::revoke(c, &id, &reason, now)
        })
        .await
    }

    async fn upsert_pending(&self, p: &NewPending) -> Result<PendingRecord, StoreError> {
        let p = p.clone();
        self.write("queue a pending device", move |c| pending::upsert(c, &p))
            .await
    }

    async fn pending(&self, id: &str) -> Result<Option<PendingRecord>, StoreError> {
        let id = id.to_string();
        self.read("read a pending device", move |c| pending::get(c, &id))
            .await
    }

    async fn open_pending(&self) -> Result<Vec<PendingRecord>, StoreError> {
        self.read("list pending devices", |c| pending::open(c))
            .await
    }

    async fn reject_pending(
        &self,
        id: &str,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let (id, reason) = (id.to_string(), reason.to_string());
        self.write("reject a pending device", move |c| {
            pending::reject(c, &id, &reason, now)
        })
        .await
    }

    async fn write_checkin(&self, checkin: &CheckinWrite) -> Result<bool, StoreError> {
        let w = checkin.clone();
        self.write("write a check-in", move |c| devices::write_checkin(c, &w))
            .await
    }

    async fn write_heartbeats(&self, beats: &[HeartbeatWrite]) -> Result<(), StoreError> {
        let beats = beats.to_vec();
        self.write("write heartbeats", move |c| {
            devices::write_heartbeats(c, &beats)
        })
        .await
    }

    async fn record_event(&self, event: &Event) -> Result<(), StoreError> {
        let e = event.clone();
        self.write("record an event", move |c| rows::insert_event(c, &e))
            .await
    }

    async fn events(&self, after: i64, limit: usize) -> Result<Vec<Event>, StoreError> {
        self.read("list events", move |c| rows::events(c, after, limit))
            .await
    }

    async fn latest_event_seq(&self) -> Result<i64, StoreError> {
        self.read("read the newest event", |c| {
            Ok(c.query_row("SELECT COALESCE(MAX(seq), 0) FROM events", [], |r| r.get(0))?)
        })
        .await
    }

    async fn site_events(&self, site_id: &str, limit: usize) -> Result<Vec<Event>, StoreError> {
        let site = site_id.to_string();
        self.read("list a site's events", move |c| {
            fleet::site_events(c, &site, limit)
        })
        .await
    }

    async fn registration_underway(
        &self,
        now: DateTime<Utc>,
        claim_max_failures: u32,
    ) -> Result<std::collections::BTreeSet<String>, StoreError> {
        self.read("list sites with a registration underway", move |c| {
            fleet::registration_underway(c, now, claim_max_failures)
        })
        .await
    }
}
