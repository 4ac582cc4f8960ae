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

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use chrono::{TimeZone, Utc};
use rusqlite::Connection;

use super::{QueueTracker, VisitChange};
use crate::store::{self, events, queues as db};

/// The live tracker shared by the ingest hook and the expiry timer.
#[derive(Clone)]
pub struct QueueLive {
    tracker: Arc<Mutex<QueueTracker>>,
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
            tz_of,
            replayed: Arc::new(Mutex::new(0)),
            ready: Arc::new(AtomicBool::new(false)),
        }
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
    pub fn replay_step(&self, conn: &Connection, deadline: Instant) -> store::Result<usize> {
        if self.ready() {
            return Ok(0);
        }
        let mut after = match self.replayed.lock() {
            Ok(a) => *a,
            Err(_) => return Err(poisoned()),
        };
        let mut n = 0;
        loop {
            let page = events::after(conn, after, REPLAY_PAGE)?;
            let Some(last) = page.last() else {
                let mut t = self.tracker.lock().map_err(|_| poisoned())?;
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
                let mut t = self.tracker.lock().map_err(|_| poisoned())?;
                for e in &page {
                    let received = Utc
                        .timestamp_millis_opt(e.received_ms)
                        .single()
                        .unwrap_or_default();
                    t.on_event_in(
                        &e.device,
                        e.seq,
                        received,
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

    /// Feeds one stored event and writes what it changed.
    pub fn on_event(
        &self,
        conn: &Connection,
        device: &str,
        seq: i64,
        received_ms: i64,
        ev: &crate::model::Event,
    ) -> store::Result<()> {
        let received = Utc
            .timestamp_millis_opt(received_ms)
            .single()
            .unwrap_or_default();
        let changes = match self.tracker.lock() {
            Ok(mut t) => t.on_event_in(device, seq, received, ev, (self.tz_of)(device)),
            Err(_) => return Err(poisoned()),
        };
        self.write(conn, &changes)
    }

    /// Closes visits open longer than the timeout. Nothing before the
    /// start-up replay is done: the tracker does not know its visits yet.
    pub fn expire(&self, conn: &Connection, now_ms: i64) -> store::Result<usize> {
        if !self.ready() {
            return Ok(0);
        }
        let now = Utc
            .timestamp_millis_opt(now_ms)
            .single()
            .unwrap_or_default();
        let changes = match self.tracker.lock() {
            Ok(mut t) => t.expire(now),
            Err(_) => return Err(poisoned()),
        };
        self.write(conn, &changes)?;
        Ok(changes.len())
    }

    fn write(&self, conn: &Connection, changes: &[VisitChange]) -> store::Result<()> {
        for c in changes {
            let v = c.visit();
            db::upsert(conn, v, (self.tz_of)(&v.device))?;
        }
        Ok(())
    }

    /// Replays every stored event (start-up and rebuild). With `write`, the
    /// visits table is cleared and rewritten; without, only memory is rebuilt.
    pub fn replay(&self, conn: &Connection, write: bool, now_ms: i64) -> store::Result<u64> {
        if let Ok(mut t) = self.tracker.lock() {
            *t = QueueTracker::new(t.timeout_secs());
        }
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
                let received = Utc
                    .timestamp_millis_opt(e.received_ms)
                    .single()
                    .unwrap_or_default();
                let changes = match self.tracker.lock() {
                    Ok(mut t) => t.on_event_in(
                        &e.device,
                        e.seq,
                        received,
                        &e.event,
                        (self.tz_of)(&e.device),
                    ),
                    Err(_) => return Err(poisoned()),
                };
                if write {
                    self.write(conn, &changes)?;
                }
                n += 1;
            }
        }
        if write {
            self.expire(conn, now_ms)?;
        } else if let Ok(mut t) = self.tracker.lock() {
            t.expire(
                Utc.timestamp_millis_opt(now_ms)
                    .single()
                    .unwrap_or_default(),
            );
        }
        self.ready.store(true, Ordering::Release);
        Ok(n)
    }
}

fn poisoned() -> store::StoreError {
    store::StoreError::Corrupt("queue tracker poisoned".into())
}
