//! `store::pushes` on PostgreSQL.
//!
//! `received_at` is a TIMESTAMPTZ here (the partition key of `pushes`);
//! it is written from the RFC 3339 text the collector stamped
//! (`store::now_stamp`) and read back as the same text, so every caller
//! sees what it sees on SQLite.
//!
//! There is no derivation cursor: collectors commit pushes concurrently,
//! so push ids do not commit in id order and "derived up to id N" would
//! skip a smaller id committed later. A stored push is queued in
//! `derive_pending` by the statement that stores it and taken off by the
//! transaction that derives it (ARCHITECTURE.md "Derivation").

use chrono::{DateTime, SecondsFormat};
use tokio_postgres::Row;

use super::PgTx;
use crate::store::pushes::{Committed, NewPush, Outcome, Quarantined};
use crate::store::{Result, StoreError};

/// A TIMESTAMPTZ column as the RFC 3339 text `store::now_stamp` writes
/// (UTC, milliseconds, `Z`), for the SQL of the ingest tables.
macro_rules! utc_text {
    ($col:literal) => {
        concat!(
            "to_char(",
            $col,
            " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"
        )
    };
}
pub(super) use utc_text;

/// The RFC 3339 receive time as PostgreSQL parses it unambiguously
/// (UTC, microseconds); bad text is an error, not a guess.
pub(super) fn timestamptz_text(received_at: &str) -> Result<String> {
    DateTime::parse_from_rfc3339(received_at)
        .map(|t| {
            t.with_timezone(&chrono::Utc)
                .to_rfc3339_opts(SecondsFormat::Micros, true)
        })
        .map_err(|e| StoreError::Corrupt(format!("receive time {received_at:?}: {e}")))
}

/// A stored push is queued for derivation in the same statement (one
/// round trip on the ingest path).
const INSERT_STORED: &str = "WITH p AS (
        INSERT INTO pushes (received_at, received_ms, source, device, method, path, query, body, outcome, status, reason, sender_mac)
        VALUES (CAST($1::text AS timestamptz), $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
        RETURNING id, received_at, received_ms),
     d AS (INSERT INTO derive_pending (push_id, received_at, received_ms)
        SELECT id, received_at, received_ms FROM p)
     SELECT id FROM p";

const INSERT_OTHER: &str = "INSERT INTO pushes (received_at, received_ms, source, device, method, path, query, body, outcome, status, reason, sender_mac)
     VALUES (CAST($1::text AS timestamptz), $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
     RETURNING id";

pub fn insert(pg: &PgTx, p: &NewPush) -> Result<i64> {
    let at = timestamptz_text(&p.received_at)?;
    let status = i32::from(p.status);
    let sql = match p.outcome {
        Outcome::Stored => INSERT_STORED,
        Outcome::Held | Outcome::Quarantined => INSERT_OTHER,
    };
    Ok(pg
        .query_one(
            sql,
            &[
                &at,
                &p.received_ms,
                &p.source,
                &p.device,
                &p.method,
                &p.path,
                &p.query,
                &p.body,
                &p.outcome.as_str(),
                &status,
                &p.reason,
                &p.sender_mac,
            ],
        )?
        .get(0))
}

pub fn quarantined(pg: &PgTx, limit: i64) -> Result<Vec<Quarantined>> {
    let rows = pg.query(
        concat!(
            "SELECT id, ",
            utc_text!("received_at"),
            ", source, device, status, COALESCE(reason, ''), body
             FROM pushes WHERE outcome = 'quarantined' ORDER BY id DESC LIMIT $1"
        ),
        &[&limit],
    )?;
    rows.iter()
        .map(|r| {
            let body: Vec<u8> = r.get(6);
            Ok(Quarantined {
                id: r.get(0),
                received_at: r.get(1),
                source: r.get(2),
                device: r.get(3),
                status: status(r.get(4))?,
                reason: r.get(5),
                body: String::from_utf8_lossy(&body).into_owned(),
            })
        })
        .collect()
}

fn status(s: i32) -> Result<u16> {
    u16::try_from(s).map_err(|_| StoreError::Corrupt(format!("push status {s}")))
}

pub fn counts(pg: &PgTx) -> Result<Vec<(String, Option<String>, i64)>> {
    // Sorted as SQLite sorts: bytewise, NULL first.
    Ok(pg
        .query(
            "SELECT outcome, reason, COUNT(*) FROM pushes GROUP BY outcome, reason
             ORDER BY outcome COLLATE \"C\", reason COLLATE \"C\" NULLS FIRST",
            &[],
        )?
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect())
}

pub fn count(pg: &PgTx) -> Result<i64> {
    Ok(pg.query_one("SELECT COUNT(*) FROM pushes", &[])?.get(0))
}

/// A [`Committed`] from (id, device, received_at text, received_ms, query, body).
fn committed_row(r: &Row) -> Committed {
    Committed {
        id: r.get(0),
        device: r.get(1),
        received_at: r.get(2),
        received_ms: r.get(3),
        query: r.get(4),
        body: r.get(5),
    }
}

/// Pending pushes with id > `after`, in id order: those committed so far.
/// A smaller id committed later stays pending and comes at a later step.
pub fn next_to_derive(pg: &PgTx, after: i64, limit: i64) -> Result<Vec<Committed>> {
    Ok(pg
        .query(
            concat!(
                "SELECT p.id, COALESCE(p.device, p.source), ",
                utc_text!("p.received_at"),
                ", p.received_ms, p.query, p.body
                 FROM derive_pending d
                 JOIN pushes p ON p.received_at = d.received_at AND p.id = d.push_id
                 WHERE d.push_id > $1 ORDER BY d.push_id LIMIT $2"
            ),
            &[&after, &limit],
        )?
        .iter()
        .map(committed_row)
        .collect())
}

/// Takes exactly the pushes derived off `derive_pending`, in the
/// transaction that derived them.
pub fn mark_derived(pg: &PgTx, ids: &[i64]) -> Result<()> {
    pg.execute(
        "DELETE FROM derive_pending WHERE push_id = ANY($1)",
        &[&ids],
    )?;
    Ok(())
}

pub fn queued(pg: &PgTx, limit: i64) -> Result<Vec<Committed>> {
    Ok(pg
        .query(
            concat!(
                "SELECT p.id, COALESCE(p.device, p.source), ",
                utc_text!("p.received_at"),
                ", p.received_ms, p.query, p.body
                 FROM derive_queue q JOIN pushes p ON p.id = q.push_id
                 ORDER BY q.push_id LIMIT $1"
            ),
            &[&limit],
        )?
        .iter()
        .map(committed_row)
        .collect())
}

pub fn dequeue(pg: &PgTx, id: i64) -> Result<()> {
    pg.execute("DELETE FROM derive_queue WHERE push_id = $1", &[&id])?;
    Ok(())
}

pub fn set_derive_error(pg: &PgTx, id: i64, error: &str) -> Result<()> {
    pg.execute(
        "UPDATE pushes SET derive_error = $2 WHERE id = $1",
        &[&id, &error],
    )?;
    Ok(())
}

/// The earliest receive time still pending: pending pushes are not in
/// receive order (ids are not commit order), and the table is only the
/// backlog, so the minimum is cheap.
pub fn first_pending_ms(pg: &PgTx) -> Result<Option<i64>> {
    Ok(pg
        .query_one("SELECT MIN(received_ms) FROM derive_pending", &[])?
        .get(0))
}

pub fn derive_backlog(pg: &PgTx) -> Result<i64> {
    Ok(pg
        .query_one(
            "SELECT (SELECT COUNT(*) FROM derive_pending) + (SELECT COUNT(*) FROM derive_queue)",
            &[],
        )?
        .get(0))
}
