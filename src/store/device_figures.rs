//! What `callvault devices` and `GET /api/devices` show of each device
//! beyond its registration (README "Devices"): pushes and refusals since
//! a moment (the start of the device's day), recordings waiting or
//! failed, pushes not yet derived, the receive times of its latest pushes
//! (how often it usually pushes) and the end times of its latest CDRs
//! against their receive times (its clock). The figures are read here;
//! what they mean (today, silent, skew) is `crate::device_status`.

use rusqlite::params;

use super::{pushes, Result, Tx};

/// Pushes with one (device, source, outcome, status, reason) received
/// since the moment asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tally {
    /// The device the push was taken for; `None` for refusals of pushes
    /// not known to be a device's and for held pushes.
    pub device: Option<String>,
    pub source: String,
    /// stored | held | quarantined
    pub outcome: String,
    pub status: i64,
    pub reason: Option<String>,
    pub pushes: i64,
    pub last_ms: i64,
}

/// Every push received at or after `since_ms`, tallied. Only the pushes
/// since then are read (SQLite: the newest rows by id; PostgreSQL: the
/// month's partition, by receive time).
pub fn tally_since(conn: &Tx, since_ms: i64) -> Result<Vec<Tally>> {
    if let Some(pg) = conn.pg() {
        return super::postgres::device_figures::tally_since(pg, since_ms);
    }
    // Ids grow with receive time (one writer commits in arrival order), so
    // the day's pushes are those after the newest one received before it:
    // found walking back from the newest id, so only the day is read.
    let mut st = conn.prepare(
        "SELECT device, source, outcome, status, reason, COUNT(*), MAX(received_ms) FROM pushes
         WHERE id > COALESCE((SELECT id FROM pushes WHERE received_ms < ?1 ORDER BY id DESC LIMIT 1), 0)
           AND received_ms >= ?1
         GROUP BY device, source, outcome, status, reason",
    )?;
    let rows = st.query_map([since_ms], |r| {
        Ok(Tally {
            device: r.get(0)?,
            source: r.get(1)?,
            outcome: r.get(2)?,
            status: r.get(3)?,
            reason: r.get(4)?,
            pushes: r.get(5)?,
            last_ms: r.get(6)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Recordings per (device, status) that are not done: pending (with those
/// being fetched), failed, missing.
pub fn recordings_waiting(conn: &Tx) -> Result<Vec<(String, String, i64)>> {
    if let Some(pg) = conn.pg() {
        return super::postgres::device_figures::recordings_waiting(pg);
    }
    let mut st = conn.prepare(
        "SELECT device, CASE status WHEN 'fetching' THEN 'pending' ELSE status END, COUNT(*)
         FROM recordings WHERE status IN ('pending', 'fetching', 'failed', 'missing')
         GROUP BY 1, 2",
    )?;
    let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Stored pushes not yet derived, per device (`pushes::derive_backlog`
/// split by device).
pub fn backlog_by_device(conn: &Tx) -> Result<Vec<(String, i64)>> {
    if let Some(pg) = conn.pg() {
        return super::postgres::device_figures::backlog_by_device(pg);
    }
    let cursor = pushes::derive_cursor(conn)?;
    let mut st = conn.prepare(
        "SELECT device, COUNT(*) FROM (
           SELECT device FROM pushes WHERE id > ?1 AND outcome = 'stored'
           UNION ALL
           SELECT p.device FROM derive_queue q JOIN pushes p ON p.id = q.push_id)
         WHERE device IS NOT NULL GROUP BY device",
    )?;
    let rows = st.query_map([cursor], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Receive times (unix ms) of the device's latest `limit` stored pushes,
/// newest first.
pub fn recent_push_times(conn: &Tx, device: &str, limit: i64) -> Result<Vec<i64>> {
    if let Some(pg) = conn.pg() {
        return super::postgres::device_figures::recent_push_times(pg, device, limit);
    }
    let mut st = conn.prepare_cached(
        "SELECT received_ms FROM pushes WHERE device = ?1 AND outcome = 'stored'
         ORDER BY id DESC LIMIT ?2",
    )?;
    let rows = st.query_map(params![device, limit], |r| r.get(0))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// How far back (in legs of every device) `recent_leg_times` looks: the
/// cost stays bounded however large the archive.
pub const LEGS_LOOKED_AT: i64 = 100_000;

/// (end time as RFC 3339 UTC, receive time in unix ms) of the device's
/// latest `limit` legs among the archive's last [`LEGS_LOOKED_AT`].
pub fn recent_leg_times(conn: &Tx, device: &str, limit: i64) -> Result<Vec<(String, i64)>> {
    if let Some(pg) = conn.pg() {
        return super::postgres::device_figures::recent_leg_times(pg, device, limit);
    }
    // `+device`: walk the newest legs by id rather than all of the
    // device's legs through the (device, cdr_id) index and sort them.
    let mut st = conn.prepare_cached(
        "SELECT end_utc, received_ms FROM legs
         WHERE +device = ?1 AND id > (SELECT COALESCE(MAX(id), 0) FROM legs) - ?3
         ORDER BY id DESC LIMIT ?2",
    )?;
    let rows = st.query_map(params![device, limit, LEGS_LOOKED_AT], |r| {
        Ok((r.get(0)?, r.get(1)?))
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}
