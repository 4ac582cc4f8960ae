//! What a logical call is, as every stage sees it: the calls stage derives
//! it from legs (`calls::summarize`), the store keeps it, reports and the
//! API read it.

use chrono::NaiveDateTime;
use serde::{Deserialize, Serialize};

/// Which way a call went, as a whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Inbound,
    Outbound,
    Internal,
    Callback,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Inbound => "inbound",
            Direction::Outbound => "outbound",
            Direction::Internal => "internal",
            Direction::Callback => "callback",
        }
    }
}

impl std::fmt::Display for Direction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One logical call: what `calls::summarize` reads off its legs
/// (docs/calls.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallFacts {
    /// `calls::call_id` of the first leg in order.
    pub id: String,
    pub device: String,
    pub direction: Direction,
    /// An FW leg exists: the call was forwarded to an outside number.
    pub forwarded_out: bool,
    pub caller: String,
    pub callee: String,
    /// Extensions involved, in order of appearance, without repeats.
    pub extensions: Vec<String>,
    /// Extension that picked up (inbound/internal only).
    pub answered_by: Option<String>,
    pub trunk: Option<String>,
    /// Route of the first trunk leg (else of the first leg): reports need it
    /// for the analog-trunk caveat of manual §5.6 Q2.
    pub route: String,
    pub start: NaiveDateTime,
    pub end: NaiveDateTime,
    pub talk_seconds: i64,
    pub billable_seconds: i64,
    /// A person answered (an IVR picking up a trunk leg does not count).
    pub answered: bool,
    /// Cdr ids of the legs, in order.
    pub leg_cdr_ids: Vec<String>,
    /// Called number of the first carrier-billed leg (OU, FW or CB) in leg
    /// order: the number the carrier charges for (docs/billing.md
    /// `billed_number`). Kept on the call so that billing reads one row per
    /// call instead of looking through its legs.
    #[serde(default)]
    pub billed_number: Option<String>,
}
