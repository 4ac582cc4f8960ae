//! `store::events` on PostgreSQL.

use super::pushes::timestamptz_text;
use super::PgTx;
use crate::model::Event;
use crate::store::Result;

/// Stores an event and its parties in one round trip; returns its id (the
/// arrival sequence: one collector derives at a time). `received_ts`, the
/// partition key, is the push's receive time. `attrs` and `parties` are
/// the event's JSON, `party_attrs` each party's attributes' JSON.
#[allow(clippy::too_many_arguments)]
pub fn insert(
    pg: &PgTx,
    device: &str,
    push_id: i64,
    received_at: &str,
    received_ms: i64,
    ev: &Event,
    attrs: &str,
    parties: &str,
    party_attrs: &[String],
) -> Result<i64> {
    let ts = timestamptz_text(received_at)?;
    let pos: Vec<i64> = (0..ev.parties.len() as i64).collect();
    let tags: Vec<&str> = ev.parties.iter().map(|p| p.tag.as_str()).collect();
    let ids: Vec<Option<&str>> = ev.parties.iter().map(|p| p.id()).collect();
    let texts: Vec<Option<&str>> = ev.parties.iter().map(|p| p.text.as_deref()).collect();
    Ok(pg
        .query_one(
            "WITH e AS (
                 INSERT INTO events (device, push_id, received_at, received_ts, received_ms, attribute,
                                     attrs_json, mac, parties_json)
                 VALUES ($1, $2, $3, CAST($4::text AS timestamptz), $5, $6, $7, $8, $9)
                 RETURNING id),
             p AS (
                 INSERT INTO event_parties (event_id, pos, tag, party_id, attrs_json, text)
                 SELECT e.id, u.pos, u.tag, u.party_id, u.attrs_json, u.text
                 FROM e, unnest($10::bigint[], $11::text[], $12::text[], $13::text[], $14::text[])
                      AS u (pos, tag, party_id, attrs_json, text))
             SELECT id FROM e",
            &[
                &device,
                &push_id,
                &received_at,
                &ts,
                &received_ms,
                &ev.attribute,
                &attrs,
                &ev.mac,
                &parties,
                &pos,
                &tags,
                &ids,
                &party_attrs,
                &texts,
            ],
        )?
        .get(0))
}

/// (id, device, received_at, received_ms, attribute, attrs_json, mac, parties_json)
pub type EventRow = (
    i64,
    String,
    String,
    i64,
    String,
    String,
    Option<String>,
    String,
);

pub fn after(pg: &PgTx, after: i64, limit: i64) -> Result<Vec<EventRow>> {
    Ok(pg
        .query(
            "SELECT id, device, received_at, received_ms, attribute, attrs_json, mac, parties_json
             FROM events WHERE id > $1 ORDER BY id LIMIT $2",
            &[&after, &limit],
        )?
        .iter()
        .map(event_row)
        .collect())
}

/// `store::events::of_device_between` on PostgreSQL.
pub fn of_device_between(
    pg: &PgTx,
    device: &str,
    from_ms: i64,
    to_ms: i64,
    limit: i64,
) -> Result<Vec<EventRow>> {
    Ok(pg
        .query(
            "SELECT id, device, received_at, received_ms, attribute, attrs_json, mac, parties_json
             FROM events WHERE received_ms BETWEEN $2 AND $3 AND device = $1
             ORDER BY id LIMIT $4",
            &[&device, &from_ms, &to_ms, &limit],
        )?
        .iter()
        .map(event_row)
        .collect())
}

/// `store::events::cursor_before` on PostgreSQL.
pub fn cursor_before(pg: &PgTx, from_ms: i64) -> Result<i64> {
    Ok(pg
        .query_one(
            "SELECT COALESCE((SELECT MIN(id) - 1 FROM events WHERE received_ms >= $1),
                             (SELECT MAX(id) FROM events), 0)",
            &[&from_ms],
        )?
        .get(0))
}

/// `store::events::last_seq` on PostgreSQL.
pub fn last_seq(pg: &PgTx) -> Result<i64> {
    Ok(pg
        .query_one("SELECT COALESCE(MAX(id), 0) FROM events", &[])?
        .get(0))
}

fn event_row(r: &tokio_postgres::Row) -> EventRow {
    (
        r.get(0),
        r.get(1),
        r.get(2),
        r.get(3),
        r.get(4),
        r.get(5),
        r.get(6),
        r.get(7),
    )
}

pub fn count(pg: &PgTx) -> Result<i64> {
    Ok(pg.query_one("SELECT COUNT(*) FROM events", &[])?.get(0))
}
