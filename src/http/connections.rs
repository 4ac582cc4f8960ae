//! The open connections of the ingest listener, for its two caps: per
//! source address (sources that are not registered devices only) and in all.
//! At the global cap the oldest idle connection of an unregistered source
//! (no request in progress: nothing sent yet, headers incomplete, or a
//! kept-alive connection between requests) is closed to make room; one
//! delivering a push is never cut, and a registered device's connection is
//! never closed and never refused.
//!
//! Cost per connection: one lock of the table at accept and one at close;
//! per request two atomic stores (`Slot::busy`).

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

/// One open connection as the table and its task share it.
pub struct Slot {
    ip: IpAddr,
    registered: bool,
    /// A request is being handled (set when hyper hands its headers to the
    /// service, cleared when the handler has answered).
    busy: AtomicBool,
    /// Asks the connection's task to close it (it is the oldest idle one).
    close: Notify,
}

impl Slot {
    pub fn busy(&self) -> bool {
        self.busy.load(Ordering::Acquire)
    }

    /// Marks a request in progress until the returned guard is dropped.
    pub fn start_request(self: &Arc<Self>) -> Busy {
        self.busy.store(true, Ordering::Release);
        Busy(self.clone())
    }

    /// Resolves when the table asks this connection to close.
    pub async fn close_requested(&self) {
        self.close.notified().await
    }
}

/// A request in progress on its connection (see `Slot::start_request`).
pub struct Busy(Arc<Slot>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.busy.store(false, Ordering::Release);
    }
}

/// Why a new connection was refused (the `reason` label of
/// `callvault_ingest_connections_refused_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// `max_connections_per_ip` connections from this address are open.
    PerIp,
    /// `max_connections` are open and none of them is idle.
    Full,
}

impl Refused {
    pub fn metric_reason(self) -> &'static str {
        match self {
            Refused::PerIp => "per_ip",
            Refused::Full => "full",
        }
    }

    /// The one line a refused client is sent.
    pub fn reason(self) -> &'static str {
        match self {
            Refused::PerIp => "too many connections from this address",
            Refused::Full => "too many connections",
        }
    }
}

#[derive(Default)]
struct Table {
    next_id: u64,
    /// By accept order (ids increase), so the first idle one is the oldest.
    /// An evicted connection leaves it at once (its task closes the socket).
    open: BTreeMap<u64, Arc<Slot>>,
    /// Open connections of each unregistered source address (evicted ones
    /// included until their task ends).
    per_ip: HashMap<IpAddr, usize>,
}

pub struct Connections {
    max_total: usize,
    max_per_ip: usize,
    table: Mutex<Table>,
}

/// What `admit` did besides admitting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Made {
    /// Room was there.
    Room,
    /// This idle connection (address) was asked to close to make room.
    Evicted(IpAddr),
    /// A registered device over the cap with nothing idle to close.
    OverCap,
}

/// An admitted connection: leaves the table when dropped (its task ends).
pub struct Admitted {
    conns: Arc<Connections>,
    id: u64,
    pub slot: Arc<Slot>,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let mut t = self.conns.lock();
        t.open.remove(&self.id);
        if !self.slot.registered {
            if let Some(n) = t.per_ip.get_mut(&self.slot.ip) {
                *n -= 1;
                if *n == 0 {
                    t.per_ip.remove(&self.slot.ip);
                }
            }
        }
        metrics::gauge!("callvault_ingest_connections").set(t.open.len() as f64);
    }
}

impl Connections {
    /// Caps of 0 mean no cap.
    pub fn new(max_total: usize, max_per_ip: usize) -> Arc<Connections> {
        Arc::new(Connections {
            max_total,
            max_per_ip,
            table: Mutex::new(Table::default()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Admits a new connection from `ip` (`registered`: a registered
    /// device's address), or says why not.
    pub fn admit(
        self: &Arc<Self>,
        ip: IpAddr,
        registered: bool,
    ) -> Result<(Admitted, Made), Refused> {
        let mut t = self.lock();
        if !registered
            && self.max_per_ip > 0
            && t.per_ip.get(&ip).copied().unwrap_or(0) >= self.max_per_ip
        {
            return Err(Refused::PerIp);
        }
        let mut made = Made::Room;
        if self.max_total > 0 && t.open.len() >= self.max_total {
            let victim = t
                .open
                .iter()
                .find(|(_, s)| !s.registered && !s.busy())
                .map(|(id, _)| *id);
            match victim.and_then(|id| t.open.remove(&id)) {
                Some(v) => {
                    // Its task checks `busy` again before closing: a request
                    // that started meanwhile is finished, then the
                    // connection closes.
                    v.close.notify_one();
                    made = Made::Evicted(v.ip);
                }
                // Nothing idle: every open connection is delivering a push
                // or is a registered device's. A registered device is
                // admitted anyway: refusing it loses its CDR for good (it
                // does not retry on a refused connection), while one more
                // socket past the cap costs a file descriptor. The cap is
                // kept for everyone else.
                None if registered => made = Made::OverCap,
                None => return Err(Refused::Full),
            }
        }
        let id = t.next_id;
        t.next_id += 1;
        let slot = Arc::new(Slot {
            ip,
            registered,
            busy: AtomicBool::new(false),
            close: Notify::new(),
        });
        t.open.insert(id, slot.clone());
        if !registered {
            *t.per_ip.entry(ip).or_insert(0) += 1;
        }
        metrics::gauge!("callvault_ingest_connections").set(t.open.len() as f64);
        drop(t);
        let admitted = Admitted {
            conns: self.clone(),
            id,
            slot,
        };
        Ok((admitted, made))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn per_ip_cap_is_for_unregistered_sources_and_frees_on_close() {
        let c = Connections::new(0, 2);
        let a = c.admit(ip("10.0.0.1"), false).unwrap();
        let _b = c.admit(ip("10.0.0.1"), false).unwrap();
        assert_eq!(c.admit(ip("10.0.0.1"), false).err(), Some(Refused::PerIp));
        assert!(c.admit(ip("10.0.0.2"), false).is_ok());
        let regs: Vec<_> = (0..5).map(|_| c.admit(ip("10.0.0.9"), true)).collect();
        assert!(regs.iter().all(Result::is_ok), "registered: no per-IP cap");
        drop(a);
        assert!(
            c.admit(ip("10.0.0.1"), false).is_ok(),
            "room again once one closed"
        );
    }

    #[test]
    fn at_the_cap_the_oldest_idle_unregistered_connection_makes_room() {
        let c = Connections::new(3, 0);
        let (reg, _) = c.admit(ip("10.0.0.9"), true).unwrap();
        let (busy, _) = c.admit(ip("10.0.0.1"), false).unwrap();
        let _req = busy.slot.start_request();
        let (idle, _) = c.admit(ip("10.0.0.2"), false).unwrap();
        let (newer, made) = c.admit(ip("10.0.0.3"), false).unwrap();
        assert_eq!(
            made,
            Made::Evicted(ip("10.0.0.2")),
            "the registered and the busy stay"
        );
        drop(idle);
        let _newer_req = newer.slot.start_request();
        // Now nothing is idle: an unregistered source is refused, a
        // registered device admitted over the cap.
        assert_eq!(c.admit(ip("10.0.0.4"), false).err(), Some(Refused::Full));
        let (_r2, made) = c.admit(ip("10.0.0.9"), true).unwrap();
        assert_eq!(made, Made::OverCap);
        drop(reg);
    }
}
