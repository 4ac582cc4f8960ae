//! Writes and the background step on PostgreSQL, for many collectors on
//! one database (ARCHITECTURE.md "Durability", "Derivation").
//!
//! A write job runs in its own transaction on a pooled connection and is
//! answered once PostgreSQL has committed it (`synchronous_commit` on: the
//! commit is in the server's WAL). Concurrent jobs need no group commit of
//! ours: PostgreSQL flushes concurrent commits together.
//!
//! The background step (derivation) must see every device's pushes in
//! order whichever collector took them, so one collector at a time runs
//! it: the one holding the session advisory lock [`DERIVE_LOCK`] on a
//! connection it keeps. When that collector dies its connection closes,
//! the lock is free, and the next collector to try takes over within
//! [`LEADER_RETRY`]; a takeover first calls the `on_takeover` callbacks
//! (the queue tracker replays its state from the archive).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use futures_executor::block_on;

use super::backend::PgBackend;
use super::{PgError, PgTx};
use crate::store::writer::{Background, StepError};
use crate::store::{panic_text, Result, StoreError, Tx};

/// The advisory lock of the derivation leader ("callderv").
pub const DERIVE_LOCK: i64 = 0x6361_6c6c_6465_7276;

/// How often a collector that is not the leader tries to become it.
pub const LEADER_RETRY: Duration = Duration::from_secs(2);
/// Longest slice of the background step in one transaction.
const SLICE: Duration = Duration::from_millis(200);
/// How long the leader sleeps when there was nothing to do, unless woken
/// by a write of this collector (another collector's pushes are seen at
/// the next look).
const IDLE_POLL: Duration = Duration::from_millis(100);

/// Called when this collector becomes the derivation leader.
pub type Takeover = Box<dyn FnMut() + Send>;

pub struct PgWriter {
    db: Arc<PgBackend>,
    bg: Arc<BgShared>,
}

#[derive(Default)]
struct BgShared {
    state: Mutex<BgState>,
    wake: Condvar,
    /// Raised when this collector holds the leader lock.
    leader: AtomicBool,
    /// Idle passes of the step (a pass that found nothing to do).
    passes: AtomicU64,
}

#[derive(Default)]
struct BgState {
    step: Option<Background>,
    takeover: Vec<Takeover>,
    started: bool,
    woken: bool,
    stop: bool,
    /// The last slice's failure, for `drain`.
    failed: Option<String>,
}

impl PgWriter {
    pub fn new(db: Arc<PgBackend>) -> PgWriter {
        PgWriter {
            db,
            bg: Arc::new(BgShared::default()),
        }
    }

    pub fn backend(&self) -> &Arc<PgBackend> {
        &self.db
    }

    /// Runs `f` in its own transaction on a blocking thread; answers once
    /// committed.
    pub async fn write<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Tx) -> Result<T> + Send + 'static,
    {
        let db = self.db.clone();
        let out = tokio::task::spawn_blocking(move || db.with_tx(false, f))
            .await
            .map_err(|e| match e.try_into_panic() {
                Ok(p) => StoreError::Panicked(format!("a write job: {}", panic_text(&*p))),
                Err(_) => StoreError::WriterGone,
            })?;
        self.bg.kick();
        out
    }

    /// Same as `write`, for blocking callers (CLI, tests).
    pub fn write_blocking<T>(&self, f: impl FnOnce(&Tx) -> Result<T>) -> Result<T> {
        let out = self.db.with_tx(false, f);
        self.bg.kick();
        out
    }

    /// Installs the background step and starts the thread that runs it
    /// while this collector is the leader.
    pub fn set_background(&self, step: Background) -> Result<()> {
        let mut st = self.bg.lock();
        st.step = Some(step);
        st.woken = true;
        if !st.started {
            st.started = true;
            let (db, bg) = (self.db.clone(), self.bg.clone());
            std::thread::Builder::new()
                .name("store-deriver".into())
                .spawn(move || leader_thread(&db, &bg))
                .map_err(|e| StoreError::Backend(format!("cannot start the deriver: {e}")))?;
        }
        drop(st);
        self.bg.wake.notify_all();
        Ok(())
    }

    /// Adds a callback run each time this collector becomes the leader,
    /// before its first step.
    pub fn on_takeover(&self, f: Takeover) {
        self.bg.lock().takeover.push(f);
    }

    pub fn wake_background(&self) {
        self.bg.kick();
    }

    /// True while this collector runs the background step.
    pub fn is_leader(&self) -> bool {
        self.bg.leader.load(Ordering::Relaxed)
    }

    /// Waits until everything committed before the call is derived,
    /// by whichever collector leads: on the leader, two idle passes after
    /// the call; elsewhere, until the archive's derive backlog is empty.
    pub async fn drain(&self) -> Result<()> {
        let start = self.bg.passes.load(Ordering::Relaxed);
        loop {
            self.bg.kick();
            if self.is_leader() {
                if self.bg.passes.load(Ordering::Relaxed) >= start + 2 {
                    return match self.bg.lock().failed.clone() {
                        Some(e) => Err(StoreError::Background(e)),
                        None => Ok(()),
                    };
                }
            } else {
                let db = self.db.clone();
                let left = tokio::task::spawn_blocking(move || {
                    db.with_tx(true, crate::store::pushes::derive_backlog)
                })
                .await
                .map_err(|_| StoreError::WriterGone)??;
                if left == 0 {
                    return Ok(());
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops the background thread (it lets go of the leader lock).
    pub fn stop(&self) {
        self.bg.lock().stop = true;
        self.bg.wake.notify_all();
    }
}

impl Drop for PgWriter {
    fn drop(&mut self) {
        self.stop();
    }
}

impl BgShared {
    fn lock(&self) -> std::sync::MutexGuard<'_, BgState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn kick(&self) {
        self.lock().woken = true;
        self.wake.notify_all();
    }

    /// Sleeps up to `d` unless woken or stopped; false once stopped.
    fn nap(&self, d: Duration) -> bool {
        let st = self.lock();
        let (mut st, _) = self
            .wake
            .wait_timeout_while(st, d, |s| !s.woken && !s.stop)
            .unwrap_or_else(|e| e.into_inner());
        st.woken = false;
        !st.stop
    }
}

/// Tries to become the leader, then runs the step while it stays one.
fn leader_thread(db: &PgBackend, bg: &BgShared) {
    while !bg.lock().stop {
        match lead(db, bg) {
            Ok(()) => {}
            Err(e) => {
                tracing::warn!(error = %e, "derivation leader: lost the database; trying again")
            }
        }
        bg.leader.store(false, Ordering::Relaxed);
        if !bg.nap(LEADER_RETRY) {
            break;
        }
    }
}

/// One term as leader: returns when the lock could not be had (another
/// collector leads), on stop, or with the error that broke the connection.
fn lead(db: &PgBackend, bg: &BgShared) -> std::result::Result<(), PgError> {
    let mut client = db.client()?;
    let got: bool =
        block_on(client.query_one("SELECT pg_try_advisory_lock($1)", &[&DERIVE_LOCK]))?.get(0);
    if !got {
        return Ok(());
    }
    bg.leader.store(true, Ordering::Relaxed);
    tracing::info!("this collector now derives pushes (derivation leader)");
    for f in bg.lock().takeover.iter_mut() {
        f();
    }
    let res = (|| loop {
        let Some(mut step) = bg.lock().step.take() else {
            if !bg.nap(IDLE_POLL) {
                return Ok(());
            }
            continue;
        };
        let res = run_slice(&mut client, &mut step);
        {
            let mut st = bg.lock();
            if st.step.is_none() {
                st.step = Some(step);
            }
        }
        match res {
            Ok(0) => {
                bg.lock().failed = None;
                bg.passes.fetch_add(1, Ordering::Relaxed);
                if !bg.nap(IDLE_POLL) {
                    return Ok(());
                }
            }
            Ok(_) => bg.lock().failed = None,
            Err(SliceError::Db(e)) => return Err(e),
            Err(SliceError::Step(_)) if client.is_closed() => {
                return Err(PgError::Pool("the leader's connection closed".into()))
            }
            Err(SliceError::Step(e)) => {
                tracing::error!(error = %e, "background step failed; retrying");
                metrics::counter!("callvault_background_failures_total").increment(1);
                bg.lock().failed = Some(e.to_string());
                bg.passes.fetch_add(1, Ordering::Relaxed);
                if !bg.nap(Duration::from_secs(1)) {
                    return Ok(());
                }
            }
        }
        if bg.lock().stop {
            return Ok(());
        }
    })();
    // Let go of the lock with the connection: it is not returned to the
    // pool holding it.
    drop(deadpool_postgres::Object::take(client));
    res
}

enum SliceError {
    /// The connection broke: leadership is in doubt.
    Db(PgError),
    /// The step failed: rolled back, tried again later.
    Step(StepError),
}

fn run_slice(
    client: &mut deadpool_postgres::Object,
    step: &mut Background,
) -> std::result::Result<usize, SliceError> {
    let tx = block_on(client.transaction()).map_err(|e| SliceError::Db(e.into()))?;
    let pg = PgTx::new(tx);
    let deadline = Instant::now() + SLICE;
    let n = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        step(&Tx::postgres(&pg), deadline)
    }))
    .unwrap_or_else(|p| {
        Err(StoreError::Panicked(format!("the background step: {}", panic_text(&*p))).into())
    })
    .map_err(SliceError::Step)?;
    pg.commit().map_err(SliceError::Db)?;
    Ok(n)
}
