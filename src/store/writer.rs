//! The single writer thread and its group commit.
//!
//! Each write is a job (a closure over the transaction). The thread takes
//! every job that is waiting, runs them in ONE transaction (each inside its
//! own savepoint, so one failing job does not undo the others), commits
//! once, and only then answers each job. So a caller that got `Ok` knows
//! its data is durable, and N concurrent pushes cost one fsync, not N.
//!
//! The job runs on the writer thread whether or not the caller is still
//! waiting: a device that closes its socket right after sending still gets
//! its message committed.
//!
//! Besides the jobs, the thread runs one *background* step (ingest's
//! derivation of legs, events and calls from committed pushes): whenever no
//! job has arrived for `BG_IDLE`, and, so that it cannot starve under a
//! sustained burst, a short slice inside a job batch every `BG_STARVE`.
//! Callers never wait for it, except through [`Writer::drain`].

use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use rusqlite::{Connection, Transaction, TransactionBehavior::Immediate};
use tokio::sync::oneshot;

use super::{Result, StoreError};

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
/// Under sustained load (never idle for BG_IDLE) the background still gets
/// a slice this often...
const BG_STARVE: Duration = Duration::from_millis(50);
/// ...this long, inside the jobs' transaction: 4 % of the writer, which
/// derives about 250 pushes/s, so a steady load below that never builds a
/// backlog even without idle gaps (one OM device sends a few per second).
/// More (10 %) cost the burst ingest rate about 5 points of the ceiling in
/// examples/ingest_bench; short slices keep the latency added to the jobs
/// they ride with small.
const BG_BURST_SLICE: Duration = Duration::from_millis(2);

pub type WriteJob = Box<dyn FnOnce(&Transaction) -> Result<Box<dyn std::any::Any + Send>> + Send>;

/// The background step: does some work, stopping soon after the deadline,
/// and returns how many items it did (0 = nothing left to do).
pub type Background = Box<dyn FnMut(&Transaction, Instant) -> Result<usize> + Send>;

enum Msg {
    Job(
        WriteJob,
        oneshot::Sender<Result<Box<dyn std::any::Any + Send>>>,
    ),
    SetBackground(Background),
    /// Reply once the background step has nothing left to do.
    Drain(oneshot::Sender<Result<()>>),
}

#[derive(Clone)]
pub struct Writer {
    tx: mpsc::Sender<Msg>,
}

impl Writer {
    pub fn start(conn: Connection) -> Writer {
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || Thread::new(conn).run(rx))
            .expect("spawn store writer thread");
        Writer { tx }
    }

    /// Queues `f` and waits until the transaction it ran in is committed.
    pub async fn write<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction) -> Result<T> + Send + 'static,
    {
        let rx = self.submit(f)?;
        let out = rx.await.map_err(|_| StoreError::WriterGone)??;
        Ok(*out.downcast::<T>().map_err(|_| StoreError::WriterGone)?)
    }

    /// Same as `write`, for blocking callers (CLI, tests).
    pub fn write_blocking<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction) -> Result<T> + Send + 'static,
    {
        let rx = self.submit(f)?;
        let out = rx.blocking_recv().map_err(|_| StoreError::WriterGone)??;
        Ok(*out.downcast::<T>().map_err(|_| StoreError::WriterGone)?)
    }

    /// Installs the background step (replacing any previous one); it starts
    /// at once, so work left by a previous run is picked up.
    pub fn set_background(&self, step: Background) -> Result<()> {
        self.tx
            .send(Msg::SetBackground(step))
            .map_err(|_| StoreError::WriterGone)
    }

    /// Waits until the background step has caught up with everything
    /// committed before this call (`import` before it exits; tests before
    /// they look at derived tables). Errors of the step are returned.
    pub async fn drain(&self) -> Result<()> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Msg::Drain(reply))
            .map_err(|_| StoreError::WriterGone)?;
        rx.await.map_err(|_| StoreError::WriterGone)?
    }

    fn submit<T, F>(&self, f: F) -> Result<oneshot::Receiver<Result<Box<dyn std::any::Any + Send>>>>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction) -> Result<T> + Send + 'static,
    {
        let (reply, rx) = oneshot::channel();
        let job: WriteJob =
            Box::new(move |tx| f(tx).map(|v| Box::new(v) as Box<dyn std::any::Any + Send>));
        self.tx
            .send(Msg::Job(job, reply))
            .map_err(|_| StoreError::WriterGone)?;
        Ok(rx)
    }
}

type JobResult = Result<Box<dyn std::any::Any + Send>>;
type Reply = oneshot::Sender<JobResult>;

struct Thread {
    conn: Connection,
    background: Option<Background>,
    /// The background step may have work (set by every commit of jobs).
    bg_pending: bool,
    last_bg: Instant,
}

impl Thread {
    fn new(conn: Connection) -> Thread {
        Thread {
            conn,
            background: None,
            bg_pending: false,
            last_bg: Instant::now(),
        }
    }

    fn run(mut self, rx: mpsc::Receiver<Msg>) {
        let mut jobs: Vec<(WriteJob, Reply)> = Vec::with_capacity(MAX_BATCH);
        let mut drains = Vec::new();
        loop {
            let first = if self.bg_pending {
                match rx.recv_timeout(BG_IDLE) {
                    Ok(m) => Some(m),
                    Err(RecvTimeoutError::Timeout) => None,
                    Err(RecvTimeoutError::Disconnected) => break,
                }
            } else {
                match rx.recv() {
                    Ok(m) => Some(m),
                    Err(_) => break,
                }
            };
            let Some(first) = first else {
                // Idle: one slice of background work in its own transaction.
                let _ = self.background_alone(BG_IDLE_SLICE);
                continue;
            };
            let mut next = Some(first);
            while let Some(m) = next.take() {
                match m {
                    Msg::Job(j, r) => jobs.push((j, r)),
                    Msg::SetBackground(b) => {
                        self.background = Some(b);
                        self.bg_pending = true;
                    }
                    Msg::Drain(r) => drains.push(r),
                }
                if jobs.len() < MAX_BATCH {
                    next = rx.try_recv().ok();
                }
            }
            if !jobs.is_empty() {
                self.commit_jobs(&mut jobs);
            }
            if !drains.is_empty() {
                let mut res = Ok(());
                while self.bg_pending && res.is_ok() {
                    res = self.background_alone(BG_IDLE_SLICE);
                }
                for r in drains.drain(..) {
                    let _ = r.send(match &res {
                        Ok(()) => Ok(()),
                        Err(e) => Err(StoreError::Corrupt(format!("background step failed: {e}"))),
                    });
                }
            }
        }
    }

    /// Runs the background step alone for up to `slice` and commits.
    fn background_alone(&mut self, slice: Duration) -> Result<()> {
        let Some(step) = self.background.as_mut() else {
            self.bg_pending = false;
            return Ok(());
        };
        self.last_bg = Instant::now();
        let res = (|| {
            let tx = self.conn.transaction_with_behavior(Immediate)?;
            let n = step(&tx, Instant::now() + slice)?;
            tx.commit()?;
            Ok(n)
        })();
        match res {
            Ok(n) => {
                self.bg_pending = n > 0;
                Ok(())
            }
            Err(e) => {
                // Stop retrying in a tight loop; the next commit of jobs
                // (or a drain) tries again.
                tracing::error!(error = %e, "background step failed");
                self.bg_pending = false;
                Err(e)
            }
        }
    }

    fn commit_jobs(&mut self, jobs: &mut Vec<(WriteJob, Reply)>) {
        let started = Instant::now();
        let n = jobs.len();
        // Under a sustained burst the writer is never idle: give the
        // background a short slice inside this transaction now and then.
        let bg = if self.bg_pending && self.last_bg.elapsed() >= BG_STARVE {
            self.last_bg = Instant::now();
            self.background.as_mut()
        } else {
            None
        };
        match commit_batch(&mut self.conn, jobs, bg) {
            Ok(results) => {
                metrics::histogram!("callvault_commit_seconds")
                    .record(started.elapsed().as_secs_f64());
                metrics::histogram!("callvault_commit_batch_size").record(n as f64);
                for ((_, reply), res) in jobs.drain(..).zip(results) {
                    let _ = reply.send(res);
                }
            }
            Err(e) => {
                tracing::error!(error = %e, jobs = n, "group commit failed");
                for (_, reply) in jobs.drain(..) {
                    let _ = reply.send(Err(StoreError::Sqlite(rusqlite::Error::SqliteFailure(
                        rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_IOERR),
                        Some(format!("commit failed: {e}")),
                    ))));
                }
            }
        }
        // The jobs may have added work for the background step.
        self.bg_pending = self.background.is_some();
    }
}

fn commit_batch(
    conn: &mut Connection,
    batch: &mut [(WriteJob, Reply)],
    background: Option<&mut Background>,
) -> rusqlite::Result<Vec<JobResult>> {
    // IMMEDIATE: take the write lock up front (waiting on another process's
    // writer, e.g. `import` beside `serve`) instead of failing on upgrade.
    let tx = conn.transaction_with_behavior(Immediate)?;
    let mut results = Vec::with_capacity(batch.len());
    for (job, _) in batch.iter_mut() {
        // Take the job out; the slot keeps only the reply channel.
        let job = std::mem::replace(job, Box::new(|_| Err(StoreError::WriterGone)));
        results.push(in_savepoint(&tx, job));
    }
    if let Some(step) = background {
        let res = in_savepoint(&tx, |tx| {
            step(tx, Instant::now() + BG_BURST_SLICE).map(|n| Box::new(n) as _)
        });
        if let Err(e) = res {
            tracing::error!(error = %e, "background step failed");
        }
    }
    let sync = Instant::now();
    tx.commit()?;
    // The part of a commit spent writing the WAL and fsyncing it (the rest
    // of callvault_commit_seconds is running the jobs).
    metrics::histogram!("callvault_commit_sync_seconds").record(sync.elapsed().as_secs_f64());
    Ok(results)
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

    /// Jobs batched into one transaction: a failing job's own writes are
    /// undone, the others' are committed, and each caller gets its result.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn failing_job_is_rolled_back_alone_within_a_batch() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("w.sqlite");
        let conn = Connection::open(&path).expect("open");
        conn.execute_batch("CREATE TABLE t (v INTEGER)")
            .expect("schema");
        let w = Writer::start(conn);
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

    /// A background step that copies rows of `src` to `dst`, one per item,
    /// until its deadline.
    fn copier() -> Background {
        Box::new(|tx, deadline| {
            let mut done = 0;
            while Instant::now() < deadline {
                let n = tx.execute(
                    "INSERT INTO dst SELECT v FROM src WHERE v > (SELECT COALESCE(MAX(v), 0) FROM dst) ORDER BY v LIMIT 1",
                    [],
                )?;
                if n == 0 {
                    break;
                }
                done += n;
            }
            Ok(done)
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
}
