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
        let a = serde_json::to_string(&p.attrs).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        st.execute(params![id, pos as i64, p.tag, p.id(), a, p.text])?;
    }
    Ok(id)
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
    let mut out = Vec::new();
    for row in rows {
        let (seq, device, received_at, received_ms, attribute, attrs, mac, parties) = row?;
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

pub fn count(conn: &Tx) -> Result<i64> {
    Ok(conn.query_row("SELECT COUNT(*) FROM events", [], |r| r.get(0))?)
}
