//! `store::calls` on PostgreSQL: the calls stage's tables (`calls`,
//! `call_legs`, `leg_keys`, sql/postgres/004_calls_queues.sql) and the legs
//! it reads (`legs`, partitioned by month, found by the index on `id`:
//! sql/postgres/003_legs_events.sql).
//!
//! The calls stage runs once per leg on the deriving collector, so the
//! look-ups that SQLite does one cached statement at a time (cheap in
//! process) are one statement each here (`= ANY($n)`): every statement is a
//! round trip to the server.

use super::PgTx;
use crate::model::CallFacts;
use crate::store::calls::{call_leg_from, CallLeg, CALL_LEG_COLS, KEY_DAY_SECS, LONG_LEG_SECS};
use crate::store::legs::{self, StoredLeg, LOCAL_FMT};
use crate::store::Result;

/// The lock that makes placing legs in calls one writer at a time, as
/// SQLite's single writer does: the deriving collector takes it before it
/// reads a leg's candidates, `rebuild` for each of its batches. Without it
/// a leg placed live and an older one replayed by a rebuild at the same
/// time could each miss the other's join keys (neither committed yet) and
/// stay two calls. SHARE ROW EXCLUSIVE conflicts with itself and not with
/// readers; held until the transaction ends (one derivation slice).
pub(crate) const PLACEMENT_LOCK: &str = "LOCK TABLE leg_keys IN SHARE ROW EXCLUSIVE MODE";

pub fn insert_keys(
    pg: &PgTx,
    device: &str,
    leg_id: i64,
    keys: &[String],
    start_s: i64,
    end_s: i64,
) -> Result<()> {
    if keys.is_empty() {
        return Ok(());
    }
    // One statement for all the keys; `/` as in `store::calls::insert_keys`.
    pg.execute(
        "INSERT INTO leg_keys (device, end_day, key, end_s, start_s, leg_id)
         SELECT $1, $2, k, $3, $4, $5 FROM unnest($6::text[]) AS k
         ON CONFLICT DO NOTHING",
        &[
            &device,
            &(end_s / KEY_DAY_SECS),
            &end_s,
            &start_s,
            &leg_id,
            &keys,
        ],
    )?;
    Ok(())
}

/// `store::calls::candidates`: the same two kinds of look-ups (legs ending in
/// the window's day buckets, and long legs through the partial index
/// `leg_keys_long`, whose condition is repeated word for word so that the
/// planner can use it), for every key and day in one statement.
pub fn candidates(
    pg: &PgTx,
    device: &str,
    keys: &[String],
    lo: i64,
    hi: i64,
    end_lo: i64,
) -> Result<Vec<i64>> {
    pg.batch_execute(PLACEMENT_LOCK)?;
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let end_hi = hi.saturating_add(LONG_LEG_SECS);
    let days = (end_lo / KEY_DAY_SECS, end_hi / KEY_DAY_SECS);
    let long = format!(
        "SELECT leg_id FROM leg_keys WHERE device = $1 AND key = ANY($2) AND start_s BETWEEN $5 AND $6
            AND end_s > start_s + {LONG_LEG_SECS} AND end_s >= $3"
    );
    let rows = if days.1.saturating_sub(days.0) > MAX_DAY_LOOKUPS {
        // A window of many days (a leg archived before absurd spans were
        // refused): one range over its days, as on SQLite.
        pg.query(
            &format!(
                "SELECT leg_id FROM leg_keys WHERE device = $1 AND key = ANY($2)
                    AND end_day BETWEEN $7 AND $8 AND end_s BETWEEN $3 AND $4 AND start_s BETWEEN $5 AND $6
                 UNION {long} ORDER BY 1"
            ),
            &[
                &device, &keys, &end_lo, &end_hi, &lo, &hi, &days.0, &days.1,
            ],
        )?
    } else {
        // An index probe per (day, key), as SQLite's look-up per day.
        let day_list: Vec<i64> = (days.0..=days.1).collect();
        pg.query(
            &format!(
                "SELECT leg_id FROM leg_keys WHERE device = $1 AND end_day = ANY($7) AND key = ANY($2)
                    AND end_s BETWEEN $3 AND $4 AND start_s BETWEEN $5 AND $6
                 UNION {long} ORDER BY 1"
            ),
            &[&device, &keys, &end_lo, &end_hi, &lo, &hi, &day_list],
        )?
    };
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// As in `store::calls`: a window of more days than this is one range.
const MAX_DAY_LOOKUPS: i64 = 8;

pub fn legs_by_ids(
    pg: &PgTx,
    ids: &[i64],
    tz_of: &dyn Fn(&str) -> chrono_tz::Tz,
) -> Result<Vec<StoredLeg>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let rows = pg.query(
        &format!(
            "SELECT {} FROM legs WHERE id = ANY($1) ORDER BY id",
            legs::SELECT_COLS
        ),
        &[&ids],
    )?;
    rows.iter()
        .map(|r| super::legs::from_row(r, tz_of))
        .collect()
}

/// The legs with these ids (missing ones skipped), in the order of `ids`:
/// one statement for the list (a round trip per id would dominate).
pub fn call_legs_by_ids(pg: &PgTx, ids: &[i64]) -> Result<Vec<CallLeg>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let rows = pg.query(
        &format!("SELECT {CALL_LEG_COLS} FROM legs WHERE id = ANY($1) ORDER BY id"),
        &[&ids],
    )?;
    let found = rows.iter().map(call_leg_from).collect::<Result<Vec<_>>>()?;
    Ok(ids
        .iter()
        .filter_map(|id| {
            found
                .binary_search_by_key(id, |l| l.id)
                .ok()
                .map(|i| found[i].clone())
        })
        .collect())
}

pub fn call_legs_page(pg: &PgTx, after: i64, limit: usize) -> Result<Vec<(String, CallLeg)>> {
    let rows = pg.query(
        &format!("SELECT {CALL_LEG_COLS} FROM legs WHERE id > $1 ORDER BY id LIMIT $2"),
        &[&after, &(limit as i64)],
    )?;
    rows.iter()
        .map(|r| Ok((r.try_get(17)?, call_leg_from(r)?)))
        .collect()
}

pub fn call_seq_of_leg(pg: &PgTx, leg_id: i64) -> Result<Option<i64>> {
    Ok(pg
        .query_opt(
            "SELECT call_seq FROM call_legs WHERE leg_id = $1",
            &[&leg_id],
        )?
        .map(|r| r.get(0)))
}

pub fn leg_ids_of_seq(pg: &PgTx, seq: i64) -> Result<Vec<i64>> {
    let rows = pg.query(
        "SELECT leg_id FROM call_legs WHERE call_seq = $1 ORDER BY leg_id",
        &[&seq],
    )?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

pub fn leg_ids_of_call(pg: &PgTx, call_id: &str) -> Result<Vec<i64>> {
    let rows = pg.query(
        "SELECT cl.leg_id FROM calls c JOIN call_legs cl ON cl.call_seq = c.seq
         WHERE c.id = $1 ORDER BY cl.leg_id",
        &[&call_id],
    )?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

pub fn delete_call(pg: &PgTx, seq: i64) -> Result<()> {
    pg.execute("DELETE FROM calls WHERE seq = $1", &[&seq])?;
    Ok(())
}

const CALL_SET: &str = "id = excluded.id, device = excluded.device, direction = excluded.direction,
     forwarded_out = excluded.forwarded_out, caller = excluded.caller, callee = excluded.callee,
     extensions = excluded.extensions, answered_by = excluded.answered_by, trunk = excluded.trunk,
     route = excluded.route, start_local = excluded.start_local, end_local = excluded.end_local,
     talk_seconds = excluded.talk_seconds, billable_seconds = excluded.billable_seconds,
     answered = excluded.answered, leg_count = excluded.leg_count, last_change_ms = excluded.last_change_ms,
     billed_number = excluded.billed_number";

/// `store::calls::put_call`: a given `seq` is a row the calls stage read
/// (the oldest of the merged calls), written in place.
pub fn put_call(
    pg: &PgTx,
    seq: Option<i64>,
    f: &CallFacts,
    links: &[(i64, String)],
    last_change_ms: i64,
) -> Result<i64> {
    let extensions = serde_json::to_string(&f.extensions).unwrap_or_else(|_| "[]".into());
    let (start, end) = (
        f.start.format(LOCAL_FMT).to_string(),
        f.end.format(LOCAL_FMT).to_string(),
    );
    let (forwarded_out, answered) = (f.forwarded_out as i64, f.answered as i64);
    let leg_count = f.leg_cdr_ids.len() as i64;
    let direction = f.direction.as_str();
    const COLS: &str = "id, device, direction, forwarded_out, caller, callee, extensions, answered_by,
        trunk, route, start_local, end_local, talk_seconds, billable_seconds, answered, leg_count, last_change_ms,
        billed_number";
    let fields: [&(dyn tokio_postgres::types::ToSql + Sync); 18] = [
        &f.id,
        &f.device,
        &direction,
        &forwarded_out,
        &f.caller,
        &f.callee,
        &extensions,
        &f.answered_by,
        &f.trunk,
        &f.route,
        &start,
        &end,
        &f.talk_seconds,
        &f.billable_seconds,
        &answered,
        &leg_count,
        &last_change_ms,
        &f.billed_number,
    ];
    let marks = "$1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18";
    let seq: i64 = match seq {
        Some(seq) => {
            let mut args = fields.to_vec();
            args.push(&seq);
            pg.query_one(
                &format!(
                    "INSERT INTO calls (seq, {COLS}) VALUES ($19, {marks})
                     ON CONFLICT (seq) DO UPDATE SET {CALL_SET} RETURNING seq"
                ),
                &args,
            )?
            .get(0)
        }
        // The next seq as SQLite numbers a row (max + 1, a number freed
        // at the end by a merge taken again), not the identity's next
        // value: the same legs give the same rows on both backends. Safe
        // with one writer of calls at a time (`PLACEMENT_LOCK`).
        None => pg
            .query_one(
                &format!(
                    "INSERT INTO calls (seq, {COLS})
                     VALUES ((SELECT COALESCE(MAX(seq), 0) + 1 FROM calls), {marks}) RETURNING seq"
                ),
                &fields,
            )?
            .get(0),
    };
    if !links.is_empty() {
        // One statement for all the links; one that already points here is
        // not rewritten (the WHERE), as on SQLite.
        let (ids, aliases): (Vec<i64>, Vec<&str>) =
            links.iter().map(|(id, a)| (*id, a.as_str())).unzip();
        pg.execute(
            "INSERT INTO call_legs (leg_id, call_seq, leg_call_id)
             SELECT l, $1, a FROM unnest($2::bigint[], $3::text[]) AS u(l, a)
             ON CONFLICT (leg_id) DO UPDATE SET call_seq = excluded.call_seq
               WHERE call_legs.call_seq <> excluded.call_seq",
            &[&seq, &ids, &aliases],
        )?;
    }
    Ok(seq)
}

pub fn resolve_id(pg: &PgTx, id: &str) -> Result<Option<String>> {
    if let Some(r) = pg.query_opt("SELECT id FROM calls WHERE id = $1", &[&id])? {
        return Ok(Some(r.get(0)));
    }
    Ok(pg
        .query_opt(
            "SELECT c.id FROM call_legs cl JOIN calls c ON c.seq = cl.call_seq WHERE cl.leg_call_id = $1",
            &[&id],
        )?
        .map(|r| r.get(0)))
}

/// Empties the call tables (before a rebuild). TRUNCATE rather than DELETE:
/// it drops the tables' files whole instead of leaving every row dead for
/// VACUUM.
pub fn clear(pg: &PgTx) -> Result<()> {
    pg.batch_execute("TRUNCATE call_legs, calls, leg_keys")?;
    Ok(())
}

/// Test support: stores `leg` as `store::legs::insert` does on PostgreSQL
/// (its id from `leg_ids`, then its row in `legs`), for the tests of the
/// calls stage; `store::legs` has its own version.
#[cfg(test)]
pub(crate) fn store_leg_for_test(
    pg: &PgTx,
    device: &str,
    received_ms: i64,
    leg: &crate::model::Leg,
    tz: chrono_tz::Tz,
) -> Result<i64> {
    let hash = legs::content_hash(leg);
    let received_s = received_ms as f64 / 1000.0;
    let id: i64 = pg
        .query_one(
            "INSERT INTO leg_ids (device, cdr_id, received_at, content_hash)
             VALUES ($1, $2, to_timestamp($3), $4) RETURNING id",
            &[&device, &leg.cdr_id, &received_s, &hash],
        )?
        .get(0);
    let (start_utc, end_utc) = (
        legs::local_to_utc(tz, leg.time_start).to_rfc3339(),
        legs::local_to_utc(tz, leg.time_end).to_rfc3339(),
    );
    let (ts, te) = (
        leg.time_start.format(LOCAL_FMT).to_string(),
        leg.time_end.format(LOCAL_FMT).to_string(),
    );
    pg.execute(
        "INSERT INTO legs (id, received_at, device, cdr_id, push_id, received_ms, callid, visitor_id, outer_id,
             leg_type, route, cpn, cdpn, time_start, time_end, start_utc, end_utc, duration, trunk_number,
             recording, rec_codec, mac, clock_skewed, content_hash)
         VALUES ($1, to_timestamp($2), $3, $4, 0, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17,
             $18, $19, $20, $21, 0, $22)",
        &[
            &id,
            &received_s,
            &device,
            &leg.cdr_id,
            &received_ms,
            &leg.callid,
            &leg.visitor_id,
            &leg.outer_id,
            &leg.leg_type.as_str(),
            &leg.route,
            &leg.cpn,
            &leg.cdpn,
            &ts,
            &te,
            &start_utc,
            &end_utc,
            &leg.duration,
            &leg.trunk_number,
            &leg.recording,
            &leg.rec_codec,
            &leg.mac,
            &hash,
        ],
    )?;
    Ok(id)
}
