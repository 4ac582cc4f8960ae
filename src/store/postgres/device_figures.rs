//! `store::device_figures` on PostgreSQL: the same figures; the day's
//! pushes are found by receive time (the partition key), the backlog in
//! `derive_pending`.

use super::PgTx;
use crate::store::device_figures::{Tally, LEGS_LOOKED_AT};
use crate::store::Result;

pub fn tally_since(pg: &PgTx, since_ms: i64) -> Result<Vec<Tally>> {
    // received_at bounds the partitions read; received_ms is the exact cut.
    Ok(pg
        .query(
            "SELECT device, source, outcome, status::BIGINT, reason, COUNT(*), MAX(received_ms)
             FROM pushes
             WHERE received_at >= to_timestamp($1::BIGINT / 1000.0) - INTERVAL '1 second'
               AND received_ms >= $1
             GROUP BY device, source, outcome, status, reason",
            &[&since_ms],
        )?
        .iter()
        .map(|r| Tally {
            device: r.get(0),
            source: r.get(1),
            outcome: r.get(2),
            status: r.get(3),
            reason: r.get(4),
            pushes: r.get(5),
            last_ms: r.get(6),
        })
        .collect())
}

pub fn recordings_waiting(pg: &PgTx) -> Result<Vec<(String, String, i64)>> {
    Ok(pg
        .query(
            "SELECT device, CASE status WHEN 'fetching' THEN 'pending' ELSE status END AS s, COUNT(*)
             FROM recordings WHERE status IN ('pending', 'fetching', 'failed', 'missing')
             GROUP BY 1, 2",
            &[],
        )?
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect())
}

pub fn backlog_by_device(pg: &PgTx) -> Result<Vec<(String, i64)>> {
    Ok(pg
        .query(
            "SELECT p.device, COUNT(*) FROM (
               SELECT push_id FROM derive_pending UNION ALL SELECT push_id FROM derive_queue) w
             JOIN pushes p ON p.id = w.push_id
             WHERE p.device IS NOT NULL AND p.outcome = 'stored'
             GROUP BY p.device",
            &[],
        )?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect())
}

pub fn recent_push_times(pg: &PgTx, device: &str, limit: i64) -> Result<Vec<i64>> {
    Ok(pg
        .query(
            "SELECT received_ms FROM pushes WHERE device = $1 AND outcome = 'stored'
             ORDER BY id DESC LIMIT $2",
            &[&device, &limit],
        )?
        .iter()
        .map(|r| r.get(0))
        .collect())
}

pub fn recent_leg_times(pg: &PgTx, device: &str, limit: i64) -> Result<Vec<(String, i64)>> {
    Ok(pg
        .query(
            "SELECT end_utc, received_ms FROM legs
             WHERE device = $1 AND id > (SELECT COALESCE(MAX(id), 0) FROM leg_ids) - $3
             ORDER BY id DESC LIMIT $2",
            &[&device, &limit, &LEGS_LOOKED_AT],
        )?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect())
}
