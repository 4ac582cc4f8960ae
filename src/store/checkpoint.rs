//! WAL checkpoints on a thread of their own.
//!
//! By default SQLite checkpoints inside the commit that crosses 1000 WAL
//! pages: that commit then copies the pages into the database file and
//! fsyncs it, and every push waiting on it waits too (the tail of the ingest
//! latency). The writer connection has automatic checkpoints off; this
//! thread runs a PASSIVE checkpoint (it never blocks the writer or readers)
//! every `EVERY`, and a last one when the store is dropped. A checkpoint
//! with nothing new in the WAL costs next to nothing.

use std::path::PathBuf;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Duration;

/// How often to checkpoint: the WAL grows by at most this much traffic.
const EVERY: Duration = Duration::from_millis(200);
/// A WAL this many pages long that could not be checkpointed is worth a
/// note (a reader holding an old snapshot: a long report or export).
const WAL_PAGES: i64 = 10_000;

/// Keeps the checkpoint thread alive; it stops when the last clone drops.
#[derive(Clone)]
pub struct Checkpointer {
    _alive: std::sync::Arc<mpsc::Sender<()>>,
}

impl Checkpointer {
    pub fn start(path: PathBuf) -> Checkpointer {
        let (tx, rx) = mpsc::channel::<()>();
        let spawned = std::thread::Builder::new()
            .name("store-checkpoint".into())
            .spawn(move || run(&path, &rx));
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "no checkpoint thread: the WAL is checkpointed only at close");
        }
        Checkpointer {
            _alive: std::sync::Arc::new(tx),
        }
    }
}

fn run(path: &std::path::Path, stop: &mpsc::Receiver<()>) {
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
