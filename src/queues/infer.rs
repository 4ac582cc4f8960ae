//! Queue visits inferred from OM events (DESIGN §6, manual §2.5.7, §4.12).
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

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use crate::model::Event;

use super::cc_cdr;
use super::parse::{self, Entry, Exit, ExitMatch, PartyRef};

/// How far apart (receive time) an exit seen before its QUEUE may be.
pub const PENDING_WINDOW_SECS: i64 = 2;

/// Timeouts are clamped to this range so that time arithmetic cannot
/// overflow and a zero timeout does not close visits as they open.
const MIN_TIMEOUT_SECS: i64 = 1;
const MAX_TIMEOUT_SECS: i64 = 100 * 365 * 24 * 3600;

/// How a queue visit ended (or that it has not yet).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Waiting,
    Answered,
    Abandoned,
    RejectedOffline,
    RejectedFull,
    Unknown,
}

impl Outcome {
    /// The serde name, for SQL columns and CSV.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Waiting => "waiting",
            Outcome::Answered => "answered",
            Outcome::Abandoned => "abandoned",
            Outcome::RejectedOffline => "rejected_offline",
            Outcome::RejectedFull => "rejected_full",
            Outcome::Unknown => "unknown",
        }
    }
}

/// One stay of one party in one queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Visit {
    /// Stable id: `"{device}:{entry seq}"`.
    pub key: String,
    pub device: String,
    /// `waiting group`: the group's id (not its number).
    pub group: String,
    /// The group number, when learned (from a BYE) by the time the visit was
    /// entered or closed.
    pub group_number: Option<String>,
    /// `"ext"` or `"visitor"`.
    pub party_kind: String,
    pub party_id: String,
    /// Visitor `from`.
    pub caller: Option<String>,
    /// Visitor `callid`.
    pub callid: Option<String>,
    /// Receive time of the QUEUE event.
    pub entered_at: DateTime<Utc>,
    /// `waiting count` of the QUEUE event.
    pub entry_count: i64,
    pub outcome: Outcome,
    /// The ringing extension, for `answered`.
    pub agent: Option<String>,
    pub ended_at: Option<DateTime<Utc>>,
    /// ended_at − entered_at in seconds (ms precision), 0 for rejections.
    pub wait_seconds: Option<f64>,
}

/// What one event (or an expiry) did. Consumers upsert by `Visit::key`: a
/// visit that ends in the event it entered in (a rejection, a consumed
/// pending exit) comes only as `Closed`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum VisitChange {
    Opened(Visit),
    Closed(Visit),
}

impl VisitChange {
    pub fn visit(&self) -> &Visit {
        match self {
            VisitChange::Opened(v) | VisitChange::Closed(v) => v,
        }
    }

    pub fn into_visit(self) -> Visit {
        match self {
            VisitChange::Opened(v) | VisitChange::Closed(v) => v,
        }
    }
}

/// A learned mapping: on `device`, waiting group id `group` is group number
/// `number`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupNumber {
    pub device: String,
    pub group: String,
    pub number: String,
}

/// Counters for events that did not (directly) change a visit, for /metrics
/// and the log.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrackerStats {
    /// QUEUE events turned into visits (incl. rejections).
    pub entries: u64,
    /// QUEUE events that could not be read (no party, no group, odd reason).
    pub queue_malformed: u64,
    /// Open visits closed as unknown because the party queued again.
    pub requeued: u64,
    /// Open visits closed as unknown because a RING/BYE showed their
    /// visitor id used by another caller.
    pub recycled: u64,
    /// Open visits closed as unknown by the timeout.
    pub timed_out: u64,
    /// BYEs of a queued party without the group number (closed as unknown).
    pub bye_not_group_number: u64,
    /// Exits that arrived before their QUEUE and were matched from the buffer.
    pub late_matched: u64,
    /// RINGs that concerned no queue.
    pub ring_ignored: u64,
    /// BYEs that concerned no queue (e.g. a visitor that never queued).
    pub bye_ignored: u64,
}

/// An exit seen before any matching QUEUE.
#[derive(Debug, Clone)]
struct Pending {
    received: DateTime<Utc>,
    exit: Exit,
}

#[derive(Debug, Clone, Default)]
struct DeviceState {
    /// Open visit per party, with its entry seq (for deterministic order).
    open: BTreeMap<PartyRef, (i64, Visit)>,
    pending: Vec<Pending>,
    /// waiting group id → group number.
    group_numbers: BTreeMap<String, String>,
    /// Ids seen as extensions (RING parties, queued exts): a BYE's other ext
    /// that is a known extension is a talk partner, not a group number.
    known_exts: BTreeSet<String>,
}

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

fn on_entry(
    state: &mut DeviceState,
    stats: &mut TrackerStats,
    device: &str,
    seq: i64,
    received: DateTime<Utc>,
    entry: Entry,
    out: &mut Vec<VisitChange>,
) {
    stats.entries += 1;
    if entry.party.kind == parse::PartyKind::Ext {
        state.known_exts.insert(entry.party.id.clone());
    }
    // A party waits in one queue at a time: queuing again means the old
    // visit ended unseen.
    if let Some((_, old)) = state.open.remove(&entry.party) {
        stats.requeued += 1;
        out.push(VisitChange::Closed(close_unknown(state, old, received)));
    }
    let mut visit = Visit {
        key: format!("{device}:{seq}"),
        device: device.to_string(),
        group_number: state.group_numbers.get(&entry.group).cloned(),
        group: entry.group,
        party_kind: entry.party.kind.as_str().to_string(),
        party_id: entry.party.id.clone(),
        caller: entry.caller,
        callid: entry.callid,
        entered_at: received,
        entry_count: entry.count,
        outcome: Outcome::Waiting,
        agent: None,
        ended_at: None,
        wait_seconds: None,
    };
    if let Some(rejected) = entry.rejection {
        visit.outcome = rejected;
        visit.ended_at = Some(received);
        visit.wait_seconds = Some(0.0);
        out.push(VisitChange::Closed(visit));
        return;
    }
    let window = TimeDelta::seconds(PENDING_WINDOW_SECS);
    let found = state.pending.iter().position(|p| {
        (p.received - received).abs() <= window
            && p.exit.matches(&entry.party).is_some()
            && p.exit.same_call(&entry.party, visit.caller.as_deref())
    });
    if let Some(pending) = found.map(|i| state.pending.remove(i)) {
        if let Some(m) = pending.exit.matches(&entry.party) {
            stats.late_matched += 1;
            let closed = close_by_exit(state, stats, visit, pending.received, m);
            out.push(VisitChange::Closed(closed));
            return;
        }
    }
    state.open.insert(entry.party, (seq, visit.clone()));
    out.push(VisitChange::Opened(visit));
}

fn on_exit(
    state: &mut DeviceState,
    stats: &mut TrackerStats,
    received: DateTime<Utc>,
    exit: Exit,
    out: &mut Vec<VisitChange>,
) {
    if exit.kind == parse::ExitKind::Ring {
        state.known_exts.extend(exit.exts.iter().cloned());
    }
    let candidates = exit.candidates();
    if candidates.is_empty() {
        count_ignored(stats, &exit);
        return;
    }
    for party in candidates {
        let Some(m) = exit.matches(&party) else {
            continue;
        };
        let Some((_, visit)) = state.open.remove(&party) else {
            continue;
        };
        if !exit.same_call(&party, visit.caller.as_deref()) {
            // The id now belongs to another call, so the queued one is over.
            stats.recycled += 1;
            out.push(VisitChange::Closed(close_unknown(state, visit, received)));
            continue;
        }
        out.push(VisitChange::Closed(close_by_exit(
            state, stats, visit, received, m,
        )));
        return;
    }
    // Maybe its QUEUE was stored just after it (same second).
    state.pending.push(Pending { received, exit });
}

/// Applies a RING/BYE to a waiting visit.
fn close_by_exit(
    state: &mut DeviceState,
    stats: &mut TrackerStats,
    mut visit: Visit,
    at: DateTime<Utc>,
    m: ExitMatch,
) -> Visit {
    match m {
        ExitMatch::Answered { agent } => {
            visit.outcome = Outcome::Answered;
            visit.agent = Some(agent);
        }
        ExitMatch::Ended { group_number } => {
            let abandoned = group_number
                .as_deref()
                .is_some_and(|n| is_group_number(state, &visit.group, n));
            if abandoned {
                visit.outcome = Outcome::Abandoned;
            } else {
                stats.bye_not_group_number += 1;
                visit.outcome = Outcome::Unknown;
            }
        }
    }
    finish(state, visit, at)
}

/// Whether `number` (a BYE's ext id) is `group`'s number, learning the
/// mapping when the group has none yet and the id is neither a known
/// extension nor another group's number.
fn is_group_number(state: &mut DeviceState, group: &str, number: &str) -> bool {
    match state.group_numbers.get(group) {
        Some(known) => known == number,
        None => {
            let taken = state.known_exts.contains(number)
                || state.group_numbers.values().any(|n| n == number);
            if !taken {
                tracing::debug!(group, number, "learned queue group number");
                state
                    .group_numbers
                    .insert(group.to_string(), number.to_string());
            }
            !taken
        }
    }
}

fn close_unknown(state: &DeviceState, mut visit: Visit, at: DateTime<Utc>) -> Visit {
    visit.outcome = Outcome::Unknown;
    finish(state, visit, at)
}

fn finish(state: &DeviceState, mut visit: Visit, at: DateTime<Utc>) -> Visit {
    // An exit seen just before its entry (same second) waited 0 s, not < 0.
    let wait_ms = (at - visit.entered_at).num_milliseconds().max(0);
    visit.ended_at = Some(at.max(visit.entered_at));
    visit.wait_seconds = Some(wait_ms as f64 / 1000.0);
    if visit.group_number.is_none() {
        visit.group_number = state.group_numbers.get(&visit.group).cloned();
    }
    visit
}

fn expire_device(
    state: &mut DeviceState,
    stats: &mut TrackerStats,
    timeout: TimeDelta,
    now: DateTime<Utc>,
    out: &mut Vec<VisitChange>,
) {
    let mut due: Vec<(i64, PartyRef, DateTime<Utc>)> = state
        .open
        .iter()
        .filter_map(|(party, (seq, v))| {
            let deadline = v.entered_at.checked_add_signed(timeout)?;
            (deadline <= now).then(|| (*seq, party.clone(), deadline))
        })
        .collect();
    due.sort_by_key(|(seq, _, _)| *seq);
    for (_, party, deadline) in due {
        if let Some((_, visit)) = state.open.remove(&party) {
            stats.timed_out += 1;
            out.push(VisitChange::Closed(close_unknown(state, visit, deadline)));
        }
    }
}

fn prune_pending(state: &mut DeviceState, stats: &mut TrackerStats, now: DateTime<Utc>) {
    let window = TimeDelta::seconds(PENDING_WINDOW_SECS);
    state.pending.retain(|p| {
        let keep = p
            .received
            .checked_add_signed(window)
            .is_none_or(|t| t >= now);
        if !keep {
            count_ignored(stats, &p.exit);
        }
        keep
    });
}

fn count_ignored(stats: &mut TrackerStats, exit: &Exit) {
    match exit.kind {
        parse::ExitKind::Ring => stats.ring_ignored += 1,
        parse::ExitKind::Bye => stats.bye_ignored += 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queues::parse::tests::event;
    use chrono::TimeZone;

    const DEV: &str = "hq";

    fn t(secs: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_700_000_000 + secs, 0)
            .single()
            .expect("valid time")
    }

    /// §2.5.7 visitor QUEUE with the caller of §4.12's RING example.
    fn queue_visitor(id: &str, from: &str, group: &str, count: &str) -> Event {
        event(
            "QUEUE",
            &[
                (
                    "visitor",
                    &[
                        ("id", id),
                        ("from", from),
                        ("to", "888"),
                        ("callid", "45132"),
                    ],
                ),
                ("waiting", &[("group", group), ("count", count)]),
            ],
        )
    }

    fn queue_ext(id: &str, group: &str, count: &str) -> Event {
        event(
            "QUEUE",
            &[
                ("ext", &[("id", id)]),
                ("waiting", &[("group", group), ("count", count)]),
            ],
        )
    }

    /// §4.12: "分机 200 振铃，来电 18201008888 被接入".
    fn ring_visitor(agent: &str, id: &str, from: &str) -> Event {
        event(
            "RING",
            &[
                ("ext", &[("id", agent)]),
                (
                    "visitor",
                    &[
                        ("id", id),
                        ("from", from),
                        ("to", "203"),
                        ("callid", "45132"),
                    ],
                ),
            ],
        )
    }

    fn bye_visitor(id: &str, from: &str, ext: &str) -> Event {
        event(
            "BYE",
            &[
                (
                    "visitor",
                    &[
                        ("id", id),
                        ("from", from),
                        ("to", "888"),
                        ("callid", "40977"),
                    ],
                ),
                ("ext", &[("id", ext)]),
            ],
        )
    }

    fn closed(changes: &[VisitChange]) -> Vec<&Visit> {
        changes
            .iter()
            .filter_map(|c| match c {
                VisitChange::Closed(v) => Some(v),
                VisitChange::Opened(_) => None,
            })
            .collect()
    }

    fn only_closed(changes: Vec<VisitChange>) -> Visit {
        assert_eq!(changes.len(), 1, "expected one change: {changes:?}");
        match changes.into_iter().next() {
            Some(VisitChange::Closed(v)) => v,
            other => panic!("expected Closed, got {other:?}"),
        }
    }

    #[test]
    fn tracker_opens_visit_on_manual_queue() {
        let mut q = QueueTracker::new(3600);
        let ch = q.on_event(DEV, 1, t(0), &queue_visitor("77", "18201008888", "6", "2"));
        let [VisitChange::Opened(v)] = ch.as_slice() else {
            panic!("expected Opened: {ch:?}");
        };
        assert_eq!(v.key, "hq:1");
        assert_eq!((v.group.as_str(), v.entry_count), ("6", 2));
        assert_eq!(
            (v.party_kind.as_str(), v.party_id.as_str()),
            ("visitor", "77")
        );
        assert_eq!(v.caller.as_deref(), Some("18201008888"));
        assert_eq!(v.outcome, Outcome::Waiting);
        assert_eq!(q.open_visits().len(), 1);
    }

    #[test]
    fn tracker_answers_visitor_on_manual_ring() {
        let mut q = QueueTracker::new(3600);
        q.on_event(DEV, 1, t(0), &queue_visitor("75", "18201008888", "6", "1"));
        let v = only_closed(q.on_event(DEV, 2, t(37), &ring_visitor("200", "75", "18201008888")));
        assert_eq!(v.key, "hq:1");
        assert_eq!(v.outcome, Outcome::Answered);
        assert_eq!(v.agent.as_deref(), Some("200"));
        assert_eq!(v.ended_at, Some(t(37)));
        assert_eq!(v.wait_seconds, Some(37.0));
        assert!(q.open_visits().is_empty());
    }

    #[test]
    fn tracker_answers_ext_on_manual_ring() {
        // §4.12: "分机 201 振铃，分机 213 被接入".
        let mut q = QueueTracker::new(3600);
        q.on_event(DEV, 1, t(0), &queue_ext("213", "6", "1"));
        let ring = event(
            "RING",
            &[("ext", &[("id", "201")]), ("ext", &[("id", "213")])],
        );
        let v = only_closed(q.on_event(DEV, 2, t(12), &ring));
        assert_eq!(
            (v.outcome, v.agent.as_deref()),
            (Outcome::Answered, Some("201"))
        );
        assert_eq!(v.wait_seconds, Some(12.0));
    }

    #[test]
    fn tracker_abandons_ext_on_manual_bye_and_learns_group_number() {
        // §4.12: "分机 201 主动退出队列", ext id="3" is the group number.
        let mut q = QueueTracker::new(3600);
        q.on_event(DEV, 1, t(0), &queue_ext("201", "6", "1"));
        let bye = event(
            "BYE",
            &[
                ("ext", &[("id", "201")]),
                ("ext", &[("id", "3")]),
                ("recording", &[]),
            ],
        );
        let v = only_closed(q.on_event(DEV, 2, t(9), &bye));
        assert_eq!(v.outcome, Outcome::Abandoned);
        assert_eq!(v.group_number.as_deref(), Some("3"));
        assert_eq!(v.wait_seconds, Some(9.0));
        assert_eq!(q.group_number(DEV, "6"), Some("3"));
        assert_eq!(
            q.group_numbers(),
            vec![GroupNumber {
                device: DEV.into(),
                group: "6".into(),
                number: "3".into()
            }]
        );
    }

    #[test]
    fn tracker_abandons_visitor_on_manual_bye() {
        // §4.12: "来电 18201008888 主动退出队列".
        let mut q = QueueTracker::new(3600);
        q.on_event(DEV, 1, t(0), &queue_visitor("17", "18201008888", "6", "1"));
        let v = only_closed(q.on_event(DEV, 2, t(4), &bye_visitor("17", "18201008888", "3")));
        assert_eq!(v.outcome, Outcome::Abandoned);
        assert_eq!(v.agent, None);
        assert_eq!(q.group_number(DEV, "6"), Some("3"));
    }

    #[test]
    fn tracker_gives_learned_group_number_to_later_visits() {
        let mut q = QueueTracker::new(3600);
        q.on_event(DEV, 1, t(0), &queue_visitor("17", "18201008888", "6", "1"));
        q.on_event(DEV, 2, t(4), &bye_visitor("17", "18201008888", "3"));
        let ch = q.on_event(DEV, 3, t(10), &queue_ext("200", "6", "1"));
        assert_eq!(ch[0].visit().group_number.as_deref(), Some("3"));
    }

    #[test]
    fn tracker_rejects_manual_offline_at_once() {
        let mut q = QueueTracker::new(3600);
        let offline = event(
            "QUEUE",
            &[
                ("ext", &[("id", "200")]),
                (
                    "waiting",
                    &[("group", "7"), ("count", "0"), ("reason", "offline")],
                ),
            ],
        );
        let v = only_closed(q.on_event(DEV, 1, t(0), &offline));
        assert_eq!(v.outcome, Outcome::RejectedOffline);
        assert_eq!((v.ended_at, v.wait_seconds), (Some(t(0)), Some(0.0)));
        assert!(q.open_visits().is_empty());
    }

    #[test]
    fn tracker_rejects_manual_full_at_once() {
        let mut q = QueueTracker::new(3600);
        let full = event(
            "QUEUE",
            &[
                ("visitor", &[("id", "2")]),
                (
                    "waiting",
                    &[("group", "7"), ("count", "30"), ("reason", "full")],
                ),
            ],
        );
        let v = only_closed(q.on_event(DEV, 1, t(0), &full));
        assert_eq!((v.outcome, v.entry_count), (Outcome::RejectedFull, 30));
        assert_eq!(v.wait_seconds, Some(0.0));
    }

    #[test]
    fn tracker_times_out_to_unknown() {
        let mut q = QueueTracker::new(3600);
        q.on_event(DEV, 1, t(0), &queue_visitor("75", "18201008888", "6", "1"));
        assert!(q.expire(t(3599)).is_empty());
        let v = only_closed(q.expire(t(5000)));
        assert_eq!(v.outcome, Outcome::Unknown);
        assert_eq!(v.ended_at, Some(t(3600)));
        assert_eq!(v.wait_seconds, Some(3600.0));
        assert_eq!(q.stats().timed_out, 1);
    }

    #[test]
    fn tracker_ignores_reused_visitor_id_after_close() {
        let mut q = QueueTracker::new(3600);
        q.on_event(DEV, 1, t(0), &queue_visitor("75", "18201008888", "6", "1"));
        q.on_event(DEV, 2, t(20), &ring_visitor("200", "75", "18201008888"));
        // Later, id 75 belongs to another call that hangs up: the closed
        // visit stays answered.
        let ch = q.on_event(DEV, 3, t(600), &bye_visitor("75", "13012345678", "3"));
        assert!(ch.is_empty());
        assert!(q.expire(t(700)).is_empty());
        assert_eq!(q.stats().bye_ignored, 1);
        assert_eq!(q.group_number(DEV, "6"), None);
    }

    #[test]
    fn tracker_requeue_after_timeout_opens_new_visit() {
        let mut q = QueueTracker::new(3600);
        q.on_event(DEV, 1, t(0), &queue_visitor("75", "18201008888", "6", "1"));
        let ch = q.on_event(
            DEV,
            9,
            t(4000),
            &queue_visitor("75", "13012345678", "6", "1"),
        );
        assert_eq!(ch.len(), 2, "{ch:?}");
        assert_eq!(closed(&ch)[0].key, "hq:1");
        assert_eq!(closed(&ch)[0].ended_at, Some(t(3600)));
        assert!(matches!(&ch[1], VisitChange::Opened(v) if v.key == "hq:9"));
        let v =
            only_closed(q.on_event(DEV, 10, t(4010), &ring_visitor("201", "75", "13012345678")));
        assert_eq!((v.key.as_str(), v.agent.as_deref()), ("hq:9", Some("201")));
    }

    #[test]
    fn tracker_requeue_while_open_closes_old_as_unknown() {
        let mut q = QueueTracker::new(3600);
        q.on_event(DEV, 1, t(0), &queue_ext("200", "6", "1"));
        let ch = q.on_event(DEV, 2, t(50), &queue_ext("200", "7", "1"));
        let old = closed(&ch);
        assert_eq!(old.len(), 1);
        assert_eq!(
            (old[0].outcome, old[0].ended_at),
            (Outcome::Unknown, Some(t(50)))
        );
        assert_eq!(q.open_visits()[0].group, "7");
        assert_eq!(q.stats().requeued, 1);
    }

    #[test]
    fn tracker_closes_recycled_visitor_as_unknown() {
        let mut q = QueueTracker::new(3600);
        q.on_event(DEV, 1, t(0), &queue_visitor("75", "18201008888", "6", "1"));
        // Same id, another caller: the queued call must have ended unseen.
        let v = only_closed(q.on_event(DEV, 2, t(30), &ring_visitor("200", "75", "13012345678")));
        assert_eq!((v.outcome, v.agent), (Outcome::Unknown, None));
        assert_eq!(q.stats().recycled, 1);
    }

    #[test]
    fn tracker_matches_ring_stored_before_its_queue() {
        let mut q = QueueTracker::new(3600);
        assert!(q
            .on_event(DEV, 1, t(5), &ring_visitor("200", "75", "18201008888"))
            .is_empty());
        let v =
            only_closed(q.on_event(DEV, 2, t(5), &queue_visitor("75", "18201008888", "6", "1")));
        assert_eq!((v.key.as_str(), v.outcome), ("hq:2", Outcome::Answered));
        assert_eq!(
            (v.agent.as_deref(), v.wait_seconds),
            (Some("200"), Some(0.0))
        );
        assert_eq!(q.stats().late_matched, 1);
        assert!(q.open_visits().is_empty());
    }

    #[test]
    fn tracker_matches_bye_stored_before_its_queue() {
        let mut q = QueueTracker::new(3600);
        let bye = event("BYE", &[("ext", &[("id", "201")]), ("ext", &[("id", "3")])]);
        q.on_event(DEV, 1, t(5), &bye);
        let v = only_closed(q.on_event(DEV, 2, t(6), &queue_ext("201", "6", "1")));
        assert_eq!(v.outcome, Outcome::Abandoned);
        assert_eq!(q.group_number(DEV, "6"), Some("3"));
    }

    #[test]
    fn tracker_keeps_pending_exit_only_for_window() {
        let mut q = QueueTracker::new(3600);
        q.on_event(DEV, 1, t(5), &ring_visitor("200", "75", "18201008888"));
        let ch = q.on_event(DEV, 2, t(8), &queue_visitor("75", "18201008888", "6", "1"));
        assert!(matches!(ch.as_slice(), [VisitChange::Opened(_)]), "{ch:?}");
        assert_eq!(q.stats().ring_ignored, 1);
    }

    #[test]
    fn tracker_ignores_bye_of_never_queued_visitor() {
        // §2.5.3.5 example 1: an ordinary call ends.
        let mut q = QueueTracker::new(3600);
        let ch = q.on_event(DEV, 1, t(0), &bye_visitor("42", "13012345678", "200"));
        assert!(ch.is_empty());
        assert!(q.expire(t(3)).is_empty());
        assert_eq!(q.stats().bye_ignored, 1);
        assert!(q.group_numbers().is_empty());
    }

    #[test]
    fn tracker_ignores_ring_from_menu() {
        // §2.5.3.1 example 5: no queued party can be named.
        let mut q = QueueTracker::new(3600);
        q.on_event(DEV, 1, t(0), &queue_ext("200", "6", "1"));
        let ring = event(
            "RING",
            &[("ext", &[("id", "200")]), ("menu", &[("id", "1")])],
        );
        assert!(q.on_event(DEV, 2, t(1), &ring).is_empty());
        assert_eq!(q.stats().ring_ignored, 1);
        assert_eq!(q.open_visits().len(), 1);
    }

    #[test]
    fn tracker_bye_with_known_extension_is_not_abandon() {
        // The RING was lost; the caller talked to 200 and hung up.
        let mut q = QueueTracker::new(3600);
        q.on_event(
            DEV,
            1,
            t(0),
            &event(
                "RING",
                &[("ext", &[("id", "200")]), ("ext", &[("id", "208")])],
            ),
        );
        q.on_event(DEV, 2, t(10), &queue_visitor("42", "13012345678", "6", "1"));
        let v = only_closed(q.on_event(DEV, 3, t(90), &bye_visitor("42", "13012345678", "200")));
        assert_eq!(v.outcome, Outcome::Unknown);
        assert_eq!(q.group_number(DEV, "6"), None);
        assert_eq!(q.stats().bye_not_group_number, 1);
    }

    #[test]
    fn tracker_bye_with_other_number_than_learned_is_unknown() {
        let mut q = QueueTracker::new(3600);
        q.on_event(DEV, 1, t(0), &queue_ext("201", "6", "1"));
        q.on_event(
            DEV,
            2,
            t(5),
            &event("BYE", &[("ext", &[("id", "201")]), ("ext", &[("id", "3")])]),
        );
        q.on_event(DEV, 3, t(10), &queue_ext("202", "6", "1"));
        let bye = event("BYE", &[("ext", &[("id", "202")]), ("ext", &[("id", "4")])]);
        let v = only_closed(q.on_event(DEV, 4, t(20), &bye));
        assert_eq!(v.outcome, Outcome::Unknown);
        assert_eq!(v.group_number.as_deref(), Some("3"));
    }

    #[test]
    fn tracker_keeps_devices_apart() {
        let mut q = QueueTracker::new(3600);
        q.on_event("a", 1, t(0), &queue_visitor("75", "18201008888", "6", "1"));
        assert!(q
            .on_event("b", 2, t(10), &ring_visitor("200", "75", "18201008888"))
            .is_empty());
        assert_eq!(q.open_visits().len(), 1);
    }

    #[test]
    fn tracker_survives_malformed_events() {
        let mut q = QueueTracker::new(i64::MAX);
        let odd: Vec<Event> = vec![
            event("", &[]),
            event("QUEUE", &[]),
            event(
                "QUEUE",
                &[("ext", &[("id", " ")]), ("waiting", &[("group", "6")])],
            ),
            event("QUEUE", &[("visitor", &[("from", "")]), ("waiting", &[])]),
            event(
                "QUEUE",
                &[
                    ("ext", &[("id", "1")]),
                    ("waiting", &[("group", "6"), ("count", "x")]),
                ],
            ),
            event("RING", &[("visitor", &[("from", "")])]),
            event("RING", &[("ext", &[("id", "1")]), ("ext", &[("id", "1")])]),
            event("BYE", &[("outer", &[("id", "38")])]),
            event("bye", &[("ext", &[("id", "1")])]),
        ];
        for (i, ev) in odd.iter().enumerate() {
            let i = i as i64;
            q.on_event(DEV, i, t(i), ev);
        }
        q.expire(DateTime::<Utc>::MAX_UTC);
        assert_eq!(q.stats().queue_malformed, 3);
        assert_eq!(q.stats().entries, 1);
    }

    #[test]
    fn infer_all_equals_incremental() {
        let events: Vec<(String, i64, DateTime<Utc>, Event)> = vec![
            (
                "hq".into(),
                1,
                t(0),
                queue_visitor("75", "18201008888", "6", "1"),
            ),
            ("br".into(), 2, t(1), queue_ext("201", "6", "1")),
            (
                "hq".into(),
                3,
                t(2),
                queue_visitor("76", "13012345678", "6", "2"),
            ),
            (
                "br".into(),
                4,
                t(8),
                event("BYE", &[("ext", &[("id", "201")]), ("ext", &[("id", "3")])]),
            ),
            (
                "hq".into(),
                5,
                t(30),
                ring_visitor("200", "75", "18201008888"),
            ),
            ("hq".into(), 6, t(40), ring_visitor("200", "77", "1")),
            ("hq".into(), 7, t(40), queue_visitor("77", "1", "6", "2")),
            ("hq".into(), 8, t(50), queue_ext("202", "7", "0")),
        ];
        let now = t(5000);
        let rebuilt = infer_all(events.clone(), 3600, now);

        let mut q = QueueTracker::new(3600);
        let mut live: BTreeMap<String, Visit> = BTreeMap::new();
        for (d, seq, at, ev) in &events {
            for c in q.on_event(d, *seq, *at, ev) {
                let v = c.into_visit();
                live.insert(v.key.clone(), v);
            }
            // Live expiry ticks in between must not change the result.
            for c in q.expire(*at) {
                let v = c.into_visit();
                live.insert(v.key.clone(), v);
            }
        }
        for c in q.expire(now) {
            let v = c.into_visit();
            live.insert(v.key.clone(), v);
        }
        let mut by_key = rebuilt.clone();
        by_key.sort_by(|a, b| a.key.cmp(&b.key));
        assert_eq!(by_key, live.into_values().collect::<Vec<_>>());
        let outcomes: Vec<_> = rebuilt
            .iter()
            .map(|v| (v.key.as_str(), v.outcome))
            .collect();
        assert_eq!(
            outcomes,
            vec![
                ("hq:1", Outcome::Answered),
                ("br:2", Outcome::Abandoned),
                ("hq:3", Outcome::Unknown),
                ("hq:7", Outcome::Answered),
                ("hq:8", Outcome::Unknown),
            ]
        );
    }

    #[test]
    fn outcome_serializes_snake_case() {
        let json = serde_json::to_string(&Outcome::RejectedOffline).expect("serializes");
        assert_eq!(json, "\"rejected_offline\"");
        assert_eq!(Outcome::RejectedFull.as_str(), "rejected_full");
    }
}
