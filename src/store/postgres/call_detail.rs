//! `store::call_detail` on PostgreSQL: one call row by its current id, and
//! the recordings of its legs (the rest of the detail view goes through
//! `store::calls` and `store::queues`, which have their own versions).

use super::call_search::call_row;
use super::PgTx;
use crate::store::call_detail::CallRecording;
use crate::store::call_search::{CallRow, CallView, CALL_COLS};
use crate::store::Result;

/// Whether the call `id` is of one of `devices` (`store::scope`).
pub fn visible(pg: &PgTx, id: &str, devices: &[String]) -> Result<bool> {
    let sql = format!(
        "SELECT 1 FROM calls WHERE id = $1 AND {}",
        crate::store::scope::pg_clause("device", "$2")
    );
    let devices = devices.to_vec();
    Ok(pg.query_opt(&sql, &[&id, &devices])?.is_some())
}

pub fn get(pg: &PgTx, id: &str, view: &CallView) -> Result<Option<CallRow>> {
    pg.query_opt(
        &format!("SELECT {CALL_COLS} FROM calls WHERE id = $1"),
        &[&id],
    )?
    .map(|r| Ok(call_row(&r)?.shown(view)))
    .transpose()
}

/// In leg order as on SQLite: `cdr_id` compared bytewise, whatever the
/// database's collation (`legs` is sql/postgres/003's, not declared "C";
/// its fixed-width times order the same in any collation).
pub fn recordings_of_call(pg: &PgTx, call_id: &str) -> Result<Vec<CallRecording>> {
    let rows = pg.query(
        "SELECT r.id, l.cdr_id, r.path, r.codec, r.status, r.duration_seconds, r.last_error, r.attempts
         FROM calls c JOIN call_legs cl ON cl.call_seq = c.seq JOIN legs l ON l.id = cl.leg_id
           JOIN recordings r ON r.leg_id = l.id
         WHERE c.id = $1 ORDER BY l.time_start, l.cdr_id COLLATE \"C\"",
        &[&call_id],
    )?;
    rows.iter()
        .map(|r| {
            Ok(CallRecording {
                id: r.try_get(0)?,
                cdr_id: r.try_get(1)?,
                path: r.try_get(2)?,
                codec: r.try_get(3)?,
                status: r.try_get(4)?,
                duration_seconds: r.try_get(5)?,
                last_error: r.try_get(6)?,
                attempts: r.try_get(7)?,
            })
        })
        .collect()
}
