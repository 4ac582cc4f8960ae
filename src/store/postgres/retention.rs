//! `store::retention` on PostgreSQL. Rows are deleted by id (each
//! partitioned table has an index on id); dropping whole monthly partitions
//! is not done: a partition holds rows of every retention kind's age.

use super::PgTx;
use crate::store::retention::{
    end_day, walk_raw, Dated, DatedTable, FileCols, GoingLeg, MsKind, RawBatch, RawRow, SpanMs,
};
use crate::store::Result;

pub fn dated_page(
    pg: &PgTx,
    table: DatedTable,
    before_local: &str,
    after: Option<(&str, &str)>,
    limit: i64,
) -> Result<Vec<Dated>> {
    let (a_local, a_key) = after.unwrap_or(("", ""));
    let sql = match table {
        DatedTable::Calls => {
            "SELECT seq, id, device, start_local FROM calls
             WHERE start_local < $1 AND (start_local, id) > ($2, $3)
             ORDER BY start_local, id LIMIT $4"
        }
        DatedTable::QueueVisits => {
            "SELECT 0::BIGINT, key, device, entered_local FROM queue_visits
             WHERE entered_local < $1 AND (entered_local, key) > ($2, $3)
             ORDER BY entered_local, key LIMIT $4"
        }
    };
    Ok(pg
        .query(sql, &[&before_local, &a_local, &a_key, &limit])?
        .iter()
        .map(|r| Dated {
            seq: r.get(0),
            key: r.get(1),
            device: r.get(2),
            local: r.get(3),
        })
        .collect())
}

pub fn recordings_to_purge(pg: &PgTx, call_seqs: &[i64]) -> Result<Vec<(i64, i64)>> {
    Ok(pg
        .query(
            "SELECT cl.call_seq, COUNT(*) FROM call_legs cl JOIN recordings r ON r.leg_id = cl.leg_id
             WHERE cl.call_seq = ANY($1) AND r.status <> 'purged' GROUP BY cl.call_seq",
            &[&call_seqs],
        )?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect())
}

pub fn mark_recordings_purged(pg: &PgTx, call_seqs: &[i64], now: &str) -> Result<u64> {
    // A row claimed meanwhile by a collector is `fetching` when this
    // statement re-reads it after the claim's commit, and is left alone.
    let marked = pg.execute(
        "UPDATE recordings SET status = 'purged', last_error = NULL, updated_at = $2,
                claimed_by = NULL, lease_until_ms = NULL
         WHERE status NOT IN ('purged', 'fetching')
           AND leg_id IN (SELECT leg_id FROM call_legs WHERE call_seq = ANY($1))",
        &[&call_seqs, &now],
    )?;
    pg.execute(
        "DELETE FROM conversations WHERE recording_id IN (SELECT id FROM recordings
           WHERE status = 'purged' AND leg_id IN (SELECT leg_id FROM call_legs WHERE call_seq = ANY($1)))",
        &[&call_seqs],
    )?;
    Ok(marked)
}

pub fn purged_with_files(pg: &PgTx, after: i64, limit: i64) -> Result<Vec<FileCols>> {
    Ok(pg
        .query(
            "SELECT id, file, originals FROM recordings
             WHERE status = 'purged' AND (file IS NOT NULL OR originals IS NOT NULL) AND id > $1
             ORDER BY id LIMIT $2",
            &[&after, &limit],
        )?
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect())
}

pub fn forget_files(pg: &PgTx, ids: &[i64]) -> Result<()> {
    pg.execute(
        "UPDATE recordings SET file = NULL, originals = NULL WHERE status = 'purged' AND id = ANY($1)",
        &[&ids],
    )?;
    Ok(())
}

pub fn delete_calls(pg: &PgTx, seqs: &[i64]) -> Result<u64> {
    let blocked: Vec<i64> = pg
        .query(
            "SELECT DISTINCT cl.call_seq FROM call_legs cl JOIN recordings r ON r.leg_id = cl.leg_id
             WHERE cl.call_seq = ANY($1)
               AND (r.file IS NOT NULL OR r.originals IS NOT NULL OR r.status = 'fetching')",
            &[&seqs],
        )?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let seqs: Vec<i64> = seqs
        .iter()
        .copied()
        .filter(|s| !blocked.contains(s))
        .collect();
    if seqs.is_empty() {
        return Ok(0);
    }
    let going: Vec<GoingLeg> = pg
        .query(
            "SELECT l.id, l.device, l.time_end FROM call_legs cl JOIN legs l ON l.id = cl.leg_id
             WHERE cl.call_seq = ANY($1)",
            &[&seqs],
        )?
        .iter()
        .map(|r| GoingLeg {
            id: r.get(0),
            device: r.get(1),
            end_day: end_day(r.get(2)),
        })
        .collect();
    let leg_ids: Vec<i64> = going.iter().map(|l| l.id).collect();
    pg.execute(
        "DELETE FROM conversations WHERE recording_id IN (SELECT id FROM recordings WHERE leg_id = ANY($1))",
        &[&leg_ids],
    )?;
    pg.execute("DELETE FROM recordings WHERE leg_id = ANY($1)", &[&leg_ids])?;
    pg.execute(
        "DELETE FROM queue_visits WHERE call_id IN (SELECT id FROM calls WHERE seq = ANY($1))",
        &[&seqs],
    )?;
    for l in &going {
        pg.execute(
            "DELETE FROM leg_keys WHERE device = $1 AND end_day = $2 AND leg_id = $3",
            &[&l.device, &l.end_day, &l.id],
        )?;
    }
    pg.execute("DELETE FROM call_legs WHERE call_seq = ANY($1)", &[&seqs])?;
    let gone = pg.execute("DELETE FROM calls WHERE seq = ANY($1)", &[&seqs])?;
    pg.execute("DELETE FROM legs WHERE id = ANY($1)", &[&leg_ids])?;
    // The dedup key of a leg across partitions (sql/postgres/003_legs_events.sql).
    pg.execute("DELETE FROM leg_ids WHERE id = ANY($1)", &[&leg_ids])?;
    Ok(gone)
}

pub fn delete_visits(pg: &PgTx, keys: &[String]) -> Result<u64> {
    Ok(pg.execute("DELETE FROM queue_visits WHERE key = ANY($1)", &[&keys])?)
}

pub fn span(pg: &PgTx, kind: MsKind, before_ms: i64) -> Result<SpanMs> {
    let (table, col, cond) = kind.sql();
    let row = pg.query_dynamic(
        &format!("SELECT COUNT(*), MIN({col}), MAX({col}) FROM {table} WHERE {col} < $1 {cond}"),
        &[&before_ms],
    )?;
    Ok(row
        .first()
        .map(|r| SpanMs {
            count: r.get(0),
            oldest_ms: r.get(1),
            newest_ms: r.get(2),
        })
        .unwrap_or_default())
}

pub fn delete_batch(pg: &PgTx, kind: MsKind, before_ms: i64, limit: i64) -> Result<u64> {
    let mut gone = 0;
    for sql in kind.delete_sql("$1", "$2") {
        // The last statement's count: the rows of `kind` itself.
        gone = pg.execute(&sql, &[&before_ms, &limit])?;
    }
    Ok(gone)
}

/// On PostgreSQL a push waits for derivation while it is in
/// `derive_pending` (or `derive_queue`, released held pushes).
const NOT_DERIVED: &str = "(EXISTS (SELECT 1 FROM derive_pending d WHERE d.push_id = p.id)
     OR EXISTS (SELECT 1 FROM derive_queue q WHERE q.push_id = p.id))";

pub fn raw_span(pg: &PgTx, before_ms: i64) -> Result<SpanMs> {
    let r = pg.query_dynamic(
        &format!(
            "SELECT COUNT(*), MIN(p.received_ms), MAX(p.received_ms) FROM pushes p
             WHERE p.id > COALESCE((SELECT last_id FROM retention_marks WHERE kind = 'raw'), 0)
               AND p.received_ms < $1 AND p.outcome = 'stored' AND p.derive_error IS NULL
               AND NOT {NOT_DERIVED}"
        ),
        &[&before_ms],
    )?;
    Ok(r.first()
        .map(|r| SpanMs {
            count: r.get(0),
            oldest_ms: r.get(1),
            newest_ms: r.get(2),
        })
        .unwrap_or_default())
}

pub fn purge_raw(pg: &PgTx, before_ms: i64, limit: i64) -> Result<RawBatch> {
    let (last_id, newest_ms): (i64, i64) = pg
        .query_opt(
            "SELECT last_id, newest_ms FROM retention_marks WHERE kind = 'raw'",
            &[],
        )?
        .map_or((0, 0), |r| (r.get(0), r.get(1)));
    let rows: Vec<RawRow> = pg
        .query_dynamic(
            &format!(
                "SELECT p.id, p.received_ms, p.outcome, p.derive_error IS NOT NULL, {NOT_DERIVED}
                 FROM pushes p WHERE p.id > $1 ORDER BY p.id LIMIT $2"
            ),
            &[&last_id, &limit],
        )?
        .iter()
        .map(|r| RawRow {
            id: r.get(0),
            received_ms: r.get(1),
            outcome: r.get(2),
            failed: r.get(3),
            pending: r.get(4),
        })
        .collect();
    let plan = walk_raw(&rows, before_ms, last_id, newest_ms);
    if !plan.empty.is_empty() {
        pg.execute(
            "UPDATE pushes SET body = ''::BYTEA, query = NULL WHERE id = ANY($1)",
            &[&plan.empty],
        )?;
    }
    if plan.walked > 0 {
        pg.execute(
            "INSERT INTO retention_marks (kind, last_id, newest_ms) VALUES ('raw', $1, $2)
             ON CONFLICT (kind) DO UPDATE SET last_id = EXCLUDED.last_id, newest_ms = EXCLUDED.newest_ms",
            &[&plan.last_id, &plan.newest_ms],
        )?;
    }
    Ok(RawBatch {
        emptied: plan.empty.len() as u64,
        walked: plan.walked,
    })
}

pub fn raw_purged_until(pg: &PgTx) -> Result<Option<i64>> {
    Ok(pg
        .query_opt(
            "SELECT newest_ms FROM retention_marks WHERE kind = 'raw' AND newest_ms > 0",
            &[],
        )?
        .map(|r| r.get(0)))
}
