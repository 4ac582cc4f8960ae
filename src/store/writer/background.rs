//! The background step's side of the writer: the thread that installs the
//! step, gives it the writer when idle (and short slices under sustained
//! load, paced by `bg_pace`), answers `drain`, and runs jobs that callers
//! left queued while another process held the write lock.

use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use rusqlite::TransactionBehavior::Immediate;
use tokio::sync::oneshot;

use super::group_commit::{answer_when_durable, Core};
use super::{lock, Background, Ctl, Shared, StepError};
use crate::log_throttle::LogThrottle;
use crate::store::bg_pace;
use crate::store::{panic_text, Result, StoreError, Tx};

/// No job for this long = idle: the background step gets the writer. Not
/// shorter: under load, senders waiting for their reply leave gaps of a few
/// milliseconds between batches, and a background slice in each gap doubled
/// the latency of the next batch.
const BG_IDLE: Duration = Duration::from_millis(20);
/// Longest background run while idle; a job arriving meanwhile waits at
/// most this (plus one fsync).
const BG_IDLE_SLICE: Duration = Duration::from_millis(10);

/// `step` with a panic turned into the error of its slice (rolled back,
/// logged and counted, tried again later like any failure) instead of the
/// end of the writer's thread, which stopped derivation for good and left
/// `drain` waiting for ever. A stage whose state a panic left poisoned keeps
/// failing visibly until a restart rebuilds it from the archive.
pub(super) fn unwind_safe(mut step: Background) -> Background {
    Box::new(move |tx, deadline| {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| step(tx, deadline)))
            .unwrap_or_else(|panic| {
                let what = panic_text(&*panic);
                Err(StoreError::Panicked(format!("the background step: {what}")).into())
            })
    })
}

impl Core {
    /// How long after the last slice the background step gets the next
    /// one while jobs keep coming.
    pub(super) fn bg_every(&mut self) -> Duration {
        self.pace.every(Instant::now())
    }

    /// Records what a background slice given `slice` did, alone or riding
    /// with jobs: its rate for the pace, or its failure (logged, and kept
    /// for `drain`).
    pub(super) fn slice_done(&mut self, res: &StepResult, took: Duration, slice: Duration) {
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
    fn background_alone(&mut self, slice: Duration) -> std::result::Result<(), StepError> {
        let Some(step) = self.background.as_mut() else {
            self.bg_pending = false;
            return Ok(());
        };
        let started = Instant::now();
        self.last_bg = started;
        let res = (|| -> StepResult {
            let tx = self.conn.transaction_with_behavior(Immediate)?;
            let n = step(&Tx::new(&tx), Instant::now() + slice)?;
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
}

/// Logs a failed background slice. It is retried at the next slice, up to
/// a few hundred times a second under load: one line per 10 s, counted.
fn background_failed(e: &StepError) {
    static LOG: LogThrottle = LogThrottle::new(Duration::from_secs(10));
    metrics::counter!("callvault_background_failures_total").increment(1);
    if let Some(left_out) = LOG.admit("background") {
        tracing::error!(error = %e, more_since_last_line = left_out, "background step (derivation) failed; retrying");
    }
}

/// What the background slice riding with a batch of jobs did, and the time
/// it took.
pub(super) type SliceDone = (StepResult, Duration);

/// What one slice of the background step did.
pub(super) type StepResult = std::result::Result<usize, StepError>;

/// The background thread: installs the background step, answers drains,
/// runs the step when the writer is idle (and in slices under sustained
/// load), and runs jobs that callers left queued because another process
/// held the write lock.
pub(super) fn background_thread(shared: &Shared, rx: &mpsc::Receiver<Ctl>) {
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
