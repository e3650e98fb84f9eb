//! The single writer thread with group commit.
//!
//! Every write operation is a job sent to one thread that owns the write connection.
//! The thread takes whatever jobs are queued (up to [`MAX_BATCH`]), runs them in one
//! `BEGIN IMMEDIATE` transaction, each inside its own `SAVEPOINT` (a failing job rolls
//! back only itself), and COMMITs once: with `synchronous=FULL` that is one fsync for
//! the whole batch instead of one per registration. Nobody is answered before the
//! COMMIT returns, so every answered write is durable; if the COMMIT fails, or SQLite
//! rolled the whole transaction back (I/O error, full disk), every job of the batch is
//! answered with the error and nothing of it is visible.
//!
//! Atomicity is unchanged: jobs run one after another on one connection, and each job's
//! conditional UPDATEs see the effects of the jobs before it in the same transaction.
//! Another process writing the same file waits on the database lock (`busy_timeout`).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc;

use rusqlite::Connection;
use tokio::sync::oneshot;

use super::cached::Cached;
use super::Fail;
use crate::store::StoreError;

/// Most jobs committed together.
const MAX_BATCH: usize = 128;

/// A queued write whose answer waits for the COMMIT.
pub(super) trait WriteJob: Send {
    /// Runs the operation inside the open transaction; `true` on success.
    fn run(&mut self, c: &Connection) -> bool;
    /// Answers the caller with the operation's result, or the batch's failure.
    fn finish(self: Box<Self>, batch: Result<(), StoreError>);
}

pub(super) struct Job<T, F> {
    op: Option<F>,
    action: &'static str,
    result: Option<Result<T, StoreError>>,
    reply: oneshot::Sender<Result<T, StoreError>>,
}

impl<T, F> Job<T, F>
where
    T: Send + 'static,
    F: FnOnce(&Connection) -> Result<T, Fail> + Send + 'static,
{
    pub(super) fn queue(
        action: &'static str,
        op: F,
    ) -> (Box<dyn WriteJob>, oneshot::Receiver<Result<T, StoreError>>) {
        let (reply, rx) = oneshot::channel();
        let job = Job {
            op: Some(op),
            action,
            result: None,
            reply,
        };
        (Box::new(job), rx)
    }
}

impl<T, F> WriteJob for Job<T, F>
where
    T: Send + 'static,
    F: FnOnce(&Connection) -> Result<T, Fail> + Send + 'static,
{
    fn run(&mut self, c: &Connection) -> bool {
        let Some(op) = self.op.take() else {
            return false;
        };
        // A panicking operation fails alone (its savepoint is rolled back) instead of
        // taking the writer thread down.
        let r = catch_unwind(AssertUnwindSafe(|| op(c)))
            .unwrap_or_else(|_| Err(Fail::Data("store operation panicked".into())))
            .map_err(|e| e.into_store(self.action));
        let ok = r.is_ok();
        self.result = Some(r);
        ok
    }

    fn finish(self: Box<Self>, batch: Result<(), StoreError>) {
        let out = match (self.result, batch) {
            (Some(Err(e)), _) => Err(e),
            (_, Err(e)) => Err(e),
            (Some(Ok(v)), Ok(())) => Ok(v),
            (None, Ok(())) => Err(StoreError::Unavailable {
                action: self.action,
                detail: "the write was not run".into(),
            }),
        };
        // The caller may have gone away (cancelled request); the write stands anyway.
        let _ = self.reply.send(out);
    }
}

/// Starts the writer thread; it ends when every sender is dropped.
pub(super) fn spawn(conn: Connection) -> Result<mpsc::Sender<Box<dyn WriteJob>>, StoreError> {
    let (tx, rx) = mpsc::channel::<Box<dyn WriteJob>>();
    std::thread::Builder::new()
        .name("siteboot-sqlite-writer".into())
        .spawn(move || {
            while let Ok(first) = rx.recv() {
                let mut jobs = vec![first];
                while jobs.len() < MAX_BATCH {
                    match rx.try_recv() {
                        Ok(j) => jobs.push(j),
                        Err(_) => break,
                    }
                }
                run_batch(&conn, jobs);
            }
        })
        .map_err(|e| StoreError::Unavailable {
            action: "start the store writer",
            detail: e.to_string(),
        })?;
    Ok(tx)
}

fn run_batch(c: &Connection, mut jobs: Vec<Box<dyn WriteJob>>) {
    let fail = |e: rusqlite::Error, action: &'static str| Fail::from(e).into_store(action);
    if let Err(e) = c.exec("BEGIN IMMEDIATE", []) {
        let e = fail(e, "begin a write transaction");
        jobs.into_iter().for_each(|j| j.finish(Err(e.clone())));
        return;
    }
    let mut aborted: Option<StoreError> = None;
    for job in jobs.iter_mut() {
        if let Err(e) = c.exec("SAVEPOINT job", []) {
            aborted = Some(fail(e, "open a savepoint"));
            break;
        }
        let ok = job.run(c);
        if c.is_autocommit() {
            // SQLite rolled back the whole transaction (I/O error, disk full): the
            // earlier jobs of this batch are gone too.
            aborted = Some(StoreError::Unavailable {
                action: "write a batch",
                detail: "the transaction was rolled back by the database (disk full or I/O error)"
                    .into(),
            });
            break;
        }
        let end = if ok {
            c.exec("RELEASE job", []).map(drop)
        } else {
            c.exec("ROLLBACK TO job", [])
                .and_then(|_| c.exec("RELEASE job", []))
                .map(drop)
        };
        if let Err(e) = end {
            aborted = Some(fail(e, "close a savepoint"));
            break;
        }
    }
    let outcome = match aborted {
        Some(e) => Err(e),
        None => c
            .exec("COMMIT", [])
            .map(drop)
            .map_err(|e| fail(e, "commit a batch of writes")),
    };
    if outcome.is_err() && !c.is_autocommit() {
        // Best effort: leave the connection outside any transaction for the next batch.
        let _ = c.execute_batch("ROLLBACK");
    }
    jobs.into_iter().for_each(|j| j.finish(outcome.clone()));
}
