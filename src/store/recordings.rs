//! The `recordings` table (docs/recordings.md): one row per leg that names a
//! Recording, and the job queue of the fetcher. Every state the fetcher
//! goes through is a row update here, so nothing lives only in memory and a
//! restart resumes where it stopped.

use rusqlite::{params, OptionalExtension, Row};
use serde::Serialize;

use super::{now_stamp, Result, StoreError, Tx};

/// Status of a recording row.
pub const PENDING: &str = "pending";
pub const FETCHING: &str = "fetching";
pub const DONE: &str = "done";
pub const MISSING: &str = "missing";
pub const FAILED: &str = "failed";

/// All statuses, in the order `recordings status` prints them.
pub const STATUSES: &[&str] = &[PENDING, FETCHING, DONE, MISSING, FAILED];

/// One recording row as the API and the fetcher see it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Recording {
    pub id: i64,
    pub leg_id: i64,
    pub device: String,
    /// The leg's `<Cdr id>`.
    pub cdr_id: String,
    /// The CDR's `<Recording>` value (`YYYYMMDD/<file>`).
    pub path: String,
    /// G729, PCMU or PCMA as the CDR said.
    pub codec: Option<String>,
    pub status: String,
    pub attempts: i64,
    /// Attempts that ended in HTTP 404.
    pub not_found: i64,
    pub due_ms: i64,
    pub last_error: Option<String>,
    /// Archive-relative path of the playable WAV once `done`.
    pub file: Option<String>,
    /// Archive-relative paths of the kept G.729 halves.
    pub originals: Vec<String>,
    pub bytes: Option<i64>,
    pub duration_seconds: Option<f64>,
    pub sha256: Option<String>,
    pub updated_at: String,
}

pub(in crate::store) const COLS: &str =
    "r.id, r.leg_id, r.device, r.path, r.codec, r.status, r.attempts, r.not_found, r.due_ms,
    r.last_error, r.file, r.originals, r.bytes, r.duration_seconds, r.sha256, r.updated_at,
    (SELECT cdr_id FROM legs WHERE legs.id = r.leg_id)";

/// The `originals` column: a JSON array of paths, or NULL for none.
pub(in crate::store) fn parse_originals(
    s: Option<&str>,
) -> std::result::Result<Vec<String>, serde_json::Error> {
    match s {
        Some(s) => serde_json::from_str(s),
        None => Ok(Vec::new()),
    }
}

fn from_row(r: &Row) -> rusqlite::Result<Recording> {
    let originals: Option<String> = r.get(11)?;
    let originals = parse_originals(originals.as_deref()).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(11, rusqlite::types::Type::Text, Box::new(e))
    })?;
    Ok(Recording {
        id: r.get(0)?,
        leg_id: r.get(1)?,
        device: r.get(2)?,
        path: r.get(3)?,
        codec: r.get(4)?,
        status: r.get(5)?,
        attempts: r.get(6)?,
        not_found: r.get(7)?,
        due_ms: r.get(8)?,
        last_error: r.get(9)?,
        file: r.get(10)?,
        originals,
        bytes: r.get(12)?,
        duration_seconds: r.get(13)?,
        sha256: r.get(14)?,
        updated_at: r.get(15)?,
        cdr_id: r.get::<_, Option<String>>(16)?.unwrap_or_default(),
    })
}

/// Queues the recording of a newly stored leg (no-op if the leg already has a row).
pub fn schedule(
    tx: &Tx,
    leg_id: i64,
    device: &str,
    path: &str,
    codec: Option<&str>,
    due_ms: i64,
) -> Result<()> {
    let (now, _) = now_stamp();
    if let Some(pg) = tx.pg() {
        return super::postgres::recordings::schedule(
            pg, leg_id, device, path, codec, due_ms, &now,
        );
    }
    tx.prepare_cached(
        "INSERT INTO recordings (leg_id, device, path, codec, status, due_ms, updated_at)
         VALUES (?1, ?2, ?3, ?4, 'pending', ?5, ?6) ON CONFLICT (leg_id) DO NOTHING",
    )?
    .execute(params![leg_id, device, path, codec, due_ms, now])?;
    Ok(())
}

/// Limits of one claim.
#[derive(Debug, Clone, Copy)]
pub struct ClaimLimits {
    /// Rows `fetching` at once per device (counting those already fetching).
    pub per_device: usize,
    /// Rows `fetching` at once over all devices.
    pub max_concurrent: usize,
}

/// What one claim took.
#[derive(Debug, Default)]
pub struct Claimed {
    /// The claimed rows, now `fetching` with one more attempt.
    pub jobs: Vec<Recording>,
    /// Where the next claim starts its turn over the devices (the last
    /// device served first-hand this time).
    pub next_after: Option<String>,
}

/// Claims pending rows due at `due_before` (the CLI passes `i64::MAX` to
/// ignore the delay), fairly: the devices take turns, one job each per
/// round, oldest due first within a device, starting after `after` (the
/// previous claim's [`Claimed::next_after`]), until `max_concurrent` rows
/// are fetching, no device exceeding `per_device`. Each claimed row becomes
/// `fetching` with one more attempt. Rows in `exclude` are skipped (a
/// one-off pass tries each row once).
///
/// The work is bounded by the devices visited and the rows taken, not by
/// the queue: devices are found one index seek at a time, and each device's
/// due rows are read in index order only as far as needed.
pub fn claim_due(
    tx: &Tx,
    due_before: i64,
    limits: ClaimLimits,
    after: Option<&str>,
    exclude: &std::collections::HashSet<i64>,
) -> Result<Claimed> {
    if let Some(pg) = tx.pg() {
        return super::postgres::recordings::claim_due(tx, pg, due_before, limits, after, exclude);
    }
    let busy = fetching_per_device(tx)?;
    let in_flight: usize = busy.values().sum();
    let free = limits.max_concurrent.max(1).saturating_sub(in_flight);
    if free == 0 {
        return Ok(Claimed::default());
    }
    // Each device's next due rows (at most what it may take), devices in turn.
    let mut queues: Vec<(String, std::collections::VecDeque<i64>)> = Vec::new();
    let mut due_rows = tx.prepare_cached(
        "SELECT id FROM recordings WHERE status = 'pending' AND device = ?1 AND due_ms <= ?2
         ORDER BY due_ms, id",
    )?;
    let mut turn = DeviceTurn::new(after);
    while queues.len() < free {
        let Some(device) = turn.next(tx)? else {
            break;
        };
        let running = busy.get(&device).copied().unwrap_or(0);
        let slots = limits.per_device.max(1).saturating_sub(running).min(free);
        let mut ids = std::collections::VecDeque::new();
        let mut rows = due_rows.query(params![device, due_before])?;
        while ids.len() < slots {
            let Some(row) = rows.next()? else { break };
            let id: i64 = row.get(0)?;
            if !exclude.contains(&id) {
                ids.push_back(id);
            }
        }
        if !ids.is_empty() {
            queues.push((device, ids));
        }
    }
    let picked = round_robin(&mut queues, free);
    let (now, _) = now_stamp();
    let mut claim = tx.prepare_cached(
        "UPDATE recordings SET status = 'fetching', attempts = attempts + 1, updated_at = ?2 WHERE id = ?1",
    )?;
    let mut jobs = Vec::with_capacity(picked.len());
    for id in picked {
        claim.execute(params![id, now])?;
        if let Some(rec) = get(tx, id)? {
            jobs.push(rec);
        }
    }
    Ok(Claimed {
        jobs,
        next_after: queues.last().map(|(d, _)| d.clone()),
    })
}

/// Up to `free` ids off the devices' queues, one job per device per round,
/// in the devices' turn order.
pub(in crate::store) fn round_robin(
    queues: &mut [(String, std::collections::VecDeque<i64>)],
    free: usize,
) -> Vec<i64> {
    let mut picked = Vec::new();
    while picked.len() < free {
        let before = picked.len();
        for (_, ids) in queues.iter_mut() {
            if picked.len() == free {
                break;
            }
            if let Some(id) = ids.pop_front() {
                picked.push(id);
            }
        }
        if picked.len() == before {
            break;
        }
    }
    picked
}

/// Rows `fetching` per device.
fn fetching_per_device(tx: &Tx) -> Result<std::collections::HashMap<String, usize>> {
    let mut busy = std::collections::HashMap::new();
    let mut st = tx.prepare_cached(
        "SELECT device, COUNT(*) FROM recordings WHERE status = 'fetching' GROUP BY device",
    )?;
    for row in st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))? {
        let (d, n) = row?;
        busy.insert(d, usize::try_from(n).unwrap_or(usize::MAX));
    }
    Ok(busy)
}

/// The devices with pending rows, in name order starting after a given
/// device and wrapping around once; one index seek per device.
pub(in crate::store) struct DeviceTurn {
    /// The last device returned (the seek starts after it).
    cursor: Option<String>,
    /// Where the turn started; `None` when it started at the beginning.
    start: Option<String>,
    wrapped: bool,
}

impl DeviceTurn {
    pub(in crate::store) fn new(after: Option<&str>) -> DeviceTurn {
        DeviceTurn {
            cursor: after.map(str::to_string),
            start: after.map(str::to_string),
            wrapped: after.is_none(),
        }
    }

    pub(in crate::store) fn next(&mut self, tx: &Tx) -> Result<Option<String>> {
        loop {
            let found = next_pending_device(tx, self.cursor.as_deref())?;
            let found = match (found, self.wrapped) {
                (Some(d), true) if self.start.as_deref().is_some_and(|s| d.as_str() > s) => None,
                (Some(d), _) => Some(d),
                (None, false) => {
                    // Past the last device: go round to the first, once.
                    self.wrapped = true;
                    self.cursor = None;
                    continue;
                }
                (None, true) => None,
            };
            if let Some(d) = &found {
                self.cursor = Some(d.clone());
            }
            return Ok(found);
        }
    }
}

/// The first device (in name order) after `after` that has a pending row.
fn next_pending_device(tx: &Tx, after: Option<&str>) -> Result<Option<String>> {
    if let Some(pg) = tx.pg() {
        return super::postgres::recordings::next_pending_device(pg, after);
    }
    let found = match after {
        Some(a) => tx
            .prepare_cached(
                "SELECT device FROM recordings WHERE status = 'pending' AND device > ?1
                 ORDER BY device LIMIT 1",
            )?
            .query_row([a], |r| r.get(0))
            .optional()?,
        None => tx
            .prepare_cached(
                "SELECT device FROM recordings WHERE status = 'pending' ORDER BY device LIMIT 1",
            )?
            .query_row([], |r| r.get(0))
            .optional()?,
    };
    Ok(found)
}

/// What the archive holds for a fetched recording.
#[derive(Debug, Clone, PartialEq)]
pub struct Archived {
    pub file: String,
    pub originals: Vec<String>,
    pub bytes: i64,
    pub duration_seconds: f64,
    pub sha256: String,
}

/// Marks a recording `done`.
pub fn finish_done(tx: &Tx, id: i64, a: &Archived) -> Result<()> {
    let (now, _) = now_stamp();
    let originals =
        serde_json::to_string(&a.originals).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    if let Some(pg) = tx.pg() {
        return super::postgres::recordings::finish_done(pg, id, a, &originals, &now);
    }
    tx.prepare_cached(
        "UPDATE recordings SET status = 'done', last_error = NULL, file = ?2, originals = ?3, bytes = ?4,
             duration_seconds = ?5, sha256 = ?6, updated_at = ?7 WHERE id = ?1",
    )?
    .execute(params![id, a.file, originals, a.bytes, a.duration_seconds, a.sha256, now])?;
    Ok(())
}

/// Records a failed attempt: back to `pending` at `retry_at_ms`, or (with
/// `None`) given up: `missing` when every attempt was a 404, else `failed`.
/// Returns the new status.
pub fn finish_attempt_failed(
    tx: &Tx,
    id: i64,
    error: &str,
    was_404: bool,
    retry_at_ms: Option<i64>,
) -> Result<&'static str> {
    let (now, _) = now_stamp();
    if let Some(pg) = tx.pg() {
        return super::postgres::recordings::finish_attempt_failed(
            pg,
            id,
            error,
            was_404,
            retry_at_ms,
            &now,
        );
    }
    tx.prepare_cached(
        "UPDATE recordings SET last_error = ?2, not_found = not_found + ?3, updated_at = ?4 WHERE id = ?1",
    )?
    .execute(params![id, error, i64::from(was_404), now])?;
    let status = match retry_at_ms {
        Some(due) => {
            tx.prepare_cached(
                "UPDATE recordings SET status = 'pending', due_ms = ?2 WHERE id = ?1",
            )?
            .execute(params![id, due])?;
            PENDING
        }
        None => {
            let (attempts, not_found): (i64, i64) = tx
                .prepare_cached("SELECT attempts, not_found FROM recordings WHERE id = ?1")?
                .query_row([id], |r| Ok((r.get(0)?, r.get(1)?)))?;
            let status = if not_found >= attempts {
                MISSING
            } else {
                FAILED
            };
            tx.prepare_cached("UPDATE recordings SET status = ?2 WHERE id = ?1")?
                .execute(params![id, status])?;
            status
        }
    };
    Ok(status)
}

/// Puts rows left `fetching` by a stopped process back to `pending` (the
/// interrupted attempt does not count). Returns how many. On PostgreSQL
/// other collectors may be fetching right now: only rows whose claim is
/// stale go back (see `store::postgres::recordings`).
pub fn reset_fetching(tx: &Tx) -> Result<usize> {
    if let Some(pg) = tx.pg() {
        return super::postgres::recordings::reset_fetching(pg, now_stamp().1);
    }
    Ok(tx.execute(
        "UPDATE recordings SET status = 'pending', attempts = MAX(attempts - 1, 0) WHERE status = 'fetching'",
        [],
    )?)
}

/// Earliest `due_ms` of a pending row, if any.
pub fn next_due(conn: &Tx) -> Result<Option<i64>> {
    if let Some(pg) = conn.pg() {
        return super::postgres::recordings::next_due(pg);
    }
    Ok(conn
        .prepare_cached("SELECT MIN(due_ms) FROM recordings WHERE status = 'pending'")?
        .query_row([], |r| r.get(0))?)
}

/// Row counts per status (every status listed, zeros included).
pub fn counts(conn: &Tx) -> Result<Vec<(String, i64)>> {
    let mut out: Vec<(String, i64)> = STATUSES.iter().map(|s| (s.to_string(), 0)).collect();
    let found = match conn.pg() {
        Some(pg) => super::postgres::recordings::counts(pg)?,
        None => conn
            .prepare_cached("SELECT status, COUNT(*) FROM recordings GROUP BY status")?
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?
            .collect::<rusqlite::Result<Vec<_>>>()?,
    };
    for (s, n) in found {
        match out.iter_mut().find(|(k, _)| *k == s) {
            Some(slot) => slot.1 = n,
            None => out.push((s, n)),
        }
    }
    Ok(out)
}

/// Rows with one of `statuses`, newest first.
pub fn with_status(conn: &Tx, statuses: &[&str], limit: i64) -> Result<Vec<Recording>> {
    if let Some(pg) = conn.pg() {
        return super::postgres::recordings::with_status(pg, statuses, limit);
    }
    let marks = vec!["?"; statuses.len()].join(",");
    let sql = format!(
        "SELECT {COLS} FROM recordings r WHERE r.status IN ({marks}) ORDER BY r.id DESC LIMIT ?"
    );
    let mut args: Vec<rusqlite::types::Value> =
        statuses.iter().map(|s| s.to_string().into()).collect();
    args.push(limit.into());
    let mut st = conn.prepare(&sql)?;
    let rows = st.query_map(rusqlite::params_from_iter(args.iter()), from_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub fn get(conn: &Tx, id: i64) -> Result<Option<Recording>> {
    if let Some(pg) = conn.pg() {
        return super::postgres::recordings::get(pg, id);
    }
    let sql = format!("SELECT {COLS} FROM recordings r WHERE r.id = ?1");
    Ok(conn
        .prepare_cached(&sql)?
        .query_row([id], from_row)
        .optional()?)
}

/// The recordings of a call's legs, in leg order.
pub fn of_call(conn: &Tx, call_id: &str) -> Result<Vec<Recording>> {
    if let Some(pg) = conn.pg() {
        return super::postgres::recordings::of_call(pg, call_id);
    }
    let sql = format!(
        "SELECT {COLS} FROM recordings r JOIN call_legs cl ON cl.leg_id = r.leg_id
           JOIN calls c ON c.seq = cl.call_seq
         WHERE c.id = ?1 ORDER BY r.leg_id"
    );
    let mut st = conn.prepare_cached(&sql)?;
    let rows = st.query_map([call_id], from_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// The call's primary recording: the leg of the answering extension
/// (`calls.answered_by` = the leg's CDPN), else the longest leg with a recording.
pub fn primary_of_call(conn: &Tx, call_id: &str) -> Result<Option<Recording>> {
    if let Some(pg) = conn.pg() {
        return super::postgres::recordings::primary_of_call(pg, call_id);
    }
    let sql = format!(
        "SELECT {COLS} FROM recordings r
           JOIN call_legs cl ON cl.leg_id = r.leg_id
           JOIN legs l ON l.id = r.leg_id
           JOIN calls c ON c.seq = cl.call_seq
         WHERE c.id = ?1
         ORDER BY (c.answered_by IS NOT NULL AND l.cdpn = c.answered_by) DESC, l.duration DESC, r.id
         LIMIT 1"
    );
    Ok(conn
        .prepare_cached(&sql)?
        .query_row([call_id], from_row)
        .optional()?)
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::sync::{Arc, Barrier};

    use super::*;
    use crate::store::reports::fixture;
    use crate::store::testing::{each_backend, Backend};
    use crate::store::Store;

    /// Queues one row per `(device, due_ms)`, leg ids from 1.
    fn queue(store: &Store, rows: &[(&str, i64)]) {
        let rows: Vec<(String, i64)> = rows.iter().map(|(d, t)| (d.to_string(), *t)).collect();
        store
            .writer
            .write_blocking(move |tx| {
                for (i, (device, due)) in rows.iter().enumerate() {
                    let leg = i as i64 + 1;
                    fixture::bare_legs(tx, device, leg..=leg)?;
                    schedule(tx, leg, device, &format!("20240108/{leg}.wav"), None, *due)?;
                }
                Ok(())
            })
            .expect("queue");
    }

    fn claim(
        store: &Store,
        per_device: usize,
        max_concurrent: usize,
        after: Option<&str>,
        exclude: &HashSet<i64>,
    ) -> (Vec<(String, i64)>, Option<String>) {
        let limits = ClaimLimits {
            per_device,
            max_concurrent,
        };
        let (after, exclude) = (after.map(str::to_string), exclude.clone());
        let c = store
            .writer
            .write_blocking(move |tx| claim_due(tx, 100, limits, after.as_deref(), &exclude))
            .expect("claim");
        let jobs = c.jobs.into_iter().map(|r| (r.device, r.leg_id)).collect();
        (jobs, c.next_after)
    }

    fn sql(store: &Store, sql: &str) {
        let sql = sql.to_string();
        store
            .writer
            .write_blocking(move |tx| fixture::exec(tx, &sql))
            .expect("sql");
    }

    fn done(store: &Store, leg: i64) {
        sql(
            store,
            &format!("UPDATE recordings SET status = 'done' WHERE leg_id = {leg}"),
        );
    }

    fn by_leg(store: &Store, leg: i64) -> Recording {
        store
            .read_blocking(move |tx| {
                let id = with_status(tx, STATUSES, 1000)?
                    .into_iter()
                    .find(|r| r.leg_id == leg)
                    .map(|r| r.id)
                    .ok_or_else(|| StoreError::Corrupt(format!("no recording of leg {leg}")))?;
                get(tx, id)?.ok_or_else(|| StoreError::Corrupt("gone".into()))
            })
            .expect("recording")
    }

    fn j(d: &str, leg: i64) -> (String, i64) {
        (d.to_string(), leg)
    }

    #[test]
    fn claim_due_takes_devices_in_turn_within_both_caps() {
        each_backend("claim_due_takes_devices_in_turn", |_, store| {
            // a: legs 1-4 due first; b: leg 5, due last; c: leg 6 due, leg 7 not yet.
            queue(
                store,
                &[
                    ("a", 1),
                    ("a", 2),
                    ("a", 3),
                    ("a", 4),
                    ("b", 50),
                    ("c", 10),
                    ("c", 500),
                ],
            );
            let none = HashSet::new();
            let (jobs, next) = claim(store, 2, 3, None, &none);
            assert_eq!(
                jobs,
                [j("a", 1), j("b", 5), j("c", 6)],
                "one each, oldest first"
            );
            assert_eq!(next.as_deref(), Some("c"));
            assert!(
                claim(store, 2, 3, next.as_deref(), &none).0.is_empty(),
                "global cap"
            );
            done(store, 5);
            // The turn goes on after c: a (wrapping), as b and c have nothing due.
            let (jobs, next) = claim(store, 2, 3, Some("c"), &none);
            assert_eq!(jobs, [j("a", 2)]);
            assert_eq!(next.as_deref(), Some("a"));
            done(store, 1);
            done(store, 6);
            // a already fetches one: per_device 2 lets it take one more, not two.
            let (jobs, _) = claim(store, 2, 8, Some("a"), &none);
            assert_eq!(jobs, [j("a", 3)]);
        });
    }

    #[test]
    fn claim_due_rotates_the_first_pick_and_skips_excluded_rows() {
        each_backend("claim_due_rotates_the_first_pick", |_, store| {
            queue(store, &[("a", 1), ("a", 1), ("b", 1), ("b", 1), ("c", 1)]);
            // Room for one: each claim serves the next device.
            let mut after = None;
            let mut order = Vec::new();
            for _ in 0..3 {
                let (jobs, next) = claim(store, 1, 1, after.as_deref(), &HashSet::new());
                let (device, leg) = jobs[0].clone();
                order.push(device);
                done(store, leg);
                after = next;
            }
            assert_eq!(order, ["a", "b", "c"]);
            let (jobs, _) = claim(store, 1, 8, after.as_deref(), &HashSet::from([2]));
            assert_eq!(jobs, [j("b", 4)], "a's only row left is excluded");
        });
    }

    #[test]
    fn finishing_records_done_retry_missing_and_failed() {
        each_backend("finishing_records_outcomes", |_, store| {
            queue(store, &[("a", 1), ("a", 2), ("b", 3), ("b", 4)]);
            let scheduled_again = store
                .writer
                .write_blocking(|tx| {
                    schedule(tx, 1, "a", "20240108/other.wav", None, 0)?;
                    counts(tx)
                })
                .expect("schedule");
            assert_eq!(scheduled_again[0], ("pending".to_string(), 4), "no-op");
            assert_eq!(store.read_blocking(next_due).expect("next"), Some(1));
            let (jobs, _) = claim(store, 4, 8, None, &HashSet::new());
            assert_eq!(jobs.len(), 4);
            assert_eq!(store.read_blocking(next_due).expect("next"), None);
            let ids: Vec<i64> = (1..=4).map(|leg| by_leg(store, leg).id).collect();
            let (i0, i1, i2, i3) = (ids[0], ids[1], ids[2], ids[3]);
            let archived = Archived {
                file: "a/1.wav".into(),
                originals: vec!["a/1.send.g729".into()],
                bytes: 44,
                duration_seconds: 1.5,
                sha256: "ff".into(),
            };
            let statuses = store
                .writer
                .write_blocking(move |tx| {
                    finish_done(tx, i0, &archived)?;
                    Ok([
                        finish_attempt_failed(tx, i1, "timeout", false, Some(777))?,
                        finish_attempt_failed(tx, i2, "404", true, None)?,
                        finish_attempt_failed(tx, i3, "500", false, None)?,
                    ])
                })
                .expect("finish");
            assert_eq!(statuses, [PENDING, MISSING, FAILED]);
            let r = by_leg(store, 1);
            assert_eq!(
                (r.status.as_str(), r.file.as_deref(), r.originals.len()),
                (DONE, Some("a/1.wav"), 1)
            );
            assert_eq!((r.bytes, r.duration_seconds), (Some(44), Some(1.5)));
            assert_eq!((r.cdr_id.as_str(), r.attempts), ("cdr-1", 1));
            let r = by_leg(store, 2);
            assert_eq!((r.status.as_str(), r.due_ms), (PENDING, 777));
            assert_eq!(r.last_error.as_deref(), Some("timeout"));
            assert_eq!(by_leg(store, 3).not_found, 1);
            let counts = store.read_blocking(counts).expect("counts");
            let n = |s: &str| counts.iter().find(|(k, _)| k == s).map(|(_, n)| *n);
            assert_eq!(
                [n(PENDING), n(FETCHING), n(DONE), n(MISSING), n(FAILED)],
                [Some(1), Some(0), Some(1), Some(1), Some(1)]
            );
            let gone = store
                .read_blocking(|tx| with_status(tx, &[FAILED, MISSING], 10))
                .expect("with_status");
            let legs: Vec<i64> = gone.iter().map(|r| r.leg_id).collect();
            assert_eq!(legs, [4, 3], "newest first");
            assert_eq!(store.read_blocking(next_due).expect("next"), Some(777));
        });
    }

    /// SQLite has one collector: every `fetching` row at start is its own,
    /// cut by its stop. On PostgreSQL only rows whose lease is past go back:
    /// another live collector may be fetching the others.
    #[test]
    fn reset_fetching_takes_back_only_what_no_live_collector_holds() {
        each_backend("reset_fetching_takes_back_stale_rows", |backend, store| {
            queue(store, &[("a", 1), ("b", 1)]);
            let (jobs, _) = claim(store, 4, 8, None, &HashSet::new());
            assert_eq!(jobs.len(), 2);
            if backend == Backend::Postgres {
                sql(
                    store,
                    "UPDATE recordings SET lease_until_ms = 0 WHERE leg_id = 1",
                );
            }
            let n = store.writer.write_blocking(reset_fetching).expect("reset");
            let (first, second) = (by_leg(store, 1), by_leg(store, 2));
            assert_eq!((first.status.as_str(), first.attempts), (PENDING, 0));
            match backend {
                Backend::Sqlite => {
                    assert_eq!(n, 2);
                    assert_eq!(second.status, PENDING);
                }
                Backend::Postgres => {
                    assert_eq!(n, 1);
                    assert_eq!((second.status.as_str(), second.attempts), (FETCHING, 1));
                    // The attempt whose claim was taken back still archived
                    // its file: the success stands, the row is not fetched again.
                    let id = first.id;
                    let a = Archived {
                        file: "late.wav".into(),
                        originals: Vec::new(),
                        bytes: 1,
                        duration_seconds: 0.1,
                        sha256: "00".into(),
                    };
                    store
                        .writer
                        .write_blocking(move |tx| finish_done(tx, id, &a))
                        .expect("late success");
                    assert_eq!(by_leg(store, 1).status, DONE);
                    let (jobs, _) = claim(store, 4, 8, None, &HashSet::new());
                    assert!(jobs.is_empty(), "{jobs:?}");
                }
            }
        });
    }

    /// Two collectors claim at the same moment: the second skips what the
    /// first holds, and the device the first is claiming from, until it
    /// commits; afterwards it gets the rest, never the first's rows.
    #[test]
    fn concurrent_claims_on_postgres_never_share_a_row() {
        each_backend("concurrent_claims_never_share_a_row", |backend, store| {
            if backend != Backend::Postgres {
                return;
            }
            queue(store, &[("a", 1), ("a", 2), ("b", 3), ("b", 4)]);
            let (held, taken) = (Arc::new(Barrier::new(2)), Arc::new(Barrier::new(2)));
            let first = {
                let (store, held, taken) = (store.clone(), held.clone(), taken.clone());
                std::thread::spawn(move || {
                    store.writer.write_blocking(move |tx| {
                        let limits = ClaimLimits {
                            per_device: 1,
                            max_concurrent: 1,
                        };
                        let c = claim_due(tx, 100, limits, None, &HashSet::new())?;
                        held.wait();
                        taken.wait();
                        Ok(c.jobs.into_iter().map(|r| r.leg_id).collect::<Vec<_>>())
                    })
                })
            };
            held.wait();
            let (second, _) = claim(store, 4, 100, None, &HashSet::new());
            taken.wait();
            let first = first.join().expect("first claimer").expect("first claim");
            assert_eq!(first, [1]);
            assert_eq!(second, [j("b", 3), j("b", 4)], "device a was being claimed");
            let (third, _) = claim(store, 4, 100, None, &HashSet::new());
            assert_eq!(third, [j("a", 2)], "the first's row is not claimed again");
        });
    }

    /// Many rounds of two claimers racing: every row is claimed exactly once.
    #[test]
    fn racing_claimers_on_postgres_claim_each_row_once() {
        each_backend("racing_claimers_claim_each_row_once", |backend, store| {
            if backend != Backend::Postgres {
                return;
            }
            let rows: Vec<(String, i64)> = (0..120).map(|i| (format!("d{}", i % 4), 1)).collect();
            let rows: Vec<(&str, i64)> = rows.iter().map(|(d, t)| (d.as_str(), *t)).collect();
            queue(store, &rows);
            let workers: Vec<_> = (0..2)
                .map(|_| {
                    let store = store.clone();
                    std::thread::spawn(move || {
                        let mut mine = Vec::new();
                        for _ in 0..400 {
                            let (jobs, _) = claim(&store, 3, 1000, None, &HashSet::new());
                            for (_, leg) in &jobs {
                                done(&store, *leg);
                            }
                            mine.extend(jobs.into_iter().map(|(_, leg)| leg));
                            if mine.len() >= 120 {
                                break;
                            }
                            let left = store.read_blocking(next_due).expect("next_due");
                            if left.is_none() {
                                break;
                            }
                        }
                        mine
                    })
                })
                .collect();
            let mut all: Vec<i64> = workers
                .into_iter()
                .flat_map(|w| w.join().expect("claimer"))
                .collect();
            all.sort_unstable();
            assert_eq!(all, (1..=120).collect::<Vec<i64>>(), "each row once");
            let attempts = store
                .read_blocking(|tx| with_status(tx, &[DONE], 1000))
                .expect("rows");
            assert!(attempts.iter().all(|r| r.attempts == 1));
        });
    }

    /// The claim reads the queue through the index: per device, only the
    /// rows it takes, however long the queue.
    #[test]
    fn claim_due_queries_use_the_device_index() {
        let c = rusqlite::Connection::open_in_memory().expect("db");
        let mut c = c;
        super::super::migrate::apply(&mut c).expect("schema");
        for sql in [
            "SELECT id FROM recordings WHERE status = 'pending' AND device = ?1 AND due_ms <= ?2
             ORDER BY due_ms, id",
            "SELECT device FROM recordings WHERE status = 'pending' AND device > ?1
             ORDER BY device LIMIT ?2",
        ] {
            let plan: Vec<String> = c
                .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
                .unwrap()
                .query_map(params!["x", 1], |r| r.get::<_, String>(3))
                .unwrap()
                .map(|r| r.unwrap())
                .collect();
            let plan = plan.join("; ");
            assert!(plan.contains("recordings_device_due"), "{plan}");
            assert!(!plan.contains("TEMP B-TREE"), "no sort: {plan}");
        }
    }
}
