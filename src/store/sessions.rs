//! The web page's sessions (`POST /api/session`): an opaque random id in
//! an HttpOnly cookie, of which only the sha256 is stored, tied to the
//! token that opened it. A session lives while its token is valid and
//! until it has been idle for `[api] session_idle_minutes`; signing out
//! deletes it (README "API tokens and sessions").

use chrono::{DateTime, Utc};
use rand::RngCore;
use rusqlite::{params, OptionalExtension};

use super::tokens::{self, Found, FOUND_COLS};
use super::{Result, Tx};

/// A session a request presented that is valid now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// sha256 of the session id.
    pub hash: String,
    /// Its token (valid now).
    pub token: Found,
    /// Unix ms of its last recorded use.
    pub last_seen_ms: i64,
}

/// Opens a session for token `token_id`; returns its id (`cvs_` + 32
/// random bytes, hex), which only the cookie holds. Sessions idle since
/// before `idle_before_ms` are deleted on the way, so they do not pile up.
pub fn create(tx: &Tx, token_id: i64, now: DateTime<Utc>, idle_before_ms: i64) -> Result<String> {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let id = format!("cvs_{}", hex::encode(bytes));
    let (h, created, now_ms) = (
        tokens::hash(&id),
        tokens::stamp(now),
        now.timestamp_millis(),
    );
    if let Some(pg) = tx.pg() {
        super::postgres::sessions::purge(pg, idle_before_ms)?;
        super::postgres::sessions::insert(pg, &h, token_id, &created, now_ms)?;
        return Ok(id);
    }
    tx.prepare_cached("DELETE FROM sessions WHERE last_seen_ms < ?1")?
        .execute([idle_before_ms])?;
    tx.prepare_cached(
        "INSERT INTO sessions (hash, token_id, created_at, last_seen_ms) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![h, token_id, created, now_ms])?;
    Ok(id)
}

/// The session `id` if it exists, was used at or after `idle_before_ms`,
/// and its token is valid at `now`.
pub fn lookup(
    tx: &Tx,
    id: &str,
    now: DateTime<Utc>,
    idle_before_ms: i64,
) -> Result<Option<Session>> {
    let h = tokens::hash(id);
    let row = if let Some(pg) = tx.pg() {
        super::postgres::sessions::lookup(pg, &h)?
    } else {
        tx.prepare_cached(&format!(
            "SELECT {FOUND_COLS}, s.last_seen_ms FROM sessions s JOIN tokens t ON t.id = s.token_id
             WHERE s.hash = ?1"
        ))?
        .query_row([&h], |r| Ok((tokens::found_parts(r)?, r.get::<_, i64>(7)?)))
        .optional()?
    };
    Ok(row.and_then(|(parts, last_seen_ms)| {
        if last_seen_ms < idle_before_ms {
            return None;
        }
        Some(Session {
            hash: h,
            token: Found::from_parts(parts, now)?,
            last_seen_ms,
        })
    }))
}

/// Records a use of the session whose id hashes to `hash` (the HTTP edge
/// calls this at most about once a minute per session).
pub fn touch(tx: &Tx, hash: &str, now_ms: i64) -> Result<()> {
    if let Some(pg) = tx.pg() {
        return super::postgres::sessions::touch(pg, hash, now_ms);
    }
    tx.prepare_cached("UPDATE sessions SET last_seen_ms = ?1 WHERE hash = ?2")?
        .execute(params![now_ms, hash])?;
    Ok(())
}

/// Deletes the session `id` (signing out); whether it existed.
pub fn delete(tx: &Tx, id: &str) -> Result<bool> {
    let h = tokens::hash(id);
    if let Some(pg) = tx.pg() {
        return super::postgres::sessions::delete(pg, &h);
    }
    Ok(tx
        .prepare_cached("DELETE FROM sessions WHERE hash = ?1")?
        .execute([h])?
        > 0)
}

/// How many sessions are stored (for tests and `token list`'s checks).
pub fn count(tx: &Tx) -> Result<i64> {
    if let Some(pg) = tx.pg() {
        return super::postgres::sessions::count(pg);
    }
    Ok(tx.query_row("SELECT COUNT(*) FROM sessions", [], |r| r.get(0))?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::each_backend;

    #[test]
    fn a_session_lives_with_its_token_and_until_idle() {
        each_backend(
            "a_session_lives_with_its_token_and_until_idle",
            |_, store| {
                let t = store
                    .writer
                    .write_blocking(|tx| tokens::create(tx, "web", "qa"))
                    .expect("token");
                let now = Utc::now();
                let t2 = t.clone();
                let token_id = store
                    .read_blocking(move |tx| tokens::lookup(tx, &t2, now))
                    .expect("lookup")
                    .expect("valid")
                    .id;
                let id = store
                    .writer
                    .write_blocking(move |tx| create(tx, token_id, now, 0))
                    .expect("session");
                assert!(id.starts_with("cvs_") && id.len() == 68, "{id}");
                let ms = now.timestamp_millis();
                let seen = |id: String, idle_before: i64| {
                    store
                        .read_blocking(move |tx| lookup(tx, &id, Utc::now(), idle_before))
                        .expect("lookup")
                };
                let s = seen(id.clone(), ms - 1000).expect("valid");
                assert_eq!((s.token.name.as_str(), s.last_seen_ms), ("web", ms));
                assert_eq!(s.hash, tokens::hash(&id), "only the hash is kept");
                assert!(seen(id.clone(), ms + 1).is_none(), "idle too long");
                let h = s.hash.clone();
                store
                    .writer
                    .write_blocking(move |tx| touch(tx, &h, ms + 5000))
                    .expect("touch");
                assert!(seen(id.clone(), ms + 1).is_some(), "used again");
                assert!(seen("cvs_00".into(), 0).is_none());

                let id2 = id.clone();
                assert!(store
                    .writer
                    .write_blocking(move |tx| delete(tx, &id2))
                    .expect("delete"));
                assert!(seen(id.clone(), 0).is_none(), "signed out");

                let again = store
                    .writer
                    .write_blocking(move |tx| create(tx, token_id, now, 0))
                    .expect("session");
                assert_eq!(
                    store
                        .writer
                        .write_blocking(|tx| tokens::revoke(tx, "web"))
                        .expect("revoke"),
                    Some(1)
                );
                assert!(seen(again, 0).is_none(), "revoked with its token");
                assert_eq!(store.read_blocking(count).expect("count"), 0);
            },
        );
    }
}
