//! `store::legs` on PostgreSQL.
//!
//! `legs` is partitioned by month of its push's receive time, and a unique
//! key on a partitioned table must include the partition key; so the dedup
//! key (device, Cdr id) lives in `leg_ids`, unpartitioned, which also hands
//! out the leg's id: a leg re-pushed months later is still a duplicate
//! (ARCHITECTURE.md "Ids").

use tokio_postgres::Row;

use super::PgTx;
use crate::store::legs::{LegRow, NewLeg, StoredLeg, SELECT_COLS};
use crate::store::{Result, StoreError};

/// A receive time in unix ms as the TIMESTAMPTZ partition key (exact: no
/// floating point on the way).
const RECEIVED: &str = "(TIMESTAMPTZ 'epoch' + $3::bigint * INTERVAL '1 millisecond')";

/// Stores `new` unless its (device, Cdr id) is known; its id if stored.
/// One round trip: the key, then the leg with the key's id.
pub(in crate::store) fn insert_new(pg: &PgTx, new: &NewLeg) -> Result<Option<i64>> {
    let leg = new.leg;
    let sql = format!(
        "WITH k AS (
             INSERT INTO leg_ids (device, cdr_id, received_at, content_hash)
             VALUES ($1, $2, {RECEIVED}, $4)
             ON CONFLICT (device, cdr_id) DO NOTHING
             RETURNING id, received_at),
         l AS (
             INSERT INTO legs (id, received_at, device, cdr_id, push_id, received_ms, callid, visitor_id,
                               outer_id, leg_type, route, cpn, cdpn, time_start, time_end, start_utc,
                               end_utc, duration, trunk_number, recording, rec_codec, mac, clock_skewed,
                               content_hash)
             SELECT k.id, k.received_at, $1, $2, $5::bigint, $3::bigint, $6::text, $7::text,
                    $8::text, $9::text, $10::text, $11::text, $12::text, $13::text, $14::text, $15::text,
                    $16::text, $17::bigint, $18::text, $19::text, $20::text, $21::text, $22::bigint,
                    $4
             FROM k)
         SELECT id FROM k"
    );
    let skewed = i64::from(new.skewed);
    let row = pg.query_opt(
        &sql,
        &[
            &new.device,
            &leg.cdr_id,
            &new.received_ms,
            &new.hash,
            &new.push_id,
            &leg.callid,
            &leg.visitor_id,
            &leg.outer_id,
            &leg.leg_type.as_str(),
            &leg.route,
            &leg.cpn,
            &leg.cdpn,
            &new.time_start,
            &new.time_end,
            &new.start_utc,
            &new.end_utc,
            &leg.duration,
            &leg.trunk_number,
            &leg.recording,
            &leg.rec_codec,
            &leg.mac,
            &skewed,
        ],
    )?;
    Ok(row.map(|r| r.get(0)))
}

/// The id and content hash of the stored leg of (device, Cdr id).
pub fn existing(pg: &PgTx, device: &str, cdr_id: &str) -> Result<(i64, String)> {
    let r = pg.query_one(
        "SELECT id, content_hash FROM leg_ids WHERE device = $1 AND cdr_id = $2",
        &[&device, &cdr_id],
    )?;
    Ok((r.get(0), r.get(1)))
}

pub fn insert_conflict(
    pg: &PgTx,
    device: &str,
    cdr_id: &str,
    push_id: i64,
    leg_json: &str,
) -> Result<()> {
    pg.execute(
        "INSERT INTO leg_conflicts (device, cdr_id, push_id, leg_json) VALUES ($1, $2, $3, $4)",
        &[&device, &cdr_id, &push_id, &leg_json],
    )?;
    Ok(())
}

/// Maps a row selected with [`SELECT_COLS`] to the same [`StoredLeg`] as
/// `store::legs::from_row` on SQLite; `tz_of` gives each device's zone.
pub fn from_row(r: &Row, tz_of: &dyn Fn(&str) -> chrono_tz::Tz) -> Result<StoredLeg> {
    let row = LegRow {
        id: r.try_get(0)?,
        device: r.try_get(1)?,
        cdr_id: r.try_get(2)?,
        callid: r.try_get(3)?,
        visitor_id: r.try_get(4)?,
        outer_id: r.try_get(5)?,
        leg_type: r.try_get(6)?,
        route: r.try_get(7)?,
        cpn: r.try_get(8)?,
        cdpn: r.try_get(9)?,
        time_start: r.try_get(10)?,
        time_end: r.try_get(11)?,
        duration: r.try_get(12)?,
        trunk_number: r.try_get(13)?,
        recording: r.try_get(14)?,
        rec_codec: r.try_get(15)?,
        mac: r.try_get(16)?,
        clock_skewed: r.try_get::<_, i64>(17)? != 0,
        received_ms: r.try_get(18)?,
    };
    row.into_stored(tz_of)
        .map_err(|(i, e)| StoreError::Corrupt(format!("legs column {i}: {e}")))
}

pub fn between(
    pg: &PgTx,
    lo: &str,
    hi: &str,
    devices: &[String],
    limit: i64,
    tz_of: &dyn Fn(&str) -> chrono_tz::Tz,
) -> Result<Vec<StoredLeg>> {
    // time_start is COLLATE "C" (sql/postgres/003): a string range as on SQLite.
    let sql = format!(
        "SELECT {SELECT_COLS} FROM legs WHERE time_start >= $1 AND time_start < $2 AND {}
         ORDER BY time_start, id LIMIT $3",
        crate::store::scope::pg_clause("device", "$4")
    );
    let devices = devices.to_vec();
    pg.query(&sql, &[&lo, &hi, &limit, &devices])?
        .iter()
        .map(|r| from_row(r, tz_of))
        .collect()
}

pub fn by_cdr_id(
    pg: &PgTx,
    device: &str,
    cdr_id: &str,
    tz_of: &dyn Fn(&str) -> chrono_tz::Tz,
) -> Result<Option<StoredLeg>> {
    let sql = format!("SELECT {SELECT_COLS} FROM legs WHERE device = $1 AND cdr_id = $2");
    pg.query_opt(&sql, &[&device, &cdr_id])?
        .map(|r| from_row(&r, tz_of))
        .transpose()
}

pub fn count(pg: &PgTx) -> Result<i64> {
    Ok(pg.query_one("SELECT COUNT(*) FROM legs", &[])?.get(0))
}
