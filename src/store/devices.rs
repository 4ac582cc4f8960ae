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
    if let Some(pg) = conn.pg() {
        return super::postgres::devices::version(pg);
    }
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
    if let Some(pg) = conn.pg() {
        return super::postgres::devices::active(pg);
    }
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
    if let Some(pg) = tx.pg() {
        return super::postgres::devices::add(pg, name, mac, ip, &now);
    }
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
    if let Some(pg) = tx.pg() {
        return super::postgres::devices::remove(pg, name, &now);
    }
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
        for (id, source) in held_naming(conn, mac)? {
            // Pushed from outside the device's addresses: not this device's
            // (or a spoof); it stays held, nothing is lost.
            if claim.sources.is_empty() || claim.sources.contains(&source) {
                ids.push(id);
            }
        }
    }
    for source in claim.sources {
        ids.extend(held_from(conn, source)?);
    }
    ids.sort_unstable();
    ids.dedup();
    Ok(ids)
}

/// (id, source) of the held pushes naming `mac`.
fn held_naming(conn: &Tx, mac: &str) -> Result<Vec<(i64, String)>> {
    if let Some(pg) = conn.pg() {
        return super::postgres::devices::held_naming(pg, mac);
    }
    let mut st = conn.prepare_cached(
        "SELECT id, source FROM pushes WHERE outcome = 'held' AND sender_mac = ?1",
    )?;
    let rows = st.query_map([mac], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Ids of the held pushes naming no MAC from `source`.
fn held_from(conn: &Tx, source: &str) -> Result<Vec<i64>> {
    if let Some(pg) = conn.pg() {
        return super::postgres::devices::held_from(pg, source);
    }
    let mut st = conn.prepare_cached(
        "SELECT id FROM pushes WHERE outcome = 'held' AND sender_mac IS NULL AND source = ?1",
    )?;
    let rows = st.query_map([source], |r| r.get::<_, i64>(0))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Gives the held pushes that `claim` identifies ([`held_for`]) to its
/// device, in push order. They become stored pushes; those the derivation
/// cursor has already passed are queued for it (`derive_queue`; on
/// PostgreSQL, which has no cursor, all of them). Returns how many.
pub fn release_held(tx: &Tx, claim: &Claim) -> Result<usize> {
    let ids = held_for(tx, claim)?;
    if let Some(pg) = tx.pg() {
        super::postgres::devices::release(pg, &ids, claim.name)?;
        return Ok(ids.len());
    }
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
    if let Some(pg) = conn.pg() {
        return super::postgres::devices::unregistered(pg);
    }
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
    if let Some(pg) = conn.pg() {
        return super::postgres::devices::unregistered_count(pg);
    }
    Ok(conn
        .prepare_cached(
            "SELECT COUNT(DISTINCT COALESCE(sender_mac, source)) FROM pushes WHERE outcome = 'held'",
        )?
        .query_row([], |r| r.get(0))?)
}

/// Stored pushes and the last one, per device (`callvault devices`).
pub fn push_counts(conn: &Tx) -> Result<Vec<(String, i64, String)>> {
    if let Some(pg) = conn.pg() {
        return super::postgres::devices::push_counts(pg);
    }
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

/// Keeps a nonce the caller has claimed (SQLite: the ingest's
/// `NonceCache` decided), so a restart still refuses its replay.
pub fn insert_nonce(tx: &Tx, n: &Nonce) -> Result<()> {
    if let Some(pg) = tx.pg() {
        return super::postgres::devices::insert_nonce(pg, n);
    }
    tx.prepare_cached(
        "INSERT OR IGNORE INTO auth_nonces (device, nonce, timestamp, expires_ms) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![n.device, n.nonce, n.timestamp, n.expires_ms])?;
    Ok(())
}

/// Claims a nonce in the archive: false when a claim of it is still valid
/// at `now_ms` (a replay). An expired claim is taken over, as the ingest's
/// `NonceCache` does. On PostgreSQL this is what decides, in the
/// transaction that stores the push, so a replay is refused on whichever
/// collector it reaches (OM manual §4.5).
pub fn claim_nonce(tx: &Tx, n: &Nonce, now_ms: i64) -> Result<bool> {
    if let Some(pg) = tx.pg() {
        return super::postgres::devices::claim_nonce(pg, n, now_ms);
    }
    let changed = tx
        .prepare_cached(
            "INSERT INTO auth_nonces (device, nonce, timestamp, expires_ms) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (device, nonce, timestamp) DO UPDATE SET expires_ms = excluded.expires_ms
             WHERE auth_nonces.expires_ms < ?5",
        )?
        .execute(params![
            n.device,
            n.nonce,
            n.timestamp,
            n.expires_ms,
            now_ms
        ])?;
    Ok(changed > 0)
}

/// Forgets nonces whose signatures are stale anyway.
pub fn prune_nonces(tx: &Tx, now_ms: i64) -> Result<usize> {
    if let Some(pg) = tx.pg() {
        return super::postgres::devices::prune_nonces(pg, now_ms);
    }
    Ok(tx
        .prepare_cached("DELETE FROM auth_nonces WHERE expires_ms < ?1")?
        .execute([now_ms])?)
}

/// Nonces still valid at `now_ms`, newest last (to fill the cache at start).
pub fn live_nonces(conn: &Tx, now_ms: i64, limit: i64) -> Result<Vec<Nonce>> {
    let mut rows = match conn.pg() {
        Some(pg) => super::postgres::devices::live_nonces(pg, now_ms, limit)?,
        None => live_nonces_sqlite(conn, now_ms, limit)?,
    };
    rows.reverse();
    Ok(rows)
}

/// Newest first.
fn live_nonces_sqlite(conn: &Tx, now_ms: i64, limit: i64) -> Result<Vec<Nonce>> {
    let mut st = conn.prepare(
        "SELECT device, nonce, timestamp, expires_ms FROM auth_nonces
         WHERE expires_ms >= ?1 ORDER BY expires_ms DESC LIMIT ?2",
    )?;
    let rows = st
        .query_map(params![now_ms, limit], |r| {
            Ok(Nonce {
                device: r.get(0)?,
                nonce: r.get(1)?,
                timestamp: r.get(2)?,
                expires_ms: r.get(3)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::pushes::{self, NewPush, Outcome};
    use crate::store::testing::each_backend;
    use crate::store::Store;

    fn w<T: Send + 'static>(store: &Store, f: impl FnOnce(&Tx) -> Result<T> + Send + 'static) -> T {
        store.writer.write_blocking(f).expect("write")
    }

    /// `add` and `remove` change the registry and bump its version in the
    /// same transaction; a no-op changes neither.
    #[test]
    fn adding_and_removing_a_device_bumps_the_version() {
        each_backend(
            "adding_and_removing_a_device_bumps_the_version",
            |_, store| {
                let version = || store.read_blocking(version).expect("version");
                assert_eq!(version(), 0);
                assert!(w(store, |tx| add(
                    tx,
                    "om",
                    Some("00:0E:A9:01:02:03"),
                    Some("10.0.0.1")
                )));
                assert_eq!(version(), 1);
                assert!(
                    !w(store, |tx| add(tx, "om", None, None)),
                    "already registered"
                );
                assert!(w(store, |tx| add(tx, "cc", None, None)));
                assert_eq!(version(), 2);
                let now = store.read_blocking(active).expect("active");
                let names: Vec<&str> = now.iter().map(|d| d.name.as_str()).collect();
                assert_eq!(names, ["cc", "om"]);
                assert_eq!(now[1].mac.as_deref(), Some("00:0E:A9:01:02:03"));
                assert_eq!(now[1].ip.as_deref(), Some("10.0.0.1"));
                assert!(chrono::DateTime::parse_from_rfc3339(&now[1].added_at).is_ok());
                assert!(w(store, |tx| remove(tx, "om")));
                assert!(!w(store, |tx| remove(tx, "om")), "already removed");
                assert_eq!(version(), 3);
                let names: Vec<String> = store
                    .read_blocking(active)
                    .expect("active")
                    .into_iter()
                    .map(|d| d.name)
                    .collect();
                assert_eq!(names, ["cc"]);
                // Registered again, with its new address.
                assert!(w(store, |tx| add(tx, "om", None, Some("10.0.0.7"))));
                assert_eq!(version(), 4);
                let om = store.read_blocking(active).expect("active")[1].clone();
                assert_eq!((om.mac, om.ip.as_deref()), (None, Some("10.0.0.7")));
            },
        );
    }

    fn held(ms: i64, source: &str, mac: Option<&str>) -> NewPush {
        let at = chrono::DateTime::from_timestamp_millis(ms).expect("time");
        NewPush {
            received_at: at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            received_ms: ms,
            source: source.into(),
            device: None,
            method: "POST".into(),
            path: "/".into(),
            query: None,
            body: b"<Cdr/>".to_vec(),
            outcome: Outcome::Held,
            status: 200,
            reason: None,
            sender_mac: mac.map(String::from),
        }
    }

    /// Held pushes are listed by sender, and a registered device gets
    /// those its MAC and addresses identify, to be derived first.
    #[test]
    fn held_pushes_are_listed_and_released_to_their_device() {
        each_backend("held_pushes_are_listed_and_released", |_, store| {
            let t0 = 1_700_000_000_000;
            let ids = w(store, move |tx| {
                Ok([
                    pushes::insert(tx, &held(t0, "10.0.0.1", Some("AA:BB")))?,
                    pushes::insert(tx, &held(t0 + 1_000, "10.0.0.2", None))?,
                    // Its MAC, but from outside its addresses: stays held.
                    pushes::insert(tx, &held(t0 + 2_000, "10.0.0.9", Some("AA:BB")))?,
                    pushes::insert(tx, &held(t0 + 3_000, "10.0.0.5", None))?,
                ])
            });
            let senders = store.read_blocking(unregistered).expect("senders");
            let listed: Vec<(Option<&str>, &str, i64)> = senders
                .iter()
                .map(|s| (s.mac.as_deref(), s.source.as_str(), s.pushes))
                .collect();
            assert_eq!(
                listed,
                [
                    (None, "10.0.0.5", 1),
                    (Some("AA:BB"), "10.0.0.9", 2),
                    (None, "10.0.0.2", 1)
                ]
            );
            assert_eq!(senders[1].first_push, "2023-11-14T22:13:20.000Z");
            assert_eq!(senders[1].last_push, "2023-11-14T22:13:22.000Z");
            assert_eq!(store.read_blocking(unregistered_count).expect("count"), 3);
            let sources = ["10.0.0.1".to_string(), "10.0.0.2".to_string()];
            let claim = Claim {
                name: "om",
                mac: Some("AA:BB"),
                sources: &sources,
            };
            assert_eq!(
                store
                    .read_blocking(|tx| held_for(tx, &claim))
                    .expect("held_for"),
                [ids[0], ids[1]]
            );
            let released = w(store, move |tx| {
                let sources = ["10.0.0.1".to_string(), "10.0.0.2".to_string()];
                release_held(
                    tx,
                    &Claim {
                        name: "om",
                        mac: Some("AA:BB"),
                        sources: &sources,
                    },
                )
            });
            assert_eq!(released, 2);
            store
                .read_blocking(|tx| {
                    // Waiting to be derived: queued, or after the cursor.
                    let mut waiting: Vec<i64> = pushes::queued(tx, 10)?
                        .into_iter()
                        .chain(pushes::next_to_derive(tx, None, 10)?)
                        .map(|p| {
                            assert_eq!(p.device, "om");
                            p.id
                        })
                        .collect();
                    waiting.sort_unstable();
                    assert_eq!(waiting, [ids[0], ids[1]]);
                    assert_eq!(pushes::derive_backlog(tx)?, 2);
                    assert_eq!(
                        push_counts(tx)?,
                        [("om".to_string(), 2, "2023-11-14T22:13:21.000Z".to_string())]
                    );
                    assert_eq!(unregistered_count(tx)?, 2);
                    Ok(())
                })
                .expect("read");
        });
    }

    fn nonce(n: &str, expires_ms: i64) -> Nonce {
        Nonce {
            device: "hq".into(),
            nonce: n.into(),
            timestamp: "1".into(),
            expires_ms,
        }
    }

    /// A nonce is claimed once until it expires, in the archive.
    #[test]
    fn a_nonce_is_claimed_once_until_it_expires() {
        each_backend("a_nonce_is_claimed_once_until_it_expires", |_, store| {
            let claim = |n: Nonce, now: i64| w(store, move |tx| claim_nonce(tx, &n, now));
            assert!(claim(nonce("a", 1_000), 0));
            assert!(!claim(nonce("a", 1_000), 500), "a replay");
            assert!(claim(nonce("b", 2_000), 500));
            // Stale anyway after expiry: the slot may be taken again.
            assert!(claim(nonce("a", 5_000), 1_001));
            assert!(!claim(nonce("a", 5_000), 1_002));
            w(store, |tx| insert_nonce(tx, &nonce("c", 3_000)));
            let live = store
                .read_blocking(|tx| live_nonces(tx, 1_500, 10))
                .expect("live");
            let live: Vec<(&str, i64)> = live
                .iter()
                .map(|n| (n.nonce.as_str(), n.expires_ms))
                .collect();
            assert_eq!(live, [("b", 2_000), ("c", 3_000), ("a", 5_000)]);
            let pruned = w(store, |tx| prune_nonces(tx, 2_500));
            assert_eq!(pruned, 1);
            let live = store
                .read_blocking(|tx| live_nonces(tx, 0, 10))
                .expect("live");
            assert_eq!(live.len(), 2);
        });
    }
}
