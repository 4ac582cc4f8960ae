//! Refusals (401/403 of the API listener) collapsed so that they cannot
//! fill the disk: one row per address, minute, status and actor, with a
//! count. Refusals are added up in memory and written by one task about
//! once a second ([`FLUSH_DELAY`]), each key's count added to its row
//! (`store::audit::add_collapsed`), so a flood of bad tokens costs one
//! small write a second, not one per request. Memory is bounded: past
//! [`MAX_KEYS`] keys waiting, further addresses of the minute share one
//! row (address `*`).
//!
//! What has not been written when the process dies (at most about a
//! second's counts) is lost; a server that stops normally writes it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio::sync::Notify;

use crate::store::audit::{self as rows, Entry};
use crate::store::Store;

/// How long refusals gather before they are written.
pub const FLUSH_DELAY: Duration = Duration::from_secs(1);

/// Most keys waiting to be written.
pub const MAX_KEYS: usize = 10_000;

/// The address of the row that gathers the refusals past [`MAX_KEYS`].
pub const OVERFLOW_IP: &str = "*";

#[derive(Default)]
pub struct Refusals {
    pending: Mutex<HashMap<String, Entry>>,
    wake: Notify,
}

/// The row a refusal belongs to: its address, minute, status and actor.
pub fn collapse_key(e: &Entry) -> String {
    format!(
        "{}|{}|{}|{}",
        e.ip.as_deref().unwrap_or("-"),
        e.time_ms.div_euclid(60_000),
        e.status,
        e.actor.as_deref().unwrap_or("")
    )
}

impl Refusals {
    /// Counts refusal `e` in its row (the row keeps the first refusal's
    /// time and route).
    pub fn add(&self, mut e: Entry) {
        let mut p = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        let mut key = collapse_key(&e);
        if !p.contains_key(&key) && p.len() >= MAX_KEYS {
            e.ip = Some(OVERFLOW_IP.into());
            e.actor = None;
            e.role = None;
            e.target = "(more addresses than the audit log keeps apart)".into();
            key = collapse_key(&e);
        }
        let was_empty = p.is_empty();
        p.entry(key)
            .and_modify(|row| row.count += e.count)
            .or_insert(e);
        drop(p);
        if was_empty {
            self.wake.notify_one();
        }
    }

    /// Takes what waits to be written.
    fn take(&self) -> HashMap<String, Entry> {
        std::mem::take(&mut *self.pending.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Keys waiting now.
    pub fn waiting(&self) -> usize {
        self.pending.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

/// Held by every clone of the auditor; when the last goes, the writer
/// writes what is left and stops.
pub struct Alive(Arc<Refusals>);

impl Drop for Alive {
    fn drop(&mut self) {
        self.0.wake.notify_one();
    }
}

/// Starts the task that writes `refusals` (on the current runtime; without
/// one, refusals are written at once).
pub fn spawn_writer(store: Store, refusals: Arc<Refusals>) -> Arc<Alive> {
    let alive = Arc::new(Alive(refusals.clone()));
    let weak = Arc::downgrade(&alive);
    match tokio::runtime::Handle::try_current() {
        Ok(rt) => {
            rt.spawn(write_loop(store, refusals, weak));
        }
        Err(_) => tracing::warn!("no runtime: refusals are not collapsed into the audit log"),
    }
    alive
}

async fn write_loop(store: Store, refusals: Arc<Refusals>, alive: Weak<Alive>) {
    loop {
        let stopping = alive.strong_count() == 0;
        if !stopping {
            // Woken by the first refusal after a write, or by the last
            // auditor going; the timeout only looks at the latter again.
            let _ = tokio::time::timeout(Duration::from_secs(5), refusals.wake.notified()).await;
            if alive.strong_count() > 0 {
                tokio::time::sleep(FLUSH_DELAY).await;
            }
        }
        let batch = refusals.take();
        if !batch.is_empty() {
            write(&store, batch).await;
        }
        if stopping && refusals.waiting() == 0 {
            return;
        }
    }
}

async fn write(store: &Store, batch: HashMap<String, Entry>) {
    let rows_of: Vec<(String, Entry)> = batch.into_iter().collect();
    let kept = rows_of.clone();
    let res = store
        .writer
        .write(move |tx| {
            for (key, e) in &rows_of {
                rows::add_collapsed(tx, key, e)?;
            }
            Ok(())
        })
        .await;
    if let Err(err) = res {
        for (_, e) in &kept {
            super::failed(e, &err);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(ip: &str, time_ms: i64) -> Entry {
        let who = super::super::Who {
            ip: Some(ip.into()),
            ..Default::default()
        };
        let mut e = super::super::entry(super::super::Action::Refused, &who, "GET /api/calls", 401);
        e.time_ms = time_ms;
        e
    }

    #[test]
    fn refusals_of_an_address_and_minute_add_up() {
        let r = Refusals::default();
        for i in 0..50 {
            r.add(refusal("192.0.2.1", 60_000 + i));
        }
        r.add(refusal("192.0.2.1", 120_000));
        r.add(refusal("192.0.2.2", 60_000));
        let mut counts: Vec<(String, i64, i64)> = r
            .take()
            .into_values()
            .map(|e| (e.ip.unwrap(), e.time_ms, e.count))
            .collect();
        counts.sort();
        assert_eq!(
            counts,
            [
                ("192.0.2.1".into(), 60_000, 50),
                ("192.0.2.1".into(), 120_000, 1),
                ("192.0.2.2".into(), 60_000, 1)
            ]
        );
        assert_eq!(r.waiting(), 0);
    }

    #[test]
    fn past_the_cap_further_addresses_share_one_row() {
        let r = Refusals::default();
        for i in 0..(MAX_KEYS + 500) {
            r.add(refusal(&format!("10.0.{}.{}", i / 256, i % 256), 60_000));
        }
        let all = r.take();
        assert_eq!(all.len(), MAX_KEYS + 1);
        let overflow: Vec<&Entry> = all
            .values()
            .filter(|e| e.ip.as_deref() == Some(OVERFLOW_IP))
            .collect();
        assert_eq!(overflow.len(), 1);
        assert_eq!(overflow[0].count, 500);
    }
}
