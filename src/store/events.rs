//! Call events with all their parties, stamped with the receive time.

use rusqlite::params;
use serde::Serialize;

use super::{Result, StoreError, Tx};
use crate::model::{Event, Party};

pub fn insert(
    tx: &Tx,
    device: &str,
    push_id: i64,
    received_at: &str,
    received_ms: i64,
    ev: &Event,
) -> Result<i64> {
    let attrs = serde_json::to_string(&ev.attrs).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let parties =
        serde_json::to_string(&ev.parties).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    if let Some(pg) = tx.pg() {
        let party_attrs = ev
            .parties
            .iter()
            .map(party_attrs)
            .collect::<Result<Vec<_>>>()?;
        return super::postgres::events::insert(
            pg,
            device,
            push_id,
            received_at,
            received_ms,
            ev,
            &attrs,
            &parties,
            &party_attrs,
        );
    }
    tx.prepare_cached(
        "INSERT INTO events (device, push_id, received_at, received_ms, attribute, attrs_json, mac, parties_json)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![device, push_id, received_at, received_ms, ev.attribute, attrs, ev.mac, parties])?;
    let id = tx.last_insert_rowid();
    let mut st = tx.prepare_cached(
        "INSERT INTO event_parties (event_id, pos, tag, party_id, attrs_json, text) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    for (pos, p) in ev.parties.iter().enumerate() {
        st.execute(params![
            id,
            pos as i64,
            p.tag,
            p.id(),
            party_attrs(p)?,
            p.text
        ])?;
    }
    Ok(id)
}

/// A party's attributes as stored in `event_parties.attrs_json`.
fn party_attrs(p: &Party) -> Result<String> {
    serde_json::to_string(&p.attrs).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// A stored event in arrival order.
#[derive(Debug, Clone, Serialize)]
pub struct StoredEvent {
    pub seq: i64,
    pub device: String,
    pub received_at: String,
    pub received_ms: i64,
    pub event: Event,
}

/// Events with `seq > after`, in arrival order, at most `limit`.
pub fn after(conn: &Tx, after: i64, limit: i64) -> Result<Vec<StoredEvent>> {
    let rows = match conn.pg() {
        Some(pg) => super::postgres::events::after(pg, after, limit)?,
        None => after_sqlite(conn, after, limit)?,
    };
    typed(rows)
}

/// The events of `device` received from `from_ms` to `to_ms` (unix ms,
/// both included), in arrival order, at most `limit`: where a call's
/// timeline looks for its events (docs/calls.md "Timeline"). The window is
/// what bounds the work (index `events_received`), whatever the archive's
/// size.
pub fn of_device_between(
    conn: &Tx,
    device: &str,
    from_ms: i64,
    to_ms: i64,
    limit: i64,
) -> Result<Vec<StoredEvent>> {
    if let Some(pg) = conn.pg() {
        return typed(super::postgres::events::of_device_between(
            pg, device, from_ms, to_ms, limit,
        )?);
    }
    let mut st = conn.prepare_cached(
        "SELECT id, device, received_at, received_ms, attribute, attrs_json, mac, parties_json
         FROM events WHERE received_ms BETWEEN ?2 AND ?3 AND device = ?1
         ORDER BY id LIMIT ?4",
    )?;
    let rows = st.query_map(params![device, from_ms, to_ms, limit], event_row)?;
    typed(rows.collect::<rusqlite::Result<_>>()?)
}

/// The cursor from which replaying `after` gives every event received at
/// or after `from_ms` (unix ms): the live wallboard's start
/// (ARCHITECTURE.md "Live wallboard"). Events are stored in arrival
/// order, so their ids grow with their receive time.
pub fn cursor_before(conn: &Tx, from_ms: i64) -> Result<i64> {
    if let Some(pg) = conn.pg() {
        return super::postgres::events::cursor_before(pg, from_ms);
    }
    Ok(conn.query_row(
        "SELECT COALESCE((SELECT MIN(id) - 1 FROM events WHERE received_ms >= ?1),
                         (SELECT MAX(id) FROM events), 0)",
        [from_ms],
        |r| r.get(0),
    )?)
}

/// The newest event's id (0 when there is none).
pub fn last_seq(conn: &Tx) -> Result<i64> {
    if let Some(pg) = conn.pg() {
        return super::postgres::events::last_seq(pg);
    }
    Ok(conn.query_row("SELECT COALESCE(MAX(id), 0) FROM events", [], |r| r.get(0))?)
}

/// Rows of either backend as [`StoredEvent`]s.
fn typed(rows: Vec<super::postgres::events::EventRow>) -> Result<Vec<StoredEvent>> {
    let mut out = Vec::with_capacity(rows.len());
    for (seq, device, received_at, received_ms, attribute, attrs, mac, parties) in rows {
        let attrs: Vec<(String, String)> =
            serde_json::from_str(&attrs).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let parties: Vec<Party> =
            serde_json::from_str(&parties).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        out.push(StoredEvent {
            seq,
            device,
            received_at,
            received_ms,
            event: Event {
                attribute,
                attrs,
                mac,
                parties,
            },
        });
    }
    Ok(out)
}

/// The rows of [`after`] on SQLite.
fn after_sqlite(
    conn: &Tx,
    after: i64,
    limit: i64,
) -> Result<Vec<super::postgres::events::EventRow>> {
    let mut st = conn.prepare_cached(
        "SELECT id, device, received_at, received_ms, attribute, attrs_json, mac, parties_json
         FROM events WHERE id > ?1 ORDER BY id LIMIT ?2",
    )?;
    let rows = st.query_map(params![after, limit], event_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// One row of `SELECT id, device, received_at, received_ms, attribute,
/// attrs_json, mac, parties_json`.
fn event_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<super::postgres::events::EventRow> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
        r.get(7)?,
    ))
}

pub fn count(conn: &Tx) -> Result<i64> {
    if let Some(pg) = conn.pg() {
        return super::postgres::events::count(pg);
    }
    Ok(conn.query_row("SELECT COUNT(*) FROM events", [], |r| r.get(0))?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::legs::tests::a_push;
    use crate::store::testing::each_backend;

    fn party(tag: &str, id: Option<&str>, text: Option<&str>) -> Party {
        Party {
            tag: tag.into(),
            attrs: id
                .map(|i| vec![("id".to_string(), i.to_string())])
                .unwrap_or_default(),
            text: text.map(String::from),
        }
    }

    /// (pos, tag, party id, text) of every stored party.
    type PartyRow = (i64, String, Option<String>, Option<String>);

    fn event_parties(tx: &Tx) -> Result<Vec<PartyRow>> {
        let sql = "SELECT pos, tag, party_id, text FROM event_parties ORDER BY event_id, pos";
        if let Some(pg) = tx.pg() {
            return Ok(pg
                .query(sql, &[])?
                .iter()
                .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
                .collect());
        }
        let mut st = tx.prepare(sql)?;
        let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// An event comes back in arrival order with its receive time and
    /// parties, and each party is findable by its id.
    #[test]
    fn events_come_back_in_arrival_order_with_their_parties() {
        each_backend("events_come_back_in_arrival_order", |_, store| {
            let (at, ms) = crate::store::now_stamp();
            let ring = Event {
                attribute: "RING".into(),
                attrs: vec![("attribute".into(), "RING".into())],
                mac: Some("00:0E:A9:01:02:03".into()),
                parties: vec![
                    party("ext", Some("200"), None),
                    party("visitor", Some("48"), Some("18201008888")),
                ],
            };
            let bye = Event {
                attribute: "BYE".into(),
                attrs: Vec::new(),
                mac: None,
                parties: Vec::new(),
            };
            let (at2, ring2, bye2) = (at.clone(), ring.clone(), bye.clone());
            let (a, b) = store
                .writer
                .write_blocking(move |tx| {
                    let (p1, p2) = (a_push(tx)?, a_push(tx)?);
                    Ok((
                        insert(tx, "om", p1, &at2, ms, &ring2)?,
                        insert(tx, "om", p2, &at2, ms + 1, &bye2)?,
                    ))
                })
                .expect("insert");
            assert!(b > a);
            store
                .read_blocking(|tx| {
                    assert_eq!(count(tx)?, 2);
                    let all = after(tx, 0, 10)?;
                    let got: Vec<(i64, &str, &str, i64, &Event)> = all
                        .iter()
                        .map(|e| {
                            (
                                e.seq,
                                e.device.as_str(),
                                e.received_at.as_str(),
                                e.received_ms,
                                &e.event,
                            )
                        })
                        .collect();
                    assert_eq!(
                        got,
                        [
                            (a, "om", at.as_str(), ms, &ring),
                            (b, "om", at.as_str(), ms + 1, &bye)
                        ]
                    );
                    assert_eq!(after(tx, a, 10)?.len(), 1);
                    assert_eq!(after(tx, a, 0)?.len(), 0);
                    assert_eq!(
                        event_parties(tx)?,
                        [
                            (0, "ext".to_string(), Some("200".to_string()), None),
                            (
                                1,
                                "visitor".to_string(),
                                Some("48".to_string()),
                                Some("18201008888".to_string())
                            ),
                        ]
                    );
                    Ok(())
                })
                .expect("read");
        });
    }

    /// The timeline's window (one device, receive times, both ends in) and
    /// the wallboard's start cursor, on both backends.
    #[test]
    fn a_devices_window_and_the_cursor_before_a_time() {
        each_backend("events_window_and_cursor", |_, store| {
            let ring = |ext: &str| Event {
                attribute: "RING".into(),
                attrs: Vec::new(),
                mac: None,
                parties: vec![party("ext", Some(ext), None)],
            };
            let ids = store
                .writer
                .write_blocking(move |tx| {
                    let at = "2026-12-03T10:00:00Z";
                    let mut ids = Vec::new();
                    for (device, ms, ext) in [
                        ("hq", 1_000, "200"),
                        ("branch", 2_000, "300"),
                        ("hq", 3_000, "201"),
                        ("hq", 9_000, "202"),
                    ] {
                        let p = a_push(tx)?;
                        ids.push(insert(tx, device, p, at, ms, &ring(ext))?);
                    }
                    Ok(ids)
                })
                .expect("insert");
            store
                .read_blocking(|tx| {
                    let got: Vec<(i64, i64)> = of_device_between(tx, "hq", 1_000, 3_000, 10)?
                        .iter()
                        .map(|e| (e.seq, e.received_ms))
                        .collect();
                    assert_eq!(got, [(ids[0], 1_000), (ids[2], 3_000)]);
                    assert_eq!(of_device_between(tx, "hq", 1_000, 9_000, 2)?.len(), 2);
                    assert!(of_device_between(tx, "hq", 4_000, 8_000, 10)?.is_empty());
                    assert_eq!(
                        of_device_between(tx, "branch", 0, 9_000, 10)?[0].event,
                        ring("300")
                    );
                    // Replaying `after` from the cursor gives the events
                    // received from that time on.
                    assert_eq!(cursor_before(tx, 2_500)?, ids[2] - 1);
                    assert_eq!(cursor_before(tx, 0)?, ids[0] - 1);
                    assert_eq!(cursor_before(tx, 10_000)?, ids[3]);
                    assert_eq!(last_seq(tx)?, ids[3]);
                    Ok(())
                })
                .expect("read");
        });
    }
}
