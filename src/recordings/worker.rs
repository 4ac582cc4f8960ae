//! The fetch worker: claims due jobs from the store (respecting the
//! per-device cap, which counts rows `fetching`), runs each attempt on its
//! own task and records the outcome. All state is in SQLite: a stopped
//! worker leaves its in-flight rows `fetching`, and [`Fetcher::resume`] at
//! the next start puts them back to `pending`.
//!
//! Claims take the devices in turn (one device's backlog never starves the
//! others), within `per_device_concurrency` and `max_concurrent`, and stop
//! while the recordings disk is below its floor ([`DiskFloor`]).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::Instrument;

use super::disk_floor::{self, DiskFloor, FreeSpaceProbe, PauseState};
use super::fetch::{FetchCtx, SetupError};
use crate::config::Config;
use crate::ingest::device::Registry;
use crate::store::recordings::{self as rec_store, Recording};
use crate::store::{self, Store};

/// Longest sleep of an idle worker before it looks for due jobs again.
const POLL: Duration = Duration::from_millis(250);

/// What a one-off pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PassStats {
    pub attempted: usize,
    pub done: usize,
    pub retrying: usize,
    pub missing: usize,
    pub failed: usize,
    /// Set when the pass stopped claiming because the disk is below
    /// `min_free_bytes` (the reason); the rest stays pending.
    pub paused: Option<String>,
}

/// Fetches recordings for one archive; cheap to clone.
#[derive(Clone)]
pub struct Fetcher {
    store: Store,
    cfg: Arc<Config>,
    ctx: Arc<FetchCtx>,
    floor: Arc<DiskFloor>,
}

impl Fetcher {
    /// Fails only on an invalid `[recordings]` configuration.
    /// `registry`: the devices whose recorders may be asked.
    pub fn new(
        store: Store,
        cfg: Arc<Config>,
        registry: Arc<Registry>,
    ) -> Result<Fetcher, SetupError> {
        Fetcher::with_free_space(store, cfg, registry, disk_floor::free_bytes)
    }

    /// [`Fetcher::new`] reading the free space with `probe`.
    pub fn with_free_space(
        store: Store,
        cfg: Arc<Config>,
        registry: Arc<Registry>,
        probe: FreeSpaceProbe,
    ) -> Result<Fetcher, SetupError> {
        let ctx = Arc::new(FetchCtx::new(cfg.clone(), registry)?);
        let floor = Arc::new(DiskFloor::new(
            cfg.recordings_dir(),
            cfg.recordings.min_free_bytes,
            probe,
        ));
        Ok(Fetcher {
            store,
            cfg,
            ctx,
            floor,
        })
    }

    /// Where this fetcher archives recordings: the API serves them from the
    /// same store (one S3 client per process, not one per request).
    pub fn recording_store(&self) -> super::storage::RecordingStore {
        self.ctx.store.clone()
    }

    /// Whether (and why) fetching is paused, for `/healthz`.
    pub fn pause_state(&self) -> PauseState {
        self.floor.state()
    }

    /// Puts rows left `fetching` by a stopped process back to `pending`.
    pub async fn resume(&self) -> store::Result<usize> {
        let n = self.store.writer.write(rec_store::reset_fetching).await?;
        if n > 0 {
            tracing::info!(jobs = n, "resuming interrupted recording fetches");
        }
        Ok(n)
    }

    /// Claims due jobs, the devices' turn continuing from `turn`.
    async fn claim(
        &self,
        due_before: i64,
        exclude: HashSet<i64>,
        turn: &mut Option<String>,
    ) -> store::Result<Vec<Recording>> {
        let limits = rec_store::ClaimLimits {
            per_device: self.cfg.recordings.per_device_concurrency,
            max_concurrent: self.cfg.recordings.max_concurrent,
            lease_ms: i64::try_from(self.cfg.recordings.claim_lease_seconds)
                .unwrap_or(i64::MAX / 1000)
                .saturating_mul(1000),
        };
        let after = turn.clone();
        let claimed = self
            .store
            .writer
            .write(move |tx| {
                rec_store::claim_due(tx, due_before, limits, after.as_deref(), &exclude)
            })
            .await?;
        if claimed.next_after.is_some() {
            *turn = claimed.next_after;
        }
        Ok(claimed.jobs)
    }

    /// One attempt at a claimed job, outcome recorded. Returns the new status.
    pub async fn attempt(&self, rec: Recording) -> store::Result<&'static str> {
        let span = tracing::info_span!("recording_fetch", device = %rec.device, cdr_id = %rec.cdr_id,
            recording = rec.id, attempt = rec.attempts);
        async {
            let res = self.ctx.fetch(&rec).await;
            super::fetch::record_outcome(&self.store, &self.cfg, &rec, res).await
        }
        .instrument(span)
        .await
    }

    /// One pass over the due jobs (all pending ones with `ignore_delay`),
    /// each tried once, at most `per_device_concurrency` at a time per device.
    pub async fn run_due(&self, ignore_delay: bool) -> store::Result<PassStats> {
        let mut seen = HashSet::new();
        let mut stats = PassStats::default();
        let mut running: JoinSet<store::Result<&'static str>> = JoinSet::new();
        let mut turn = None;
        loop {
            let due_before = if ignore_delay {
                i64::MAX
            } else {
                store::now_stamp().1
            };
            let jobs = if stats.paused.is_some() {
                Vec::new()
            } else if let Some(reason) = self.floor.paused().await {
                tracing::warn!(%reason, "recording fetch pass stops claiming");
                stats.paused = Some(reason);
                Vec::new()
            } else {
                self.claim(due_before, seen.clone(), &mut turn).await?
            };
            for job in jobs {
                seen.insert(job.id);
                stats.attempted += 1;
                let me = self.clone();
                running.spawn(async move { me.attempt(job).await });
            }
            let Some(res) = running.join_next().await else {
                break;
            };
            match res.map_err(|_| store::StoreError::WriterGone)?? {
                rec_store::DONE => stats.done += 1,
                rec_store::MISSING => stats.missing += 1,
                rec_store::FAILED => stats.failed += 1,
                _ => stats.retrying += 1,
            }
        }
        Ok(stats)
    }

    /// The background worker of `serve`: runs until `shutdown` turns true,
    /// then abandons in-flight attempts (their rows are resumed at the next start).
    pub fn spawn(self, mut shutdown: watch::Receiver<bool>) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut running: JoinSet<()> = JoinSet::new();
            let mut turn = None;
            loop {
                let now = store::now_stamp().1;
                // Below the disk floor nothing is claimed: jobs stay pending
                // and no attempt is counted until there is room again.
                let claimed = match self.floor.paused().await {
                    Some(_) => Ok(Vec::new()),
                    None => self.claim(now, HashSet::new(), &mut turn).await,
                };
                match claimed {
                    Ok(jobs) => {
                        for job in jobs {
                            let me = self.clone();
                            running.spawn(async move {
                                if let Err(e) = me.attempt(job).await {
                                    tracing::error!(error = %e, "could not record a recording fetch outcome");
                                }
                            });
                        }
                    }
                    Err(e) => tracing::error!(error = %e, "could not claim recording jobs"),
                }
                let wait = self.idle_wait(now).await;
                tokio::select! {
                    _ = shutdown.wait_for(|stop| *stop) => break,
                    Some(_) = running.join_next(), if !running.is_empty() => {}
                    _ = tokio::time::sleep(wait) => {}
                }
            }
            running.abort_all();
            while running.join_next().await.is_some() {}
            tracing::info!("recording fetch worker stopped");
        })
    }

    /// Until the next pending row is due, at most [`POLL`]. A row already
    /// due was left by the claim just made (caps full, or fetching paused):
    /// a finishing job wakes the loop sooner, so wait [`POLL`] rather than spin.
    async fn idle_wait(&self, now: i64) -> Duration {
        match self.store.read(rec_store::next_due).await {
            Ok(Some(due)) if due > now => {
                Duration::from_millis(u64::try_from(due - now).unwrap_or(0))
                    .clamp(Duration::from_millis(5), POLL)
            }
            _ => POLL,
        }
    }
}
