//! Statements through the connection's prepared-statement cache.
//!
//! `Connection::execute`, `query_row` and `execute_batch` compile their SQL on every
//! call; on the write path (a registration runs about ten statements, plus the
//! savepoint and transaction statements around every job) that parsing was a visible
//! share of the writer thread's time. These helpers compile each distinct SQL text once
//! per connection and reuse it. Only for SQL whose text is the same on every call (a
//! `format!` of constants is fine); text that varies per call would churn the cache.

use rusqlite::{Connection, Params, Row};

/// Statements per connection kept compiled (the store uses a few dozen distinct texts).
pub(super) const CAPACITY: usize = 64;

/// Cached counterparts of `execute` and `query_row`.
pub(super) trait Cached {
    /// `execute` through the statement cache.
    fn exec<P: Params>(&self, sql: &str, params: P) -> rusqlite::Result<usize>;
    /// `query_row` through the statement cache.
    fn row<T, P, F>(&self, sql: &str, params: P, f: F) -> rusqlite::Result<T>
    where
        P: Params,
        F: FnOnce(&Row<'_>) -> rusqlite::Result<T>;
}

impl Cached for Connection {
    fn exec<P: Params>(&self, sql: &str, params: P) -> rusqlite::Result<usize> {
        self.prepare_cached(sql)?.execute(params)
    }

    fn row<T, P, F>(&self, sql: &str, params: P, f: F) -> rusqlite::Result<T>
    where
        P: Params,
        F: FnOnce(&Row<'_>) -> rusqlite::Result<T>,
    {
        self.prepare_cached(sql)?.query_row(params, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cached_statements_behave_like_uncached_ones() {
        let c = Connection::open_in_memory().unwrap();
        c.exec("CREATE TABLE t (k TEXT PRIMARY KEY, v INTEGER)", [])
            .unwrap();
        for (k, v) in [("a", 1), ("b", 2), ("a", 3)] {
            let n = c
                .exec(
                    "INSERT INTO t (k, v) VALUES (?1, ?2) ON CONFLICT(k) DO UPDATE SET v = ?2",
                    rusqlite::params![k, v],
                )
                .unwrap();
            assert_eq!(n, 1);
        }
        let sum: i64 = c
            .row(
                "SELECT SUM(v) FROM t WHERE k IN (?1, ?2)",
                ["a", "b"],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(sum, 5);
        // Errors surface as with `query_row` (no row) and `execute` (constraint).
        assert!(matches!(
            c.row("SELECT v FROM t WHERE k = ?1", ["zz"], |r| r
                .get::<_, i64>(0)),
            Err(rusqlite::Error::QueryReturnedNoRows)
        ));
        assert!(c.exec("INSERT INTO t (k, v) VALUES ('a', 9)", []).is_err());
        // Savepoints and transactions work as cached statements too.
        c.exec("BEGIN IMMEDIATE", []).unwrap();
        c.exec("SAVEPOINT job", []).unwrap();
        c.exec("DELETE FROM t", []).unwrap();
        c.exec("ROLLBACK TO job", []).unwrap();
        c.exec("RELEASE job", []).unwrap();
        c.exec("COMMIT", []).unwrap();
        let n: i64 = c.row("SELECT COUNT(*) FROM t", [], |r| r.get(0)).unwrap();
        assert_eq!(n, 2);
    }
}
