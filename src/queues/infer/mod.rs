//! Queue visits inferred from OM events (docs/queues.md; manual §2.5.7, §4.12).
//!
//! The device only reports the *entry* into a queue (`QUEUE`); the exit must
//! be inferred. [`QueueTracker`] keeps, per device, the open visit of each
//! party (an extension or a visitor id) and closes it on:
//!
//! * `RING` agent-ext + queued party → `answered` by the agent;
//! * `BYE` queued party + `ext id` = the group *number* → `abandoned`. The
//!   group number ↔ waiting-group-id mapping is learned from the first such
//!   BYE of a group (see [`QueueTracker::group_numbers`]);
//! * a `BYE` of the queued party with no or another ext (the call ended some
//!   other way, e.g. the RING was lost) → `unknown` at the BYE;
//! * a new `QUEUE` for the same party → the old visit is `unknown` at the new
//!   entry (a party waits in one queue at a time);
//! * a RING/BYE for the same visitor id but another caller number → the id
//!   was recycled (manual §5.6 Q3), the old visit is `unknown` there;
//! * no exit for `visit_timeout_secs` → `unknown`, ended at entry + timeout.
//!
//! Out-of-order rule: events received in the same second may be stored in
//! either order. An exit that matches no open visit waits in a per-device
//! pending buffer; a later `QUEUE` (not rejected) for the same party received
//! at most [`PENDING_WINDOW_SECS`] from it consumes it (the earliest such),
//! and the visit is closed at once with wait = max(0, exit − entry). Pending
//! exits older than the window are dropped and counted as ignored.
//!
//! Everything is a pure function of the events in seq order and of the
//! receive times, so [`infer_all`] (rebuild) equals the live path. Live code
//! should call [`QueueTracker::expire`] with a time no later than the receive
//! time of any event it has not fed yet (e.g. the last fed receive time, or
//! wall clock minus the ingest lag); each `on_event` expires its device's
//! visits at the event's receive time first, so timeouts never depend on
//! when `expire` happened to run.
//!
//! `device` holds the per-device state and the state machine that one
//! entry or exit drives; this module feeds it events and keeps the devices
//! apart.

mod device;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, TimeDelta, Utc};

use super::cc_cdr;
use super::parse;
use super::visit::{GroupNumber, TrackerStats, VisitChange};
use crate::model::{Event, Visit};
use device::{expire_device, on_entry, on_exit, prune_pending, DeviceState};

/// How far apart (receive time) an exit seen before its QUEUE may be.
pub const PENDING_WINDOW_SECS: i64 = 2;

/// Timeouts are clamped to this range so that time arithmetic cannot
/// overflow and a zero timeout does not close visits as they open.
const MIN_TIMEOUT_SECS: i64 = 1;
const MAX_TIMEOUT_SECS: i64 = 100 * 365 * 24 * 3600;

/// Per-device queue state; feed it every event in seq order.
#[derive(Debug, Clone)]
pub struct QueueTracker {
    timeout: TimeDelta,
    devices: BTreeMap<String, DeviceState>,
    stats: TrackerStats,
}

impl QueueTracker {
    /// `visit_timeout_secs` (config `queues.visit_timeout_seconds`) is
    /// clamped to 1 s .. 100 years.
    pub fn new(visit_timeout_secs: i64) -> Self {
        let secs = visit_timeout_secs.clamp(MIN_TIMEOUT_SECS, MAX_TIMEOUT_SECS);
        QueueTracker {
            timeout: TimeDelta::try_seconds(secs).unwrap_or(TimeDelta::MAX),
            devices: BTreeMap::new(),
            stats: TrackerStats::default(),
        }
    }

    /// The timeout this tracker was made with, in seconds.
    pub fn timeout_secs(&self) -> i64 {
        self.timeout.num_seconds()
    }

    /// [`Self::on_event_in`] for a device whose clock is UTC.
    pub fn on_event(
        &mut self,
        device: &str,
        seq: i64,
        received: DateTime<Utc>,
        ev: &Event,
    ) -> Vec<VisitChange> {
        self.on_event_in(device, seq, received, ev, chrono_tz::UTC)
    }

    /// Feeds one stored event of a device whose clock runs in `tz`. Events
    /// other than QUEUE / RING / BYE only advance the device's clock
    /// (timeouts, pending buffer), except a call-center PBX's `CC_CDR`,
    /// which reports a whole visit in device-local times (`cc_cdr`).
    pub fn on_event_in(
        &mut self,
        device: &str,
        seq: i64,
        received: DateTime<Utc>,
        ev: &Event,
        tz: chrono_tz::Tz,
    ) -> Vec<VisitChange> {
        let _span = tracing::trace_span!("queue_event", device, seq).entered();
        let mut out = Vec::new();
        let timeout = self.timeout;
        let stats = &mut self.stats;
        let state = self.devices.entry(device.to_string()).or_default();
        expire_device(state, stats, timeout, received, &mut out);
        prune_pending(state, stats, received);
        match parse::attribute(ev).as_str() {
            cc_cdr::ATTRIBUTE => {
                out.extend(cc_cdr::visit(device, seq, ev, tz).map(VisitChange::Closed));
            }
            "QUEUE" => match parse::parse_queue(ev) {
                Ok(entry) => on_entry(state, stats, device, seq, received, entry, &mut out),
                Err(e) => {
                    stats.queue_malformed += 1;
                    tracing::debug!(device, seq, error = %e, "QUEUE event skipped");
                }
            },
            _ => {
                if let Some(exit) = parse::parse_exit(ev) {
                    on_exit(state, stats, received, exit, &mut out);
                }
            }
        }
        out
    }

    /// Closes every visit open for the timeout at `now` as `unknown`
    /// (ended_at = entry + timeout) and drops stale pending exits.
    pub fn expire(&mut self, now: DateTime<Utc>) -> Vec<VisitChange> {
        let mut out = Vec::new();
        for state in self.devices.values_mut() {
            expire_device(state, &mut self.stats, self.timeout, now, &mut out);
            prune_pending(state, &mut self.stats, now);
        }
        out
    }

    /// The learned group number of `group` on `device`.
    pub fn group_number(&self, device: &str, group: &str) -> Option<&str> {
        self.devices
            .get(device)?
            .group_numbers
            .get(group)
            .map(String::as_str)
    }

    /// Every learned group number ↔ waiting group id mapping.
    pub fn group_numbers(&self) -> Vec<GroupNumber> {
        self.devices
            .iter()
            .flat_map(|(device, s)| {
                s.group_numbers.iter().map(move |(g, n)| GroupNumber {
                    device: device.clone(),
                    group: g.clone(),
                    number: n.clone(),
                })
            })
            .collect()
    }

    /// Visits still waiting, in entry order per device.
    pub fn open_visits(&self) -> Vec<Visit> {
        let mut out = Vec::new();
        for state in self.devices.values() {
            let mut open: Vec<_> = state.open.values().collect();
            open.sort_by_key(|(seq, _)| *seq);
            out.extend(open.into_iter().map(|(_, v)| v.clone()));
        }
        out
    }

    pub fn stats(&self) -> &TrackerStats {
        &self.stats
    }
}

/// Rebuild: feeds `events` (in seq order, as stored) one by one, then
/// expires at `now`, and returns the final state of every visit in order of
/// entry. This is by construction what the live path produces.
pub fn infer_all(
    events: impl IntoIterator<Item = (String, i64, DateTime<Utc>, Event)>,
    visit_timeout_secs: i64,
    now: DateTime<Utc>,
) -> Vec<Visit> {
    let mut tracker = QueueTracker::new(visit_timeout_secs);
    let mut log = VisitLog::default();
    for (device, seq, received, ev) in events {
        log.apply(tracker.on_event(&device, seq, received, &ev));
    }
    log.apply(tracker.expire(now));
    log.visits
}

/// Upserts changes by key, keeping the order in which keys first appeared.
#[derive(Default)]
struct VisitLog {
    visits: Vec<Visit>,
    index: HashMap<String, usize>,
}

impl VisitLog {
    fn apply(&mut self, changes: Vec<VisitChange>) {
        for change in changes {
            let visit = change.into_visit();
            match self.index.get(&visit.key) {
                Some(&i) => {
                    if let Some(slot) = self.visits.get_mut(i) {
                        *slot = visit;
                    }
                }
                None => {
                    self.index.insert(visit.key.clone(), self.visits.len());
                    self.visits.push(visit);
                }
            }
        }
    }
}
