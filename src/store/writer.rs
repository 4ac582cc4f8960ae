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

use std::time::Instant;

use rusqlite::{Connection, Transaction};
use tokio::sync::{mpsc, oneshot};

use super::{Result, StoreError};

/// Largest number of jobs committed together.
const MAX_BATCH: usize = 1024;

pub type WriteJob = Box<dyn FnOnce(&Transaction) -> Result<Box<dyn std::any::Any + Send>> + Send>;

struct Envelope {
    job: WriteJob,
    reply: oneshot::Sender<Result<Box<dyn std::any::Any + Send>>>,
}

#[derive(Clone)]
pub struct Writer {
    tx: mpsc::UnboundedSender<Envelope>,
}

impl Writer {
    pub fn start(conn: Connection) -> Writer {
        let (tx, rx) = mpsc::unbounded_channel();
        std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || run(conn, rx))
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

    fn submit<T, F>(&self, f: F) -> Result<oneshot::Receiver<Result<Box<dyn std::any::Any + Send>>>>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction) -> Result<T> + Send + 'static,
    {
        let (reply, rx) = oneshot::channel();
        let job: WriteJob =
            Box::new(move |tx| f(tx).map(|v| Box::new(v) as Box<dyn std::any::Any + Send>));
        self.tx
            .send(Envelope { job, reply })
            .map_err(|_| StoreError::WriterGone)?;
        Ok(rx)
    }
}

fn run(mut conn: Connection, mut rx: mpsc::UnboundedReceiver<Envelope>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = rx.blocking_recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(e) => batch.push(e),
                Err(_) => break,
            }
        }
        let started = Instant::now();
        let n = batch.len();
        match commit_batch(&mut conn, &mut batch) {
            Ok(results) => {
                metrics::histogram!("callvault_commit_seconds")
                    .record(started.elapsed().as_secs_f64());
                metrics::histogram!("callvault_commit_batch_size").record(n as f64);
                for (env, res) in batch.drain(..).zip(results) {
                    let _ = env.reply.send(res);
                }
            }
            Err(e) => {
                tracing::error!(error = %e, jobs = n, "group commit failed");
                for env in batch.drain(..) {
                    let _ =
                        env.reply
                            .send(Err(StoreError::Sqlite(rusqlite::Error::SqliteFailure(
                                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_IOERR),
                                Some(format!("commit failed: {e}")),
                            ))));
                }
            }
        }
    }
}

type JobResult = Result<Box<dyn std::any::Any + Send>>;

fn commit_batch(conn: &mut Connection, batch: &mut [Envelope]) -> rusqlite::Result<Vec<JobResult>> {
    let tx = conn.transaction()?;
    let mut results = Vec::with_capacity(batch.len());
    for env in batch.iter_mut() {
        // Take the job out; the envelope keeps only the reply channel.
        let job = std::mem::replace(&mut env.job, Box::new(|_| Err(StoreError::WriterGone)));
        // Cached statements: parsing these three per job showed in profiles.
        tx.prepare_cached("SAVEPOINT job")?.execute([])?;
        let res = job(&tx);
        if res.is_err() {
            tx.prepare_cached("ROLLBACK TO job")?.execute([])?;
        }
        tx.prepare_cached("RELEASE job")?.execute([])?;
        results.push(res);
    }
    tx.commit()?;
    Ok(results)
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
}
