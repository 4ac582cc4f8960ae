//! Typed queries of `queue_visits`.

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use rusqlite::params;

use super::cells::Cells;
use super::legs::LOCAL_FMT;
use super::{Result, Tx};
use crate::model::{Outcome, Visit};

/// How far a leg's span may be from the visit's entry and still be its call.
pub(super) const LINK_TOLERANCE_SECS: i64 = 5;

/// A stored outcome; one this build does not know reads as `Unknown`.
pub(super) fn outcome_from(s: &str) -> Outcome {
    s.parse().unwrap_or(Outcome::Unknown)
}

/// Inserts or updates a visit by key; links it to a call when a leg of the
/// same visitor id spans its entry time.
pub fn upsert(conn: &Tx, v: &Visit, tz: chrono_tz::Tz) -> Result<()> {
    if let Some(pg) = conn.pg() {
        let entered = v.entered_at.with_timezone(&tz).naive_local();
        return super::postgres::queues::upsert(pg, v, entered);
    }
    let entered_local = v
        .entered_at
        .with_timezone(&tz)
        .naive_local()
        .format(LOCAL_FMT)
        .to_string();
    conn.prepare_cached(
        "INSERT INTO queue_visits (key, device, grp, group_number, party_kind, party_id, caller, callid, entered_at,
             entered_local, entry_count, outcome, agent, ended_at, wait_seconds)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)
         ON CONFLICT (key) DO UPDATE SET group_number = excluded.group_number, outcome = excluded.outcome,
             agent = excluded.agent, ended_at = excluded.ended_at, wait_seconds = excluded.wait_seconds",
    )?
    .execute(params![
        v.key,
        v.device,
        v.group,
        v.group_number,
        v.party_kind,
        v.party_id,
        v.caller,
        v.callid,
        v.entered_at.to_rfc3339(),
        entered_local,
        v.entry_count,
        v.outcome.as_str(),
        v.agent,
        v.ended_at.map(|t| t.to_rfc3339()),
        v.wait_seconds,
    ])?;
    if v.party_kind == "visitor" {
        conn.prepare_cached(
            "UPDATE queue_visits SET call_id = (
                 SELECT cl.leg_call_id FROM legs l JOIN call_legs cl ON cl.leg_id = l.id
                 WHERE l.device = ?2 AND l.visitor_id = ?3
                   AND l.time_start <= datetime(?4, ?5) AND l.time_end >= datetime(?4, ?6)
                 ORDER BY l.cdr_id LIMIT 1)
             WHERE key = ?1",
        )?
        .execute(params![
            v.key,
            v.device,
            v.party_id,
            entered_local,
            format!("+{LINK_TOLERANCE_SECS} seconds"),
            format!("-{LINK_TOLERANCE_SECS} seconds"),
        ])?;
    }
    Ok(())
}

/// Called when a leg arrives: links the visits of its visitor id it spans
/// (`start`..`end`, device-local) to the call `alias` resolves to.
pub fn link_leg(
    conn: &Tx,
    device: &str,
    visitor_id: &str,
    start: NaiveDateTime,
    end: NaiveDateTime,
    alias: &str,
) -> Result<()> {
    if let Some(pg) = conn.pg() {
        return super::postgres::queues::link_leg(pg, device, visitor_id, start, end, alias);
    }
    let (start_local, end_local) = (
        start.format(LOCAL_FMT).to_string(),
        end.format(LOCAL_FMT).to_string(),
    );
    conn.prepare_cached(
        "UPDATE queue_visits SET call_id = ?5
         WHERE device = ?1 AND party_kind = 'visitor' AND party_id = ?2 AND call_id IS NULL
           AND entered_local >= datetime(?3, ?6) AND entered_local <= datetime(?4, ?7)",
    )?
    .execute(params![
        device,
        visitor_id,
        start_local,
        end_local,
        alias,
        format!("-{LINK_TOLERANCE_SECS} seconds"),
        format!("+{LINK_TOLERANCE_SECS} seconds"),
    ])?;
    Ok(())
}

/// A stored visit with its call link.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StoredVisit {
    #[serde(flatten)]
    pub visit: Visit,
    pub entered_local: String,
    pub call_id: Option<String>,
}

/// Visits entered on device-local days `from..=to`, in entry order.
pub fn between(conn: &Tx, from: NaiveDate, to: NaiveDate) -> Result<Vec<StoredVisit>> {
    between_of(conn, from, to, &[])
}

/// [`between`] of `devices` only (every device when empty: `store::scope`).
pub fn between_of(
    conn: &Tx,
    from: NaiveDate,
    to: NaiveDate,
    devices: &[String],
) -> Result<Vec<StoredVisit>> {
    let lo = from.format("%Y-%m-%d").to_string();
    let hi = (to + chrono::Duration::days(1))
        .format("%Y-%m-%d")
        .to_string();
    if let Some(pg) = conn.pg() {
        return super::postgres::queues::between(pg, &lo, &hi, devices);
    }
    select(
        conn,
        &format!(
            "entered_local >= ?1 AND entered_local < ?2 AND {}",
            super::scope::sqlite_clause("device", "?3")
        ),
        params![lo, hi, super::scope::sqlite_value(devices)],
    )
}

/// Visits linked to the logical call `call_id` (through any of its legs' ids).
pub fn of_call(conn: &Tx, call_id: &str) -> Result<Vec<StoredVisit>> {
    if let Some(pg) = conn.pg() {
        return super::postgres::queues::of_call(pg, call_id);
    }
    select(conn, OF_CALL, params![call_id])
}

/// Visits whose call is `?1`, through any of its legs' ids.
const OF_CALL: &str = "call_id IN (SELECT cl.leg_call_id FROM calls c JOIN call_legs cl ON cl.call_seq = c.seq WHERE c.id = ?1)";

fn select(conn: &Tx, filter: &str, args: impl rusqlite::Params) -> Result<Vec<StoredVisit>> {
    let mut st = conn.prepare_cached(&select_sql(filter))?;
    let mut rows = st.query(args)?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        out.push(visit_from(r)?);
    }
    Ok(out)
}

/// Maps a row of [`select_sql`], on either backend.
pub(super) fn visit_from(r: &impl Cells) -> Result<StoredVisit> {
    let parse_t = |s: String| {
        DateTime::parse_from_rfc3339(&s)
            .map(|d| d.with_timezone(&Utc))
            .ok()
    };
    let entered: String = r.cell(8)?;
    let outcome: String = r.cell(11)?;
    let ended: Option<String> = r.cell(13)?;
    Ok(StoredVisit {
        visit: Visit {
            key: r.cell(0)?,
            device: r.cell(1)?,
            group: r.cell(2)?,
            group_number: r.cell(3)?,
            party_kind: r.cell(4)?,
            party_id: r.cell(5)?,
            caller: r.cell(6)?,
            callid: r.cell(7)?,
            entered_at: parse_t(entered).unwrap_or_default(),
            entry_count: r.cell(10)?,
            outcome: outcome_from(&outcome),
            agent: r.cell(12)?,
            ended_at: ended.and_then(parse_t),
            wait_seconds: r.cell(14)?,
        },
        entered_local: r.cell(9)?,
        call_id: r.cell(15)?,
    })
}

pub fn clear(conn: &Tx) -> Result<()> {
    if let Some(pg) = conn.pg() {
        return super::postgres::queues::clear(pg);
    }
    conn.execute_batch("DELETE FROM queue_visits;")?;
    Ok(())
}

/// The visits matching `filter` (either backend's placeholders), in order.
pub(super) fn select_sql(filter: &str) -> String {
    format!(
        "SELECT key, device, grp, group_number, party_kind, party_id, caller, callid, entered_at, entered_local,
                entry_count, outcome, agent, ended_at, wait_seconds, call_id
         FROM queue_visits WHERE {filter} ORDER BY entered_local, key"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A call's detail view looks its queue visits up by index, not by
    /// reading every visit ever stored.
    #[test]
    fn visits_of_a_call_are_found_by_index() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = crate::store::Store::open(&dir.path().join("a.sqlite")).expect("open");
        let plan: Vec<String> = store
            .read_blocking(|c| {
                let mut st = c.prepare(&format!("EXPLAIN QUERY PLAN {}", select_sql(OF_CALL)))?;
                let rows = st.query_map(["x"], |r| r.get::<_, String>(3))?;
                Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
            })
            .expect("plan");
        assert!(
            plan.iter()
                .any(|l| l.contains("SEARCH queue_visits USING INDEX queue_visits_call")),
            "{plan:#?}"
        );
        assert!(!plan.iter().any(|l| l.starts_with("SCAN")), "{plan:#?}");
    }
}
