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
    let rows = st.query_map(params![after, limit], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, i64>(3)?,
            r.get::<_, String>(4)?,
            r.get::<_, String>(5)?,
            r.get::<_, Option<String>>(6)?,
            r.get::<_, String>(7)?,
        ))
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
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
}
