//! `store::recordings` on PostgreSQL: the fetch job queue shared by the
//! fetch workers of every collector (docs/recordings.md).
//!
//! # Claims are leases
//!
//! A claim takes due rows with `SELECT … FOR UPDATE SKIP LOCKED`, so two
//! collectors claiming at once never take the same row, and marks them
//! `fetching` with `claimed_by` (this collector process, [`CLAIMER`]) and
//! `lease_until_ms` = now + the lease (`[recordings] claim_lease_seconds`,
//! [`ClaimLimits::lease_ms`], by default [`LEASE_MS`]). Every claim of a collector renews
//! the leases of the rows it is still fetching (the fetch worker of `serve`
//! claims every few hundred milliseconds), so a live collector keeps its
//! rows however long a download runs. A `fetching` row is taken back to
//! `pending` (the cut attempt not counted, as on SQLite) only once its
//! lease is past: by `reset_fetching` when a collector starts, and at every
//! claim, so the rows of a collector that died are retried by another one
//! within the lease, even if it never comes back. A starting collector
//! therefore never takes back a row that another live collector is
//! downloading. Where claims pause (fetching paused by the disk floor, a
//! one-off `recordings fetch` waiting on its jobs) the lease still covers
//! an attempt of three GETs at the default `download_timeout_seconds` (600
//! s, README "Fetcher limits"); an attempt longer than that may be made
//! twice, and is still recorded once (below).
//!
//! The outcome of an attempt whose claim was taken back in the meantime
//! does not undo the newer claim's: a success is recorded unless the row is
//! already final (so a recording is archived once, whoever finishes first),
//! a failure only by the collector that still holds the claim.
//!
//! # Fairness
//!
//! The devices take turns as on SQLite (`store::recordings::claim_due`).
//! `per_device` counts the device's rows `fetching` on every collector (it
//! protects the device, which all of them fetch from); a device is served
//! under a transaction advisory lock of its own, taken with
//! `pg_try_advisory_xact_lock` (a device another collector is claiming
//! from right now is skipped this round), so that count cannot be raced
//! past. `max_concurrent` counts this collector's own rows: it bounds its
//! own downloads, and more collectors fetch more at once.

use std::collections::{HashSet, VecDeque};
use std::sync::LazyLock;

use tokio_postgres::Row;

use super::PgTx;
use crate::store::recordings::{
    parse_originals, round_robin, Archived, ClaimLimits, Claimed, DeviceTurn, Recording, COLS,
    STATUSES,
};
use crate::store::{Result, StoreError, Tx};

/// How long a claim holds a row without being renewed, unless
/// `[recordings] claim_lease_seconds` says otherwise (its default).
pub const LEASE_MS: i64 = 30 * 60 * 1000;

/// A lease is renewed once less than this is left of it above the
/// renewal's own (so not at every claim).
const RENEW_AFTER_MS: i64 = 60 * 1000;

/// This collector process, as `claimed_by` names it: the process id and a
/// random part (a process id alone repeats across machines and restarts).
pub static CLAIMER: LazyLock<String> =
    LazyLock::new(|| format!("{}-{:016x}", std::process::id(), rand::random::<u64>()));

/// First key of the advisory locks a claim takes per device ("rec"); the
/// two-key form never meets the one-key locks of `postgres::writer`.
const CLAIM_LOCK: i32 = 0x0072_6563;

fn from_row(r: &Row) -> Result<Recording> {
    let originals: Option<String> = r.try_get(11)?;
    let originals = parse_originals(originals.as_deref())
        .map_err(|e| StoreError::Corrupt(format!("recordings.originals: {e}")))?;
    Ok(Recording {
        id: r.try_get(0)?,
        leg_id: r.try_get(1)?,
        device: r.try_get(2)?,
        path: r.try_get(3)?,
        codec: r.try_get(4)?,
        status: r.try_get(5)?,
        attempts: r.try_get(6)?,
        not_found: r.try_get(7)?,
        due_ms: r.try_get(8)?,
        last_error: r.try_get(9)?,
        file: r.try_get(10)?,
        originals,
        bytes: r.try_get(12)?,
        duration_seconds: r.try_get(13)?,
        sha256: r.try_get(14)?,
        updated_at: r.try_get(15)?,
        cdr_id: r.try_get::<_, Option<String>>(16)?.unwrap_or_default(),
    })
}

fn from_rows(rows: Vec<Row>) -> Result<Vec<Recording>> {
    rows.iter().map(from_row).collect()
}

pub fn schedule(
    pg: &PgTx,
    leg_id: i64,
    device: &str,
    path: &str,
    codec: Option<&str>,
    due_ms: i64,
    now: &str,
) -> Result<()> {
    pg.execute(
        "INSERT INTO recordings (leg_id, device, path, codec, status, due_ms, updated_at)
         VALUES ($1, $2, $3, $4, 'pending', $5, $6) ON CONFLICT (leg_id) DO NOTHING",
        &[&leg_id, &device, &path, &codec, &due_ms, &now],
    )?;
    Ok(())
}

/// `store::recordings::claim_due` on PostgreSQL (see the module's text).
pub fn claim_due(
    tx: &Tx,
    pg: &PgTx,
    due_before: i64,
    limits: ClaimLimits,
    after: Option<&str>,
    exclude: &HashSet<i64>,
) -> Result<Claimed> {
    let (now, now_ms) = crate::store::now_stamp();
    take_back_stale(pg, now_ms)?;
    let lease_ms = limits.lease_ms.max(1);
    let lease = now_ms.saturating_add(lease_ms);
    // Renewed once less than the lease minus RENEW_AFTER_MS is left (a
    // lease shorter than that: at every claim).
    pg.execute(
        "UPDATE recordings SET lease_until_ms = $2
         WHERE status = 'fetching' AND claimed_by = $1 AND lease_until_ms < $3",
        &[
            &*CLAIMER,
            &lease,
            &lease.saturating_sub(RENEW_AFTER_MS.min(lease_ms / 2)),
        ],
    )?;
    let mine: i64 = pg
        .query_one(
            "SELECT COUNT(*) FROM recordings WHERE status = 'fetching' AND claimed_by = $1",
            &[&*CLAIMER],
        )?
        .try_get(0)?;
    let free = limits
        .max_concurrent
        .max(1)
        .saturating_sub(usize::try_from(mine).unwrap_or(usize::MAX));
    if free == 0 {
        return Ok(Claimed::default());
    }
    let excluded: Vec<i64> = exclude.iter().copied().collect();
    let mut queues: Vec<(String, VecDeque<i64>)> = Vec::new();
    let mut turn = DeviceTurn::new(after);
    while queues.len() < free {
        let Some(device) = turn.next(tx)? else {
            break;
        };
        let ours: bool = pg
            .query_one(
                "SELECT pg_try_advisory_xact_lock($1, hashtext($2))",
                &[&CLAIM_LOCK, &device],
            )?
            .try_get(0)?;
        if !ours {
            continue;
        }
        let running: i64 = pg
            .query_one(
                "SELECT COUNT(*) FROM recordings WHERE status = 'fetching' AND device = $1",
                &[&device],
            )?
            .try_get(0)?;
        let running = usize::try_from(running).unwrap_or(usize::MAX);
        let slots = limits.per_device.max(1).saturating_sub(running).min(free);
        if slots == 0 {
            continue;
        }
        let rows = pg.query(
            "SELECT id FROM recordings
             WHERE status = 'pending' AND device = $1 AND due_ms <= $2 AND id <> ALL($3)
             ORDER BY due_ms, id LIMIT $4 FOR UPDATE SKIP LOCKED",
            &[
                &device,
                &due_before,
                &excluded,
                &i64::try_from(slots).unwrap_or(i64::MAX),
            ],
        )?;
        let ids = rows
            .iter()
            .map(|r| r.try_get(0))
            .collect::<std::result::Result<VecDeque<i64>, _>>()?;
        if !ids.is_empty() {
            queues.push((device, ids));
        }
    }
    let picked = round_robin(&mut queues, free);
    if picked.is_empty() {
        return Ok(Claimed {
            jobs: Vec::new(),
            next_after: queues.last().map(|(d, _)| d.clone()),
        });
    }
    pg.execute(
        "UPDATE recordings SET status = 'fetching', attempts = attempts + 1, updated_at = $2,
             claimed_by = $3, lease_until_ms = $4
         WHERE id = ANY($1)",
        &[&picked, &now, &*CLAIMER, &lease],
    )?;
    let sql = format!("SELECT {COLS} FROM recordings r WHERE r.id = ANY($1)");
    let mut found = from_rows(pg.query(&sql, &[&picked])?)?;
    // In the order they were picked: the devices' turn.
    found.sort_by_key(|r| picked.iter().position(|&id| id == r.id));
    Ok(Claimed {
        jobs: found,
        next_after: queues.last().map(|(d, _)| d.clone()),
    })
}

/// Puts `fetching` rows whose lease is past back to `pending`, the cut
/// attempt not counted; rows another transaction holds are left for later.
fn take_back_stale(pg: &PgTx, now_ms: i64) -> Result<usize> {
    let n = pg.execute(
        "UPDATE recordings SET status = 'pending', attempts = GREATEST(attempts - 1, 0),
             claimed_by = NULL, lease_until_ms = NULL
         WHERE id IN (SELECT id FROM recordings
                      WHERE status = 'fetching' AND (lease_until_ms IS NULL OR lease_until_ms < $1)
                      FOR UPDATE SKIP LOCKED)",
        &[&now_ms],
    )?;
    Ok(usize::try_from(n).unwrap_or(usize::MAX))
}

/// At a collector's start: only the rows whose claim is stale (another
/// collector may be fetching the others right now).
pub fn reset_fetching(pg: &PgTx, now_ms: i64) -> Result<usize> {
    let n = take_back_stale(pg, now_ms)?;
    if n > 0 {
        tracing::info!(
            rows = n,
            "recording fetches whose claim went stale are pending again"
        );
    }
    Ok(n)
}

pub fn next_pending_device(pg: &PgTx, after: Option<&str>) -> Result<Option<String>> {
    let row = match after {
        Some(a) => pg.query_opt(
            "SELECT device FROM recordings WHERE status = 'pending' AND device > $1
             ORDER BY device LIMIT 1",
            &[&a],
        )?,
        None => pg.query_opt(
            "SELECT device FROM recordings WHERE status = 'pending' ORDER BY device LIMIT 1",
            &[],
        )?,
    };
    Ok(row.map(|r| r.try_get(0)).transpose()?)
}

/// Records a success unless the row is already final (another collector's
/// attempt, after this one's claim went stale, finished first).
pub fn finish_done(pg: &PgTx, id: i64, a: &Archived, originals: &str, now: &str) -> Result<()> {
    let n = pg.execute(
        "UPDATE recordings SET status = 'done', last_error = NULL, file = $2, originals = $3,
             bytes = $4, duration_seconds = $5, sha256 = $6, updated_at = $7,
             claimed_by = NULL, lease_until_ms = NULL
         WHERE id = $1 AND status IN ('pending', 'fetching')",
        &[
            &id,
            &a.file,
            &originals,
            &a.bytes,
            &a.duration_seconds,
            &a.sha256,
            &now,
        ],
    )?;
    if n == 0 {
        tracing::warn!(
            recording = id,
            "recording already final: this attempt's outcome is not recorded"
        );
    }
    Ok(())
}

/// Records a failed attempt, when this collector still holds the claim;
/// else leaves the row to whoever took it over and returns its status.
pub fn finish_attempt_failed(
    pg: &PgTx,
    id: i64,
    error: &str,
    was_404: bool,
    retry_at_ms: Option<i64>,
    now: &str,
) -> Result<&'static str> {
    let row = pg.query_opt(
        "UPDATE recordings SET last_error = $2, not_found = not_found + $3, updated_at = $4,
             status = CASE WHEN $5::BIGINT IS NOT NULL THEN 'pending'
                           WHEN not_found + $3 >= attempts THEN 'missing'
                           ELSE 'failed' END,
             due_ms = COALESCE($5::BIGINT, due_ms), claimed_by = NULL, lease_until_ms = NULL
         WHERE id = $1 AND status = 'fetching' AND claimed_by = $6
         RETURNING status",
        &[
            &id,
            &error,
            &i64::from(was_404),
            &now,
            &retry_at_ms,
            &*CLAIMER,
        ],
    )?;
    let status: String = match row {
        Some(r) => r.try_get(0)?,
        None => {
            let current = pg
                .query_opt("SELECT status FROM recordings WHERE id = $1", &[&id])?
                .ok_or_else(|| StoreError::Corrupt(format!("recording {id} is gone")))?;
            tracing::warn!(
                recording = id,
                "recording claim was taken over: this failed attempt is not recorded"
            );
            current.try_get(0)?
        }
    };
    STATUSES
        .iter()
        .copied()
        .find(|s| *s == status)
        .ok_or_else(|| StoreError::Corrupt(format!("recording {id} has status {status:?}")))
}

pub fn next_due(pg: &PgTx) -> Result<Option<i64>> {
    Ok(pg
        .query_one(
            "SELECT MIN(due_ms) FROM recordings WHERE status = 'pending'",
            &[],
        )?
        .try_get(0)?)
}

pub fn counts(pg: &PgTx) -> Result<Vec<(String, i64)>> {
    pg.query(
        "SELECT status, COUNT(*) FROM recordings GROUP BY status",
        &[],
    )?
    .iter()
    .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
    .collect()
}

pub fn with_status(pg: &PgTx, statuses: &[&str], limit: i64) -> Result<Vec<Recording>> {
    let sql = format!(
        "SELECT {COLS} FROM recordings r WHERE r.status = ANY($1) ORDER BY r.id DESC LIMIT $2"
    );
    from_rows(pg.query(&sql, &[&statuses, &limit])?)
}

pub fn get(pg: &PgTx, id: i64) -> Result<Option<Recording>> {
    let sql = format!("SELECT {COLS} FROM recordings r WHERE r.id = $1");
    pg.query_opt(&sql, &[&id])?
        .as_ref()
        .map(from_row)
        .transpose()
}

pub fn get_of(pg: &PgTx, id: i64, devices: &[String]) -> Result<Option<Recording>> {
    let sql = format!(
        "SELECT {COLS} FROM recordings r WHERE r.id = $1 AND {}",
        crate::store::scope::pg_clause("r.device", "$2")
    );
    let devices = devices.to_vec();
    pg.query_opt(&sql, &[&id, &devices])?
        .as_ref()
        .map(from_row)
        .transpose()
}

pub fn of_call(pg: &PgTx, call_id: &str) -> Result<Vec<Recording>> {
    let sql = format!(
        "SELECT {COLS} FROM recordings r JOIN call_legs cl ON cl.leg_id = r.leg_id
           JOIN calls c ON c.seq = cl.call_seq
         WHERE c.id = $1 ORDER BY r.leg_id"
    );
    from_rows(pg.query(&sql, &[&call_id])?)
}

pub fn primary_of_call(pg: &PgTx, call_id: &str) -> Result<Option<Recording>> {
    let sql = format!(
        "SELECT {COLS} FROM recordings r
           JOIN call_legs cl ON cl.leg_id = r.leg_id
           JOIN legs l ON l.id = r.leg_id
           JOIN calls c ON c.seq = cl.call_seq
         WHERE c.id = $1
         ORDER BY (c.answered_by IS NOT NULL AND l.cdpn = c.answered_by) DESC, l.duration DESC, r.id
         LIMIT 1"
    );
    pg.query_opt(&sql, &[&call_id])?
        .as_ref()
        .map(from_row)
        .transpose()
}
