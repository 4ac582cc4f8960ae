//! A queue visit, as every stage sees it: the queues stage infers it from
//! events (docs/queues.md), the store keeps it, reports count it.

use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

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
    /// Every outcome, in declaration order.
    pub const ALL: [Outcome; 6] = [
        Outcome::Waiting,
        Outcome::Answered,
        Outcome::Abandoned,
        Outcome::RejectedOffline,
        Outcome::RejectedFull,
        Outcome::Unknown,
    ];

    /// The serde name, for SQL columns and CSV; [`FromStr`] reads it back.
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

/// A text that names no [`Outcome`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown queue visit outcome {0:?}")]
pub struct UnknownOutcome(pub String);

impl FromStr for Outcome {
    type Err = UnknownOutcome;

    /// The inverse of [`Outcome::as_str`].
    fn from_str(s: &str) -> Result<Outcome, UnknownOutcome> {
        Outcome::ALL
            .into_iter()
            .find(|o| o.as_str() == s)
            .ok_or_else(|| UnknownOutcome(s.to_string()))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcome_from_str_reads_back_as_str() {
        for o in Outcome::ALL {
            assert_eq!(o.as_str().parse::<Outcome>(), Ok(o));
        }
        assert!("lost".parse::<Outcome>().is_err());
    }

    #[test]
    fn outcome_serializes_snake_case() {
        let json = serde_json::to_string(&Outcome::RejectedOffline).expect("serializes");
        assert_eq!(json, "\"rejected_offline\"");
        assert_eq!(Outcome::RejectedFull.as_str(), "rejected_full");
    }
}
