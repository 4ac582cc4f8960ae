//! What the queue tracker hands out: changes to visits, learned group
//! numbers and counters. The visit itself is a shared type
//! ([`Visit`](crate::model::Visit)).

use serde::{Deserialize, Serialize};

use crate::model::Visit;

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
