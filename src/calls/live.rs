//! Keeping calls up to date as legs arrive, and `rebuild`.
//!
//! A call is a connected component of legs under `rules::joins`. When a leg
//! arrives we find the legs it joins (indexed by `join_keys` and time), take
//! the calls they are in, and replace those calls by one recomputed from all
//! their legs plus the new one. Connected components do not depend on the
//! order edges are added, and `summarize` is a pure function of the leg
//! set, so any arrival order gives the same calls — and `rebuild`, which
//! simply feeds every stored leg through this same function, reproduces the
//! live result exactly.

use rusqlite::Connection;

use super::{join_keys, joins, summarize, call_id};
use crate::model::Leg;
use crate::store::{self, calls as db, legs::StoredLeg};

/// Legs are assumed to last less than this; older candidates are not searched.
pub const MAX_LEG_SECS: i64 = 86_400;

/// Updates the calls after leg `leg_id` (already stored) arrived.
pub fn on_leg(
    conn: &Connection,
    device: &str,
    leg_id: i64,
    leg: &Leg,
    tz_of: &dyn Fn(&str) -> chrono_tz::Tz,
) -> store::Result<String> {
    let keys = join_keys(leg);
    let (s, e) = (db::local_secs(leg.time_start), db::local_secs(leg.time_end));
    let tol = super::TOLERANCE_SECS;
    // Exactly the legs `overlaps` can accept: start <= e + tol and end >= s - tol.
    let cand = db::candidates(conn, device, &keys, s - MAX_LEG_SECS, e + tol, s - tol)?;
    db::insert_keys(conn, device, leg_id, &keys, s, e)?;

    // The calls this leg joins.
    let mut merged: Vec<String> = Vec::new();
    for c in db::legs_by_ids(conn, &cand, tz_of)? {
        if c.id != leg_id && joins(leg, &c.leg) {
            if let Some(call) = db::call_of_leg(conn, c.id)? {
                if !merged.contains(&call) {
                    merged.push(call);
                }
            }
        }
    }
    let mut ids: Vec<i64> = vec![leg_id];
    for call in &merged {
        ids.extend(db::leg_ids_of_call(conn, call)?);
        db::delete_call(conn, call)?;
    }
    ids.sort_unstable();
    ids.dedup();
    let legs: Vec<StoredLeg> = db::legs_by_ids(conn, &ids, tz_of)?;
    write_call(conn, device, &legs)
}

/// Summarizes `legs` (one component) and stores the call.
fn write_call(conn: &Connection, device: &str, legs: &[StoredLeg]) -> store::Result<String> {
    let refs: Vec<&Leg> = legs.iter().map(|l| &l.leg).collect();
    let facts = summarize(device, &refs).ok_or(store::StoreError::NotFound)?;
    let last_change = legs.iter().map(|l| l.received_ms).max().unwrap_or(0);
    let aliases: Vec<(i64, String)> = legs.iter().map(|l| (l.id, call_id(device, &l.cdr_id))).collect();
    db::put_call(conn, &facts, &aliases, last_change)?;
    Ok(facts.id)
}

/// Recomputes every call from the stored legs, through the live path.
/// `progress` is called after each leg with (done, total).
pub fn rebuild(
    conn: &Connection,
    tz_of: &dyn Fn(&str) -> chrono_tz::Tz,
    progress: &mut dyn FnMut(u64, u64),
) -> store::Result<u64> {
    db::clear(conn)?;
    let total = store::legs::count(conn)? as u64;
    let mut done = 0u64;
    let mut last_id = 0i64;
    // Page through legs by id so memory stays flat whatever the archive size.
    loop {
        let page: Vec<(i64, String)> = {
            let mut st = conn.prepare_cached("SELECT id, device FROM legs WHERE id > ?1 ORDER BY id LIMIT 1000")?;
            let rows = st.query_map([last_id], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect::<rusqlite::Result<_>>()?
        };
        if page.is_empty() {
            break;
        }
        let ids: Vec<i64> = page.iter().map(|(id, _)| *id).collect();
        for l in db::legs_by_ids(conn, &ids, tz_of)? {
            on_leg(conn, &l.device, l.id, &l.leg, tz_of)?;
            done += 1;
            progress(done, total);
        }
        last_id = *ids.last().unwrap_or(&last_id);
    }
    Ok(done)
}
