//! The single writer: group commit (`group_commit`) and the background
//! step (`background`), sharing one connection.
//!
//! Each write is a job (a closure over the transaction). Whoever holds the
//! connection takes every job that is waiting, runs them in ONE transaction
//! (each inside its own savepoint, so one failing job does not undo the
//! others), commits once, and only then answers each job. So a caller that
//! got `Ok` knows its data is durable, and N concurrent pushes cost one
//! fsync, not N.
//!
//! Who holds the connection: the caller that queued a job and found the
//! connection free runs the queue itself, on its own thread ("flat
//! combining"); callers that find it busy leave their job for the holder,
//! which looks at the queue again before and after letting go. So a push
//! costs no hand-off to another thread: on a 2-core machine waking a writer
//! thread for each batch cost about a sixth of the ingest rate. The commit
//! does not fsync on the caller's thread: `wal_sync` does, and answers.
//!
//! A job runs whether or not its caller is still waiting: it is queued
//! before the caller's first await, so a device that closes its socket
//! right after sending still gets its message committed.
//!
//! Besides the jobs, a background thread runs one *background* step
//! (ingest's derivation of legs, events and calls from committed pushes):
//! whenever no job has arrived for `BG_IDLE`, and while jobs keep coming a
//! short slice (inside a job batch when one is there) as often as
//! `bg_pace` says: enough to keep up with a steady load, little in a burst.
//! It also runs the queue when the connection is busy in another process
//! (`import` beside `serve`), so callers never wait on SQLite's busy
//! timeout. Callers never wait for the background step, except through
//! [`Writer::drain`].
//!
//! Jobs and the step get the transaction as a [`Tx`]: they run store
//! functions on it and never see the connection.

mod background;
mod group_commit;
#[cfg(test)]
mod tests;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};
use std::time::Instant;

use rusqlite::Connection;
use tokio::sync::oneshot;

use super::postgres::writer::PgWriter;
use super::wal_sync::WalSync;
use super::{Result, StoreError, Tx};
use background::{background_thread, unwind_safe};
use group_commit::Core;

/// A queued write: the closure, and whether it is a single SQL statement
/// (`Writer::write_statement`), which needs no savepoint of its own.
pub struct WriteJob {
    run: Box<dyn FnOnce(&Tx) -> JobResult + Send>,
    one_statement: bool,
}

impl WriteJob {
    /// What is left in a batch's slot once its job was taken out to run.
    fn spent() -> WriteJob {
        WriteJob {
            run: Box::new(|_| Err(StoreError::WriterGone)),
            one_statement: true,
        }
    }
}

/// The background step: does some work, stopping soon after the deadline,
/// and returns how many items it did. 0 means nothing is left to do, so it
/// must do at least one item when there is work, even if the deadline has
/// already passed (its thread may have been preempted before it started):
/// the writer stops giving it slices until the next commit otherwise.
pub type Background = Box<dyn FnMut(&Tx, Instant) -> std::result::Result<usize, StepError> + Send>;

/// Why a background slice failed: the step belongs to the stages above the
/// store (derivation and what it feeds), which fail for reasons of their
/// own. The writer only logs it, retries, and reports it to `drain`.
pub type StepError = Box<dyn std::error::Error + Send + Sync>;

type JobResult = Result<Box<dyn std::any::Any + Send>>;
type Reply = oneshot::Sender<JobResult>;

/// Messages to the background thread.
enum Ctl {
    SetBackground(Background),
    /// Reply once the background step has nothing left to do.
    Drain(oneshot::Sender<Result<()>>),
    /// The queue has jobs that a caller could not commit (write lock held
    /// by another process): run them.
    Kick,
}

/// The archive's writer, on either backend: on SQLite the group-committing
/// writer below; on PostgreSQL a transaction per job and one deriving
/// collector at a time (`store::postgres::writer`).
#[derive(Clone)]
pub struct Writer(Kind);

#[derive(Clone)]
enum Kind {
    Sqlite(SqliteWriter),
    Postgres(Arc<PgWriter>),
}

impl Writer {
    /// A SQLite writer on `conn` (tests; the store opens its own).
    #[cfg(test)]
    pub(in crate::store) fn start(conn: Connection) -> Writer {
        Writer::sqlite(SqliteWriter::start(conn))
    }

    pub(in crate::store) fn sqlite(w: SqliteWriter) -> Writer {
        Writer(Kind::Sqlite(w))
    }

    pub(in crate::store) fn postgres(w: Arc<PgWriter>) -> Writer {
        Writer(Kind::Postgres(w))
    }

    /// False once a commit could not be made durable (SQLite: an fsync of
    /// the WAL failed): from then on every write is refused until restart.
    pub fn durable(&self) -> bool {
        match &self.0 {
            Kind::Sqlite(w) => w.durable(),
            Kind::Postgres(_) => true,
        }
    }

    /// Runs `f` in a transaction and waits until it is committed (durable).
    pub async fn write<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Tx) -> Result<T> + Send + 'static,
    {
        match &self.0 {
            Kind::Sqlite(w) => w.write(f).await,
            Kind::Postgres(w) => w.write(f).await,
        }
    }

    /// Same as `write`, for a job that runs exactly one SQL statement (on
    /// SQLite it needs no savepoint of its own).
    pub async fn write_statement<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Tx) -> Result<T> + Send + 'static,
    {
        match &self.0 {
            Kind::Sqlite(w) => w.write_statement(f).await,
            Kind::Postgres(w) => w.write(f).await,
        }
    }

    /// Same as `write`, for blocking callers (CLI, tests).
    pub fn write_blocking<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Tx) -> Result<T> + Send + 'static,
    {
        match &self.0 {
            Kind::Sqlite(w) => w.write_blocking(f),
            Kind::Postgres(w) => w.write_blocking(f),
        }
    }

    /// Installs the background step (replacing any previous one); it starts
    /// at once, so work left by a previous run is picked up.
    pub fn set_background(&self, step: Background) -> Result<()> {
        match &self.0 {
            Kind::Sqlite(w) => w.set_background(step),
            Kind::Postgres(w) => w.set_background(step),
        }
    }

    /// Adds a callback run whenever this process takes over the background
    /// step from another collector (PostgreSQL), before its first slice:
    /// state a stage keeps in memory is rebuilt from the archive then. On
    /// SQLite one process always runs it, so this is never called.
    pub fn on_takeover(&self, f: Box<dyn FnMut() + Send>) {
        if let Kind::Postgres(w) = &self.0 {
            w.on_takeover(f);
        }
    }

    /// Gives the background step a turn even when no push came.
    pub async fn wake_background(&self) -> Result<()> {
        match &self.0 {
            Kind::Sqlite(w) => w.wake_background().await,
            Kind::Postgres(w) => {
                w.wake_background();
                Ok(())
            }
        }
    }

    /// Waits until the background step has caught up with everything
    /// committed before this call. Errors of the step are returned.
    pub async fn drain(&self) -> Result<()> {
        match &self.0 {
            Kind::Sqlite(w) => w.drain().await,
            Kind::Postgres(w) => w.drain().await,
        }
    }

    /// True when this process runs the background step now: always on
    /// SQLite; on PostgreSQL while it is the derivation leader.
    pub fn is_leader(&self) -> bool {
        match &self.0 {
            Kind::Sqlite(_) => true,
            Kind::Postgres(w) => w.is_leader(),
        }
    }

    /// What the checkpoint thread uses (SQLite only).
    #[cfg(test)]
    pub(crate) fn checkpoint_handle(&self) -> CheckpointRequest {
        match &self.0 {
            Kind::Sqlite(w) => w.checkpoint_handle(),
            Kind::Postgres(_) => unreachable!("PostgreSQL has no WAL checkpoints of ours"),
        }
    }
}

/// The SQLite writer: group commit and the background thread.
#[derive(Clone)]
pub struct SqliteWriter {
    shared: Arc<Shared>,
    ctl: mpsc::Sender<Ctl>,
    /// Raised by the WAL sync thread when an fsync failed.
    sync_failed: Option<Arc<AtomicBool>>,
}

struct Shared {
    queue: Mutex<Vec<(WriteJob, Reply)>>,
    core: Mutex<Core>,
    /// Set by a commit that gave the sleeping background thread work.
    wake_background: Arc<AtomicBool>,
    /// Set by the checkpoint thread: it could not checkpoint the whole WAL
    /// while commits went on (`Core::finish_checkpoint`).
    checkpoint_wanted: AtomicBool,
}

impl SqliteWriter {
    pub(in crate::store) fn start(conn: Connection) -> SqliteWriter {
        let sync = pipelined_sync(&conn);
        let sync_failed = sync.as_ref().map(WalSync::failed_flag);
        let wake_background = Arc::new(AtomicBool::new(false));
        let shared = Arc::new(Shared {
            queue: Mutex::new(Vec::new()),
            core: Mutex::new(Core::new(conn, sync, wake_background.clone())),
            wake_background,
            checkpoint_wanted: AtomicBool::new(false),
        });
        let (ctl, rx) = mpsc::channel();
        let bg = shared.clone();
        std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || background_thread(&bg, &rx))
            .expect("spawn store writer thread");
        SqliteWriter {
            shared,
            ctl,
            sync_failed,
        }
    }

    /// False once an fsync of the WAL has failed: from then on every write
    /// is refused until restart (`wal_sync`).
    pub fn durable(&self) -> bool {
        !self
            .sync_failed
            .as_ref()
            .is_some_and(|f| f.load(Ordering::Relaxed))
    }

    /// Queues `f` and waits until the transaction it ran in is committed.
    pub async fn write<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Tx) -> Result<T> + Send + 'static,
    {
        self.write_job(f, false).await
    }

    /// Same as `write`, for a job that runs exactly one SQL statement: a
    /// statement that fails is undone alone by SQLite, so the job is run
    /// without the savepoint that other jobs get (`SAVEPOINT`/`RELEASE`
    /// and the savepoint's copy of every page it touches: a few µs per
    /// push on ingest's path).
    pub async fn write_statement<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Tx) -> Result<T> + Send + 'static,
    {
        self.write_job(f, true).await
    }

    async fn write_job<T, F>(&self, f: F, one_statement: bool) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Tx) -> Result<T> + Send + 'static,
    {
        let rx = self.enqueue(f, one_statement);
        {
            // Let the other tasks of this thread queue their jobs first, so
            // that one commit takes them all. If this future is dropped
            // meanwhile, the guard still runs the queue.
            let guard = CombineOnDrop(self);
            tokio::task::yield_now().await;
            drop(guard);
        }
        unpack(rx.await)
    }

    /// Same as `write`, for blocking callers (CLI, tests).
    pub fn write_blocking<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Tx) -> Result<T> + Send + 'static,
    {
        let rx = self.submit(f);
        unpack(rx.blocking_recv())
    }

    /// Installs the background step (replacing any previous one); it starts
    /// at once, so work left by a previous run is picked up.
    pub fn set_background(&self, step: Background) -> Result<()> {
        self.ctl
            .send(Ctl::SetBackground(unwind_safe(step)))
            .map_err(|_| StoreError::WriterGone)
    }

    /// Gives the background step a turn even when no push came: an empty
    /// job, whose commit marks it pending (a device registered by another
    /// process must be noticed while the device is silent).
    pub async fn wake_background(&self) -> Result<()> {
        self.write(|_| Ok(())).await
    }

    /// Waits until the background step has caught up with everything
    /// committed before this call (`import` before it exits; tests before
    /// they look at derived tables). Errors of the step are returned.
    pub async fn drain(&self) -> Result<()> {
        let (reply, rx) = oneshot::channel();
        self.ctl
            .send(Ctl::Drain(reply))
            .map_err(|_| StoreError::WriterGone)?;
        rx.await.map_err(|_| StoreError::WriterGone)?
    }

    /// Queues the job and, if the connection is free, runs the queue on
    /// this thread. The job is queued before this returns, so it runs even
    /// if the caller stops waiting.
    fn submit<T, F>(&self, f: F) -> oneshot::Receiver<JobResult>
    where
        T: Send + 'static,
        F: FnOnce(&Tx) -> Result<T> + Send + 'static,
    {
        let rx = self.enqueue(f, false);
        self.combine();
        rx
    }

    fn enqueue<T, F>(&self, f: F, one_statement: bool) -> oneshot::Receiver<JobResult>
    where
        T: Send + 'static,
        F: FnOnce(&Tx) -> Result<T> + Send + 'static,
    {
        let (reply, rx) = oneshot::channel();
        let job = WriteJob {
            run: Box::new(move |tx| f(tx).map(|v| Box::new(v) as Box<dyn std::any::Any + Send>)),
            one_statement,
        };
        lock(&self.shared.queue).push((job, reply));
        rx
    }

    /// What the checkpoint thread uses to have a checkpoint finished with
    /// the writer held (`checkpoint`).
    pub(crate) fn checkpoint_handle(&self) -> CheckpointRequest {
        CheckpointRequest {
            shared: Arc::downgrade(&self.shared),
            ctl: self.ctl.clone(),
        }
    }

    fn combine(&self) {
        let busy = self.shared.combine() == Combined::Busy;
        if busy || self.shared.wake_background.swap(false, Ordering::Relaxed) {
            let _ = self.ctl.send(Ctl::Kick);
        }
    }
}

/// A job's answer, as its caller's type.
fn unpack<T: 'static>(
    answer: std::result::Result<JobResult, oneshot::error::RecvError>,
) -> Result<T> {
    let out = answer.map_err(|_| StoreError::WriterGone)??;
    Ok(*out.downcast::<T>().map_err(|_| StoreError::WriterGone)?)
}

struct CombineOnDrop<'a>(&'a SqliteWriter);

impl Drop for CombineOnDrop<'_> {
    fn drop(&mut self) {
        self.0.combine();
    }
}

#[derive(PartialEq, Eq)]
enum Combined {
    /// The queue was run (here or by whoever held the connection).
    Done,
    /// Another process holds the write lock: jobs are left in the queue.
    Busy,
}

impl Shared {
    /// Runs the queue while the connection is free. Whoever holds the
    /// connection looks at the queue again after letting go, so a job
    /// queued while the connection was held is never left behind.
    fn combine(&self) -> Combined {
        loop {
            let mut core = match self.core.try_lock() {
                Ok(core) => core,
                Err(TryLockError::Poisoned(p)) => p.into_inner(),
                Err(TryLockError::WouldBlock) => return Combined::Done,
            };
            if core.run_queue(&self.queue, false) == Combined::Busy {
                return Combined::Busy;
            }
            drop(core);
            if lock(&self.queue).is_empty() {
                return Combined::Done;
            }
        }
    }
}

/// Asks the background thread to finish a WAL checkpoint with the writer
/// held (see `Writer::checkpoint_handle`).
pub(crate) struct CheckpointRequest {
    shared: std::sync::Weak<Shared>,
    ctl: mpsc::Sender<Ctl>,
}

impl CheckpointRequest {
    /// Asks once; the background thread runs it between two batches. False
    /// once the writer is gone.
    pub(crate) fn request(&self) -> bool {
        let Some(shared) = self.shared.upgrade() else {
            return false;
        };
        shared.checkpoint_wanted.store(true, Ordering::Relaxed);
        self.ctl.send(Ctl::Kick).is_ok()
    }
}

/// Locks `m`, also after a panic in another holder (a panicking job
/// answers its own caller with an error; the connection is still good:
/// its transaction rolled back when dropped).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// When the connection asks for a durable commit (`synchronous` FULL or
/// EXTRA, WAL mode, a file on disk), moves the WAL fsync off the writer
/// thread (`wal_sync`): the writer commits with NORMAL and the sync thread
/// answers each commit once the WAL is fsynced. Otherwise commits stay as
/// the connection says.
fn pipelined_sync(conn: &Connection) -> Option<WalSync> {
    let level: i64 = conn
        .query_row("PRAGMA synchronous", [], |r| r.get(0))
        .ok()?;
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .ok()?;
    let path = conn.path().filter(|p| !p.is_empty())?;
    if level < 2 || !mode.eq_ignore_ascii_case("wal") {
        return None;
    }
    match WalSync::start(std::path::Path::new(path)) {
        Ok(sync) => match conn.pragma_update(None, "synchronous", "NORMAL") {
            Ok(()) => Some(sync),
            Err(e) => {
                tracing::warn!(error = %e, "cannot pipeline WAL syncs; SQLite fsyncs in each commit");
                None
            }
        },
        Err(e) => {
            tracing::warn!(error = %e, "no WAL sync thread; SQLite fsyncs in each commit");
            None
        }
    }
}
