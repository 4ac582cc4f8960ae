//! Queue visits kept current while serving, and rebuilt from events.
//!
//! The tracker's state lives in memory; at start-up it is rebuilt by
//! replaying the stored events (the same path `rebuild` takes), so live and
//! rebuilt visits are the same by construction. Each change is upserted by
//! its key in the transaction that stored the event.

use std::sync::{Arc, Mutex};

use chrono::{TimeZone, Utc};
use rusqlite::Connection;

use super::{QueueTracker, VisitChange};
use crate::store::{self, events, queues as db};

/// The live tracker shared by the ingest hook and the expiry timer.
#[derive(Clone)]
pub struct QueueLive {
    tracker: Arc<Mutex<QueueTracker>>,
    tz_of: Arc<dyn Fn(&str) -> chrono_tz::Tz + Send + Sync>,
}

impl QueueLive {
    pub fn new(
        timeout_secs: i64,
        tz_of: Arc<dyn Fn(&str) -> chrono_tz::Tz + Send + Sync>,
    ) -> QueueLive {
        QueueLive {
            tracker: Arc::new(Mutex::new(QueueTracker::new(timeout_secs))),
            tz_of,
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
            Ok(mut t) => t.on_event(device, seq, received, ev),
            Err(_) => return Err(store::StoreError::Corrupt("queue tracker poisoned".into())),
        };
        self.write(conn, &changes)
    }

    /// Closes visits open longer than the timeout.
    pub fn expire(&self, conn: &Connection, now_ms: i64) -> store::Result<usize> {
        let now = Utc
            .timestamp_millis_opt(now_ms)
            .single()
            .unwrap_or_default();
        let changes = match self.tracker.lock() {
            Ok(mut t) => t.expire(now),
            Err(_) => return Err(store::StoreError::Corrupt("queue tracker poisoned".into())),
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
                    Ok(mut t) => t.on_event(&e.device, e.seq, received, &e.event),
                    Err(_) => {
                        return Err(store::StoreError::Corrupt("queue tracker poisoned".into()))
                    }
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
        Ok(n)
    }
}
