//! [`Tx`], the handle every store function takes, and [`savepoint`].
//!
//! A `Tx` is one unit of work on the archive: the writer's transaction
//! (inside [`Writer::write`](super::Writer::write) and the background step)
//! or a pooled read connection (inside [`Store::read`](super::Store::read)).
//! Code outside `store` only passes it on to store functions: it cannot
//! reach the SQLite connection inside, so the stages above the store hold
//! no SQL and name no database library, and another backend can stand
//! behind the same handle.
//!
//! Inside `store` the handle forwards the few connection methods the typed
//! queries use, so a query reads as it would on a connection.

use rusqlite::{CachedStatement, Connection, Params, Row, Statement};

use super::postgres::PgTx;

/// A handle on the archive for one unit of work (a transaction of the
/// writer, or a read), on either backend. Cheap to copy; lives as long as
/// the work it is handed to.
#[derive(Clone, Copy)]
pub struct Tx<'a> {
    conn: Backend<'a>,
}

#[derive(Clone, Copy)]
enum Backend<'a> {
    Sqlite(&'a Connection),
    Postgres(&'a PgTx<'a>),
}

impl<'a> Tx<'a> {
    /// The handle on `conn`, for code inside the store.
    pub(in crate::store) fn new(conn: &'a Connection) -> Tx<'a> {
        Tx {
            conn: Backend::Sqlite(conn),
        }
    }

    /// The handle on a PostgreSQL transaction, for code inside the store.
    pub(in crate::store) fn postgres(tx: &'a PgTx<'a>) -> Tx<'a> {
        Tx {
            conn: Backend::Postgres(tx),
        }
    }

    /// A handle on a SQLite connection the caller opened itself: for tests
    /// and benchmarks that look at an archive file directly. The
    /// application gets its handles from [`Store`](super::Store).
    #[doc(hidden)]
    pub fn on_sqlite(conn: &'a Connection) -> Tx<'a> {
        Tx::new(conn)
    }

    /// The PostgreSQL transaction, when the archive is on PostgreSQL: each
    /// store function starts with `if let Some(pg) = tx.pg()` and runs its
    /// PostgreSQL version (`store::postgres`), else goes on on SQLite.
    pub(in crate::store) fn pg(&self) -> Option<&'a PgTx<'a>> {
        match self.conn {
            Backend::Postgres(pg) => Some(pg),
            Backend::Sqlite(_) => None,
        }
    }

    /// True on PostgreSQL: for the few callers above the store whose work
    /// differs by backend (which SQL dialect a report file is in).
    pub fn is_postgres(&self) -> bool {
        self.pg().is_some()
    }

    /// The SQLite connection inside. On PostgreSQL every store function
    /// has taken its `pg()` branch before it gets here; one that has not
    /// gets an error naming the gap instead of a panic.
    fn sqlite(&self) -> rusqlite::Result<&'a Connection> {
        match self.conn {
            Backend::Sqlite(c) => Ok(c),
            Backend::Postgres(_) => {
                tracing::error!(
                    "a store function without a PostgreSQL version was called on PostgreSQL"
                );
                Err(rusqlite::Error::InvalidQuery)
            }
        }
    }

    pub(in crate::store) fn prepare_cached(
        &self,
        sql: &str,
    ) -> rusqlite::Result<CachedStatement<'a>> {
        self.sqlite()?.prepare_cached(sql)
    }

    pub(in crate::store) fn prepare(&self, sql: &str) -> rusqlite::Result<Statement<'a>> {
        self.sqlite()?.prepare(sql)
    }

    pub(in crate::store) fn execute<P: Params>(
        &self,
        sql: &str,
        params: P,
    ) -> rusqlite::Result<usize> {
        self.sqlite()?.execute(sql, params)
    }

    pub(in crate::store) fn execute_batch(&self, sql: &str) -> rusqlite::Result<()> {
        self.sqlite()?.execute_batch(sql)
    }

    pub(in crate::store) fn query_row<T, P, F>(
        &self,
        sql: &str,
        params: P,
        f: F,
    ) -> rusqlite::Result<T>
    where
        P: Params,
        F: FnOnce(&Row<'_>) -> rusqlite::Result<T>,
    {
        self.sqlite()?.query_row(sql, params, f)
    }

    pub(in crate::store) fn last_insert_rowid(&self) -> i64 {
        self.sqlite().map_or(0, |c| c.last_insert_rowid())
    }
}

/// Runs `f` so that its writes are undone alone when it fails: the rest of
/// the transaction (other jobs of a group commit, other pushes of a
/// derivation slice) goes on. The outer `Err` is the store failing to set
/// up or let go of the savepoint; the inner one is `f`'s, already rolled
/// back.
pub fn savepoint<T, E>(
    tx: &Tx,
    f: impl FnOnce(&Tx) -> std::result::Result<T, E>,
) -> super::Result<std::result::Result<T, E>> {
    if let Some(pg) = tx.pg() {
        pg.batch_execute("SAVEPOINT job")?;
        let res = f(tx);
        if res.is_err() {
            pg.batch_execute("ROLLBACK TO SAVEPOINT job")?;
        }
        pg.batch_execute("RELEASE SAVEPOINT job")?;
        return Ok(res);
    }
    // Cached statements: parsing these three per job showed in profiles.
    // One name serves every level: SQLite rolls back to and releases the
    // innermost savepoint of a name.
    tx.prepare_cached("SAVEPOINT job")?.execute([])?;
    let res = f(tx);
    if res.is_err() {
        tx.prepare_cached("ROLLBACK TO job")?.execute([])?;
    }
    tx.prepare_cached("RELEASE job")?.execute([])?;
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(tx: &Tx) -> i64 {
        tx.query_row("SELECT COUNT(*) FROM t", [], |r| r.get(0))
            .expect("count")
    }

    #[test]
    fn savepoint_undoes_only_the_failed_work() {
        let conn = Connection::open_in_memory().expect("open");
        conn.execute_batch("CREATE TABLE t (v INTEGER); BEGIN")
            .expect("schema");
        let tx = Tx::new(&conn);
        let kept = savepoint(&tx, |tx| -> std::result::Result<(), ()> {
            tx.execute("INSERT INTO t VALUES (1)", []).expect("insert");
            Ok(())
        });
        assert_eq!(kept.expect("savepoint"), Ok(()));
        let failed = savepoint(&tx, |tx| -> std::result::Result<(), &str> {
            tx.execute("INSERT INTO t VALUES (2)", []).expect("insert");
            Err("refused")
        });
        assert_eq!(failed.expect("savepoint"), Err("refused"));
        assert_eq!(count(&tx), 1);
    }

    #[test]
    fn savepoint_nests() {
        let conn = Connection::open_in_memory().expect("open");
        conn.execute_batch("CREATE TABLE t (v INTEGER); BEGIN")
            .expect("schema");
        let tx = Tx::new(&conn);
        let outer = savepoint(&tx, |tx| -> std::result::Result<(), ()> {
            tx.execute("INSERT INTO t VALUES (1)", []).expect("insert");
            let inner = savepoint(tx, |tx| -> std::result::Result<(), ()> {
                tx.execute("INSERT INTO t VALUES (2)", []).expect("insert");
                Err(())
            });
            assert_eq!(inner.expect("inner"), Err(()));
            Ok(())
        });
        assert_eq!(outer.expect("outer"), Ok(()));
        assert_eq!(count(&tx), 1);
    }
}
