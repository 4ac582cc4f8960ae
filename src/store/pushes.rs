//! Raw push bodies and the quarantine (the pushes we refused, with why).

use rusqlite::{params, OptionalExtension};
use serde::Serialize;

use super::{Result, Tx};

/// One received request body and what became of it.
#[derive(Debug, Clone)]
pub struct NewPush {
    pub received_at: String,
    pub received_ms: i64,
    pub source: String,
    pub device: Option<String>,
    pub method: String,
    pub path: String,
    /// The request's query string (the device may put the XML there).
    pub query: Option<String>,
    pub body: Vec<u8>,
    pub outcome: Outcome,
    pub status: u16,
    pub reason: Option<String>,
    /// The MAC (or sn) the push's messages named, normalised.
    pub sender_mac: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// From a device: derived into legs and events.
    Stored,
    /// From a sender that matches no device: kept raw, derived once the
    /// sender is registered (`store::devices::release_held`).
    Held,
    /// Refused, with a reason.
    Quarantined,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Stored => "stored",
            Outcome::Held => "held",
            Outcome::Quarantined => "quarantined",
        }
    }
}

pub fn insert(tx: &Tx, p: &NewPush) -> Result<i64> {
    if let Some(pg) = tx.pg() {
        return super::postgres::pushes::insert(pg, p);
    }
    let mut st = tx.prepare_cached(
        "INSERT INTO pushes (received_at, received_ms, source, device, method, path, query, body, outcome, status, reason, sender_mac)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
    )?;
    st.execute(params![
        p.received_at,
        p.received_ms,
        p.source,
        p.device,
        p.method,
        p.path,
        p.query,
        p.body,
        p.outcome.as_str(),
        p.status,
        p.reason,
        p.sender_mac
    ])?;
    Ok(tx.last_insert_rowid())
}

/// A quarantined push as shown to an operator.
#[derive(Debug, Clone, Serialize)]
pub struct Quarantined {
    pub id: i64,
    pub received_at: String,
    pub source: String,
    pub device: Option<String>,
    pub status: u16,
    pub reason: String,
    pub body: String,
}

/// The most recent quarantined pushes, newest first.
pub fn quarantined(conn: &Tx, limit: i64) -> Result<Vec<Quarantined>> {
    if let Some(pg) = conn.pg() {
        return super::postgres::pushes::quarantined(pg, limit);
    }
    let mut st = conn.prepare_cached(
        "SELECT id, received_at, source, device, status, COALESCE(reason, ''), body
         FROM pushes WHERE outcome = 'quarantined' ORDER BY id DESC LIMIT ?1",
    )?;
    let rows = st.query_map([limit], |r| {
        let body: Vec<u8> = r.get(6)?;
        Ok(Quarantined {
            id: r.get(0)?,
            received_at: r.get(1)?,
            source: r.get(2)?,
            device: r.get(3)?,
            status: r.get(4)?,
            reason: r.get(5)?,
            body: String::from_utf8_lossy(&body).into_owned(),
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Counts of pushes by outcome and reason.
pub fn counts(conn: &Tx) -> Result<Vec<(String, Option<String>, i64)>> {
    if let Some(pg) = conn.pg() {
        return super::postgres::pushes::counts(pg);
    }
    let mut st = conn.prepare(
        "SELECT outcome, reason, COUNT(*) FROM pushes GROUP BY outcome, reason ORDER BY outcome, reason",
    )?;
    let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Every push row, stored or quarantined.
pub fn count(conn: &Tx) -> Result<i64> {
    if let Some(pg) = conn.pg() {
        return super::postgres::pushes::count(pg);
    }
    Ok(conn.query_row("SELECT COUNT(*) FROM pushes", [], |r| r.get(0))?)
}

/// A stored (not quarantined) push, as the derivation reads it back.
#[derive(Debug, Clone)]
pub struct Committed {
    pub id: i64,
    pub device: String,
    pub received_at: String,
    pub received_ms: i64,
    pub query: Option<String>,
    pub body: Vec<u8>,
}

/// Up to `limit` stored pushes not derived yet, in id order: after push
/// `after`, or when `None` from the first one not derived. The derivation
/// pages with `after` and hands what it derived to [`mark_derived`] in the
/// same transaction.
///
/// On SQLite, one writer commits pushes in id order, so "not derived" is
/// "after the cursor" (`derive_cursor`). On PostgreSQL collectors commit
/// concurrently, so it is the pushes still in `derive_pending`
/// (`store::postgres::pushes`).
pub fn next_to_derive(conn: &Tx, after: Option<i64>, limit: i64) -> Result<Vec<Committed>> {
    if let Some(pg) = conn.pg() {
        return super::postgres::pushes::next_to_derive(pg, after.unwrap_or(0), limit);
    }
    let after = match after {
        Some(id) => id,
        None => derive_cursor(conn)?,
    };
    committed_after(conn, after, limit)
}

/// Records that the pushes `ids` (in the order [`next_to_derive`] gave
/// them, none skipped) are derived, in the derivation's transaction.
pub fn mark_derived(conn: &Tx, ids: &[i64]) -> Result<()> {
    if let Some(pg) = conn.pg() {
        return super::postgres::pushes::mark_derived(pg, ids);
    }
    match ids.last() {
        Some(&last) => set_derive_cursor(conn, last),
        None => Ok(()),
    }
}

/// Up to `limit` stored pushes with id > `after`, in id order.
fn committed_after(conn: &Tx, after: i64, limit: i64) -> Result<Vec<Committed>> {
    let mut st = conn.prepare_cached(
        "SELECT id, COALESCE(device, source), received_at, received_ms, query, body
         FROM pushes WHERE id > ?1 AND outcome = 'stored' ORDER BY id LIMIT ?2",
    )?;
    let rows = st.query_map(params![after, limit], committed_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// A [`Committed`] from (id, device, received_at, received_ms, query, body).
fn committed_row(r: &rusqlite::Row) -> rusqlite::Result<Committed> {
    Ok(Committed {
        id: r.get(0)?,
        device: r.get(1)?,
        received_at: r.get(2)?,
        received_ms: r.get(3)?,
        query: r.get(4)?,
        body: r.get(5)?,
    })
}

/// Up to `limit` released pushes waiting in `derive_queue`, in id order.
pub fn queued(conn: &Tx, limit: i64) -> Result<Vec<Committed>> {
    if let Some(pg) = conn.pg() {
        return super::postgres::pushes::queued(pg, limit);
    }
    let mut st = conn.prepare_cached(
        "SELECT p.id, COALESCE(p.device, p.source), p.received_at, p.received_ms, p.query, p.body
         FROM derive_queue q JOIN pushes p ON p.id = q.push_id ORDER BY q.push_id LIMIT ?1",
    )?;
    let rows = st.query_map([limit], committed_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Takes push `id` off the `derive_queue` (it is derived).
pub fn dequeue(conn: &Tx, id: i64) -> Result<()> {
    if let Some(pg) = conn.pg() {
        return super::postgres::pushes::dequeue(pg, id);
    }
    conn.prepare_cached("DELETE FROM derive_queue WHERE push_id = ?1")?
        .execute([id])?;
    Ok(())
}

/// The last push id whose legs and events are derived (SQLite only).
pub(in crate::store) fn derive_cursor(conn: &Tx) -> Result<i64> {
    Ok(conn
        .prepare_cached("SELECT push_id FROM derive_cursor WHERE one = 1")?
        .query_row([], |r| r.get(0))?)
}

fn set_derive_cursor(conn: &Tx, push_id: i64) -> Result<()> {
    conn.prepare_cached("UPDATE derive_cursor SET push_id = ?1 WHERE one = 1")?
        .execute([push_id])?;
    Ok(())
}

/// Records why deriving push `id` failed (its raw row stays).
pub fn set_derive_error(conn: &Tx, id: i64, error: &str) -> Result<()> {
    if let Some(pg) = conn.pg() {
        return super::postgres::pushes::set_derive_error(pg, id, error);
    }
    conn.prepare_cached("UPDATE pushes SET derive_error = ?2 WHERE id = ?1")?
        .execute(params![id, error])?;
    Ok(())
}

/// The time (unix ms) up to which the derived tables know the pushes: the
/// receive time of the first stored push not derived yet, or `now` when
/// none waits. Queue visits time out against this rather than the wall
/// clock: with a backlog, the exit of a visit may be waiting in it.
pub fn derived_until(conn: &Tx, now_ms: i64) -> Result<i64> {
    let first: Option<i64> = match conn.pg() {
        Some(pg) => super::postgres::pushes::first_pending_ms(pg)?,
        None => conn
            .prepare_cached(
                "SELECT received_ms FROM pushes
                 WHERE id > (SELECT push_id FROM derive_cursor) AND outcome = 'stored'
                 ORDER BY id LIMIT 1",
            )?
            .query_row([], |r| r.get(0))
            .optional()?,
    };
    Ok(first.map_or(now_ms, |t| t.min(now_ms)))
}

/// Stored pushes not yet derived (the backlog after a burst); released
/// held pushes waiting in the queue count too.
pub fn derive_backlog(conn: &Tx) -> Result<i64> {
    if let Some(pg) = conn.pg() {
        return super::postgres::pushes::derive_backlog(pg);
    }
    Ok(conn.query_row(
        "SELECT (SELECT COUNT(*) FROM pushes WHERE id > (SELECT push_id FROM derive_cursor) AND outcome = 'stored')
              + (SELECT COUNT(*) FROM derive_queue)",
        [],
        |r| r.get(0),
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::{each_backend, Backend};

    fn push(received_ms: i64, outcome: Outcome) -> NewPush {
        let at = chrono::DateTime::from_timestamp_millis(received_ms).expect("time");
        NewPush {
            received_at: at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            received_ms,
            source: "127.0.0.1".into(),
            device: Some("om".into()),
            method: "POST".into(),
            path: "/".into(),
            query: None,
            body: b"<Cdr/>".to_vec(),
            outcome,
            status: 200,
            reason: None,
            sender_mac: None,
        }
    }

    /// The derived tables' clock is the receive time of the first stored
    /// push still waiting (quarantined ones never wait), else now.
    #[test]
    fn derived_until_is_the_first_waiting_push() {
        each_backend("derived_until_is_the_first_waiting_push", |_, store| {
            store
                .writer
                .write_blocking(|tx| {
                    let now = 10_000_000;
                    assert_eq!(derived_until(tx, now)?, now);
                    let a = insert(tx, &push(1_000, Outcome::Stored))?;
                    insert(tx, &push(2_000, Outcome::Quarantined))?;
                    let c = insert(tx, &push(3_000, Outcome::Stored))?;
                    assert_eq!(derived_until(tx, now)?, 1_000);
                    mark_derived(tx, &[a])?;
                    assert_eq!(derived_until(tx, now)?, 3_000);
                    // Never past now (our clock may have stepped back since).
                    assert_eq!(derived_until(tx, 2_500)?, 2_500);
                    mark_derived(tx, &[c])?;
                    assert_eq!(derived_until(tx, now)?, now);
                    Ok(())
                })
                .expect("write");
        });
    }

    /// What ingest writes is what the derivation and the operator read
    /// back, receive time text included (a TIMESTAMPTZ on PostgreSQL).
    #[test]
    fn a_push_reads_back_as_written() {
        each_backend("a_push_reads_back_as_written", |_, store| {
            let (stamp, ms) = crate::store::now_stamp();
            let mut stored = push(ms, Outcome::Stored);
            stored.received_at = stamp.clone();
            stored.query = Some("a=1".into());
            let mut refused = push(ms, Outcome::Quarantined);
            refused.received_at = stamp.clone();
            refused.status = 401;
            refused.reason = Some("authentication failed".into());
            let mut held = push(ms + 1, Outcome::Held);
            held.device = None;
            let (a, b) = store
                .writer
                .write_blocking(move |tx| {
                    let a = insert(tx, &stored)?;
                    let b = insert(tx, &refused)?;
                    insert(tx, &held)?;
                    Ok((a, b))
                })
                .expect("insert");
            store
                .read_blocking(|tx| {
                    let next = next_to_derive(tx, None, 10)?;
                    assert_eq!(next.len(), 1, "only the stored push waits");
                    let p = &next[0];
                    assert_eq!(
                        (
                            p.id,
                            p.device.as_str(),
                            p.received_at.as_str(),
                            p.received_ms
                        ),
                        (a, "om", stamp.as_str(), ms)
                    );
                    assert_eq!(
                        (p.query.as_deref(), p.body.as_slice()),
                        (Some("a=1"), &b"<Cdr/>"[..])
                    );
                    assert!(next_to_derive(tx, Some(a), 10)?.is_empty());
                    let q = quarantined(tx, 10)?;
                    assert_eq!(q.len(), 1);
                    assert_eq!(
                        (
                            q[0].id,
                            q[0].received_at.as_str(),
                            q[0].status,
                            q[0].reason.as_str()
                        ),
                        (b, stamp.as_str(), 401, "authentication failed")
                    );
                    assert_eq!(
                        counts(tx)?,
                        vec![
                            ("held".to_string(), None, 1),
                            (
                                "quarantined".to_string(),
                                Some("authentication failed".to_string()),
                                1
                            ),
                            ("stored".to_string(), None, 1),
                        ]
                    );
                    assert_eq!(count(tx)?, 3);
                    assert_eq!(derive_backlog(tx)?, 1);
                    Ok(())
                })
                .expect("read");
            store
                .writer
                .write_blocking(move |tx| {
                    mark_derived(tx, &[a])?;
                    assert_eq!(derive_backlog(tx)?, 0);
                    assert!(next_to_derive(tx, None, 10)?.is_empty());
                    set_derive_error(tx, a, "no parse")?;
                    Ok(())
                })
                .expect("derived");
        });
    }

    /// A receive time that is not RFC 3339 is refused on PostgreSQL (its
    /// partition key), not guessed.
    #[test]
    fn a_receive_time_that_does_not_parse_is_an_error_on_postgres() {
        each_backend("a_receive_time_that_does_not_parse", |backend, store| {
            let mut p = push(1_000, Outcome::Stored);
            p.received_at = "yesterday".into();
            let res = store.writer.write_blocking(move |tx| insert(tx, &p));
            assert_eq!(res.is_err(), backend == Backend::Postgres, "{res:?}");
        });
    }
}
