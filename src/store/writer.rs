//! The single writer and its group commit.
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

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};
use std::time::{Duration, Instant};

use rusqlite::{Connection, Transaction, TransactionBehavior::Immediate};
use tokio::sync::oneshot;

use super::bg_pace::{self, Pace};
use super::wal_sync::{Ack, WalSync, SYNC_FAILED};
use super::{Result, StoreError};
use crate::log_throttle::LogThrottle;

/// Largest number of jobs committed together.
const MAX_BATCH: usize = 1024;
/// No job for this long = idle: the background step gets the writer. Not
/// shorter: under load, senders waiting for their reply leave gaps of a few
/// milliseconds between batches, and a background slice in each gap doubled
/// the latency of the next batch.
const BG_IDLE: Duration = Duration::from_millis(20);
/// Longest background run while idle; a job arriving meanwhile waits at
/// most this (plus one fsync).
const BG_IDLE_SLICE: Duration = Duration::from_millis(10);
/// How long a caller's thread waits for another process's write lock
/// before leaving its batch to the background thread.
const CALLER_BUSY_WAIT: Duration = Duration::from_millis(0);
/// How long the background thread waits for another process's write lock
/// at a time. It then logs and waits again, as long as it takes: a device
/// does not read our answer, so a push failed for a lock held by `rebuild`
/// or `import` would be a push lost.
const PATIENT_BUSY_WAIT: Duration = Duration::from_secs(1);

/// A queued write: the closure, and whether it is a single SQL statement
/// (`Writer::write_statement`), which needs no savepoint of its own.
pub struct WriteJob {
    run: Box<dyn FnOnce(&Transaction) -> JobResult + Send>,
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
pub type Background = Box<dyn FnMut(&Transaction, Instant) -> Result<usize> + Send>;

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

#[derive(Clone)]
pub struct Writer {
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

impl Writer {
    pub fn start(conn: Connection) -> Writer {
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
        Writer {
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
        F: FnOnce(&Transaction) -> Result<T> + Send + 'static,
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
        F: FnOnce(&Transaction) -> Result<T> + Send + 'static,
    {
        self.write_job(f, true).await
    }

    async fn write_job<T, F>(&self, f: F, one_statement: bool) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction) -> Result<T> + Send + 'static,
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
        F: FnOnce(&Transaction) -> Result<T> + Send + 'static,
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
        F: FnOnce(&Transaction) -> Result<T> + Send + 'static,
    {
        let rx = self.enqueue(f, false);
        self.combine();
        rx
    }

    fn enqueue<T, F>(&self, f: F, one_statement: bool) -> oneshot::Receiver<JobResult>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction) -> Result<T> + Send + 'static,
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

struct CombineOnDrop<'a>(&'a Writer);

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

/// `step` with a panic turned into the error of its slice (rolled back,
/// logged and counted, tried again later like any failure) instead of the
/// end of the writer's thread, which stopped derivation for good and left
/// `drain` waiting for ever. A stage whose state a panic left poisoned keeps
/// failing visibly until a restart rebuilds it from the archive.
fn unwind_safe(mut step: Background) -> Background {
    Box::new(move |tx, deadline| {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| step(tx, deadline)))
            .unwrap_or_else(|panic| {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a panic".into());
                Err(StoreError::Corrupt(format!(
                    "background step panicked: {what}"
                )))
            })
    })
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

/// The connection and everything only its holder touches.
struct Core {
    /// Fsyncs the WAL and answers the commits (None: SQLite's commit
    /// fsyncs). Declared before `conn`: it must drop (answering what is
    /// queued) before the connection closes.
    sync: Option<WalSync>,
    conn: Connection,
    background: Option<Background>,
    /// The background step may have work (set by every commit of jobs).
    bg_pending: bool,
    /// The last background slice failed: `drain` must not report caught up
    /// without trying again.
    bg_failed: bool,
    last_bg: Instant,
    last_job: Instant,
    /// Raised when `bg_pending` turns true (see `Shared`).
    wake_background: Arc<AtomicBool>,
    pace: Pace,
}

impl Core {
    fn new(conn: Connection, sync: Option<WalSync>, wake_background: Arc<AtomicBool>) -> Core {
        Core {
            conn,
            sync,
            background: None,
            bg_pending: false,
            bg_failed: false,
            last_bg: Instant::now(),
            last_job: Instant::now(),
            wake_background,
            pace: Pace::new(Instant::now()),
        }
    }

    /// How long after the last slice the background step gets the next
    /// one while jobs keep coming.
    fn bg_every(&mut self) -> Duration {
        self.pace.every(Instant::now())
    }

    /// Commits the queued jobs, batch after batch, until the queue is
    /// empty. `patient` (the background thread): wait out another
    /// process's write lock, and give the background step its slice under
    /// sustained load. Otherwise (a caller's thread) leave the jobs queued
    /// and say Busy when another process holds the lock.
    fn run_queue(&mut self, queue: &Mutex<Vec<(WriteJob, Reply)>>, patient: bool) -> Combined {
        // Callers do not wait on another process's lock; the background
        // thread does.
        let wait = if patient {
            PATIENT_BUSY_WAIT
        } else {
            CALLER_BUSY_WAIT
        };
        let _ = super::wait_for_locks(&self.conn, wait);
        loop {
            let mut jobs = {
                let mut q = lock(queue);
                if q.is_empty() {
                    return Combined::Done;
                }
                let n = q.len().min(MAX_BATCH);
                q.drain(..n).collect::<Vec<_>>()
            };
            self.last_job = Instant::now();
            if let Err(Busy) = self.commit_jobs(&mut jobs, patient) {
                // Back in front, in order, for the background thread (which
                // tries again: `background_thread` runs the queue until it
                // is empty).
                let mut q = lock(queue);
                let later = std::mem::take(&mut *q);
                q.extend(jobs);
                q.extend(later);
                if patient {
                    lock_held_elsewhere(q.len());
                }
                return Combined::Busy;
            }
        }
    }

    /// Checkpoints the rest of the WAL when the checkpoint thread asked: it
    /// copies the bulk on its own connection while commits go on, but new
    /// frames keep arriving meanwhile, and SQLite starts the WAL again from
    /// its beginning only once every frame is checkpointed. Without this
    /// last step under the writer, a sustained load grew the WAL without
    /// bound (900 MB for an 80 MB database in 12 s of examples/ingest_bench),
    /// and with it every reader's WAL look-up and the disk it takes.
    fn finish_checkpoint(&mut self, wanted: &AtomicBool) {
        if !wanted.swap(false, Ordering::Relaxed) {
            return;
        }
        let res = self
            .conn
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
                Ok((r.get::<_, i64>(1)?, r.get::<_, i64>(2)?))
            });
        match res {
            Ok((log, done)) if done < log => {
                // A reader still on an old snapshot (a long report or export).
                tracing::debug!(
                    log,
                    done,
                    "WAL checkpoint incomplete: a reader holds old pages"
                );
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "WAL checkpoint failed"),
        }
    }

    /// Records what a background slice given `slice` did, alone or riding
    /// with jobs: its rate for the pace, or its failure (logged, and kept
    /// for `drain`).
    fn slice_done(&mut self, res: &Result<usize>, took: Duration, slice: Duration) {
        match res {
            Ok(n) => {
                self.pace.slice(*n, took, took >= slice);
                self.bg_failed = false;
            }
            Err(e) => {
                background_failed(e);
                self.bg_failed = true;
            }
        }
    }

    /// Runs the background step alone for up to `slice` and commits.
    fn background_alone(&mut self, slice: Duration) -> Result<()> {
        let Some(step) = self.background.as_mut() else {
            self.bg_pending = false;
            return Ok(());
        };
        let started = Instant::now();
        self.last_bg = started;
        let res = (|| {
            let tx = self.conn.transaction_with_behavior(Immediate)?;
            let n = step(&tx, Instant::now() + slice)?;
            tx.commit()?;
            Ok(n)
        })();
        self.slice_done(&res, started.elapsed(), slice);
        match res {
            Ok(n) => {
                self.bg_pending = n > 0;
                Ok(())
            }
            Err(e) => {
                // Stop retrying in a tight loop; the next commit of jobs
                // (or a drain) tries again.
                self.bg_pending = false;
                Err(e)
            }
        }
    }

    /// Commits `jobs` in one transaction and hands their answers on. Err
    /// when another process holds the write lock (past the connection's
    /// wait): then nothing ran and `jobs` is untouched.
    fn commit_jobs(
        &mut self,
        jobs: &mut Vec<(WriteJob, Reply)>,
        patient: bool,
    ) -> std::result::Result<(), Busy> {
        let started = Instant::now();
        let n = jobs.len();
        if self.sync.as_ref().is_some_and(|s| s.failed()) {
            // The disk lost a sync: write nothing more to it (the device
            // retries; the operator restarts once the disk is fixed).
            for (_, reply) in jobs.drain(..) {
                let _ = reply.send(Err(StoreError::NotDurable(SYNC_FAILED.into())));
            }
            return Ok(());
        }
        // Only the background thread gives slices: a caller's thread
        // answers its own request first.
        let bg_due = patient && self.bg_pending && self.last_bg.elapsed() >= self.bg_every();
        // IMMEDIATE: take the write lock up front (another process's writer,
        // e.g. `import` beside `serve`) instead of failing on upgrade.
        let tx = match self.conn.transaction_with_behavior(Immediate) {
            Ok(tx) => tx,
            Err(e) if is_busy(&e) => return Err(Busy),
            Err(e) => {
                fail_all(jobs, &e);
                return Ok(());
            }
        };
        // Under a sustained burst the writer is never idle: the background
        // thread gives the background step a short slice inside this
        // transaction now and then.
        let bg = if bg_due {
            self.last_bg = Instant::now();
            self.background.as_mut()
        } else {
            None
        };
        match commit_batch(tx, jobs, bg) {
            Ok((results, slice)) => {
                self.pace.jobs(n);
                if let Some((res, took)) = slice {
                    self.slice_done(&res, took, bg_pace::SLICE);
                }
                metrics::histogram!("callvault_commit_seconds")
                    .record(started.elapsed().as_secs_f64());
                metrics::histogram!("callvault_commit_batch_size").record(n as f64);
                let acks = jobs
                    .drain(..)
                    .zip(results)
                    .map(|((_, reply), res)| answer_when_durable(reply, res))
                    .collect();
                self.acknowledge(acks);
            }
            Err(e) => fail_all(jobs, &e),
        }
        // The jobs may have added work for the background step.
        if !self.bg_pending && self.background.is_some() {
            self.bg_pending = true;
            self.wake_background.store(true, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Answers committed work: once the WAL is fsynced when the sync is
    /// pipelined, at once when SQLite's commit already fsynced it.
    fn acknowledge(&self, acks: Vec<Ack>) {
        match &self.sync {
            Some(sync) => sync.after_sync(acks),
            None => acks.into_iter().for_each(|ack| ack(Ok(()))),
        }
    }
}

/// Another process holds the write lock.
struct Busy;

/// The answer `res` for `reply`, sent once the commit it depends on is
/// durable (or with the sync's error if it could not be made so).
fn answer_when_durable<T: Send + 'static>(
    reply: oneshot::Sender<Result<T>>,
    res: Result<T>,
) -> Ack {
    Box::new(move |durable: Result<()>| {
        let _ = reply.send(durable.and(res));
    })
}

fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy)
    )
}

/// Answers every job of a batch that could not be committed.
fn fail_all(jobs: &mut Vec<(WriteJob, Reply)>, e: &rusqlite::Error) {
    tracing::error!(error = %e, jobs = jobs.len(), "group commit failed");
    for (_, reply) in jobs.drain(..) {
        let _ = reply.send(Err(StoreError::Sqlite(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_IOERR),
            Some(format!("commit failed: {e}")),
        ))));
    }
}

/// Logs that another process has held the write lock for a while (a
/// `rebuild` or `import` beside this server): once per 10 s, counted.
fn lock_held_elsewhere(waiting_jobs: usize) {
    static LOG: LogThrottle = LogThrottle::new(Duration::from_secs(10));
    metrics::counter!("callvault_write_lock_waits_total").increment(1);
    if let Some(left_out) = LOG.admit("lock") {
        tracing::warn!(
            waiting_jobs,
            more_since_last_line = left_out,
            "another process holds the archive's write lock; pushes are kept in memory and committed when it lets go"
        );
    }
}

/// Logs a failed background slice. It is retried at the next slice, up to
/// a few hundred times a second under load: one line per 10 s, counted.
fn background_failed(e: &StoreError) {
    static LOG: LogThrottle = LogThrottle::new(Duration::from_secs(10));
    metrics::counter!("callvault_background_failures_total").increment(1);
    if let Some(left_out) = LOG.admit("background") {
        tracing::error!(error = %e, more_since_last_line = left_out, "background step (derivation) failed; retrying");
    }
}

/// What the background slice riding with a batch of jobs did, and the time
/// it took.
type SliceDone = (Result<usize>, Duration);

/// Commits the jobs, and a slice of the background step when given; says
/// what the slice did (`Core::slice_done`).
fn commit_batch(
    tx: Transaction,
    batch: &mut [(WriteJob, Reply)],
    background: Option<&mut Background>,
) -> rusqlite::Result<(Vec<JobResult>, Option<SliceDone>)> {
    let mut results = Vec::with_capacity(batch.len());
    for (job, _) in batch.iter_mut() {
        // Take the job out; the slot keeps only the reply channel.
        let job = std::mem::replace(job, WriteJob::spent());
        results.push(if job.one_statement {
            (job.run)(&tx)
        } else {
            in_savepoint(&tx, job.run)
        });
    }
    let slice = background.map(|step| {
        let started = Instant::now();
        let res = in_savepoint(&tx, |tx| {
            step(tx, started + bg_pace::SLICE).map(|n| Box::new(n) as _)
        })
        .map(|n| n.downcast::<usize>().map_or(0, |n| *n));
        (res, started.elapsed())
    });
    let write = Instant::now();
    tx.commit()?;
    // The part of a commit spent writing the WAL (and fsyncing it, when the
    // sync is not pipelined); the rest of callvault_commit_seconds is
    // running the jobs.
    metrics::histogram!("callvault_commit_wal_write_seconds").record(write.elapsed().as_secs_f64());
    Ok((results, slice))
}

/// The background thread: installs the background step, answers drains,
/// runs the step when the writer is idle (and in slices under sustained
/// load), and runs jobs that callers left queued because another process
/// held the write lock.
fn background_thread(shared: &Shared, rx: &mpsc::Receiver<Ctl>) {
    let mut drains: Vec<oneshot::Sender<Result<()>>> = Vec::new();
    loop {
        let wait = {
            let mut core = lock(&shared.core);
            if !core.bg_pending {
                None
            } else {
                // Wake in time for the next idle check or starvation slice;
                // at once when already idle (catch up slice after slice).
                let idle = BG_IDLE.saturating_sub(core.last_job.elapsed());
                let starve = core.bg_every().saturating_sub(core.last_bg.elapsed());
                Some(idle.min(starve))
            }
        };
        let msg = match wait {
            Some(t) => match rx.recv_timeout(t) {
                Ok(m) => Some(m),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => break,
            },
            None => match rx.recv() {
                Ok(m) => Some(m),
                Err(_) => break,
            },
        };
        let mut next = msg;
        let mut core = lock(&shared.core);
        while let Some(m) = next.take() {
            match m {
                Ctl::SetBackground(b) => {
                    core.background = Some(b);
                    core.bg_pending = true;
                }
                Ctl::Drain(r) => drains.push(r),
                Ctl::Kick => {}
            }
            next = rx.try_recv().ok();
        }
        core.finish_checkpoint(&shared.checkpoint_wanted);
        core.run_queue(&shared.queue, true);
        if core.bg_pending && core.last_job.elapsed() >= BG_IDLE {
            // Idle: one slice of background work in its own transaction.
            let _ = core.background_alone(BG_IDLE_SLICE);
        } else if core.bg_pending && core.last_bg.elapsed() >= core.bg_every() {
            // Sustained load, and no job queued just now (jobs would have
            // carried the slice in run_queue above): a short slice alone.
            let _ = core.background_alone(bg_pace::SLICE);
        }
        if !drains.is_empty() {
            let mut res = Ok(());
            while (core.bg_pending || core.bg_failed) && res.is_ok() {
                core.finish_checkpoint(&shared.checkpoint_wanted);
                core.run_queue(&shared.queue, true);
                res = core.background_alone(BG_IDLE_SLICE);
            }
            let res = res.map_err(|e| e.to_string());
            let acks = drains
                .drain(..)
                .map(|r| answer_when_durable(r, res.clone().map_err(StoreError::Background)))
                .collect();
            core.acknowledge(acks);
        }
        drop(core);
        // Jobs queued while we held the connection (their callers found it
        // taken): run them now, waiting for the connection if need be.
        while !lock(&shared.queue).is_empty() {
            lock(&shared.core).run_queue(&shared.queue, true);
        }
    }
}

/// Runs `f` so that its writes are undone alone when it fails.
fn in_savepoint(tx: &Transaction, f: impl FnOnce(&Transaction) -> JobResult) -> JobResult {
    // Cached statements: parsing these three per job showed in profiles.
    tx.prepare_cached("SAVEPOINT job")?.execute([])?;
    let res = f(tx);
    if res.is_err() {
        tx.prepare_cached("ROLLBACK TO job")?.execute([])?;
    }
    tx.prepare_cached("RELEASE job")?.execute([])?;
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer on a new database file with `schema`, and the file's path.
    fn table_db(dir: &std::path::Path, schema: &str) -> (Writer, std::path::PathBuf) {
        let path = dir.join("w.sqlite");
        let conn = Connection::open(&path).expect("open");
        conn.execute_batch(schema).expect("schema");
        (Writer::start(conn), path)
    }

    /// Jobs batched into one transaction: a failing job's own writes are
    /// undone, the others' are committed, and each caller gets its result.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn failing_job_is_rolled_back_alone_within_a_batch() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (w, path) = table_db(dir.path(), "CREATE TABLE t (v INTEGER)");
        let mut handles = Vec::new();
        for i in 0..50i64 {
            let w = w.clone();
            handles.push(tokio::spawn(async move {
                w.write(move |tx| {
                    tx.execute("INSERT INTO t (v) VALUES (?1)", [i])?;
                    if i % 10 == 3 {
                        return Err(StoreError::NotFound);
                    }
                    Ok(i)
                })
                .await
            }));
        }
        let mut ok = 0;
        for (i, h) in handles.into_iter().enumerate() {
            match h.await.expect("join") {
                Ok(v) => {
                    assert_eq!(v, i as i64);
                    ok += 1;
                }
                Err(e) => assert!(matches!(e, StoreError::NotFound), "{e}"),
            }
        }
        assert_eq!(ok, 45);
        let check = Connection::open(&path).expect("reopen");
        let n: i64 = check
            .query_row("SELECT COUNT(*) FROM t", [], |r| r.get(0))
            .expect("count");
        let bad: i64 = check
            .query_row("SELECT COUNT(*) FROM t WHERE v % 10 = 3", [], |r| r.get(0))
            .expect("count");
        assert_eq!((n, bad), (45, 0));
    }

    /// One-statement jobs run without a savepoint: a statement that fails
    /// half-way (here on its second row) is undone whole by SQLite, the
    /// batch's other jobs are committed, and the transaction goes on.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn failing_statement_is_undone_alone_without_a_savepoint() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (w, path) = table_db(dir.path(), "CREATE TABLE t (v INTEGER CHECK (v % 10 != 3))");
        let mut handles = Vec::new();
        for i in 0..50i64 {
            let w = w.clone();
            handles.push(tokio::spawn(async move {
                // Rows i*10 + 1, then i*10 + 3 when i is odd (refused).
                let second = if i % 2 == 1 { 3 } else { 2 };
                w.write_statement(move |tx| {
                    Ok(tx.execute(
                        "INSERT INTO t (v) VALUES (?1 * 10 + 1), (?1 * 10 + ?2)",
                        [i, second],
                    )?)
                })
                .await
            }));
        }
        let mut ok = 0;
        for (i, h) in handles.into_iter().enumerate() {
            match h.await.expect("join") {
                Ok(rows) => {
                    assert_eq!((i % 2, rows), (0, 2));
                    ok += 1;
                }
                Err(e) => assert!(i % 2 == 1 && e.to_string().contains("CHECK"), "{i}: {e}"),
            }
        }
        assert_eq!(ok, 25);
        let check = Connection::open(&path).expect("reopen");
        let (n, odd): (i64, i64) = check
            .query_row(
                "SELECT COUNT(*), COUNT(*) FILTER (WHERE (v / 10) % 2 = 1) FROM t",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .expect("count");
        assert_eq!((n, odd), (50, 0));
    }

    /// Copies the next row of `src` to `dst`.
    const COPY_ONE: &str = "INSERT INTO dst SELECT v FROM src WHERE v > (SELECT COALESCE(MAX(v), 0) FROM dst) ORDER BY v LIMIT 1";

    /// A background step that copies rows of `src` to `dst`, one per item,
    /// until its deadline.
    fn copier() -> Background {
        copier_costing(Duration::ZERO)
    }

    /// Copies rows like `copier`, each taking at least `cost`.
    fn copier_costing(cost: Duration) -> Background {
        Box::new(move |tx, deadline| {
            let mut done = 0;
            loop {
                let t = Instant::now();
                let n = tx.execute(COPY_ONE, [])?;
                if n == 0 {
                    return Ok(done);
                }
                while t.elapsed() < cost {
                    std::hint::spin_loop();
                }
                done += n;
                if Instant::now() >= deadline {
                    return Ok(done);
                }
            }
        })
    }

    fn copier_db(dir: &std::path::Path) -> (Writer, std::path::PathBuf) {
        let path = dir.join("w.sqlite");
        let conn = Connection::open(&path).expect("open");
        conn.execute_batch("PRAGMA journal_mode = WAL; CREATE TABLE src (v INTEGER PRIMARY KEY); CREATE TABLE dst (v INTEGER PRIMARY KEY)")
            .expect("schema");
        (Writer::start(conn), path)
    }

    fn count(path: &std::path::Path, table: &str) -> i64 {
        Connection::open(path)
            .expect("open")
            .query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0))
            .expect("count")
    }

    /// The background step catches up on its own once jobs stop, and
    /// `drain` returns only when it has.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn background_catches_up_when_idle_and_drain_waits_for_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (w, path) = copier_db(dir.path());
        for i in 1..=200i64 {
            w.write(move |tx| Ok(tx.execute("INSERT INTO src VALUES (?1)", [i])?))
                .await
                .expect("write");
        }
        w.set_background(copier()).expect("install");
        // Idle: no drain asked, the writer gets there by itself.
        let deadline = Instant::now() + Duration::from_secs(10);
        while count(&path, "dst") < 200 {
            assert!(
                Instant::now() < deadline,
                "background did not run while idle"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        for i in 201..=300i64 {
            w.write(move |tx| Ok(tx.execute("INSERT INTO src VALUES (?1)", [i])?))
                .await
                .expect("write");
        }
        w.drain().await.expect("drain");
        assert_eq!(count(&path, "dst"), 300);
    }

    /// Under jobs that never stop arriving (no idle gap) the background
    /// step still progresses, in slices inside the jobs' transactions.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn background_is_not_starved_by_a_sustained_burst() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (w, path) = copier_db(dir.path());
        w.write(|tx| {
            for i in 1..=100_000i64 {
                tx.execute("INSERT INTO src VALUES (?1)", [i])?;
            }
            Ok(())
        })
        .await
        .expect("seed");
        w.set_background(copier()).expect("install");
        // 8 writers back to back for 1 s: the writer is never idle for BG_IDLE.
        let stop = Instant::now() + Duration::from_secs(1);
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let w = w.clone();
            tasks.push(tokio::spawn(async move {
                while Instant::now() < stop {
                    w.write(|tx| Ok(tx.execute("CREATE TABLE IF NOT EXISTS noop (x)", [])?))
                        .await
                        .expect("write");
                }
            }));
        }
        for t in tasks {
            t.await.expect("join");
        }
        let copied = count(&path, "dst");
        assert!(copied > 0, "background made no progress during the burst");
        assert!(
            copied < 100_000,
            "background ran to the end: the burst was not sustained"
        );
    }

    /// A steady load that leaves the writer room is derived as it comes,
    /// not left for after: the background's share follows the load
    /// (`bg_pace`). With the burst share alone (4 %) this copied about 300
    /// of the 1,500 rows by the end.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn background_keeps_up_with_a_steady_load() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (w, path) = copier_db(dir.path());
        // 1,000 rows/s need a fifth of the writer.
        w.set_background(slow_copier()).expect("install");
        let sent = steady_load(&w, 0, Duration::from_millis(1), 1500).await;
        let behind = sent - count(&path, "dst");
        assert!(
            behind < 500,
            "{behind} of {sent} rows not copied at the end of a steady load"
        );
    }

    /// A backlog left when a steady load goes on (after a burst; the
    /// queue tracker's replay at start) is worked off meanwhile, not only
    /// once the load stops. With the load's own share alone, about 850 of
    /// these 1,000 rows were still waiting at the end.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_backlog_is_worked_off_under_a_steady_load() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (w, path) = copier_db(dir.path());
        w.write(|tx| {
            for i in 1..=1_000i64 {
                tx.execute("INSERT INTO src VALUES (?1)", [i])?;
            }
            Ok(())
        })
        .await
        .expect("seed");
        w.set_background(slow_copier()).expect("install");
        // 200 rows/s: 4 % of the writer, 6 % with the margin.
        let sent = 1_000 + steady_load(&w, 1_000, Duration::from_millis(5), 1500).await;
        let behind = sent - count(&path, "dst");
        assert!(behind < 400, "{behind} of {sent} rows not copied");
    }

    /// Copies rows like `copier`, 200 µs each (5,000/s, like deriving a push).
    fn slow_copier() -> Background {
        copier_costing(Duration::from_micros(200))
    }

    /// Adds one row to `src` (after `first`) every `every` for `ms`, each
    /// on its own task like a push; returns how many once all committed.
    async fn steady_load(w: &Writer, first: i64, every: Duration, ms: u64) -> i64 {
        let mut tick = tokio::time::interval(every);
        let (start, mut sent, mut writes) = (Instant::now(), 0i64, Vec::new());
        while start.elapsed() < Duration::from_millis(ms) {
            tick.tick().await;
            sent += 1;
            let (w, v) = (w.clone(), first + sent);
            writes.push(tokio::spawn(async move {
                w.write(move |tx| Ok(tx.execute("INSERT INTO src VALUES (?1)", [v])?))
                    .await
            }));
        }
        for t in writes {
            t.await.expect("join").expect("write");
        }
        sent
    }

    /// A background step that keeps failing (its table is gone, as with a
    /// full disk it would keep failing) neither stops nor undoes the jobs
    /// its slices ride with, is retried, and `drain` reports its error.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failing_background_step_does_not_stop_the_jobs() {
        jobs_run_beside_a_step_that(|tx| Ok(tx.execute("INSERT INTO missing VALUES (1)", [])?))
            .await;
    }

    /// A panic in the step (a bug in a derived stage) is that slice's
    /// error: before, it ended the writer's thread, derivation stopped for
    /// good and `drain` (so `import`) waited for ever.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_panicking_background_step_is_an_error_not_the_end_of_the_writer() {
        jobs_run_beside_a_step_that(|_| panic!("a bug in a derived stage")).await;
    }

    /// Jobs keep committing beside a background step that writes, then
    /// fails with `fail`; its writes are undone, it is retried, and `drain`
    /// reports the failure.
    async fn jobs_run_beside_a_step_that(fail: fn(&Transaction) -> Result<usize>) {
        use std::sync::atomic::AtomicUsize;
        let dir = tempfile::tempdir().expect("tempdir");
        let (w, path) = copier_db(dir.path());
        let tries = Arc::new(AtomicUsize::new(0));
        let t = tries.clone();
        w.set_background(Box::new(move |tx, _| {
            t.fetch_add(1, Ordering::Relaxed);
            tx.execute("INSERT INTO dst VALUES (0)", [])?;
            fail(tx)
        }))
        .expect("install");
        let stop = Instant::now() + Duration::from_millis(300);
        let mut i = 0i64;
        while Instant::now() < stop {
            i += 1;
            w.write(move |tx| Ok(tx.execute("INSERT INTO src VALUES (?1)", [i])?))
                .await
                .expect("job committed");
        }
        assert_eq!(count(&path, "src"), i);
        assert_eq!(
            count(&path, "dst"),
            0,
            "the failed step's writes are undone"
        );
        assert!(tries.load(Ordering::Relaxed) >= 2, "the step was retried");
        assert!(w.drain().await.is_err(), "drain reports the step's error");
    }

    /// A write whose caller stops waiting right after queueing it (the
    /// device hung up) is committed all the same.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn write_is_committed_when_its_caller_stops_waiting() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (w, path) = copier_db(dir.path());
        for i in 1..=20i64 {
            let fut = w.write(move |tx| Ok(tx.execute("INSERT INTO src VALUES (?1)", [i])?));
            // Poll once (the job is queued), then drop the future.
            let _ = tokio::time::timeout(Duration::ZERO, fut).await;
        }
        // A later write that is awaited comes after them in the queue.
        w.write(|tx| Ok(tx.execute("INSERT INTO src VALUES (100)", [])?))
            .await
            .expect("write");
        assert_eq!(count(&path, "src"), 21);
    }

    /// Another process holds the write lock for `hold` while a write
    /// comes: the caller's thread is not blocked on it, the write is not
    /// answered while the lock is held, and it is committed (not failed)
    /// once the lock is let go.
    async fn write_beside_a_lock_held_elsewhere(hold: Duration) {
        let dir = tempfile::tempdir().expect("tempdir");
        let (w, path) = copier_db(dir.path());
        let other = Connection::open(&path).expect("open");
        other.execute_batch("BEGIN IMMEDIATE").expect("lock");
        let write = tokio::spawn({
            let w = w.clone();
            async move {
                w.write(|tx| Ok(tx.execute("INSERT INTO src VALUES (1)", [])?))
                    .await
            }
        });
        // On a one-thread runtime a blocked write would stall the timer.
        let t = Instant::now();
        tokio::time::sleep(hold).await;
        assert!(
            t.elapsed() < hold + Duration::from_millis(800),
            "the runtime thread was blocked for {:?}",
            t.elapsed()
        );
        assert!(!write.is_finished(), "answered while the lock was held");
        other.execute_batch("COMMIT").expect("unlock");
        let n = tokio::time::timeout(Duration::from_secs(10), write)
            .await
            .expect("write finished after the lock was released")
            .expect("join")
            .expect("the write is committed, not failed");
        assert_eq!(n, 1);
        assert_eq!(count(&path, "src"), 1);
    }

    /// The caller's thread leaves its job to the background thread instead
    /// of waiting on the lock itself.
    #[tokio::test(flavor = "current_thread")]
    async fn write_lock_held_elsewhere_does_not_block_the_callers_thread() {
        write_beside_a_lock_held_elsewhere(Duration::from_millis(200)).await;
    }

    /// Held longer than the writer waits at a time (a `rebuild` replaying
    /// queue visits in one transaction): it waits again, as long as it takes.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_write_outlasts_a_long_lock_held_elsewhere() {
        write_beside_a_lock_held_elsewhere(PATIENT_BUSY_WAIT * 5 / 2).await;
    }

    /// A job that panics fails its own batch, not the writer: later writes
    /// are committed.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_panicking_job_does_not_stop_the_writer() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (w, path) = copier_db(dir.path());
        let w2 = w.clone();
        let panicked =
            tokio::spawn(async move { w2.write(|_tx| -> Result<()> { panic!("job bug") }).await })
                .await;
        assert!(panicked.is_err(), "the panic reaches the caller's task");
        w.write(|tx| Ok(tx.execute("INSERT INTO src VALUES (7)", [])?))
            .await
            .expect("write after the panic");
        assert_eq!(count(&path, "src"), 1);
    }

    /// A database that asks for durable commits gets the pipelined WAL
    /// sync; one that does not (or is not in WAL mode) keeps its setting.
    #[test]
    fn wal_sync_is_pipelined_only_where_commits_are_durable() {
        let dir = tempfile::tempdir().expect("tempdir");
        let open = |name: &str, pragmas: &str| {
            let c = Connection::open(dir.path().join(name)).expect("open");
            c.execute_batch(pragmas).expect("pragmas");
            c
        };
        let level = |c: &Connection| -> i64 {
            c.query_row("PRAGMA synchronous", [], |r| r.get(0))
                .expect("pragma")
        };
        let full = open(
            "a.sqlite",
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;",
        );
        assert!(pipelined_sync(&full).is_some());
        assert_eq!(level(&full), 1, "the writer commits with NORMAL");
        let normal = open(
            "b.sqlite",
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;",
        );
        assert!(pipelined_sync(&normal).is_none());
        let rollback = open(
            "c.sqlite",
            "PRAGMA journal_mode = DELETE; PRAGMA synchronous = FULL;",
        );
        assert!(pipelined_sync(&rollback).is_none());
        assert_eq!(level(&rollback), 2);
    }
}
