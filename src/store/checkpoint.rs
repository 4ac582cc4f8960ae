//! WAL checkpoints on a thread of their own.
//!
//! By default SQLite checkpoints inside the commit that crosses 1000 WAL
//! pages: that commit then copies the pages into the database file and
//! fsyncs it, and every push waiting on it waits too (the tail of the ingest
//! latency). The writer connection has automatic checkpoints off; this
//! thread runs a PASSIVE checkpoint (it never blocks the writer or readers)
//! every `EVERY`, and a last one when the store is dropped. A checkpoint
//! with nothing new in the WAL costs next to nothing.
//!
//! Under a steady stream of commits that checkpoint never catches up (new
//! frames arrive while it copies), and SQLite reuses the WAL from its start
//! only after a checkpoint that caught up: the WAL would grow for as long
//! as the load lasts. So when frames are left over, the writer checkpoints
//! the few remaining ones between two batches (`Writer`).

use std::path::PathBuf;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Duration;

use super::writer::CheckpointRequest;

/// How often to checkpoint: the WAL grows by at most this much traffic.
const EVERY: Duration = Duration::from_millis(200);
/// A WAL at least this long (64 MiB of 4 KiB pages, the size it is cut
/// back to, `WAL_SIZE_LIMIT`) is finished by the writer. Not much shorter:
/// the writer holds its batches for that checkpoint's two fsyncs, and
/// finishing at 1000 pages slowed the derivation's catch-up after a burst
/// by a fifth (examples/ingest_bench); at this size by about a tenth.
const FINISH_PAGES: i64 = 16384;
/// A WAL this many pages long that could not be checkpointed is worth a
/// note (a reader holding an old snapshot: a long report or export).
const WAL_PAGES: i64 = 10_000;

/// Keeps the checkpoint thread alive; it stops when the last clone drops.
#[derive(Clone)]
pub struct Checkpointer {
    _alive: std::sync::Arc<mpsc::Sender<()>>,
}

impl Checkpointer {
    pub fn start(path: PathBuf, writer: CheckpointRequest) -> Checkpointer {
        Checkpointer::start_finishing_at(path, writer, FINISH_PAGES)
    }

    /// `start`, with the writer finishing checkpoints once the WAL has
    /// `finish_pages` frames.
    fn start_finishing_at(
        path: PathBuf,
        writer: CheckpointRequest,
        finish_pages: i64,
    ) -> Checkpointer {
        let (tx, rx) = mpsc::channel::<()>();
        let spawned = std::thread::Builder::new()
            .name("store-checkpoint".into())
            .spawn(move || run(&path, &writer, finish_pages, &rx));
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "no checkpoint thread: the WAL is checkpointed only at close");
        }
        Checkpointer {
            _alive: std::sync::Arc::new(tx),
        }
    }
}

fn run(
    path: &std::path::Path,
    writer: &CheckpointRequest,
    finish_pages: i64,
    stop: &mpsc::Receiver<()>,
) {
    let conn = match super::open_connection(path) {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "checkpoint thread cannot open the archive");
            return;
        }
    };
    loop {
        let last = matches!(
            stop.recv_timeout(EVERY),
            Err(RecvTimeoutError::Disconnected)
        );
        // (busy, WAL frames, frames checkpointed); PASSIVE with nothing to do is cheap.
        let res = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
            Ok((r.get::<_, i64>(1)?, r.get::<_, i64>(2)?))
        });
        if let Ok((log, _)) = res {
            // Even a checkpoint that copied all `log` frames it saw is
            // behind by the frames committed while it copied: the writer
            // finishes it between two batches, so that the WAL starts again
            // from its beginning (`Writer`'s finish_checkpoint).
            if log >= finish_pages && !last {
                writer.request();
            }
        }
        match res {
            Ok((log, done)) if log >= WAL_PAGES && done < log => {
                tracing::debug!(
                    log,
                    done,
                    "WAL checkpoint incomplete (readers still on old pages)"
                );
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "WAL checkpoint failed"),
        }
        if last {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::store::{open_connection, Writer};

    const FINISH_AT: i64 = 1000;

    /// Commits that never pause (a burst, an import) still let the WAL
    /// start again from its beginning: it stays a fraction of what was
    /// written through it instead of growing with it.
    #[test]
    fn wal_stays_bounded_under_commits_that_never_pause() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("a.sqlite");
        let conn = open_connection(&path).expect("open");
        conn.execute_batch("CREATE TABLE t (b BLOB); PRAGMA wal_autocheckpoint = 0;")
            .expect("schema");
        let writer = Writer::start(conn);
        let _checkpoints =
            Checkpointer::start_finishing_at(path.clone(), writer.checkpoint_handle(), FINISH_AT);
        let wal = dir.path().join("a.sqlite-wal");
        // Long enough that the WAL's bound (a few checkpoint intervals of
        // writes) is small beside all that was written, and enough bytes
        // however slow the disk's syncs are today (3 s alone once wrote too
        // little under a loaded CI run).
        let enough = 6 * (FINISH_AT as u64) * 4096;
        let (mut written, mut largest) = (0u64, 0u64);
        let started = Instant::now();
        while written < enough || started.elapsed() < Duration::from_secs(3) {
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "only {written} bytes written in 120 s"
            );
            writer
                .write_blocking(|tx| {
                    Ok(tx.execute("INSERT INTO t (b) VALUES (zeroblob(8192))", [])?)
                })
                .expect("write");
            written += 8192;
            largest = largest.max(std::fs::metadata(&wal).map_or(0, |m| m.len()));
        }
        // Without the writer's last step the WAL holds every frame written
        // (more than `written`: pages are rewritten); with it, a few
        // checkpoint intervals' worth (a third of `written` was once
        // exceeded by 0.2 % when the whole test suite shared the cores).
        assert!(
            largest < written / 2,
            "WAL reached {largest} bytes for {written} bytes written"
        );
    }
}
