//! What the simulated device *meant*: one [`TruthCall`] per simulated call,
//! one [`TruthVisit`] per queue entry and one [`TruthRecording`] per G.729
//! recording, for tests and benchmarks to compare the grouping (`calls/`),
//! queue inference (`queues/`) and conversation figures against.
//!
//! Values follow the call rules of docs/calls.md applied to the legs the scenario
//! generated, but each scenario computes them from its own knowledge (who
//! called whom, who answered, for how long), never by running grouping code:
//! a disagreement is a bug on one side and must show up.

use chrono::NaiveDateTime;
use serde::{Deserialize, Serialize};

/// One logical call as the spec's rules should reconstruct it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TruthCall {
    /// Cdr ids of every leg of the call, sorted.
    pub device_cdr_ids: Vec<String>,
    /// Scenario that produced the call (`ip_inbound_answered`, …; see `Scenario::name`).
    pub scenario: String,
    /// `inbound | outbound | internal | callback`.
    pub direction: String,
    pub caller: String,
    pub callee: String,
    pub answered: bool,
    pub answered_by: Option<String>,
    pub trunk: Option<String>,
    pub talk_seconds: i64,
    pub billable_seconds: i64,
    pub forwarded_out: bool,
    pub start: NaiveDateTime,
    pub end: NaiveDateTime,
    /// Where the spec's value differs from what really happened on the line
    /// (e.g. an analog outbound nobody answered still has Duration > 0, §5.6 Q2).
    pub note: Option<String>,
}

/// One queue entry (manual §2.5.7, exit per §4.12).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TruthVisit {
    /// `<waiting group>`: the group's internal id.
    pub group: String,
    /// The group's dialable number, seen as `<ext id>` on an abandon BYE.
    pub group_number: String,
    /// `visitor` or `ext`.
    pub party_kind: String,
    pub party_id: String,
    /// `answered | abandoned | rejected_offline | rejected_full`.
    pub outcome: String,
    /// The extension whose RING took the caller out of the queue.
    pub agent: Option<String>,
    /// Seconds from the QUEUE push to the RING/BYE push; 0 when rejected.
    pub wait_seconds: i64,
    /// `device_cdr_ids` of the call this visit belongs to.
    pub cdr_ids: Vec<String>,
}

/// Where each side speaks in one G.729 recording (docs/recordings.md,
/// "Simulated dialogues"), what the conversation figures are checked against.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TruthRecording {
    /// The CDR's `<Recording>` value.
    pub path: String,
    /// Name of the dialogue the call says.
    pub dialogue: String,
    /// Lengths of the `send` (agent) and `recv` (customer) halves.
    pub send_ms: u64,
    pub recv_ms: u64,
    /// Speech spans of both sides, by start, from the recording's start.
    pub segments: Vec<TruthSegment>,
}

/// A span in which one side speaks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TruthSegment {
    /// `agent` (the `send` half) or `customer` (`recv`).
    pub side: String,
    pub start_ms: u64,
    pub end_ms: u64,
}

/// Everything the simulation intended, serializable for fixtures.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Truth {
    pub calls: Vec<TruthCall>,
    pub visits: Vec<TruthVisit>,
    /// One per G.729 recording, in the order of `Plan::recordings`.
    #[serde(default)]
    pub recordings: Vec<TruthRecording>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truth_roundtrips_through_json() {
        let start = NaiveDateTime::parse_from_str("20170309162657", "%Y%m%d%H%M%S").expect("time");
        let truth = Truth {
            calls: vec![TruthCall {
                device_cdr_ids: vec!["1-0".into()],
                scenario: "internal".into(),
                direction: "internal".into(),
                caller: "200".into(),
                callee: "212".into(),
                answered: true,
                answered_by: Some("212".into()),
                trunk: None,
                talk_seconds: 26,
                billable_seconds: 0,
                forwarded_out: false,
                start,
                end: start,
                note: None,
            }],
            visits: vec![],
            recordings: vec![],
        };
        let json = serde_json::to_string(&truth).expect("serialize");
        let back: Truth = serde_json::from_str(&json).expect("deserialize");
        assert_eq!(back, truth);
    }
}
