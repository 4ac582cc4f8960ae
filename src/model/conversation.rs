//! A call's conversation figures: who spoke when, computed by the
//! recordings stage from the two sides of a recording, kept by the store,
//! shown by the API (docs/recordings.md "Conversation figures").

use serde::{Deserialize, Serialize, Serializer};

/// Which party a side of a recording is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TalkSide {
    /// The recorded extension.
    Agent,
    /// The other end.
    Customer,
}

/// One stretch of speech, in seconds from the recording's start.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TalkSegment {
    pub side: TalkSide,
    #[serde(serialize_with = "two_decimals")]
    pub start: f64,
    #[serde(serialize_with = "two_decimals")]
    pub end: f64,
}

/// The figures of one two-sided recording. Seconds are shown rounded to
/// two decimals.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Conversation {
    #[serde(serialize_with = "two_decimals")]
    pub agent_talk_seconds: f64,
    #[serde(serialize_with = "two_decimals")]
    pub customer_talk_seconds: f64,
    /// Agent talk / (agent + customer talk); `None` when nobody spoke.
    #[serde(serialize_with = "opt_two_decimals")]
    pub talk_ratio: Option<f64>,
    /// Time both sides speak at once.
    #[serde(serialize_with = "two_decimals")]
    pub overtalk_seconds: f64,
    /// The longest time nobody speaks, between the first and last speech.
    #[serde(serialize_with = "two_decimals")]
    pub longest_silence_seconds: f64,
    /// All time nobody speaks, between the first and last speech.
    #[serde(serialize_with = "two_decimals")]
    pub silence_seconds: f64,
    /// Times a side started to speak while the other was speaking.
    pub interruptions: i64,
    /// Recording start to the agent's first speech; `None` if the agent never speaks.
    #[serde(serialize_with = "opt_two_decimals")]
    pub agent_first_word_seconds: Option<f64>,
    /// Every segment of both sides, by start.
    pub segments: Vec<TalkSegment>,
}

/// `x` rounded to two decimals (what the API shows).
pub fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn two_decimals<S: Serializer>(x: &f64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(round2(*x))
}

fn opt_two_decimals<S: Serializer>(x: &Option<f64>, s: S) -> Result<S::Ok, S::Error> {
    match x {
        Some(x) => s.serialize_some(&round2(*x)),
        None => s.serialize_none(),
    }
}
