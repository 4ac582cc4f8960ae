//! The `conversations` table (docs/recordings.md "Conversation figures"):
//! the figures of each analysed recording, or why it could not be
//! analysed; read by the call detail, filtered by the call search
//! (`call_search`), summed by the `conversation` report.

use rusqlite::{params, OptionalExtension};

use super::{now_stamp, Result, StoreError, Tx};
use crate::model::conversation::{round2, Conversation, TalkSegment};

/// What the analysis of a recording gave: its figures, or why none.
pub type Outcome = std::result::Result<Conversation, String>;

/// A recording's stored figures.
#[derive(Debug, Clone, PartialEq)]
pub struct Stored {
    pub recording_id: i64,
    pub outcome: Outcome,
}

/// The figure columns, in the order [`put`] binds them after
/// `recording_id, status, error`.
pub(in crate::store) const FIGURE_COLS: &str =
    "agent_talk_seconds, customer_talk_seconds, talk_ratio, overtalk_seconds,
    longest_silence_seconds, silence_seconds, interruptions, agent_first_word_seconds, segments";

/// What `put` does when the recording already has figures (the same SQL
/// on both backends): every column takes the new value.
pub(in crate::store) const ON_CONFLICT: &str =
    "ON CONFLICT (recording_id) DO UPDATE SET status = excluded.status, error = excluded.error,
    agent_talk_seconds = excluded.agent_talk_seconds,
    customer_talk_seconds = excluded.customer_talk_seconds,
    talk_ratio = excluded.talk_ratio, overtalk_seconds = excluded.overtalk_seconds,
    longest_silence_seconds = excluded.longest_silence_seconds,
    silence_seconds = excluded.silence_seconds, interruptions = excluded.interruptions,
    agent_first_word_seconds = excluded.agent_first_word_seconds,
    segments = excluded.segments, computed_at = excluded.computed_at";

/// The values of one row, rounded as shown (so a filter matches what is read).
pub(in crate::store) struct Row {
    pub status: &'static str,
    pub error: Option<String>,
    pub reals: [Option<f64>; 6],
    pub interruptions: Option<i64>,
    pub first_word: Option<f64>,
    pub segments: Option<String>,
}

impl Row {
    fn of(outcome: &Outcome) -> Result<Row> {
        Ok(match outcome {
            Ok(c) => Row {
                status: "ok",
                error: None,
                reals: [
                    Some(round2(c.agent_talk_seconds)),
                    Some(round2(c.customer_talk_seconds)),
                    c.talk_ratio.map(round2),
                    Some(round2(c.overtalk_seconds)),
                    Some(round2(c.longest_silence_seconds)),
                    Some(round2(c.silence_seconds)),
                ],
                interruptions: Some(c.interruptions),
                first_word: c.agent_first_word_seconds.map(round2),
                segments: Some(
                    serde_json::to_string(&c.segments)
                        .map_err(|e| StoreError::Corrupt(e.to_string()))?,
                ),
            },
            Err(why) => Row {
                status: "failed",
                error: Some(why.clone()),
                reals: [None; 6],
                interruptions: None,
                first_word: None,
                segments: None,
            },
        })
    }
}

/// The raw columns read back: status, error, then [`FIGURE_COLS`].
pub(in crate::store) type RawCols = (
    String,
    Option<String>,
    [Option<f64>; 6],
    Option<i64>,
    Option<f64>,
    Option<String>,
);

/// A row read back as an [`Outcome`].
pub(in crate::store) fn outcome_of(raw: RawCols) -> Result<Outcome> {
    let (status, error, r, interruptions, first_word, segments) = raw;
    if status != "ok" {
        return Ok(Err(error.unwrap_or_else(|| "unknown".into())));
    }
    let segments: Vec<TalkSegment> = serde_json::from_str(segments.as_deref().unwrap_or("[]"))
        .map_err(|e| StoreError::Corrupt(format!("conversation segments: {e}")))?;
    Ok(Ok(Conversation {
        agent_talk_seconds: r[0].unwrap_or(0.0),
        customer_talk_seconds: r[1].unwrap_or(0.0),
        talk_ratio: r[2],
        overtalk_seconds: r[3].unwrap_or(0.0),
        longest_silence_seconds: r[4].unwrap_or(0.0),
        silence_seconds: r[5].unwrap_or(0.0),
        interruptions: interruptions.unwrap_or(0),
        agent_first_word_seconds: first_word,
        segments,
    }))
}

/// Stores (or replaces) the figures of recording `recording_id`.
pub fn put(tx: &Tx, recording_id: i64, outcome: &Outcome) -> Result<()> {
    let row = Row::of(outcome)?;
    let (now, _) = now_stamp();
    if let Some(pg) = tx.pg() {
        return super::postgres::conversations::put(pg, recording_id, &row, &now);
    }
    let r = &row.reals;
    tx.prepare_cached(&format!(
        "INSERT INTO conversations (recording_id, status, error, {FIGURE_COLS}, computed_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)
         {ON_CONFLICT}"
    ))?
    .execute(params![
        recording_id,
        row.status,
        row.error,
        r[0],
        r[1],
        r[2],
        r[3],
        r[4],
        r[5],
        row.interruptions,
        row.first_word,
        row.segments,
        now
    ])?;
    Ok(())
}

/// The figures of recording `recording_id`, if it was analysed.
pub fn get(conn: &Tx, recording_id: i64) -> Result<Option<Stored>> {
    if let Some(pg) = conn.pg() {
        return super::postgres::conversations::get(pg, recording_id);
    }
    let raw = conn
        .prepare_cached(&format!(
            "SELECT status, error, {FIGURE_COLS} FROM conversations WHERE recording_id = ?1"
        ))?
        .query_row([recording_id], raw_cols)
        .optional()?;
    raw.map(|raw| {
        Ok(Stored {
            recording_id,
            outcome: outcome_of(raw)?,
        })
    })
    .transpose()
}

fn raw_cols(r: &rusqlite::Row) -> rusqlite::Result<RawCols> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        [
            r.get(2)?,
            r.get(3)?,
            r.get(4)?,
            r.get(5)?,
            r.get(6)?,
            r.get(7)?,
        ],
        r.get(8)?,
        r.get(9)?,
        r.get(10)?,
    ))
}

/// The figures the detail of call `call_id` (its current id) shows: those
/// of its first recording in leg order that was analysed.
pub fn of_call(conn: &Tx, call_id: &str) -> Result<Option<Stored>> {
    if let Some(pg) = conn.pg() {
        return super::postgres::conversations::of_call(pg, call_id);
    }
    let id: Option<i64> = conn
        .prepare_cached(
            "SELECT r.id FROM calls c JOIN call_legs cl ON cl.call_seq = c.seq
               JOIN legs l ON l.id = cl.leg_id JOIN recordings r ON r.leg_id = l.id
               JOIN conversations v ON v.recording_id = r.id
             WHERE c.id = ?1 ORDER BY l.time_start, l.cdr_id LIMIT 1",
        )?
        .query_row([call_id], |r| r.get(0))
        .optional()?;
    match id {
        Some(id) => get(conn, id),
        None => Ok(None),
    }
}

/// Up to `limit` archived (`done`) recordings with id > `after`, by id,
/// that have no figures yet (every one with `all`): `callvault recordings
/// analyze`'s work list.
pub fn to_analyze(
    conn: &Tx,
    all: bool,
    after: i64,
    limit: i64,
) -> Result<Vec<super::recordings::Recording>> {
    if let Some(pg) = conn.pg() {
        return super::postgres::conversations::to_analyze(pg, all, after, limit);
    }
    let ids: Vec<i64> = conn
        .prepare_cached(
            "SELECT r.id FROM recordings r WHERE r.status = 'done' AND r.id > ?1
               AND (?2 OR NOT EXISTS (SELECT 1 FROM conversations v WHERE v.recording_id = r.id))
             ORDER BY r.id LIMIT ?3",
        )?
        .query_map(params![after, all, limit], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        out.extend(super::recordings::get(conn, id)?);
    }
    Ok(out)
}

/// How many recordings [`to_analyze`] would go through in all.
pub fn count_to_analyze(conn: &Tx, all: bool) -> Result<i64> {
    if let Some(pg) = conn.pg() {
        return super::postgres::conversations::count_to_analyze(pg, all);
    }
    Ok(conn
        .prepare_cached(
            "SELECT COUNT(*) FROM recordings r WHERE r.status = 'done'
               AND (?1 OR NOT EXISTS (SELECT 1 FROM conversations v WHERE v.recording_id = r.id))",
        )?
        .query_row([all], |r| r.get(0))?)
}

#[cfg(test)]
#[path = "conversations_tests.rs"]
mod tests;
