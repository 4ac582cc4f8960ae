//! Making commits durable off the writer thread (pipelined group commit).
//!
//! With `synchronous = FULL` SQLite fsyncs the WAL inside every commit, and
//! the writer thread sits idle for that fsync (0.4–1.6 ms on the machines we
//! measured) while the next batch of pushes waits behind it. Instead the
//! writer commits with `synchronous = NORMAL` (frames written to the WAL, no
//! fsync) and hands the commit's replies to this thread, which fdatasyncs
//! the WAL file and only then answers them. The writer meanwhile runs and
//! commits the next batch; one fsync covers every commit written before it.
//!
//! Why this is as durable as FULL for everything we answer: a WAL frame's
//! checksum chains over all earlier frames, so recovery after a power cut
//! keeps a prefix of the committed transactions, and a transaction whose
//! frames were fsynced before we answered is in that prefix. Commits not
//! yet fsynced (and not yet answered) may be lost, exactly like a request
//! whose reply never left. Checkpoints run on their own connection with
//! `synchronous = FULL`, which fsyncs the WAL before copying it into the
//! database and the database before the WAL may be restarted.
//!
//! An fsync that fails leaves the kernel's page cache in an unknown state
//! (a later fsync may "succeed" without the lost pages), so after one
//! failure every later commit is answered with an error until restart.

use std::fs::File;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Instant;

use super::{Result, StoreError};

/// Why writes are refused after a failed fsync.
pub const SYNC_FAILED: &str =
    "an earlier fsync of the WAL failed; restart callvault once the disk is fixed";

/// Called once the commits handed over so far are durable (or not).
pub type Ack = Box<dyn FnOnce(Result<()>) + Send>;

pub struct WalSync {
    /// None only while dropping.
    tx: Option<mpsc::Sender<Vec<Ack>>>,
    failed: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl WalSync {
    /// Starts the thread for the database at `db` (its WAL is `db-wal`).
    pub fn start(db: &std::path::Path) -> std::io::Result<WalSync> {
        let mut wal = db.as_os_str().to_owned();
        wal.push("-wal");
        let wal = PathBuf::from(wal);
        let (tx, rx) = mpsc::channel::<Vec<Ack>>();
        let failed = Arc::new(AtomicBool::new(false));
        let flag = failed.clone();
        let thread = std::thread::Builder::new()
            .name("store-wal-sync".into())
            .spawn(move || run(&wal, &rx, &flag))?;
        Ok(WalSync {
            tx: Some(tx),
            failed,
            thread: Some(thread),
        })
    }

    /// Runs `acks` after the next fsync of the WAL. If the thread is gone,
    /// runs them at once with an error: nothing is answered as durable
    /// that was not made so.
    pub fn after_sync(&self, acks: Vec<Ack>) {
        let sent = match &self.tx {
            Some(tx) => tx.send(acks),
            None => Err(mpsc::SendError(acks)),
        };
        if let Err(mpsc::SendError(acks)) = sent {
            for ack in acks {
                ack(Err(StoreError::NotDurable(
                    "the WAL sync thread has stopped".into(),
                )));
            }
        }
    }

    /// An fsync has failed since start: the archive needs attention.
    pub fn failed(&self) -> bool {
        self.failed.load(Ordering::Relaxed)
    }

    /// The flag behind `failed`, for those who only need to read it.
    pub fn failed_flag(&self) -> Arc<AtomicBool> {
        self.failed.clone()
    }
}

impl Drop for WalSync {
    /// Answers what is still queued before the writer's connection closes
    /// (`Core` drops this first): closing may checkpoint and delete the
    /// WAL, and a sync after that would report a false failure.
    fn drop(&mut self) {
        self.tx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn run(wal: &std::path::Path, rx: &mpsc::Receiver<Vec<Ack>>, failed: &AtomicBool) {
    // Opened at the first sync: the WAL exists once something was committed.
    let mut file: Option<File> = None;
    while let Ok(first) = rx.recv() {
        let mut acks = first;
        while let Ok(more) = rx.try_recv() {
            acks.extend(more);
        }
        let started = Instant::now();
        let res = if failed.load(Ordering::Relaxed) {
            Err(SYNC_FAILED.to_string())
        } else {
            sync(wal, &mut file).map_err(|e| format!("fsync of {} failed: {e}", wal.display()))
        };
        metrics::histogram!("callvault_commit_sync_seconds")
            .record(started.elapsed().as_secs_f64());
        if let Err(e) = &res {
            if !failed.swap(true, Ordering::Relaxed) {
                tracing::error!(error = %e, "commits could not be made durable; every write is refused until restart");
            }
        }
        for ack in acks {
            ack(res.clone().map_err(StoreError::NotDurable));
        }
    }
}

fn sync(wal: &std::path::Path, file: &mut Option<File>) -> std::io::Result<()> {
    // SQLite deletes the WAL only when the last connection closes, and the
    // writer's stays open: the WAL the commits went to is the file first
    // opened here for as long as we run. If the path names another file
    // now (the WAL was deleted, and a connection opened since created a new
    // one), fsyncing that would be a lie: the commits are in the old one.
    let current = std::fs::metadata(wal)?;
    let f = match file {
        Some(f) => {
            match same_file(&f.metadata()?, &current) {
                Some(true) => {}
                Some(false) => {
                    return Err(std::io::Error::other(
                        "the WAL file was deleted or replaced under the archive",
                    ))
                }
                // Cannot tell on this platform: sync what the path names.
                None => *f = File::open(wal)?,
            }
            f
        }
        None => file.insert(File::open(wal)?),
    };
    f.sync_data()
}

/// Whether two metadata are of one file; `None` where we cannot tell.
#[cfg(unix)]
fn same_file(a: &std::fs::Metadata, b: &std::fs::Metadata) -> Option<bool> {
    use std::os::unix::fs::MetadataExt;
    Some(a.ino() == b.ino() && a.dev() == b.dev())
}

#[cfg(not(unix))]
fn same_file(_: &std::fs::Metadata, _: &std::fs::Metadata) -> Option<bool> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ack_into(tx: &mpsc::Sender<Result<()>>) -> Ack {
        let tx = tx.clone();
        Box::new(move |r| {
            let _ = tx.send(r);
        })
    }

    /// Acks run after a successful fsync of the WAL file.
    #[test]
    fn acks_after_the_wal_is_synced() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("a.sqlite");
        std::fs::write(dir.path().join("a.sqlite-wal"), b"frames").expect("wal");
        let sync = WalSync::start(&db).expect("start");
        let (tx, rx) = mpsc::channel();
        sync.after_sync(vec![ack_into(&tx), ack_into(&tx)]);
        for _ in 0..2 {
            rx.recv_timeout(std::time::Duration::from_secs(5))
                .expect("acked")
                .expect("durable");
        }
        assert!(!sync.failed());
    }

    /// The WAL deleted and a new file created at its path (a connection
    /// opened afterwards does that): the commits went to the old file, so
    /// fsyncing the new one must not answer them as durable.
    #[test]
    fn a_wal_replaced_under_us_fails_the_sync() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("a.sqlite");
        let wal = dir.path().join("a.sqlite-wal");
        std::fs::write(&wal, b"frames").expect("wal");
        let sync = WalSync::start(&db).expect("start");
        let (tx, rx) = mpsc::channel();
        let wait = |rx: &mpsc::Receiver<Result<()>>| {
            rx.recv_timeout(std::time::Duration::from_secs(5))
                .expect("acked")
        };
        sync.after_sync(vec![ack_into(&tx)]);
        assert!(wait(&rx).is_ok(), "the first sync opens and syncs the WAL");
        std::fs::remove_file(&wal).expect("delete");
        std::fs::write(&wal, b"").expect("a new, empty WAL");
        sync.after_sync(vec![ack_into(&tx)]);
        assert!(matches!(wait(&rx), Err(StoreError::NotDurable(_))));
        assert!(sync.failed());
    }

    /// A sync that fails answers with an error, and so does every later
    /// one: the page cache can no longer be trusted.
    #[test]
    fn a_failed_sync_fails_every_later_commit() {
        let dir = tempfile::tempdir().expect("tempdir");
        // No WAL file: opening it for the sync fails.
        let sync = WalSync::start(&dir.path().join("missing.sqlite")).expect("start");
        let (tx, rx) = mpsc::channel();
        sync.after_sync(vec![ack_into(&tx)]);
        let first = rx
            .recv_timeout(std::time::Duration::from_secs(5))
            .expect("acked");
        assert!(matches!(first, Err(StoreError::NotDurable(_))), "{first:?}");
        assert!(sync.failed());
        std::fs::write(dir.path().join("missing.sqlite-wal"), b"frames").expect("wal");
        sync.after_sync(vec![ack_into(&tx)]);
        let later = rx
            .recv_timeout(std::time::Duration::from_secs(5))
            .expect("acked");
        assert!(matches!(later, Err(StoreError::NotDurable(_))), "{later:?}");
    }
}
