//! One call with everything its detail view shows: the call row, its legs,
//! its recordings and its queue visits, found by any id it was ever shown
//! under (ARCHITECTURE.md, "Ids").

use std::cmp::Ordering;

use rusqlite::OptionalExtension;
use serde::Serialize;

use super::call_search::{call_from_row, CallRow, CallView, CALL_COLS};
use super::legs::StoredLeg;
use super::queues::StoredVisit;
use super::{Result, Tx};
use crate::model::conversation::Conversation;
use crate::model::Leg;

/// A call as `GET /api/calls/{id}` shows it: the row's fields, then the
/// parts below.
#[derive(Debug, Clone, Serialize)]
pub struct CallDetail {
    #[serde(flatten)]
    pub call: CallRow,
    pub legs: Vec<StoredLeg>,
    pub recordings: Vec<CallRecording>,
    pub queue_visits: Vec<StoredVisit>,
    /// Who spoke when (docs/recordings.md "Conversation figures"): the
    /// figures of the call's first analysed recording in leg order; `null`
    /// when it has none or they failed.
    pub conversation: Option<Conversation>,
    /// Why that recording's figures failed (left out otherwise).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conversation_error: Option<String>,
    /// The id asked for is an earlier id of this call, since merged with
    /// another (the field is left out otherwise).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub merged_from: bool,
}

impl CallDetail {
    /// Drops the text of the recordings' fetch errors (it names device URLs
    /// and local paths) for a caller who may not see it; the status stays.
    pub fn hide_error_text(&mut self) {
        for r in &mut self.recordings {
            r.last_error = None;
        }
    }
}

/// A recording of one of a call's legs, for its detail view.
#[derive(Debug, Clone, Serialize)]
pub struct CallRecording {
    pub id: i64,
    pub cdr_id: String,
    pub path: String,
    pub codec: Option<String>,
    pub status: String,
    pub attempts: i64,
    pub duration_seconds: Option<f64>,
    pub last_error: Option<String>,
}

/// The call shown under `id` (its current id or an earlier one), with its
/// legs in `leg_order` (the calls stage's rule, `calls::leg_order`);
/// `None` when no call was ever shown under `id`, or when the call is of
/// none of `devices` (every device when empty: `store::scope`).
pub fn detail(
    conn: &Tx,
    id: &str,
    view: &CallView,
    leg_order: fn(&Leg, &Leg) -> Ordering,
    devices: &[String],
) -> Result<Option<CallDetail>> {
    let Some(current) = resolve_visible(conn, id, devices)? else {
        return Ok(None);
    };
    let Some(call) = get(conn, &current, view)? else {
        return Ok(None);
    };
    let leg_ids = super::calls::leg_ids_of_call(conn, &current)?;
    let mut legs = super::calls::legs_by_ids(conn, &leg_ids, &|d| view.tz_of(d))?;
    legs.sort_by(|a, b| leg_order(&a.leg, &b.leg));
    let (conversation, conversation_error) =
        match super::conversations::of_call(conn, &current)?.map(|s| s.outcome) {
            Some(Ok(c)) => (Some(c), None),
            Some(Err(why)) => (None, Some(why)),
            None => (None, None),
        };
    Ok(Some(CallDetail {
        conversation,
        conversation_error,
        call,
        legs,
        recordings: recordings_of_call(conn, &current)?,
        queue_visits: super::queues::of_call(conn, &current)?,
        merged_from: id != current,
    }))
}

/// The legs of the call with current id `call_id`, in leg id order (the
/// timeline's rule reads their ids and spans: `calls::timeline`).
pub fn legs_of_call(conn: &Tx, call_id: &str, view: &CallView) -> Result<Vec<StoredLeg>> {
    let leg_ids = super::calls::leg_ids_of_call(conn, call_id)?;
    super::calls::legs_by_ids(conn, &leg_ids, &|d| view.tz_of(d))
}

/// The current id of the call shown under `id` (`calls::resolve_id`), if
/// that call is of one of `devices` (any device when empty); a call of
/// another device is not found, so its id tells nothing.
pub fn resolve_visible(conn: &Tx, id: &str, devices: &[String]) -> Result<Option<String>> {
    let Some(current) = super::calls::resolve_id(conn, id)? else {
        return Ok(None);
    };
    if devices.is_empty() {
        return Ok(Some(current));
    }
    let seen = if let Some(pg) = conn.pg() {
        super::postgres::call_detail::visible(pg, &current, devices)?
    } else {
        let sql = format!(
            "SELECT 1 FROM calls WHERE id = ?1 AND {}",
            super::scope::sqlite_clause("device", "?2")
        );
        conn.prepare_cached(&sql)?.exists(rusqlite::params![
            current,
            super::scope::sqlite_value(devices)
        ])?
    };
    Ok(seen.then_some(current))
}

/// The recordings of the call with current id `call_id`, in leg order.
pub fn recordings_of_call(conn: &Tx, call_id: &str) -> Result<Vec<CallRecording>> {
    if let Some(pg) = conn.pg() {
        return super::postgres::call_detail::recordings_of_call(pg, call_id);
    }
    let mut st = conn.prepare_cached(
        "SELECT r.id, l.cdr_id, r.path, r.codec, r.status, r.duration_seconds, r.last_error, r.attempts
         FROM calls c JOIN call_legs cl ON cl.call_seq = c.seq JOIN legs l ON l.id = cl.leg_id
           JOIN recordings r ON r.leg_id = l.id
         WHERE c.id = ?1 ORDER BY l.time_start, l.cdr_id",
    )?;
    let rows = st.query_map([call_id], |r| {
        Ok(CallRecording {
            id: r.get(0)?,
            cdr_id: r.get(1)?,
            path: r.get(2)?,
            codec: r.get(3)?,
            status: r.get(4)?,
            duration_seconds: r.get(5)?,
            last_error: r.get(6)?,
            attempts: r.get(7)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// One call by its current id.
pub fn get(conn: &Tx, id: &str, view: &CallView) -> Result<Option<CallRow>> {
    if let Some(pg) = conn.pg() {
        return super::postgres::call_detail::get(pg, id, view);
    }
    let sql = format!("SELECT {CALL_COLS} FROM calls WHERE id = ?1");
    Ok(conn
        .prepare_cached(&sql)?
        .query_row([id], |r| call_from_row(r, view))
        .optional()?)
}
