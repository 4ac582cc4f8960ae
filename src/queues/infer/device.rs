//! One device's queue state and the transitions of the inference: an entry
//! opens a visit (or consumes an exit seen before it), an exit closes the
//! visit it matches (or waits in the pending buffer), the timeout closes
//! what is left open.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, TimeDelta, Utc};

use super::super::parse::{self, Entry, Exit, ExitMatch, PartyRef};
use super::super::visit::{TrackerStats, VisitChange};
use super::PENDING_WINDOW_SECS;
use crate::model::{Outcome, Visit};

/// An exit seen before any matching QUEUE.
#[derive(Debug, Clone)]
pub(super) struct Pending {
    received: DateTime<Utc>,
    exit: Exit,
}

#[derive(Debug, Clone, Default)]
pub(super) struct DeviceState {
    /// Open visit per party, with its entry seq (for deterministic order).
    pub(super) open: BTreeMap<PartyRef, (i64, Visit)>,
    pending: Vec<Pending>,
    /// waiting group id → group number.
    pub(super) group_numbers: BTreeMap<String, String>,
    /// Ids seen as extensions (RING parties, queued exts): a BYE's other ext
    /// that is a known extension is a talk partner, not a group number.
    known_exts: BTreeSet<String>,
}

pub(super) fn on_entry(
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

pub(super) fn on_exit(
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

pub(super) fn expire_device(
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

pub(super) fn prune_pending(state: &mut DeviceState, stats: &mut TrackerStats, now: DateTime<Utc>) {
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
