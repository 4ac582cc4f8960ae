//! Group commit: whoever holds the connection runs every queued job in
//! one transaction, each in its own savepoint (one statement jobs
//! without), commits once and answers each job once the commit is durable.
//! A slice of the background step may ride along (`background`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rusqlite::{Connection, Transaction, TransactionBehavior::Immediate};
use tokio::sync::oneshot;

use super::background::SliceDone;
use super::{lock, Background, Combined, JobResult, Reply, StepError, WriteJob};
use crate::log_throttle::LogThrottle;
use crate::store::bg_pace::{self, Pace};
use crate::store::wal_sync::{Ack, WalSync, SYNC_FAILED};
use crate::store::{savepoint, Result, StoreError, Tx};

/// Largest number of jobs committed together.
const MAX_BATCH: usize = 1024;
/// How long a caller's thread waits for another process's write lock
/// before leaving its batch to the background thread.
const CALLER_BUSY_WAIT: Duration = Duration::from_millis(0);
/// How long the background thread waits for another process's write lock
/// at a time. It then logs and waits again, as long as it takes: a device
/// does not read our answer, so a push failed for a lock held by `rebuild`
/// or `import` would be a push lost.
pub(super) const PATIENT_BUSY_WAIT: Duration = Duration::from_secs(1);

/// The connection and everything only its holder touches.
pub(super) struct Core {
    /// Fsyncs the WAL and answers the commits (None: SQLite's commit
    /// fsyncs). Declared before `conn`: it must drop (answering what is
    /// queued) before the connection closes.
    sync: Option<WalSync>,
    pub(super) conn: Connection,
    pub(super) background: Option<Background>,
    /// The background step may have work (set by every commit of jobs).
    pub(super) bg_pending: bool,
    /// The last background slice failed: `drain` must not report caught up
    /// without trying again.
    pub(super) bg_failed: bool,
    pub(super) last_bg: Instant,
    pub(super) last_job: Instant,
    /// Raised when `bg_pending` turns true (see `Shared`).
    wake_background: Arc<AtomicBool>,
    pub(super) pace: Pace,
}

impl Core {
    pub(super) fn new(
        conn: Connection,
        sync: Option<WalSync>,
        wake_background: Arc<AtomicBool>,
    ) -> Core {
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

    /// Commits the queued jobs, batch after batch, until the queue is
    /// empty. `patient` (the background thread): wait out another
    /// process's write lock, and give the background step its slice under
    /// sustained load. Otherwise (a caller's thread) leave the jobs queued
    /// and say Busy when another process holds the lock.
    pub(super) fn run_queue(
        &mut self,
        queue: &Mutex<Vec<(WriteJob, Reply)>>,
        patient: bool,
    ) -> Combined {
        // Callers do not wait on another process's lock; the background
        // thread does.
        let wait = if patient {
            PATIENT_BUSY_WAIT
        } else {
            CALLER_BUSY_WAIT
        };
        let _ = crate::store::wait_for_locks(&self.conn, wait);
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
    pub(super) fn finish_checkpoint(&mut self, wanted: &AtomicBool) {
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
    pub(super) fn acknowledge(&self, acks: Vec<Ack>) {
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
pub(super) fn answer_when_durable<T: Send + 'static>(
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

/// Commits the jobs, and a slice of the background step when given; says
/// what the slice did (`Core::slice_done`).
fn commit_batch(
    tx: Transaction,
    batch: &mut [(WriteJob, Reply)],
    background: Option<&mut Background>,
) -> rusqlite::Result<(Vec<JobResult>, Option<SliceDone>)> {
    let mut results = Vec::with_capacity(batch.len());
    let handle = Tx::new(&tx);
    for (job, _) in batch.iter_mut() {
        // Take the job out; the slot keeps only the reply channel.
        let job = std::mem::replace(job, WriteJob::spent());
        results.push(if job.one_statement {
            (job.run)(&handle)
        } else {
            savepoint(&handle, job.run).and_then(|res| res)
        });
    }
    let slice = background.map(|step| {
        let started = Instant::now();
        let res = savepoint(&handle, |tx| step(tx, started + bg_pace::SLICE))
            .map_err(StepError::from)
            .and_then(|res| res);
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
