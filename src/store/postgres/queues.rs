//! `store::queues` on PostgreSQL. SQLite's `datetime(t, '±5 seconds')`
//! bounds of the link between a visit and a leg are computed here before
//! the query (the same text: a `LOCAL_FMT` time moved by the tolerance), so
//! the comparisons are the same bytewise text comparisons on both backends.

use chrono::{Duration, NaiveDateTime};
use tokio_postgres::types::ToSql;

use super::PgTx;
use crate::model::Visit;
use crate::store::legs::LOCAL_FMT;
use crate::store::queues::{select_sql, visit_from, StoredVisit, LINK_TOLERANCE_SECS};
use crate::store::Result;

/// `t` moved by `secs`, as SQLite's `datetime(t, '+secs seconds')` writes it.
fn shifted(t: NaiveDateTime, secs: i64) -> String {
    (t + Duration::seconds(secs)).format(LOCAL_FMT).to_string()
}

pub fn upsert(pg: &PgTx, v: &Visit, entered: NaiveDateTime) -> Result<()> {
    let entered_local = entered.format(LOCAL_FMT).to_string();
    pg.execute(
        "INSERT INTO queue_visits (key, device, grp, group_number, party_kind, party_id, caller, callid, entered_at,
             entered_local, entry_count, outcome, agent, ended_at, wait_seconds)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
         ON CONFLICT (key) DO UPDATE SET group_number = excluded.group_number, outcome = excluded.outcome,
             agent = excluded.agent, ended_at = excluded.ended_at, wait_seconds = excluded.wait_seconds",
        &[
            &v.key,
            &v.device,
            &v.group,
            &v.group_number,
            &v.party_kind,
            &v.party_id,
            &v.caller,
            &v.callid,
            &v.entered_at.to_rfc3339(),
            &entered_local,
            &v.entry_count,
            &v.outcome.as_str(),
            &v.agent,
            &v.ended_at.map(|t| t.to_rfc3339()),
            &v.wait_seconds,
        ],
    )?;
    if v.party_kind == "visitor" {
        // `legs` is sql/postgres/003's, in the database's collation: its
        // fixed-width times order the same in any, Cdr ids are compared
        // bytewise here, as on SQLite.
        pg.execute(
            "UPDATE queue_visits SET call_id = (
                 SELECT cl.leg_call_id FROM legs l JOIN call_legs cl ON cl.leg_id = l.id
                 WHERE l.device = $2 AND l.visitor_id = $3
                   AND l.time_start <= $4 AND l.time_end >= $5
                 ORDER BY l.cdr_id COLLATE \"C\" LIMIT 1)
             WHERE key = $1",
            &[
                &v.key,
                &v.device,
                &v.party_id,
                &shifted(entered, LINK_TOLERANCE_SECS),
                &shifted(entered, -LINK_TOLERANCE_SECS),
            ],
        )?;
    }
    Ok(())
}

pub fn link_leg(
    pg: &PgTx,
    device: &str,
    visitor_id: &str,
    start: NaiveDateTime,
    end: NaiveDateTime,
    alias: &str,
) -> Result<()> {
    pg.execute(
        "UPDATE queue_visits SET call_id = $5
         WHERE device = $1 AND party_kind = 'visitor' AND party_id = $2 AND call_id IS NULL
           AND entered_local >= $3 AND entered_local <= $4",
        &[
            &device,
            &visitor_id,
            &shifted(start, -LINK_TOLERANCE_SECS),
            &shifted(end, LINK_TOLERANCE_SECS),
            &alias,
        ],
    )?;
    Ok(())
}

pub fn between(pg: &PgTx, lo: &str, hi: &str, devices: &[String]) -> Result<Vec<StoredVisit>> {
    let devices = devices.to_vec();
    select(
        pg,
        &format!(
            "entered_local >= $1 AND entered_local < $2 AND {}",
            crate::store::scope::pg_clause("device", "$3")
        ),
        &[&lo, &hi, &devices],
    )
}

pub fn of_call(pg: &PgTx, call_id: &str) -> Result<Vec<StoredVisit>> {
    select(
        pg,
        "call_id IN (SELECT cl.leg_call_id FROM calls c JOIN call_legs cl ON cl.call_seq = c.seq WHERE c.id = $1)",
        &[&call_id],
    )
}

fn select(pg: &PgTx, filter: &str, args: &[&(dyn ToSql + Sync)]) -> Result<Vec<StoredVisit>> {
    let rows = pg.query(&select_sql(filter), args)?;
    rows.iter().map(visit_from).collect()
}

/// DELETE, not TRUNCATE: the queue replay clears and refills in one
/// transaction, and TRUNCATE's exclusive lock would block every reader of
/// the visits (the API, reports) until it commits; with DELETE they read
/// the old visits meanwhile, as on SQLite.
pub fn clear(pg: &PgTx) -> Result<()> {
    pg.batch_execute("DELETE FROM queue_visits")?;
    Ok(())
}
