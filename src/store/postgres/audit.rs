//! `store::audit` on PostgreSQL.

use super::PgTx;
use crate::store::audit::{from_row, Entry, Filter, Row, COLS};
use crate::store::Result;

/// Appends `e`, or with a `collapse_key` adds its count to that key's row.
pub fn insert(pg: &PgTx, e: &Entry, collapse_key: Option<&str>) -> Result<i64> {
    let row = pg.query_one(
        "INSERT INTO audit_log
             (time_ms, actor, role, ip, action, target, status, count, detail, collapse_key)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
         ON CONFLICT (collapse_key) DO UPDATE SET count = audit_log.count + EXCLUDED.count
         RETURNING id",
        &[
            &e.time_ms,
            &e.actor,
            &e.role,
            &e.ip,
            &e.action,
            &e.target,
            &e.status,
            &e.count,
            &e.detail,
            &collapse_key,
        ],
    )?;
    Ok(row.get(0))
}

pub fn list(pg: &PgTx, f: &Filter) -> Result<Vec<Row>> {
    pg.query(
        &format!(
            "SELECT {COLS} FROM audit_log
             WHERE ($1::TEXT IS NULL OR actor = $1) AND ($2::TEXT IS NULL OR action = $2)
               AND ($3::BIGINT IS NULL OR time_ms >= $3) AND ($4::BIGINT IS NULL OR time_ms < $4)
               AND ($5::BIGINT IS NULL OR id < $5)
             ORDER BY id DESC LIMIT $6"
        ),
        &[
            &f.actor,
            &f.action,
            &f.from_ms,
            &f.to_ms,
            &f.before_id,
            &f.limit,
        ],
    )?
    .iter()
    .map(from_row)
    .collect()
}

pub fn purge_older_than(pg: &PgTx, cutoff_ms: i64) -> Result<u64> {
    Ok(pg.execute("DELETE FROM audit_log WHERE time_ms < $1", &[&cutoff_ms])?)
}
