//! `store::devices` on PostgreSQL: registered devices, held pushes and
//! single-use Auth nonces, shared by every collector of the archive.

use super::pushes::utc_text;
use super::PgTx;
use crate::store::devices::{Nonce, Registered, Sender};
use crate::store::Result;

pub fn version(pg: &PgTx) -> Result<i64> {
    Ok(pg
        .query_one("SELECT version FROM devices_version WHERE one = 1", &[])?
        .get(0))
}

/// Every change to `devices` bumps the counter in its own transaction, so
/// each collector notices it with one single-row read.
fn bump(pg: &PgTx) -> Result<()> {
    pg.execute(
        "UPDATE devices_version SET version = version + 1 WHERE one = 1",
        &[],
    )?;
    Ok(())
}

pub fn active(pg: &PgTx) -> Result<Vec<Registered>> {
    // Bytewise, as SQLite sorts, whatever the database's collation.
    Ok(pg
        .query(
            "SELECT name, mac, ip, added_at FROM devices WHERE removed_at IS NULL
             ORDER BY name COLLATE \"C\"",
            &[],
        )?
        .iter()
        .map(|r| Registered {
            name: r.get(0),
            mac: r.get(1),
            ip: r.get(2),
            added_at: r.get(3),
        })
        .collect())
}

pub fn add(pg: &PgTx, name: &str, mac: Option<&str>, ip: Option<&str>, now: &str) -> Result<bool> {
    let changed = pg.execute(
        "INSERT INTO devices (name, mac, ip, added_at) VALUES ($1, $2, $3, $4)
         ON CONFLICT (name) DO UPDATE SET mac = $2, ip = $3, added_at = $4, removed_at = NULL
         WHERE devices.removed_at IS NOT NULL",
        &[&name, &mac, &ip, &now],
    )?;
    if changed > 0 {
        bump(pg)?;
    }
    Ok(changed > 0)
}

pub fn remove(pg: &PgTx, name: &str, now: &str) -> Result<bool> {
    let changed = pg.execute(
        "UPDATE devices SET removed_at = $2 WHERE name = $1 AND removed_at IS NULL",
        &[&name, &now],
    )?;
    if changed > 0 {
        bump(pg)?;
    }
    Ok(changed > 0)
}

/// (id, source) of the held pushes naming `mac`.
pub fn held_naming(pg: &PgTx, mac: &str) -> Result<Vec<(i64, String)>> {
    Ok(pg
        .query(
            "SELECT id, source FROM pushes WHERE outcome = 'held' AND sender_mac = $1",
            &[&mac],
        )?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect())
}

/// Ids of the held pushes naming no MAC from `source`.
pub fn held_from(pg: &PgTx, source: &str) -> Result<Vec<i64>> {
    Ok(pg
        .query(
            "SELECT id FROM pushes WHERE outcome = 'held' AND sender_mac IS NULL AND source = $1",
            &[&source],
        )?
        .iter()
        .map(|r| r.get(0))
        .collect())
}

/// Gives the held pushes `ids` to `device` and queues them for the
/// derivation (`derive_queue`, taken before the pending pushes): there is
/// no cursor on PostgreSQL that would pass them by itself.
pub fn release(pg: &PgTx, ids: &[i64], device: &str) -> Result<()> {
    pg.execute(
        "WITH given AS (
             UPDATE pushes SET outcome = 'stored', device = $2
             WHERE id = ANY($1) AND outcome = 'held' RETURNING id)
         INSERT INTO derive_queue (push_id) SELECT id FROM given ON CONFLICT DO NOTHING",
        &[&ids, &device],
    )?;
    Ok(())
}

pub fn unregistered(pg: &PgTx) -> Result<Vec<Sender>> {
    // SQLite takes the bare sender_mac of the group (one value: the group
    // is that MAC, or NULL for a source's pushes naming none); PostgreSQL
    // wants it aggregated. MAX(source) bytewise, as on SQLite.
    Ok(pg
        .query(
            concat!(
                "SELECT MAX(sender_mac), MAX(source COLLATE \"C\"), COUNT(*), ",
                utc_text!("MIN(received_at)"),
                ", ",
                utc_text!("MAX(received_at)"),
                " FROM pushes WHERE outcome = 'held'
                 GROUP BY COALESCE(sender_mac, source) ORDER BY MAX(id) DESC"
            ),
            &[],
        )?
        .iter()
        .map(|r| Sender {
            mac: r.get(0),
            source: r.get(1),
            pushes: r.get(2),
            first_push: r.get(3),
            last_push: r.get(4),
        })
        .collect())
}

pub fn unregistered_count(pg: &PgTx) -> Result<i64> {
    Ok(pg
        .query_one(
            "SELECT COUNT(DISTINCT COALESCE(sender_mac, source)) FROM pushes WHERE outcome = 'held'",
            &[],
        )?
        .get(0))
}

pub fn push_counts(pg: &PgTx) -> Result<Vec<(String, i64, String)>> {
    Ok(pg
        .query(
            concat!(
                "SELECT device, COUNT(*), ",
                utc_text!("MAX(received_at)"),
                " FROM pushes WHERE outcome = 'stored' AND device IS NOT NULL GROUP BY device"
            ),
            &[],
        )?
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect())
}

pub fn insert_nonce(pg: &PgTx, n: &Nonce) -> Result<()> {
    pg.execute(
        "INSERT INTO auth_nonces (device, nonce, timestamp, expires_ms) VALUES ($1, $2, $3, $4)
         ON CONFLICT DO NOTHING",
        &[&n.device, &n.nonce, &n.timestamp, &n.expires_ms],
    )?;
    Ok(())
}

/// Takes the nonce unless a live claim holds it. Concurrent claims of one
/// nonce on two collectors meet on the primary key: the second waits for
/// the first's transaction and, once it commits, changes no row.
pub fn claim_nonce(pg: &PgTx, n: &Nonce, now_ms: i64) -> Result<bool> {
    let changed = pg.execute(
        "INSERT INTO auth_nonces (device, nonce, timestamp, expires_ms) VALUES ($1, $2, $3, $4)
         ON CONFLICT (device, nonce, timestamp) DO UPDATE SET expires_ms = EXCLUDED.expires_ms
         WHERE auth_nonces.expires_ms < $5",
        &[&n.device, &n.nonce, &n.timestamp, &n.expires_ms, &now_ms],
    )?;
    Ok(changed > 0)
}

pub fn prune_nonces(pg: &PgTx, now_ms: i64) -> Result<usize> {
    let n = pg.execute("DELETE FROM auth_nonces WHERE expires_ms < $1", &[&now_ms])?;
    Ok(usize::try_from(n).unwrap_or(usize::MAX))
}

pub fn live_nonces(pg: &PgTx, now_ms: i64, limit: i64) -> Result<Vec<Nonce>> {
    Ok(pg
        .query(
            "SELECT device, nonce, timestamp, expires_ms FROM auth_nonces
             WHERE expires_ms >= $1 ORDER BY expires_ms DESC LIMIT $2",
            &[&now_ms, &limit],
        )?
        .iter()
        .map(|r| Nonce {
            device: r.get(0),
            nonce: r.get(1),
            timestamp: r.get(2),
            expires_ms: r.get(3),
        })
        .collect())
}
