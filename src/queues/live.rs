//! Queue visits kept current while serving, and rebuilt from events.
//!
//! The tracker's state lives in memory; at start-up it is rebuilt by
//! replaying the stored events (the same path `rebuild` takes), so live and
//! rebuilt visits are the same by construction. Each change is upserted by
//! its key in the transaction that stored the event.
//!
//! The start-up replay reads every event ever stored (about 200 k/s: over a
//! minute for a year of a busy call centre), so it does not hold up the
//! start: it runs in slices as the first work of the writer's background
//! step (`replay_step`), before any new event is derived. Pushes are taken
//! and committed meanwhile; their derivation waits for the replay.
//!
//! [`hook`] is what ingest's derivation runs for each new event (and leg:
//! a visitor's visits are linked to the call of its legs), and
//! [`QueueLive::expire_due`] what the server's expiry timer runs.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use chrono::{TimeZone, Utc};

use super::{QueueTracker, VisitChange};
use crate::ingest::derive::HookError;
use crate::ingest::{Hook, StoredItem};
use crate::model::Leg;
use crate::store::{self, events, pushes, queues as db, Store, Tx};

/// Why the live queue visits could not be kept current.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// The archive refused a read or write.
    #[error(transparent)]
    Store(#[from] store::StoreError),
    /// A panic while the tracker was being updated left its state unknown:
    /// visits are not tracked until a restart replays them from the
    /// archive.
    #[error("queue tracker poisoned by an earlier panic")]
    Poisoned,
}

impl<T> From<PoisonError<T>> for QueueError {
    fn from(_: PoisonError<T>) -> QueueError {
        QueueError::Poisoned
    }
}

/// The derivation hook of the queues stage: feeds each new event to the
/// tracker `queues` and writes the visits it changed; links the visits of a
/// new leg's visitor id to the leg's call.
pub fn hook(queues: QueueLive) -> Hook {
    Arc::new(move |tx: &Tx, item: &StoredItem| -> Result<(), HookError> {
        match *item {
            StoredItem::Event {
                device,
                seq,
                received_ms,
                event,
            } => queues.on_event(tx, device, seq, received_ms, event)?,
            StoredItem::Leg { device, leg, .. } => link_leg(tx, device, leg)?,
        }
        Ok(())
    })
}

/// Links the visits of `leg`'s visitor id whose entry its span covers to
/// the leg's call (by the leg's own call id, which keeps resolving to its
/// call).
fn link_leg(tx: &Tx, device: &str, leg: &Leg) -> store::Result<()> {
    match leg.visitor_id.as_deref().filter(|v| !v.is_empty()) {
        Some(visitor) => db::link_leg(
            tx,
            device,
            visitor,
            leg.time_start,
            leg.time_end,
            &crate::calls::call_id(device, &leg.cdr_id),
        ),
        None => Ok(()),
    }
}

/// The live tracker shared by the ingest hook and the expiry timer.
#[derive(Clone)]
pub struct QueueLive {
    tracker: Arc<Mutex<QueueTracker>>,
    /// The visit timeout the tracker was made with (a replay makes a new one).
    timeout_secs: i64,
    tz_of: Arc<dyn Fn(&str) -> chrono_tz::Tz + Send + Sync>,
    /// The start-up replay: the last event seq fed, and whether it is done.
    replayed: Arc<Mutex<i64>>,
    ready: Arc<AtomicBool>,
}

/// Events read per query of the start-up replay: small enough that a slice
/// of the writer's background step (2 ms under load) is not overrun much.
const REPLAY_PAGE: i64 = 256;

impl QueueLive {
    pub fn new(
        timeout_secs: i64,
        tz_of: Arc<dyn Fn(&str) -> chrono_tz::Tz + Send + Sync>,
    ) -> QueueLive {
        QueueLive {
            tracker: Arc::new(Mutex::new(QueueTracker::new(timeout_secs))),
            timeout_secs,
            tz_of,
            replayed: Arc::new(Mutex::new(0)),
            ready: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Forgets the tracker's state and replays the stored events again
    /// before the next event is derived: this collector takes over the
    /// derivation from another one (PostgreSQL), whose events it has not
    /// seen (ARCHITECTURE.md "Derivation").
    pub fn replay_again(&self) -> Result<(), QueueError> {
        self.ready.store(false, Ordering::Release);
        *self.tracker.lock()? = QueueTracker::new(self.timeout_secs);
        *self.replayed.lock()? = 0;
        Ok(())
    }

    /// The stored events have all been replayed (`replay_step`, `replay`).
    pub fn ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// One slice of the start-up replay, in memory only: feeds stored
    /// events after the last one fed until `deadline` or the end, then
    /// closes what timed out meanwhile and is `ready`. Returns the number of
    /// events fed (0 once ready). Only events already derived are stored,
    /// and none is derived until this is done, so it sees each event once.
    pub fn replay_step(&self, conn: &Tx, deadline: Instant) -> Result<usize, QueueError> {
        if self.ready() {
            return Ok(0);
        }
        let mut after = *self.replayed.lock()?;
        let mut n = 0;
        loop {
            let page = events::after(conn, after, REPLAY_PAGE)?;
            let Some(last) = page.last() else {
                let mut t = self.tracker.lock()?;
                t.expire(Utc::now());
                self.ready.store(true, Ordering::Release);
                tracing::info!(
                    last_event = after,
                    "queue tracker has replayed the stored events"
                );
                return Ok(n);
            };
            after = last.seq;
            {
                let mut t = self.tracker.lock()?;
                for e in &page {
                    t.on_event_in(
                        &e.device,
                        e.seq,
                        utc(e.received_ms),
                        &e.event,
                        (self.tz_of)(&e.device),
                    );
                }
            }
            n += page.len();
            if let Ok(mut a) = self.replayed.lock() {
                *a = after;
            }
            if Instant::now() >= deadline {
                return Ok(n);
            }
        }
    }

    /// The writer's background step: the start-up replay in slices
    /// (`replay_step`) until the tracker is ready, then `next` (the
    /// derivation, whose events the tracker must not see before the stored
    /// ones).
    pub fn replay_before(&self, mut next: store::Background) -> store::Background {
        let q = self.clone();
        Box::new(
            move |tx: &Tx, deadline: Instant| -> Result<usize, store::StepError> {
                if !q.ready() {
                    // Nonzero while replaying, and once more when it is done: the
                    // writer calls again, and deriving starts.
                    return Ok(q.replay_step(tx, deadline)?.max(1));
                }
                next(tx, deadline)
            },
        )
    }

    /// Feeds one stored event and writes what it changed.
    pub fn on_event(
        &self,
        conn: &Tx,
        device: &str,
        seq: i64,
        received_ms: i64,
        ev: &crate::model::Event,
    ) -> Result<(), QueueError> {
        let changes = self.tracker.lock()?.on_event_in(
            device,
            seq,
            utc(received_ms),
            ev,
            (self.tz_of)(device),
        );
        Ok(self.write(conn, &changes)?)
    }

    /// Closes visits open longer than the timeout. Nothing before the
    /// start-up replay is done: the tracker does not know its visits yet.
    pub fn expire(&self, conn: &Tx, now_ms: i64) -> Result<usize, QueueError> {
        if !self.ready() {
            return Ok(0);
        }
        let changes = self.tracker.lock()?.expire(utc(now_ms));
        self.write(conn, &changes)?;
        Ok(changes.len())
    }

    /// Closes the visits left open past the timeout, by the clock of the
    /// derived pushes (`pushes::derived_until`): while a backlog is
    /// derived, a visit's exit may still be in it. One write job; what a
    /// failure left half done is rolled back.
    pub async fn expire_due(&self, archive: &Store) -> Result<usize, QueueError> {
        let q = self.clone();
        let now = Utc::now().timestamp_millis();
        archive
            .writer
            .write(move |tx| {
                store::savepoint(tx, |tx| -> Result<usize, QueueError> {
                    let until = pushes::derived_until(tx, now)?;
                    q.expire(tx, until)
                })
            })
            .await?
    }

    fn write(&self, conn: &Tx, changes: &[VisitChange]) -> store::Result<()> {
        for c in changes {
            let v = c.visit();
            db::upsert(conn, v, (self.tz_of)(&v.device))?;
        }
        Ok(())
    }

    /// Replays every stored event (start-up and rebuild). With `write`, the
    /// visits table is cleared and rewritten; without, only memory is rebuilt.
    ///
    /// The replay feeds a tracker of its own and installs it at the end: a
    /// tracker that an earlier panic left poisoned is replaced whole, since
    /// all its state comes from the archive.
    pub fn replay(&self, conn: &Tx, write: bool, now_ms: i64) -> store::Result<u64> {
        let mut tracker = QueueTracker::new(self.timeout_secs);
        if write {
            db::clear(conn)?;
        }
        let mut after = 0;
        let mut n = 0u64;
        loop {
            let page = events::after(conn, after, 5000)?;
            let Some(last) = page.last() else { break };
            after = last.seq;
            for e in &page {
                let changes = tracker.on_event_in(
                    &e.device,
                    e.seq,
                    utc(e.received_ms),
                    &e.event,
                    (self.tz_of)(&e.device),
                );
                if write {
                    self.write(conn, &changes)?;
                }
                n += 1;
            }
        }
        // Closing what timed out by `now_ms` is written only by a tracker
        // that was ready before, as `expire` does: a first replay leaves
        // those visits to the expiry timer.
        if !write || self.ready() {
            let changes = tracker.expire(utc(now_ms));
            if write {
                self.write(conn, &changes)?;
            }
        }
        *self.tracker.lock().unwrap_or_else(PoisonError::into_inner) = tracker;
        self.tracker.clear_poison();
        self.ready.store(true, Ordering::Release);
        Ok(n)
    }
}

/// A receive time in unix milliseconds as an instant (the epoch if out of
/// range).
fn utc(ms: i64) -> chrono::DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}
