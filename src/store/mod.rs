//! The archive: one SQLite file (WAL, foreign keys on) under the data dir.
//!
//! rusqlite is blocking, so all writes go through one writer thread that
//! batches concurrent jobs into one transaction (group commit, `writer`),
//! and reads use a small pool of connections on `spawn_blocking`
//! (`pool`). The typed queries of each table live in their own file, and
//! `rebuild` the store's side of `callvault rebuild`.
//!
//! Both hand their work a [`Tx`], the handle every store function takes:
//! the stages above pass it on and never see SQLite (`tx`). The store
//! knows the domain types of `model` and nothing of the stages.

mod bg_pace;
mod cells;
mod checkpoint;
mod migrate;
mod pool;
pub mod rebuild;
mod tx;
mod wal_sync;
pub mod writer;

pub mod audit;
pub mod backup;
pub mod call_detail;
pub mod call_search;
pub mod calls;
pub mod conversations;
pub mod copy;
pub mod device_figures;
pub mod devices;
pub mod events;
pub mod legs;
pub mod postgres;
pub mod pushes;
pub mod queues;
pub mod recordings;
pub mod reports;
pub mod retention;
pub mod scope;
pub mod sessions;
#[doc(hidden)]
pub mod testing;
pub mod tokens;

use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use migrate::MIGRATIONS;
pub use pool::ReadPool;
pub use tx::{savepoint, Tx};
pub use writer::{Background, StepError, WriteJob, Writer};

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite refused an operation.
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The data directory could not be created.
    #[error("cannot create data directory {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The writer thread has stopped (shutdown or a previous fatal error).
    #[error("the store writer has stopped")]
    WriterGone,
    /// A stored JSON column could not be decoded.
    #[error("corrupt stored value: {0}")]
    Corrupt(String),
    /// The commit was written but could not be made durable (fsync failed).
    #[error("write not durable: {0}")]
    NotDurable(String),
    /// PostgreSQL refused an operation, or could not be reached.
    #[error(transparent)]
    Postgres(#[from] postgres::PgError),
    /// A report's statement would write, and the read-only transaction it
    /// runs in refused it (PostgreSQL; SQLite refuses such a statement
    /// before it runs, `reports::QueryError::NotReadOnly`).
    #[error("the query writes to the archive; a report may only read ({0})")]
    NotReadOnly(String),
    /// `[store] url` names a backend this version cannot run on.
    #[error("{0}")]
    Backend(String),
    /// The writer's background step (derivation) failed.
    #[error("background step failed: {0}")]
    Background(String),
    /// Work on a store thread (a write job, the background step, a read)
    /// panicked: a bug. Its writes were rolled back.
    #[error("panicked: {0}")]
    Panicked(String),
}

pub type Result<T> = std::result::Result<T, StoreError>;

impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> Self {
        StoreError::Postgres(postgres::PgError::Db(e))
    }
}

/// Handle to the archive: cheap to clone, shared by every stage.
#[derive(Clone)]
pub struct Store {
    pub writer: Writer,
    pub reads: Arc<ReadPool>,
    /// The SQLite file; on PostgreSQL, the URL without its password.
    path: PathBuf,
    _checkpoints: Option<checkpoint::Checkpointer>,
    pg: Option<Arc<postgres::backend::PgBackend>>,
}

impl Store {
    /// Opens (creating if needed) the database at `path`, applies pending
    /// migrations, and starts the writer thread.
    pub fn open(path: &Path) -> Result<Store> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::DataDir {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        let mut conn = open_connection(path)?;
        migrate::apply(&mut conn)?;
        // Checkpoints run on their own thread, not inside a commit.
        conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        // A WAL that grew large (a long report held old pages) is cut back
        // to this when it starts again, not kept at its largest.
        conn.pragma_update(None, "journal_size_limit", WAL_SIZE_LIMIT)?;
        let sqlite = writer::SqliteWriter::start(conn);
        let checkpoints =
            checkpoint::Checkpointer::start(path.to_path_buf(), sqlite.checkpoint_handle());
        Ok(Store {
            writer: Writer::sqlite(sqlite),
            reads: Arc::new(ReadPool::new(path.to_path_buf())),
            path: path.to_path_buf(),
            _checkpoints: Some(checkpoints),
            pg: None,
        })
    }

    /// Opens (migrating if needed) the PostgreSQL archive at `url`.
    pub fn open_postgres(url: &str) -> Result<Store> {
        let db = postgres::backend::PgBackend::open(url)?;
        let writer = Arc::new(postgres::writer::PgWriter::new(db.clone()));
        Ok(Store {
            writer: Writer::postgres(writer),
            reads: Arc::new(ReadPool::postgres(db.clone())),
            path: PathBuf::from(db.shown_url()),
            _checkpoints: None,
            pg: Some(db),
        })
    }

    /// Opens the archive `[store] url` names: the SQLite file in the data
    /// directory (the default) or a PostgreSQL database.
    pub fn open_config(cfg: &crate::config::Config) -> Result<Store> {
        match cfg.store.backend() {
            Ok(crate::config::StoreUrl::Sqlite) => Store::open(&cfg.db_path()),
            Ok(crate::config::StoreUrl::Postgres(url)) => Store::open_postgres(&url),
            Err(e) => Err(StoreError::Backend(e.to_string())),
        }
    }

    /// True when the archive is on PostgreSQL (commands that only make
    /// sense on a SQLite file, such as `backup`, refuse).
    pub fn is_postgres(&self) -> bool {
        self.pg.is_some()
    }

    /// Makes the partitions of this month and the next ones (PostgreSQL;
    /// nothing on SQLite); returns the ones made.
    pub async fn make_partitions_ahead(&self) -> Result<Vec<String>> {
        match &self.pg {
            Some(db) => Ok(db.make_partitions_ahead().await?),
            None => Ok(Vec::new()),
        }
    }

    /// Rows in the DEFAULT partitions, per partitioned table (PostgreSQL;
    /// empty on SQLite): above 0, a month had no partition when its rows
    /// came, and the operator should look.
    pub async fn default_partition_rows(&self) -> Result<Vec<(String, i64)>> {
        match &self.pg {
            Some(db) => Ok(db.default_partition_rows().await?),
            None => Ok(Vec::new()),
        }
    }

    /// The PostgreSQL archive, when it is one.
    pub fn postgres(&self) -> Option<&Arc<postgres::backend::PgBackend>> {
        self.pg.as_ref()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` on a pooled read connection without blocking async workers.
    pub async fn read<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Tx) -> Result<T> + Send + 'static,
    {
        let pool = self.reads.clone();
        tokio::task::spawn_blocking(move || pool.with(f))
            .await
            .map_err(|e| match e.try_into_panic() {
                Ok(panic) => StoreError::Panicked(format!("a read: {}", panic_text(&*panic))),
                // Cancelled: the runtime is shutting down.
                Err(_) => StoreError::WriterGone,
            })?
    }

    /// Runs `f` on a pooled read connection from blocking code (CLI).
    pub fn read_blocking<T>(&self, f: impl FnOnce(&Tx) -> Result<T>) -> Result<T> {
        self.reads.with(f)
    }
}

/// Bytes of WAL kept once it starts again from its beginning.
const WAL_SIZE_LIMIT: i64 = 64 * 1024 * 1024;

/// How long a connection waits for another process's write lock.
pub(in crate::store) const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// How long `rebuild` waits for the write lock between its batches: a busy
/// server may hold it through many short transactions in a row.
pub(in crate::store) const LONG_BUSY_TIMEOUT: std::time::Duration =
    std::time::Duration::from_secs(300);

/// How a connection waits for another connection's write lock, up to
/// `limit` (zero: not at all): it tries again every 2 ms. SQLite's own
/// handler sleeps up to 100 ms between tries and missed the short gaps a
/// busy writer leaves between its transactions: a `rebuild` beside a
/// running server starved the server's ingest for the whole rebuild.
pub(in crate::store) fn wait_for_locks(
    conn: &rusqlite::Connection,
    limit: std::time::Duration,
) -> rusqlite::Result<()> {
    fn poll(tries: i32, limit: std::time::Duration) -> bool {
        let waited_ms = u128::from(tries.unsigned_abs()) * 2;
        if waited_ms >= limit.as_millis() {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
        true
    }
    fn poll_short(tries: i32) -> bool {
        poll(tries, BUSY_TIMEOUT)
    }
    fn poll_long(tries: i32) -> bool {
        poll(tries, LONG_BUSY_TIMEOUT)
    }
    if limit.is_zero() {
        conn.busy_handler(None)
    } else if limit <= BUSY_TIMEOUT {
        conn.busy_handler(Some(poll_short))
    } else {
        conn.busy_handler(Some(poll_long))
    }
}

/// A connection with the pragmas every connection needs.
pub fn open_connection(path: &Path) -> Result<rusqlite::Connection> {
    let conn = rusqlite::Connection::open(path)?;
    wait_for_locks(&conn, BUSY_TIMEOUT)?;
    conn.execute_batch(
        "PRAGMA journal_mode = WAL;
         PRAGMA synchronous = FULL;
         PRAGMA foreign_keys = ON;
         PRAGMA cache_size = -65536;
         PRAGMA temp_store = MEMORY;",
    )?;
    Ok(conn)
}

/// What a caught panic said, for [`StoreError::Panicked`].
pub(in crate::store) fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic".into())
}

/// UTC now as RFC 3339 with milliseconds and the unix milliseconds.
pub fn now_stamp() -> (String, i64) {
    stamp_of(chrono::Utc::now())
}

/// [`now_stamp`] of another moment (a backdated import).
pub fn stamp_of(now: chrono::DateTime<chrono::Utc>) -> (String, i64) {
    (
        now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        now.timestamp_millis(),
    )
}
