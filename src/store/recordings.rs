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
/// Past `[retention] recordings_days`: the file is removed from storage,
/// the row stays and is never fetched again (`store::retention`).
pub const PURGED: &str = "purged";

/// All statuses, in the order `recordings status` prints them.
pub const STATUSES: &[&str] = &[PENDING, FETCHING, DONE, MISSING, FAILED, PURGED];

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
    /// PostgreSQL: how long a claim holds without being renewed, in
    /// milliseconds (`[recordings] claim_lease_seconds`; SQLite has one
    /// collector and no leases).
    pub lease_ms: i64,
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
///
/// On PostgreSQL several collectors claim from one queue: claims are leases
/// and the caps count across collectors as `store::postgres::recordings`
/// says.
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

/// The figures of a recording, or why none (`store::conversations`).
pub type ConversationOutcome = super::conversations::Outcome;

/// What the archive holds for a fetched recording.
#[derive(Debug, Clone, PartialEq)]
pub struct Archived {
    pub file: String,
    pub originals: Vec<String>,
    pub bytes: i64,
    pub duration_seconds: f64,
    pub sha256: String,
    /// The conversation figures computed from the audio (two-sided
    /// recordings), stored with the recording in the same transaction;
    /// `None` for a recording that has no sides (a mono WAV).
    pub conversation: Option<super::conversations::Outcome>,
}

/// Marks a recording `done` (and stores its conversation figures).
pub fn finish_done(tx: &Tx, id: i64, a: &Archived) -> Result<()> {
    let (now, _) = now_stamp();
    let originals =
        serde_json::to_string(&a.originals).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    if let Some(pg) = tx.pg() {
        super::postgres::recordings::finish_done(pg, id, a, &originals, &now)?;
    } else {
        tx.prepare_cached(
            "UPDATE recordings SET status = 'done', last_error = NULL, file = ?2, originals = ?3, bytes = ?4,
                 duration_seconds = ?5, sha256 = ?6, updated_at = ?7 WHERE id = ?1",
        )?
        .execute(params![id, a.file, originals, a.bytes, a.duration_seconds, a.sha256, now])?;
    }
    if let Some(c) = &a.conversation {
        super::conversations::put(tx, id, c)?;
    }
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

/// The recording `id` if it is of one of `devices` (any device when
/// empty: `store::scope`); a recording of another device is not found.
pub fn get_of(conn: &Tx, id: i64, devices: &[String]) -> Result<Option<Recording>> {
    if let Some(pg) = conn.pg() {
        return super::postgres::recordings::get_of(pg, id, devices);
    }
    let sql = format!(
        "SELECT {COLS} FROM recordings r WHERE r.id = ?1 AND {}",
        super::scope::sqlite_clause("r.device", "?2")
    );
    Ok(conn
        .prepare_cached(&sql)?
        .query_row(params![id, super::scope::sqlite_value(devices)], from_row)
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
mod tests;
