//! The one task per process that keeps the [`Floor`] current from the
//! stored events and hands it to every watcher of `GET /api/live`
//! (ARCHITECTURE.md "Live wallboard").
//!
//! It reads the `events` table by id cursor (`store::events::after`), not
//! the ingest path, so that on PostgreSQL, where one collector derives
//! for all, every collector's wallboard shows the whole floor. At start it
//! replays the events of the last [`STALE_AFTER_MS`] (no call older than
//! that can still be shown), then polls every [`POLL`]. Each change is
//! published once, as an `Arc` over a `watch` channel: a watcher that
//! is slow only skips to the newest floor, and the floor's JSON for an
//! unlimited token is made once per change, not once per watcher.

use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::sync::watch;

use super::floor::{Floor, Snapshot, STALE_AFTER_MS};
use crate::store::{events, Store};

/// How often the events table is read for new events.
pub const POLL: Duration = Duration::from_millis(250);
/// Events read per query (the start's replay reads on until caught up).
pub const BATCH: i64 = 2_000;

/// One published floor.
#[derive(Debug)]
pub struct Published {
    pub snapshot: Snapshot,
    /// `snapshot` as JSON, for watchers that see every device.
    pub json: String,
    /// The newest event applied (0 before the first).
    pub seq: i64,
}

impl Published {
    fn of(snapshot: Snapshot, seq: i64) -> Published {
        let json = serde_json::to_string(&snapshot).unwrap_or_else(|_| "{}".into());
        Published {
            snapshot,
            json,
            seq,
        }
    }

    /// The JSON a watcher limited to `devices` gets (every device when
    /// empty).
    pub fn json_for(&self, devices: &[String]) -> String {
        if devices.is_empty() {
            return self.json.clone();
        }
        serde_json::to_string(&self.snapshot.for_devices(devices)).unwrap_or_else(|_| "{}".into())
    }
}

/// A handle on the feed: watchers subscribe to it. The task stops when
/// `stop` turns true (the server stops) or once every handle is gone; its
/// watchers' streams end then, so a graceful shutdown does not wait for
/// them.
#[derive(Clone)]
pub struct Feed {
    rx: watch::Receiver<Arc<Published>>,
    _alive: Arc<()>,
}

impl std::fmt::Debug for Feed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Feed")
            .field("seq", &self.rx.borrow().seq)
            .finish()
    }
}

impl Feed {
    /// Starts the task on the current tokio runtime.
    pub fn start(store: Store, stop: watch::Receiver<bool>) -> Feed {
        let now = now_ms();
        let (tx, rx) = watch::channel(Arc::new(Published::of(Floor::new().snapshot(now), 0)));
        let alive = Arc::new(());
        tokio::spawn(run(store, tx, Arc::downgrade(&alive), stop));
        Feed { rx, _alive: alive }
    }

    /// A receiver whose current value is the newest floor.
    pub fn subscribe(&self) -> watch::Receiver<Arc<Published>> {
        self.rx.clone()
    }
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

async fn run(
    store: Store,
    tx: watch::Sender<Arc<Published>>,
    alive: Weak<()>,
    stop: watch::Receiver<bool>,
) {
    // A dropped stop sender reads as its last value: go on.
    let done = || alive.strong_count() == 0 || *stop.borrow();
    let mut floor = Floor::new();
    // Replay the recent past, then follow. A store that cannot be read
    // yet is retried: the wallboard comes up when the archive does.
    let mut cursor = loop {
        let from = now_ms() - STALE_AFTER_MS;
        match store.read(move |c| events::cursor_before(c, from)).await {
            Ok(c) => break c,
            Err(e) => tracing::warn!(error = %e, "live wallboard: cannot read the events yet"),
        }
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    let mut first = true;
    loop {
        if done() {
            return;
        }
        let mut changed = first;
        first = false;
        loop {
            let after = cursor;
            let batch = match store.read(move |c| events::after(c, after, BATCH)).await {
                Ok(b) => b,
                Err(e) => {
                    tracing::warn!(error = %e, "live wallboard: cannot read new events");
                    break;
                }
            };
            for e in &batch {
                changed |= floor.apply(&e.device, e.received_ms, &e.event);
                cursor = e.seq;
            }
            if (batch.len() as i64) < BATCH {
                break;
            }
        }
        let now = now_ms();
        changed |= floor.expire(now);
        if changed {
            metrics::gauge!("callvault_live_calls").set(floor.len() as f64);
            tx.send_replace(Arc::new(Published::of(floor.snapshot(now), cursor)));
        }
        tokio::time::sleep(POLL).await;
    }
}
