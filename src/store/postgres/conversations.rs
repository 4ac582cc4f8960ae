//! `store::conversations` on PostgreSQL: the same rows and orders.

use super::PgTx;
use crate::store::conversations::{outcome_of, RawCols, Row, Stored, FIGURE_COLS, ON_CONFLICT};
use crate::store::recordings::Recording;
use crate::store::Result;

pub(in crate::store) fn put(pg: &PgTx, recording_id: i64, row: &Row, now: &str) -> Result<()> {
    let r = &row.reals;
    pg.execute(
        &format!(
            "INSERT INTO conversations (recording_id, status, error, {FIGURE_COLS}, computed_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
             {ON_CONFLICT}"
        ),
        &[
            &recording_id,
            &row.status,
            &row.error,
            &r[0],
            &r[1],
            &r[2],
            &r[3],
            &r[4],
            &r[5],
            &row.interruptions,
            &row.first_word,
            &row.segments,
            &now,
        ],
    )?;
    Ok(())
}

pub fn get(pg: &PgTx, recording_id: i64) -> Result<Option<Stored>> {
    let row = pg.query_opt(
        &format!("SELECT status, error, {FIGURE_COLS} FROM conversations WHERE recording_id = $1"),
        &[&recording_id],
    )?;
    let Some(r) = row else {
        return Ok(None);
    };
    let raw: RawCols = (
        r.try_get(0)?,
        r.try_get(1)?,
        [
            r.try_get(2)?,
            r.try_get(3)?,
            r.try_get(4)?,
            r.try_get(5)?,
            r.try_get(6)?,
            r.try_get(7)?,
        ],
        r.try_get(8)?,
        r.try_get(9)?,
        r.try_get(10)?,
    );
    Ok(Some(Stored {
        recording_id,
        outcome: outcome_of(raw)?,
    }))
}

/// In leg order as on SQLite (`cdr_id` bytewise: `call_detail`'s note).
pub fn of_call(pg: &PgTx, call_id: &str) -> Result<Option<Stored>> {
    let row = pg.query_opt(
        "SELECT r.id FROM calls c JOIN call_legs cl ON cl.call_seq = c.seq
           JOIN legs l ON l.id = cl.leg_id JOIN recordings r ON r.leg_id = l.id
           JOIN conversations v ON v.recording_id = r.id
         WHERE c.id = $1 ORDER BY l.time_start, l.cdr_id COLLATE \"C\" LIMIT 1",
        &[&call_id],
    )?;
    match row {
        Some(r) => get(pg, r.try_get(0)?),
        None => Ok(None),
    }
}

pub fn to_analyze(pg: &PgTx, all: bool, after: i64, limit: i64) -> Result<Vec<Recording>> {
    let rows = pg.query(
        "SELECT r.id FROM recordings r WHERE r.status = 'done' AND r.id > $1
           AND ($2 OR NOT EXISTS (SELECT 1 FROM conversations v WHERE v.recording_id = r.id))
         ORDER BY r.id LIMIT $3",
        &[&after, &all, &limit],
    )?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        out.extend(super::recordings::get(pg, r.try_get(0)?)?);
    }
    Ok(out)
}

pub fn count_to_analyze(pg: &PgTx, all: bool) -> Result<i64> {
    Ok(pg
        .query_one(
            "SELECT COUNT(*) FROM recordings r WHERE r.status = 'done'
               AND ($1 OR NOT EXISTS (SELECT 1 FROM conversations v WHERE v.recording_id = r.id))",
            &[&all],
        )?
        .try_get(0)?)
}
