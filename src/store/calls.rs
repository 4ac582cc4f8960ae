//! Typed queries of the derived call tables (`calls`, `call_legs`, `leg_keys`)
//! for the calls stage; the API's reads are `call_search` and `call_detail`.

use chrono::NaiveDateTime;
use rusqlite::{params, params_from_iter, OptionalExtension};

use super::cells::Cells;
use super::legs::{self, StoredLeg, LOCAL_FMT};
use super::{Result, Tx};

/// A call's detail and the search, read by the API and the CLI, live in
/// `call_detail` and `call_search`; named here too, beside the call tables
/// they read.
pub use super::call_detail::{detail, CallDetail};
pub use super::call_search::{search, CallFilter, CallRow};
use crate::model::CallFacts;
use crate::model::Leg;

/// Seconds since the epoch of a device-local time, as if it were UTC
/// (only compared with other times of the same device).
pub fn local_secs(t: NaiveDateTime) -> i64 {
    t.and_utc().timestamp()
}

/// The width of the time buckets of `leg_keys` (`end_day` = `end_s / KEY_DAY_SECS`,
/// the same division as in sql/sqlite/009_calls_time_order.sql): entries are
/// grouped by the day their leg ends, so new entries all go into the current
/// day's part of the b-tree, whatever the keys.
pub const KEY_DAY_SECS: i64 = 86_400;

pub fn insert_keys(
    conn: &Tx,
    device: &str,
    leg_id: i64,
    keys: &[String],
    start_s: i64,
    end_s: i64,
) -> Result<()> {
    if let Some(pg) = conn.pg() {
        return super::postgres::calls::insert_keys(pg, device, leg_id, keys, start_s, end_s);
    }
    let mut st = conn.prepare_cached(
        "INSERT OR IGNORE INTO leg_keys (device, end_day, key, end_s, start_s, leg_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    for k in keys {
        st.execute(params![
            device,
            end_s / KEY_DAY_SECS,
            k,
            end_s,
            start_s,
            leg_id
        ])?;
    }
    Ok(())
}

/// Legs sharing one of `keys` whose spans start within `[lo, hi]` and end at
/// or after `end_lo`, sorted and deduplicated.
///
/// `end_lo` lets the caller pass the exact "spans overlap" condition of
/// `calls::rules::overlaps` (`end + tolerance >= start`): without it
/// every leg of a recycled visitor/outer id in the last day is a candidate
/// (hundreds on a busy device), each loaded and parsed only to be rejected.
///
/// Two kinds of lookups per key, together exactly the legs the conditions
/// select (sql/sqlite/009_calls_time_order.sql):
/// * legs ending by `hi + LONG_LEG_SECS`, walked by end time in each day
///   bucket the window `[end_lo, hi + LONG_LEG_SECS]` covers (two or
///   three), only those that ended in the window, which for legs arriving
///   as they end is a handful, and at worst one day of the key's legs;
/// * legs longer than `LONG_LEG_SECS` (`leg_keys_long`, normally empty): the
///   only ones that can start by `hi` and yet end after `hi + LONG_LEG_SECS`.
pub fn candidates(
    conn: &Tx,
    device: &str,
    keys: &[String],
    lo: i64,
    hi: i64,
    end_lo: i64,
) -> Result<Vec<i64>> {
    if let Some(pg) = conn.pg() {
        return super::postgres::calls::candidates(pg, device, keys, lo, hi, end_lo);
    }
    let mut by_end = conn.prepare_cached(
        "SELECT leg_id FROM leg_keys WHERE device = ?1 AND end_day = ?2 AND key = ?3
            AND end_s BETWEEN ?4 AND ?5 AND start_s BETWEEN ?6 AND ?7",
    )?;
    // The WHERE term must match the partial index's exactly for SQLite to
    // be allowed to use it, and INDEXED BY because without statistics it
    // may prefer the primary key, which with no day given means walking
    // every entry of the device.
    let mut long = conn.prepare_cached(&format!(
        "SELECT leg_id FROM leg_keys INDEXED BY leg_keys_long WHERE device = ?1 AND key = ?2 AND start_s BETWEEN ?3 AND ?4
            AND end_s > start_s + {LONG_LEG_SECS} AND end_s >= ?5"
    ))?;
    let end_hi = hi.saturating_add(LONG_LEG_SECS);
    // `/` as where the buckets are written (`insert_keys`, and SQL in 009).
    let days = (end_lo / KEY_DAY_SECS, end_hi / KEY_DAY_SECS);
    let mut out = Vec::new();
    for k in keys {
        if days.1.saturating_sub(days.0) > MAX_DAY_LOOKUPS {
            // A window of more than a few days (a leg archived before the
            // parser refused absurd spans, years long): one range over all
            // its days instead of a look-up per calendar day, which for a
            // leg "ending" in 9999 was millions of look-ups holding the
            // writer for minutes. Prepared only here: the live path never
            // comes here.
            let mut by_days = conn.prepare_cached(
                "SELECT leg_id FROM leg_keys WHERE device = ?1 AND end_day BETWEEN ?2 AND ?3 AND key = ?4
                    AND end_s BETWEEN ?5 AND ?6 AND start_s BETWEEN ?7 AND ?8",
            )?;
            let rows = by_days.query_map(
                params![device, days.0, days.1, k, end_lo, end_hi, lo, hi],
                |r| r.get::<_, i64>(0),
            )?;
            for id in rows {
                out.push(id?);
            }
        } else {
            for day in days.0..=days.1 {
                let rows = by_end
                    .query_map(params![device, day, k, end_lo, end_hi, lo, hi], |r| {
                        r.get::<_, i64>(0)
                    })?;
                for id in rows {
                    out.push(id?);
                }
            }
        }
        for id in long.query_map(params![device, k, lo, hi, end_lo], |r| r.get::<_, i64>(0))? {
            out.push(id?);
        }
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

/// Day buckets [`candidates`] looks up one by one; a wider window is one
/// range scan (a leg's window is normally two or three days).
const MAX_DAY_LOOKUPS: i64 = 8;

/// The span beyond which a leg counts as long for [`candidates`]; the same
/// number as in `leg_keys_long`'s definition (sql/sqlite/009_calls_time_order.sql).
pub const LONG_LEG_SECS: i64 = 86_400;

pub fn legs_by_ids(
    conn: &Tx,
    ids: &[i64],
    tz_of: &dyn Fn(&str) -> chrono_tz::Tz,
) -> Result<Vec<StoredLeg>> {
    if let Some(pg) = conn.pg() {
        return super::postgres::calls::legs_by_ids(pg, ids, tz_of);
    }
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut out = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(500) {
        let marks = vec!["?"; chunk.len()].join(",");
        let sql = format!(
            "SELECT {} FROM legs WHERE id IN ({marks}) ORDER BY id",
            legs::SELECT_COLS
        );
        let mut st = conn.prepare_cached(&sql)?;
        for r in st.query_map(params_from_iter(chunk.iter()), |r| legs::from_row(r, tz_of))? {
            out.push(r?);
        }
    }
    Ok(out)
}

/// A stored leg as the calls stage needs it: the leg itself, its row id and
/// receive time. No API strings and no time zone (grouping and summaries
/// work in device-local time), so loading one is cheap on the hot path.
#[derive(Debug, Clone, PartialEq)]
pub struct CallLeg {
    pub id: i64,
    pub received_ms: i64,
    pub leg: Leg,
}

/// The columns of a [`CallLeg`] and its device, on either backend.
pub(super) const CALL_LEG_COLS: &str =
    "id, cdr_id, callid, visitor_id, outer_id, leg_type, route, cpn, cdpn,
     time_start, time_end, duration, trunk_number, recording, rec_codec, mac, received_ms, device";

/// Maps a `CALL_LEG_COLS` row of either backend; the device (column 17) is
/// read by the caller if needed.
pub(super) fn call_leg_from(r: &impl Cells) -> Result<CallLeg> {
    let time = |i: usize| -> Result<NaiveDateTime> {
        let s: String = r.cell(i)?;
        legs::parse_local(&s)
            .ok_or_else(|| super::StoreError::Corrupt(format!("bad local time {s:?}")))
    };
    Ok(CallLeg {
        id: r.cell(0)?,
        received_ms: r.cell(16)?,
        leg: Leg {
            cdr_id: r.cell(1)?,
            callid: r.cell(2)?,
            visitor_id: r.cell(3)?,
            outer_id: r.cell(4)?,
            leg_type: r.cell::<String>(5)?.into(),
            route: r.cell(6)?,
            cpn: r.cell(7)?,
            cdpn: r.cell(8)?,
            time_start: time(9)?,
            time_end: time(10)?,
            duration: r.cell(11)?,
            trunk_number: r.cell(12)?,
            recording: r.cell(13)?,
            rec_codec: r.cell(14)?,
            mac: r.cell(15)?,
        },
    })
}

/// The legs with these ids (missing ones skipped), in the order of `ids`.
/// One cached primary-key lookup per id: an `IN (?, ?, …)` list would be a
/// new statement for every list length and thrash the statement cache.
pub fn call_legs_by_ids(conn: &Tx, ids: &[i64]) -> Result<Vec<CallLeg>> {
    if let Some(pg) = conn.pg() {
        return super::postgres::calls::call_legs_by_ids(pg, ids);
    }
    let mut st = conn.prepare_cached(&format!("SELECT {CALL_LEG_COLS} FROM legs WHERE id = ?1"))?;
    let mut out = Vec::with_capacity(ids.len());
    for &id in ids {
        if let Some(r) = st.query([id])?.next()? {
            out.push(call_leg_from(r)?);
        }
    }
    Ok(out)
}

/// Up to `limit` legs with id > `after`, in id order, with their device:
/// the pages `rebuild` walks so memory stays flat whatever the archive size.
pub fn call_legs_page(conn: &Tx, after: i64, limit: usize) -> Result<Vec<(String, CallLeg)>> {
    if let Some(pg) = conn.pg() {
        return super::postgres::calls::call_legs_page(pg, after, limit);
    }
    let mut st = conn.prepare_cached(&format!(
        "SELECT {CALL_LEG_COLS} FROM legs WHERE id > ?1 ORDER BY id LIMIT ?2"
    ))?;
    let mut rows = st.query(params![after, limit as i64])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        out.push((r.get(17)?, call_leg_from(r)?));
    }
    Ok(out)
}

/// The `seq` of the call leg `leg_id` is in.
pub fn call_seq_of_leg(conn: &Tx, leg_id: i64) -> Result<Option<i64>> {
    if let Some(pg) = conn.pg() {
        return super::postgres::calls::call_seq_of_leg(pg, leg_id);
    }
    Ok(conn
        .prepare_cached("SELECT call_seq FROM call_legs WHERE leg_id = ?1")?
        .query_row([leg_id], |r| r.get(0))
        .optional()?)
}

/// The legs of the call with `seq`, in id order (the calls stage).
pub fn leg_ids_of_seq(conn: &Tx, seq: i64) -> Result<Vec<i64>> {
    if let Some(pg) = conn.pg() {
        return super::postgres::calls::leg_ids_of_seq(pg, seq);
    }
    let mut st =
        conn.prepare_cached("SELECT leg_id FROM call_legs WHERE call_seq = ?1 ORDER BY leg_id")?;
    let rows = st.query_map([seq], |r| r.get(0))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// The legs of the call with current id `call_id`, in id order (the API).
pub fn leg_ids_of_call(conn: &Tx, call_id: &str) -> Result<Vec<i64>> {
    if let Some(pg) = conn.pg() {
        return super::postgres::calls::leg_ids_of_call(pg, call_id);
    }
    let mut st = conn.prepare_cached(
        "SELECT cl.leg_id FROM calls c JOIN call_legs cl ON cl.call_seq = c.seq
         WHERE c.id = ?1 ORDER BY cl.leg_id",
    )?;
    let rows = st.query_map([call_id], |r| r.get(0))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub fn delete_call(conn: &Tx, seq: i64) -> Result<()> {
    if let Some(pg) = conn.pg() {
        return super::postgres::calls::delete_call(pg, seq);
    }
    conn.prepare_cached("DELETE FROM calls WHERE seq = ?1")?
        .execute([seq])?;
    Ok(())
}

/// Writes call `f` as row `seq` (replacing it), or as a new row when `seq`
/// is `None`, and points `links`, the legs (id, the leg's own call id) not
/// linked to it yet, at it. Returns its `seq`. Its `leg_count` is the number
/// of legs in `f`.
///
/// Rows are addressed by `seq`, never by the hashed id (sql/sqlite/009_calls_time_order.sql):
/// a new row is appended, and an existing one is recent, so the pages
/// written are the last ones of `calls` and `call_legs(call_seq)`.
pub fn put_call(
    conn: &Tx,
    seq: Option<i64>,
    f: &CallFacts,
    links: &[(i64, String)],
    last_change_ms: i64,
) -> Result<i64> {
    if let Some(pg) = conn.pg() {
        return super::postgres::calls::put_call(pg, seq, f, links, last_change_ms);
    }
    let seq: i64 = conn
        .prepare_cached(
            "INSERT INTO calls (seq, id, device, direction, forwarded_out, caller, callee, extensions, answered_by,
                 trunk, route, start_local, end_local, talk_seconds, billable_seconds, answered, leg_count, last_change_ms,
                 billed_number)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19)
             ON CONFLICT (seq) DO UPDATE SET id = excluded.id, device = excluded.device, direction = excluded.direction,
                 forwarded_out = excluded.forwarded_out, caller = excluded.caller, callee = excluded.callee,
                 extensions = excluded.extensions, answered_by = excluded.answered_by, trunk = excluded.trunk,
                 route = excluded.route, start_local = excluded.start_local, end_local = excluded.end_local,
                 talk_seconds = excluded.talk_seconds, billable_seconds = excluded.billable_seconds,
                 answered = excluded.answered, leg_count = excluded.leg_count, last_change_ms = excluded.last_change_ms,
                 billed_number = excluded.billed_number
             RETURNING seq",
        )?
        .query_row(
            params![
                seq,
                f.id,
                f.device,
                f.direction.as_str(),
                f.forwarded_out,
                f.caller,
                f.callee,
                serde_json::to_string(&f.extensions).unwrap_or_else(|_| "[]".into()),
                f.answered_by,
                f.trunk,
                f.route,
                f.start.format(LOCAL_FMT).to_string(),
                f.end.format(LOCAL_FMT).to_string(),
                f.talk_seconds,
                f.billable_seconds,
                f.answered,
                f.leg_cdr_ids.len() as i64,
                last_change_ms,
                f.billed_number,
            ],
            |r| r.get(0),
        )?;
    // A link that already points here is not rewritten (the WHERE).
    let mut st = conn.prepare_cached(
        "INSERT INTO call_legs (leg_id, call_seq, leg_call_id) VALUES (?1, ?2, ?3)
         ON CONFLICT (leg_id) DO UPDATE SET call_seq = excluded.call_seq WHERE call_seq <> excluded.call_seq",
    )?;
    for (leg_id, alias) in links {
        st.execute(params![leg_id, seq, alias])?;
    }
    Ok(seq)
}

/// Resolves an id ever shown to a user to the call's current id.
pub fn resolve_id(conn: &Tx, id: &str) -> Result<Option<String>> {
    if let Some(pg) = conn.pg() {
        return super::postgres::calls::resolve_id(pg, id);
    }
    let direct: Option<String> = conn
        .prepare_cached("SELECT id FROM calls WHERE id = ?1")?
        .query_row([id], |r| r.get(0))
        .optional()?;
    if direct.is_some() {
        return Ok(direct);
    }
    Ok(conn
        .prepare_cached(
            "SELECT c.id FROM call_legs cl JOIN calls c ON c.seq = cl.call_seq WHERE cl.leg_call_id = ?1",
        )?
        .query_row([id], |r| r.get(0))
        .optional()?)
}

/// Deletes every derived call row (before a rebuild).
pub fn clear(conn: &Tx) -> Result<()> {
    if let Some(pg) = conn.pg() {
        return super::postgres::calls::clear(pg);
    }
    conn.execute_batch("DELETE FROM call_legs; DELETE FROM calls; DELETE FROM leg_keys;")?;
    Ok(())
}

/// (name, definition) of the indexes on the hashed ids: they serve lookups
/// by the ids users see (the API, redirects), never the calls stage, which
/// addresses calls by `seq` (sql/sqlite/009_calls_time_order.sql). Each write to them lands
/// on a random page, so a rebuild drops them while it replays and creates
/// them at the end, one sorted pass each instead of a random write per leg.
const LOOKUP_INDEXES: &[(&str, &str)] = &[
    ("calls_id", "calls(id)"),
    ("call_legs_alias", "call_legs(leg_call_id)"),
];

/// Creates the lookup indexes that are missing: at the end of a rebuild,
/// and after the migrations at every open, so that a rebuild interrupted
/// while they were dropped leaves none missing.
pub fn create_lookup_indexes(conn: &Tx) -> Result<()> {
    // On PostgreSQL the lookup indexes stay (sql/postgres/004_calls_queues.sql
    // makes them): other collectors go on serving lookups by id while a
    // rebuild replays, and dropping an index takes an exclusive lock on its
    // table across every collector; nor does PostgreSQL copy the pages a
    // batch changes the way SQLite's savepoints do, the cost that dropping
    // them saves there.
    if conn.is_postgres() {
        return Ok(());
    }
    for (name, on) in LOOKUP_INDEXES {
        conn.execute_batch(&format!("CREATE UNIQUE INDEX IF NOT EXISTS {name} ON {on}"))?;
    }
    Ok(())
}

/// Drops the lookup indexes (before a rebuild replays the legs).
pub fn drop_lookup_indexes(conn: &Tx) -> Result<()> {
    // On PostgreSQL the lookup indexes stay (sql/postgres/004_calls_queues.sql
    // makes them): other collectors go on serving lookups by id while a
    // rebuild replays, and dropping an index takes an exclusive lock on its
    // table across every collector; nor does PostgreSQL copy the pages a
    // batch changes the way SQLite's savepoints do, the cost that dropping
    // them saves there.
    if conn.is_postgres() {
        return Ok(());
    }
    for (name, _) in LOOKUP_INDEXES {
        conn.execute_batch(&format!("DROP INDEX IF EXISTS {name}"))?;
    }
    Ok(())
}

/// Test support: stores `leg` (received at `received_ms`) and returns its
/// id, on either backend: through `legs::insert` with a push of its own on
/// SQLite, with SQL of its own on PostgreSQL (`postgres::calls`).
#[cfg(test)]
pub(crate) fn store_leg_for_test(
    conn: &Tx,
    device: &str,
    received_ms: i64,
    leg: &Leg,
    tz: chrono_tz::Tz,
) -> Result<i64> {
    if let Some(pg) = conn.pg() {
        return super::postgres::calls::store_leg_for_test(pg, device, received_ms, leg, tz);
    }
    let push = super::pushes::NewPush {
        received_at: "2024-01-01T00:00:00Z".into(),
        received_ms,
        source: "test".into(),
        device: Some(device.into()),
        method: "TEST".into(),
        path: "/".into(),
        query: None,
        body: Vec::new(),
        outcome: super::pushes::Outcome::Stored,
        status: 200,
        reason: None,
        sender_mac: None,
    };
    let pid = super::pushes::insert(conn, &push)?;
    match legs::insert(conn, device, pid, received_ms, leg, tz)? {
        legs::Inserted::New(id) | legs::Inserted::Duplicate(id) | legs::Inserted::Conflict(id) => {
            Ok(id)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `candidates` is exactly "shares a key, starts in [lo, hi], ends at or
    /// after end_lo", whether it looks the window up day by day or, for a
    /// wide one, as one range; with legs before 1970 (negative seconds),
    /// legs longer than a day, and windows of hours to years.
    #[test]
    fn candidates_are_exactly_the_overlapping_legs_of_the_keys() {
        crate::store::testing::each_backend("candidates", |_, store| {
            store
                .writer
                .write_blocking(|conn| {
                    use rand::{Rng, SeedableRng};
                    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
                    let mut next = move |n: i64| rng.random_range(0..n);
                    let keys = ["v:1", "v:2", "o:1"].map(String::from);
                    let (mut legs, mut found) = (Vec::new(), 0);
                    for id in 1..=600 {
                        let start = -5 * KEY_DAY_SECS + next(400 * KEY_DAY_SECS);
                        let len = if next(20) == 0 {
                            next(30 * KEY_DAY_SECS)
                        } else {
                            next(3_600)
                        };
                        let key = keys[next(3) as usize].clone();
                        insert_keys(
                            conn,
                            "d",
                            id,
                            std::slice::from_ref(&key),
                            start,
                            start + len,
                        )
                        .expect("insert");
                        legs.push((id, key, start, start + len));
                    }
                    for case in 0..300 {
                        let lo = -10 * KEY_DAY_SECS + next(420 * KEY_DAY_SECS);
                        let width = match case % 3 {
                            0 => next(7_200),
                            1 => next(3 * KEY_DAY_SECS),
                            _ => next(500 * KEY_DAY_SECS),
                        };
                        let (hi, end_lo) = (lo + width, lo + next(KEY_DAY_SECS));
                        let want_keys = &keys[..1 + case % 2];
                        let got =
                            candidates(conn, "d", want_keys, lo, hi, end_lo).expect("candidates");
                        let want: Vec<i64> = legs
                            .iter()
                            .filter(|(_, k, s, e)| {
                                want_keys.contains(k) && (lo..=hi).contains(s) && *e >= end_lo
                            })
                            .map(|(id, ..)| *id)
                            .collect();
                        assert_eq!(got, want, "case {case}: lo {lo} hi {hi} end_lo {end_lo}");
                        found += got.len();
                    }
                    assert!(found > 1_000, "the windows must find legs: {found}");
                    Ok(())
                })
                .expect("write");
        });
    }
}
