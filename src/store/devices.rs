//! Registered devices (`callvault devices add`), held pushes from senders
//! that match no device, and the Auth nonces seen from single-use devices.

use rusqlite::params;
use serde::Serialize;

use super::{now_stamp, pushes, Result, Tx};

/// A device registered in the archive (beside the config file's).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Registered {
    pub name: String,
    pub mac: Option<String>,
    pub ip: Option<String>,
    pub added_at: String,
}

/// The single-row change counter of the `devices` table.
pub fn version(conn: &Tx) -> Result<i64> {
    Ok(conn
        .prepare_cached("SELECT version FROM devices_version WHERE one = 1")?
        .query_row([], |r| r.get(0))?)
}

fn bump(tx: &Tx) -> Result<()> {
    tx.prepare_cached("UPDATE devices_version SET version = version + 1 WHERE one = 1")?
        .execute([])?;
    Ok(())
}

/// Devices registered and not removed, by name.
pub fn active(conn: &Tx) -> Result<Vec<Registered>> {
    let mut st = conn.prepare_cached(
        "SELECT name, mac, ip, added_at FROM devices WHERE removed_at IS NULL ORDER BY name",
    )?;
    let rows = st.query_map([], |r| {
        Ok(Registered {
            name: r.get(0)?,
            mac: r.get(1)?,
            ip: r.get(2)?,
            added_at: r.get(3)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Registers `name` (again, if it was removed). False when a registered
/// device already has that name.
pub fn add(tx: &Tx, name: &str, mac: Option<&str>, ip: Option<&str>) -> Result<bool> {
    let (now, _) = now_stamp();
    let changed = tx
        .prepare_cached(
            "INSERT INTO devices (name, mac, ip, added_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (name) DO UPDATE SET mac = ?2, ip = ?3, added_at = ?4, removed_at = NULL
             WHERE removed_at IS NOT NULL",
        )?
        .execute(params![name, mac, ip, now])?;
    if changed > 0 {
        bump(tx)?;
    }
    Ok(changed > 0)
}

/// Unregisters `name`; false when no registered device has that name.
pub fn remove(tx: &Tx, name: &str) -> Result<bool> {
    let (now, _) = now_stamp();
    let changed = tx
        .prepare_cached(
            "UPDATE devices SET removed_at = ?2 WHERE name = ?1 AND removed_at IS NULL",
        )?
        .execute(params![name, now])?;
    if changed > 0 {
        bump(tx)?;
    }
    Ok(changed > 0)
}

/// What identifies a device's pushes: the MAC (or sn) its messages name,
/// and the addresses it may push from (empty: any).
pub struct Claim<'a> {
    pub name: &'a str,
    pub mac: Option<&'a str>,
    pub sources: &'a [String],
}

/// The held pushes `claim` identifies, in push order: those naming its
/// MAC (from one of its addresses, when it has any), and those naming no
/// MAC from one of its addresses.
pub fn held_for(conn: &Tx, claim: &Claim) -> Result<Vec<i64>> {
    let mut ids: Vec<i64> = Vec::new();
    if let Some(mac) = claim.mac {
        let mut st = conn.prepare_cached(
            "SELECT id, source FROM pushes WHERE outcome = 'held' AND sender_mac = ?1",
        )?;
        let rows = st.query_map([mac], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))?;
        for row in rows {
            let (id, source) = row?;
            // Pushed from outside the device's addresses: not this device's
            // (or a spoof); it stays held, nothing is lost.
            if claim.sources.is_empty() || claim.sources.contains(&source) {
                ids.push(id);
            }
        }
    }
    for source in claim.sources {
        let mut st = conn.prepare_cached(
            "SELECT id FROM pushes WHERE outcome = 'held' AND sender_mac IS NULL AND source = ?1",
        )?;
        for id in st.query_map([source], |r| r.get::<_, i64>(0))? {
            ids.push(id?);
        }
    }
    ids.sort_unstable();
    ids.dedup();
    Ok(ids)
}

/// Gives the held pushes that `claim` identifies ([`held_for`]) to its
/// device, in push order. They become stored pushes; those the derivation
/// cursor has already passed are queued for it (`derive_queue`). Returns
/// how many.
pub fn release_held(tx: &Tx, claim: &Claim) -> Result<usize> {
    let ids = held_for(tx, claim)?;
    let cursor = pushes::derive_cursor(tx)?;
    let mut give = tx.prepare_cached(
        "UPDATE pushes SET outcome = 'stored', device = ?2 WHERE id = ?1 AND outcome = 'held'",
    )?;
    let mut queue =
        tx.prepare_cached("INSERT OR IGNORE INTO derive_queue (push_id) VALUES (?1)")?;
    for &id in &ids {
        give.execute(params![id, claim.name])?;
        if id <= cursor {
            queue.execute([id])?;
        }
    }
    Ok(ids.len())
}

/// A sender whose pushes are held, as `callvault devices` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Sender {
    /// The MAC or sn its pushes named, if any.
    pub mac: Option<String>,
    /// The address it pushed from (the latest, when it named a MAC).
    pub source: String,
    pub pushes: i64,
    pub first_push: String,
    pub last_push: String,
}

/// Senders with held pushes, the most recent first.
pub fn unregistered(conn: &Tx) -> Result<Vec<Sender>> {
    let mut st = conn.prepare_cached(
        "SELECT sender_mac, MAX(source), COUNT(*), MIN(received_at), MAX(received_at)
         FROM pushes WHERE outcome = 'held'
         GROUP BY COALESCE(sender_mac, source) ORDER BY MAX(id) DESC",
    )?;
    let rows = st.query_map([], |r| {
        Ok(Sender {
            mac: r.get(0)?,
            source: r.get(1)?,
            pushes: r.get(2)?,
            first_push: r.get(3)?,
            last_push: r.get(4)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// How many distinct senders have held pushes (for `/healthz`).
pub fn unregistered_count(conn: &Tx) -> Result<i64> {
    Ok(conn
        .prepare_cached(
            "SELECT COUNT(DISTINCT COALESCE(sender_mac, source)) FROM pushes WHERE outcome = 'held'",
        )?
        .query_row([], |r| r.get(0))?)
}

/// Stored pushes and the last one, per device (`callvault devices`).
pub fn push_counts(conn: &Tx) -> Result<Vec<(String, i64, String)>> {
    let mut st = conn.prepare(
        "SELECT device, COUNT(*), MAX(received_at) FROM pushes
         WHERE outcome = 'stored' AND device IS NOT NULL GROUP BY device",
    )?;
    let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// A (nonce, timestamp) seen from `device`, valid until `expires_ms`.
#[derive(Debug, Clone)]
pub struct Nonce {
    pub device: String,
    pub nonce: String,
    pub timestamp: String,
    pub expires_ms: i64,
}

pub fn insert_nonce(tx: &Tx, n: &Nonce) -> Result<()> {
    tx.prepare_cached(
        "INSERT OR IGNORE INTO auth_nonces (device, nonce, timestamp, expires_ms) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![n.device, n.nonce, n.timestamp, n.expires_ms])?;
    Ok(())
}

/// Forgets nonces whose signatures are stale anyway.
pub fn prune_nonces(tx: &Tx, now_ms: i64) -> Result<usize> {
    Ok(tx
        .prepare_cached("DELETE FROM auth_nonces WHERE expires_ms < ?1")?
        .execute([now_ms])?)
}

/// Nonces still valid at `now_ms`, newest last (to fill the cache at start).
pub fn live_nonces(conn: &Tx, now_ms: i64, limit: i64) -> Result<Vec<Nonce>> {
    let mut st = conn.prepare(
        "SELECT device, nonce, timestamp, expires_ms FROM auth_nonces
         WHERE expires_ms >= ?1 ORDER BY expires_ms DESC LIMIT ?2",
    )?;
    let mut rows = st
        .query_map(params![now_ms, limit], |r| {
            Ok(Nonce {
                device: r.get(0)?,
                nonce: r.get(1)?,
                timestamp: r.get(2)?,
                expires_ms: r.get(3)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    rows.reverse();
    Ok(rows)
}
