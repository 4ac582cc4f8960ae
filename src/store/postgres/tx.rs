//! [`PgTx`]: a PostgreSQL transaction driven from blocking code.
//!
//! The store's functions are blocking (the writer's thread, `spawn_blocking`
//! reads, the CLI), as SQLite is. On PostgreSQL each call waits for its
//! tokio-postgres query on the calling thread (`block_on`), so the stages
//! above see the same blocking functions on either backend
//! (ARCHITECTURE.md "src/store/"). A query future only talks to its
//! connection's task over a channel, and that task runs on the backend's
//! own runtime (`backend`): so a plain executor can wait for it on any
//! thread, also one inside an async runtime, where tokio's `block_on`
//! would panic (start-up reads the archive from `async` code, as it
//! does on SQLite).
//! Statements are prepared once per connection and cached (deadpool's
//! statement cache), as SQLite's `prepare_cached` does.

use futures_executor::block_on;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Portal, Row, RowStream, Statement};

use super::PgError;

/// Query parameters, as tokio-postgres takes them.
pub type Params<'p> = &'p [&'p (dyn ToSql + Sync)];

/// One PostgreSQL transaction (a write job, a derivation slice or a read).
pub struct PgTx<'a> {
    tx: deadpool_postgres::Transaction<'a>,
}

impl<'a> PgTx<'a> {
    pub(in crate::store) fn new(tx: deadpool_postgres::Transaction<'a>) -> Self {
        PgTx { tx }
    }

    /// Commits; dropping a `PgTx` instead rolls it back.
    pub(in crate::store) fn commit(self) -> Result<(), PgError> {
        Ok(block_on(self.tx.commit())?)
    }

    async fn prepared(&self, sql: &str) -> Result<tokio_postgres::Statement, PgError> {
        Ok(self.tx.prepare_cached(sql).await?)
    }

    /// Runs one statement; returns the rows it changed.
    pub fn execute(&self, sql: &str, params: Params) -> Result<u64, PgError> {
        block_on(async {
            let st = self.prepared(sql).await?;
            Ok(self.tx.execute(&st, params).await?)
        })
    }

    /// Every row of a query.
    pub fn query(&self, sql: &str, params: Params) -> Result<Vec<Row>, PgError> {
        block_on(async {
            let st = self.prepared(sql).await?;
            Ok(self.tx.query(&st, params).await?)
        })
    }

    /// The one row of a query (an error when there is none or several).
    pub fn query_one(&self, sql: &str, params: Params) -> Result<Row, PgError> {
        block_on(async {
            let st = self.prepared(sql).await?;
            Ok(self.tx.query_one(&st, params).await?)
        })
    }

    /// The row of a query, if there is one.
    pub fn query_opt(&self, sql: &str, params: Params) -> Result<Option<Row>, PgError> {
        block_on(async {
            let st = self.prepared(sql).await?;
            Ok(self.tx.query_opt(&st, params).await?)
        })
    }

    /// Runs statements without parameters (DDL, `SAVEPOINT`).
    pub fn batch_execute(&self, sql: &str) -> Result<(), PgError> {
        Ok(block_on(self.tx.batch_execute(sql))?)
    }

    /// Runs a query whose text is built at run time (a search with optional
    /// filters): not cached, as each shape is its own statement.
    pub fn query_dynamic(&self, sql: &str, params: Params) -> Result<Vec<Row>, PgError> {
        Ok(block_on(self.tx.query(sql, params))?)
    }
}

impl PgTx<'_> {
    /// Sends `data` (CSV rows) to a `COPY … FROM STDIN (FORMAT csv)`
    /// statement; returns the rows copied. Bulk copies (`store::copy`).
    pub fn copy_in_csv(&self, copy_sql: &str, data: Vec<u8>) -> Result<u64, PgError> {
        use futures_util::SinkExt;
        block_on(async {
            let sink = self.tx.copy_in(copy_sql).await?;
            futures_util::pin_mut!(sink);
            sink.send(bytes::Bytes::from(data)).await?;
            Ok(sink.finish().await?)
        })
    }

    /// Prepares a statement whose text is not the program's own (a report
    /// query read from a file): not cached, so the connection's statement
    /// cache does not fill with one-off texts.
    pub fn prepare(&self, sql: &str) -> Result<Statement, PgError> {
        Ok(block_on(self.tx.prepare(sql))?)
    }

    /// Binds `params` to `st` in a portal: a server-side cursor that lives
    /// until the transaction ends, read with [`PgTx::request_portal`] a batch
    /// at a time, so a large result is never held whole (a billing export).
    pub fn bind(&self, st: &Statement, params: Params) -> Result<Portal, PgError> {
        Ok(block_on(self.tx.bind(st, params))?)
    }

    /// Asks for the next (at most) `max_rows` rows of a portal and returns
    /// before they come: the server works on them while the caller handles
    /// the rows it already has. Read them with [`PgTx::rows_of`]; fewer than
    /// `max_rows` means the end. Until they are read the transaction can run
    /// nothing else (its connection answers in order, and holds back once
    /// the unread rows fill its buffers).
    pub fn request_portal(&self, portal: &Portal, max_rows: i32) -> Result<RowStream, PgError> {
        Ok(block_on(self.tx.query_portal_raw(portal, max_rows))?)
    }

    /// The rows of a batch asked for with [`PgTx::request_portal`], waiting
    /// for the last of them.
    pub fn rows_of(batch: RowStream) -> Result<Vec<Row>, PgError> {
        use futures_util::TryStreamExt;
        Ok(block_on(batch.try_collect())?)
    }
}
