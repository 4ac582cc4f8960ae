//! The store's side of the retention purge (docs/operations.md
//! "Retention"): what is past a cutoff, counted for a dry run, and removed
//! in bounded batches. Each function here is one batch, run by the caller
//! as one write job, so the writer (and with it ingest) is never held for
//! longer than one batch. What is past which limit, and in which order the
//! kinds go, is the `retention` module's.
//!
//! Calls and queue visits are dated on their device's local clock
//! (`start_local`, `entered_local`): [`dated_page`] walks them oldest first
//! by that index and the caller decides per device (each device has its
//! own time zone). Everything else is dated by a receive time in unix ms.

use rusqlite::{params, params_from_iter, OptionalExtension};

use super::{calls, legs, now_stamp, Result, Tx};

/// How many rows are past a cutoff, and the times (unix ms) of the oldest
/// and newest of them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SpanMs {
    pub count: i64,
    pub oldest_ms: Option<i64>,
    pub newest_ms: Option<i64>,
}

/// Tables whose rows are dated on a device's local clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatedTable {
    Calls,
    QueueVisits,
}

/// A call (`seq`, `key` = its id) or a queue visit (`key`) and its local
/// date ('YYYY-MM-DD HH:MM:SS').
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dated {
    pub seq: i64,
    pub key: String,
    pub device: String,
    pub local: String,
}

/// Up to `limit` rows of `table` dated before `before_local`, oldest first,
/// after the row `(local, key)` of the previous page.
pub fn dated_page(
    tx: &Tx,
    table: DatedTable,
    before_local: &str,
    after: Option<(&str, &str)>,
    limit: i64,
) -> Result<Vec<Dated>> {
    if let Some(pg) = tx.pg() {
        return super::postgres::retention::dated_page(pg, table, before_local, after, limit);
    }
    let (a_local, a_key) = after.unwrap_or(("", ""));
    let sql = match table {
        DatedTable::Calls => {
            "SELECT seq, id, device, start_local FROM calls
             WHERE start_local < ?1 AND (start_local > ?2 OR (start_local = ?2 AND id > ?3))
             ORDER BY start_local, id LIMIT ?4"
        }
        DatedTable::QueueVisits => {
            "SELECT 0, key, device, entered_local FROM queue_visits
             WHERE entered_local < ?1 AND (entered_local > ?2 OR (entered_local = ?2 AND key > ?3))
             ORDER BY entered_local, key LIMIT ?4"
        }
    };
    let mut st = tx.prepare_cached(sql)?;
    let rows = st.query_map(params![before_local, a_local, a_key, limit], |r| {
        Ok(Dated {
            seq: r.get(0)?,
            key: r.get(1)?,
            device: r.get(2)?,
            local: r.get(3)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// `?,?,…` for `n` values.
fn marks(n: usize) -> String {
    vec!["?"; n].join(",")
}

/// Of the calls `call_seqs`, those with recordings not purged yet, and how
/// many each has.
pub fn recordings_to_purge(tx: &Tx, call_seqs: &[i64]) -> Result<Vec<(i64, i64)>> {
    if call_seqs.is_empty() {
        return Ok(Vec::new());
    }
    if let Some(pg) = tx.pg() {
        return super::postgres::retention::recordings_to_purge(pg, call_seqs);
    }
    let sql = format!(
        "SELECT cl.call_seq, COUNT(*) FROM call_legs cl JOIN recordings r ON r.leg_id = cl.leg_id
         WHERE cl.call_seq IN ({}) AND r.status <> 'purged' GROUP BY cl.call_seq",
        marks(call_seqs.len())
    );
    let mut st = tx.prepare(&sql)?;
    let rows = st.query_map(params_from_iter(call_seqs), |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Marks the recordings of the calls `call_seqs` `purged` (their files are
/// still listed: [`purged_with_files`] finds them for removal). A row being
/// fetched right now is left for the next pass. Returns the rows marked.
pub fn mark_recordings_purged(tx: &Tx, call_seqs: &[i64]) -> Result<u64> {
    if call_seqs.is_empty() {
        return Ok(0);
    }
    let (now, _) = now_stamp();
    if let Some(pg) = tx.pg() {
        return super::postgres::retention::mark_recordings_purged(pg, call_seqs, &now);
    }
    let sql = format!(
        "UPDATE recordings SET status = 'purged', last_error = NULL, updated_at = ?1
         WHERE status NOT IN ('purged', 'fetching')
           AND leg_id IN (SELECT leg_id FROM call_legs WHERE call_seq IN ({}))",
        marks(call_seqs.len())
    );
    let mut args: Vec<rusqlite::types::Value> = vec![now.into()];
    args.extend(call_seqs.iter().map(|s| (*s).into()));
    let marked = tx.execute(&sql, params_from_iter(args))? as u64;
    // A purged recording's conversation figures go with its audio.
    tx.execute(
        &format!(
            "DELETE FROM conversations WHERE recording_id IN (SELECT id FROM recordings
               WHERE status = 'purged' AND leg_id IN (SELECT leg_id FROM call_legs WHERE call_seq IN ({})))",
            marks(call_seqs.len())
        ),
        params_from_iter(call_seqs),
    )?;
    Ok(marked)
}

/// A purged recording whose files are still in storage: its id and the
/// archive-relative keys (the WAV and any kept G.729 halves).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PurgedFiles {
    pub id: i64,
    pub keys: Vec<String>,
}

/// A recording row's id, `file` and `originals` columns.
pub(in crate::store) type FileCols = (i64, Option<String>, Option<String>);

/// Up to `limit` purged recordings with id > `after` whose files are
/// still listed, by id.
pub fn purged_with_files(tx: &Tx, after: i64, limit: i64) -> Result<Vec<PurgedFiles>> {
    let rows: Vec<FileCols> = match tx.pg() {
        Some(pg) => super::postgres::retention::purged_with_files(pg, after, limit)?,
        None => tx
            .prepare_cached(
                "SELECT id, file, originals FROM recordings
                 WHERE status = 'purged' AND (file IS NOT NULL OR originals IS NOT NULL) AND id > ?1
                 ORDER BY id LIMIT ?2",
            )?
            .query_map([after, limit], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<rusqlite::Result<_>>()?,
    };
    rows.into_iter()
        .map(|(id, file, originals)| {
            let mut keys: Vec<String> = file.into_iter().collect();
            keys.extend(
                super::recordings::parse_originals(originals.as_deref())
                    .map_err(|e| super::StoreError::Corrupt(e.to_string()))?,
            );
            Ok(PurgedFiles { id, keys })
        })
        .collect()
}

/// Forgets the files of purged recordings `ids` (they are gone from storage).
pub fn forget_files(tx: &Tx, ids: &[i64]) -> Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    if let Some(pg) = tx.pg() {
        return super::postgres::retention::forget_files(pg, ids);
    }
    let sql = format!(
        "UPDATE recordings SET file = NULL, originals = NULL WHERE status = 'purged' AND id IN ({})",
        marks(ids.len())
    );
    tx.execute(&sql, params_from_iter(ids))?;
    Ok(())
}

/// A leg of a call about to go: its id and where its join keys are.
pub(in crate::store) struct GoingLeg {
    pub id: i64,
    pub device: String,
    pub end_day: i64,
}

/// The end day bucket of `leg_keys` for a leg ending at local `time_end`.
pub(in crate::store) fn end_day(time_end: &str) -> i64 {
    legs::parse_local(time_end).map_or(0, |t| calls::local_secs(t) / calls::KEY_DAY_SECS)
}

/// Deletes the calls `seqs` with their legs, call_legs, join keys,
/// recordings and queue visits. A call whose recording files are still in
/// storage (or being fetched) stays for the next pass, so no file is left
/// without its row. Returns the calls deleted.
pub fn delete_calls(tx: &Tx, seqs: &[i64]) -> Result<u64> {
    if seqs.is_empty() {
        return Ok(0);
    }
    if let Some(pg) = tx.pg() {
        return super::postgres::retention::delete_calls(pg, seqs);
    }
    let m = marks(seqs.len());
    let blocked: Vec<i64> = tx
        .prepare(&format!(
            "SELECT DISTINCT cl.call_seq FROM call_legs cl JOIN recordings r ON r.leg_id = cl.leg_id
             WHERE cl.call_seq IN ({m})
               AND (r.file IS NOT NULL OR r.originals IS NOT NULL OR r.status = 'fetching')"
        ))?
        .query_map(params_from_iter(seqs), |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let seqs: Vec<i64> = seqs
        .iter()
        .copied()
        .filter(|s| !blocked.contains(s))
        .collect();
    if seqs.is_empty() {
        return Ok(0);
    }
    let m = marks(seqs.len());
    let going: Vec<GoingLeg> = tx
        .prepare(&format!(
            "SELECT l.id, l.device, l.time_end FROM call_legs cl JOIN legs l ON l.id = cl.leg_id
             WHERE cl.call_seq IN ({m})"
        ))?
        .query_map(params_from_iter(&seqs), |r| {
            Ok(GoingLeg {
                id: r.get(0)?,
                device: r.get(1)?,
                end_day: end_day(&r.get::<_, String>(2)?),
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    let leg_ids: Vec<i64> = going.iter().map(|l| l.id).collect();
    let lm = marks(leg_ids.len());
    if !leg_ids.is_empty() {
        tx.execute(
            &format!(
                "DELETE FROM conversations WHERE recording_id IN
                   (SELECT id FROM recordings WHERE leg_id IN ({lm}))"
            ),
            params_from_iter(&leg_ids),
        )?;
        tx.execute(
            &format!("DELETE FROM recordings WHERE leg_id IN ({lm})"),
            params_from_iter(&leg_ids),
        )?;
    }
    tx.execute(
        &format!(
            "DELETE FROM queue_visits WHERE call_id IN (SELECT id FROM calls WHERE seq IN ({m}))"
        ),
        params_from_iter(&seqs),
    )?;
    {
        // By the primary key's (device, end_day) prefix: leg_keys has no
        // index on leg_id.
        let mut st = tx.prepare_cached(
            "DELETE FROM leg_keys WHERE device = ?1 AND end_day = ?2 AND leg_id = ?3",
        )?;
        for l in &going {
            st.execute(params![l.device, l.end_day, l.id])?;
        }
    }
    tx.execute(
        &format!("DELETE FROM call_legs WHERE call_seq IN ({m})"),
        params_from_iter(&seqs),
    )?;
    let gone = tx.execute(
        &format!("DELETE FROM calls WHERE seq IN ({m})"),
        params_from_iter(&seqs),
    )?;
    if !leg_ids.is_empty() {
        tx.execute(
            &format!("DELETE FROM legs WHERE id IN ({lm})"),
            params_from_iter(&leg_ids),
        )?;
    }
    Ok(gone as u64)
}

/// Deletes the queue visits `keys`; returns how many went.
pub fn delete_visits(tx: &Tx, keys: &[String]) -> Result<u64> {
    if keys.is_empty() {
        return Ok(0);
    }
    if let Some(pg) = tx.pg() {
        return super::postgres::retention::delete_visits(pg, keys);
    }
    let sql = format!(
        "DELETE FROM queue_visits WHERE key IN ({})",
        marks(keys.len())
    );
    Ok(tx.execute(&sql, params_from_iter(keys))? as u64)
}

/// What [`span`] counts, each with its own cutoff column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MsKind {
    /// Call events received before the cutoff.
    Events,
    /// Quarantined pushes received before the cutoff.
    Quarantine,
    /// Audit rows written before the cutoff.
    Audit,
    /// Web sessions last used before the cutoff.
    Sessions,
}

impl MsKind {
    /// (table, time column, extra condition).
    pub(in crate::store) fn sql(self) -> (&'static str, &'static str, &'static str) {
        match self {
            MsKind::Events => ("events", "received_ms", ""),
            MsKind::Quarantine => ("pushes", "received_ms", "AND outcome = 'quarantined'"),
            MsKind::Audit => ("audit_log", "time_ms", ""),
            MsKind::Sessions => ("sessions", "last_seen_ms", ""),
        }
    }

    /// The statements that delete a batch of the oldest rows (an event's
    /// parties first, then the event), in order; `before` and `limit` are
    /// the backend's placeholders for the cutoff and the batch size
    /// (`?1`/`?2` on SQLite, `$1`/`$2` on PostgreSQL).
    pub(in crate::store) fn delete_sql(self, before: &str, limit: &str) -> Vec<String> {
        let (table, col, cond) = self.sql();
        let key = if self == MsKind::Sessions {
            "hash"
        } else {
            "id"
        };
        let pick = format!(
            "SELECT {key} FROM {table} WHERE {col} < {before} {cond} ORDER BY {col}, {key} LIMIT {limit}"
        );
        let mut sql = Vec::with_capacity(2);
        if self == MsKind::Events {
            sql.push(format!(
                "DELETE FROM event_parties WHERE event_id IN ({pick})"
            ));
        }
        sql.push(format!("DELETE FROM {table} WHERE {key} IN ({pick})"));
        sql
    }
}

/// The rows of `kind` older than `before_ms`.
pub fn span(tx: &Tx, kind: MsKind, before_ms: i64) -> Result<SpanMs> {
    if let Some(pg) = tx.pg() {
        return super::postgres::retention::span(pg, kind, before_ms);
    }
    let (table, col, cond) = kind.sql();
    let sql =
        format!("SELECT COUNT(*), MIN({col}), MAX({col}) FROM {table} WHERE {col} < ?1 {cond}");
    Ok(tx.query_row(&sql, [before_ms], |r| {
        Ok(SpanMs {
            count: r.get(0)?,
            oldest_ms: r.get(1)?,
            newest_ms: r.get(2)?,
        })
    })?)
}

/// Deletes up to `limit` rows of `kind` older than `before_ms` (an event
/// with its parties); returns how many went (0: none left).
pub fn delete_batch(tx: &Tx, kind: MsKind, before_ms: i64, limit: i64) -> Result<u64> {
    if let Some(pg) = tx.pg() {
        return super::postgres::retention::delete_batch(pg, kind, before_ms, limit);
    }
    let mut gone = 0;
    for sql in kind.delete_sql("?1", "?2") {
        // The last statement's count: the rows of `kind` itself.
        gone = tx.execute(&sql, params![before_ms, limit])? as u64;
    }
    Ok(gone)
}

/// Stored pushes received before `before_ms` whose raw body is still kept
/// and may go: derived (past the cursor, not queued), without a derive
/// error (its body is what a fix would derive again).
pub fn raw_span(tx: &Tx, before_ms: i64) -> Result<SpanMs> {
    if let Some(pg) = tx.pg() {
        return super::postgres::retention::raw_span(pg, before_ms);
    }
    Ok(tx.query_row(
        "SELECT COUNT(*), MIN(received_ms), MAX(received_ms) FROM pushes
         WHERE id > COALESCE((SELECT last_id FROM retention_marks WHERE kind = 'raw'), 0)
           AND id <= (SELECT push_id FROM derive_cursor)
           AND received_ms < ?1 AND outcome = 'stored' AND derive_error IS NULL
           AND id NOT IN (SELECT push_id FROM derive_queue)",
        [before_ms],
        |r| {
            Ok(SpanMs {
                count: r.get(0)?,
                oldest_ms: r.get(1)?,
                newest_ms: r.get(2)?,
            })
        },
    )?)
}

/// What one batch of [`purge_raw`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RawBatch {
    /// Raw bodies emptied.
    pub emptied: u64,
    /// Pushes walked (0: the walk reached the cutoff or a push not derived yet).
    pub walked: u64,
}

/// One step of the walk over pushes by id, from where the last one
/// stopped: empties the body (and query string) of each derived stored
/// push received before `before_ms`, and stops at the first push received
/// at or after it or not derived yet. The row stays: legs and events name
/// it, and `migrate-store` dates legs by it. Held, quarantined and failed
/// pushes are passed over untouched (quarantine has its own limit).
pub fn purge_raw(tx: &Tx, before_ms: i64, limit: i64) -> Result<RawBatch> {
    if let Some(pg) = tx.pg() {
        return super::postgres::retention::purge_raw(pg, before_ms, limit);
    }
    let (last_id, newest_ms): (i64, i64) = tx
        .query_row(
            "SELECT last_id, newest_ms FROM retention_marks WHERE kind = 'raw'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?
        .unwrap_or((0, 0));
    let cursor: i64 = tx.query_row("SELECT push_id FROM derive_cursor", [], |r| r.get(0))?;
    let rows: Vec<RawRow> = tx
        .prepare_cached(
            "SELECT id, received_ms, outcome, derive_error IS NOT NULL,
                    id > ?3 OR id IN (SELECT push_id FROM derive_queue)
             FROM pushes WHERE id > ?1 ORDER BY id LIMIT ?2",
        )?
        .query_map(params![last_id, limit, cursor], |r| {
            Ok(RawRow {
                id: r.get(0)?,
                received_ms: r.get(1)?,
                outcome: r.get(2)?,
                failed: r.get(3)?,
                pending: r.get(4)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    let plan = walk_raw(&rows, before_ms, last_id, newest_ms);
    let mut empty =
        tx.prepare_cached("UPDATE pushes SET body = X'', query = NULL WHERE id = ?1")?;
    for id in &plan.empty {
        empty.execute([id])?;
    }
    if plan.walked > 0 {
        tx.prepare_cached(
            "INSERT INTO retention_marks (kind, last_id, newest_ms) VALUES ('raw', ?1, ?2)
             ON CONFLICT (kind) DO UPDATE SET last_id = excluded.last_id, newest_ms = excluded.newest_ms",
        )?
        .execute(params![plan.last_id, plan.newest_ms])?;
    }
    Ok(RawBatch {
        emptied: plan.empty.len() as u64,
        walked: plan.walked,
    })
}

/// A push as the raw walk sees it.
pub(in crate::store) struct RawRow {
    pub id: i64,
    pub received_ms: i64,
    pub outcome: String,
    /// Deriving it failed (`derive_error`).
    pub failed: bool,
    /// Not derived yet.
    pub pending: bool,
}

/// Where one step of the raw walk gets to (shared by both backends).
pub(in crate::store) struct RawPlan {
    pub empty: Vec<i64>,
    pub walked: u64,
    pub last_id: i64,
    pub newest_ms: i64,
}

pub(in crate::store) fn walk_raw(
    rows: &[RawRow],
    before_ms: i64,
    last_id: i64,
    newest_ms: i64,
) -> RawPlan {
    let mut plan = RawPlan {
        empty: Vec::new(),
        walked: 0,
        last_id,
        newest_ms,
    };
    for r in rows {
        if r.received_ms >= before_ms || (r.outcome == "stored" && r.pending) {
            break;
        }
        if r.outcome == "stored" && !r.failed {
            plan.empty.push(r.id);
            plan.newest_ms = plan.newest_ms.max(r.received_ms);
        }
        plan.walked += 1;
        plan.last_id = r.id;
    }
    plan
}

/// The receive time (unix ms) of the newest push whose raw body the
/// retention purge emptied, if any (`callvault rebuild` says so).
pub fn raw_purged_until(tx: &Tx) -> Result<Option<i64>> {
    if let Some(pg) = tx.pg() {
        return super::postgres::retention::raw_purged_until(pg);
    }
    Ok(tx
        .query_row(
            "SELECT newest_ms FROM retention_marks WHERE kind = 'raw' AND newest_ms > 0",
            [],
            |r| r.get(0),
        )
        .optional()?)
}
