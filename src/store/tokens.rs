//! API bearer tokens. Only the sha256 of a token is stored; the token is
//! shown once, when it is created. Each token has a unique name (what
//! `token list` shows and `token revoke` takes), a role, and may expire
//! (README "API tokens and sessions").

use std::collections::HashSet;

use chrono::{DateTime, SecondsFormat, Utc};
use rand::RngCore;
use rusqlite::{params, OptionalExtension};
use sha2::{Digest, Sha256};

use super::{Result, Tx};

pub fn hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A stored time as written here: RFC 3339, UTC, whole seconds.
pub fn stamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// A stored time back (older rows have fractions and `+00:00`); `None`
/// when unreadable.
pub fn parse_stamp(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// A token as `token list` shows it: never its secret, nor its hash.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TokenInfo {
    pub name: String,
    pub role: String,
    pub created_at: String,
    pub expires_at: Option<String>,
    pub last_used_at: Option<String>,
    /// The devices the token may see; empty: every device.
    pub devices: Vec<String>,
}

/// A token a request presented that is valid now: who it is, and what
/// the HTTP edge needs to keep checking it (its hash, its expiry) and to
/// record its use coarsely (`last_used_at`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub id: i64,
    pub name: String,
    pub role: String,
    pub hash: String,
    pub expires_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
    /// The devices the token may see; empty: every device.
    pub devices: Vec<String>,
}

/// The columns [`Found::from_parts`] reads, in order.
pub(crate) const FOUND_COLS: &str =
    "t.id, t.name, t.role, t.hash, t.expires_at, t.last_used_at, t.devices";

/// The `devices` column: a JSON array of names (`[]`: every device).
pub fn devices_text(devices: &[String]) -> String {
    serde_json::to_string(devices).unwrap_or_else(|_| "[]".into())
}

/// The `devices` column back; `None` when unreadable.
pub fn parse_devices(text: &str) -> Option<Vec<String>> {
    serde_json::from_str(text).ok()
}

impl Found {
    /// From the stored columns; `None` when the token has expired at `now`
    /// (an unreadable expiry counts as expired, and an unreadable device
    /// list refuses the token too: refuse rather than guess, since an
    /// empty list would mean every device).
    pub(crate) fn from_parts(
        (id, name, role, hash, expires, last_used, devices): FoundParts,
        now: DateTime<Utc>,
    ) -> Option<Found> {
        let expires_at = match expires {
            None => None,
            Some(s) => Some(parse_stamp(&s).filter(|t| *t > now)?),
        };
        Some(Found {
            id,
            name,
            role,
            hash,
            expires_at,
            last_used_at: last_used.as_deref().and_then(parse_stamp),
            devices: parse_devices(&devices)?,
        })
    }

    /// Whether the token has expired at `now`.
    pub fn expired_at(&self, now: DateTime<Utc>) -> bool {
        self.expires_at.is_some_and(|t| t <= now)
    }
}

fn new_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("cv_{}", hex::encode(bytes))
}

/// Creates a token named `name` with `role`, expiring at `expires_at`
/// (never when `None`), seeing only `devices` (every device when empty);
/// returns the token text (`cv_` + 32 random bytes, hex), or `None` when
/// a token of that name exists.
pub fn create_unique(
    tx: &Tx,
    name: &str,
    role: &str,
    expires_at: Option<DateTime<Utc>>,
    devices: &[String],
) -> Result<Option<String>> {
    if exists(tx, name)? {
        return Ok(None);
    }
    let token = new_secret();
    let created_at = stamp(Utc::now());
    let expires = expires_at.map(stamp);
    let devices = devices_text(devices);
    if let Some(pg) = tx.pg() {
        super::postgres::tokens::insert(
            pg,
            [name, role, &hash(&token), &created_at, &devices],
            expires.as_deref(),
        )?;
        return Ok(Some(token));
    }
    tx.prepare_cached(
        "INSERT INTO tokens (name, role, hash, created_at, expires_at, devices)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        name,
        role,
        hash(&token),
        created_at,
        expires,
        devices
    ])?;
    Ok(Some(token))
}

/// Creates a token for `role` named `name`, or the first of `name-2`,
/// `name-3`, … that is free (the rule the migration renamed duplicates
/// by); returns the token text. For callers that need *a* token and no
/// particular name (tests, tools); `token create` refuses a taken name.
pub fn create(tx: &Tx, name: &str, role: &str) -> Result<String> {
    let name = free_name(tx, name)?;
    create_unique(tx, &name, role, None, &[])?
        .ok_or_else(|| super::StoreError::Corrupt(format!("token name {name} taken twice")))
}

/// `name` if no token has it, else the first free `name-N` (N ≥ 2).
fn free_name(tx: &Tx, name: &str) -> Result<String> {
    if !exists(tx, name)? {
        return Ok(name.to_string());
    }
    let mut n = 2;
    loop {
        let candidate = format!("{name}-{n}");
        if !exists(tx, &candidate)? {
            return Ok(candidate);
        }
        n += 1;
    }
}

fn exists(tx: &Tx, name: &str) -> Result<bool> {
    if let Some(pg) = tx.pg() {
        return super::postgres::tokens::exists(pg, name);
    }
    Ok(tx
        .prepare_cached("SELECT 1 FROM tokens WHERE name = ?1")?
        .exists([name])?)
}

/// Replaces the token named `name` (if any) by a new one with `role`,
/// ending the old one's sessions; returns the new token text. `callvault
/// demo` does this at every start: one demo token, never a pile of them.
pub fn rotate(tx: &Tx, name: &str, role: &str) -> Result<String> {
    revoke(tx, name)?;
    create_unique(tx, name, role, None, &[])?
        .ok_or_else(|| super::StoreError::Corrupt(format!("token {name} survived its revocation")))
}

/// Every token, by name.
pub fn list(tx: &Tx) -> Result<Vec<TokenInfo>> {
    if let Some(pg) = tx.pg() {
        return super::postgres::tokens::list(pg);
    }
    let mut st = tx.prepare_cached(
        "SELECT name, role, created_at, expires_at, last_used_at, devices FROM tokens ORDER BY name",
    )?;
    let rows = st.query_map([], |r| {
        Ok(TokenInfo {
            name: r.get(0)?,
            role: r.get(1)?,
            created_at: r.get(2)?,
            expires_at: r.get(3)?,
            last_used_at: r.get(4)?,
            devices: parse_devices(&r.get::<_, String>(5)?).unwrap_or_default(),
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Deletes the token named `name` and its web sessions; returns how many
/// sessions ended, or `None` when there is no such token. Its requests
/// are refused from now on; downloads it has under way stop within
/// seconds (`http::auth`).
pub fn revoke(tx: &Tx, name: &str) -> Result<Option<u64>> {
    if let Some(pg) = tx.pg() {
        return super::postgres::tokens::revoke(pg, name);
    }
    let Some(id) = tx
        .prepare_cached("SELECT id FROM tokens WHERE name = ?1")?
        .query_row([name], |r| r.get::<_, i64>(0))
        .optional()?
    else {
        return Ok(None);
    };
    // Explicitly, not only by the foreign key's cascade: a connection with
    // foreign keys off (rebuild's) must not leave sessions behind.
    let sessions = tx
        .prepare_cached("DELETE FROM sessions WHERE token_id = ?1")?
        .execute([id])?;
    tx.prepare_cached("DELETE FROM tokens WHERE id = ?1")?
        .execute([id])?;
    Ok(Some(sessions as u64))
}

/// The token `token` if it exists and has not expired at `now`.
pub fn lookup(tx: &Tx, token: &str, now: DateTime<Utc>) -> Result<Option<Found>> {
    if let Some(pg) = tx.pg() {
        return super::postgres::tokens::lookup(pg, &hash(token), now);
    }
    let row = tx
        .prepare_cached(&format!(
            "SELECT {FOUND_COLS} FROM tokens t WHERE t.hash = ?1"
        ))?
        .query_row([hash(token)], found_parts)
        .optional()?;
    Ok(row.and_then(|p| Found::from_parts(p, now)))
}

pub(crate) type FoundParts = (
    i64,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    String,
);

/// The [`FOUND_COLS`] of a SQLite row, from column `0`.
pub(crate) fn found_parts(r: &rusqlite::Row) -> rusqlite::Result<FoundParts> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
    ))
}

/// Records that token `id` was used at `at` (the HTTP edge calls this at
/// most once a minute per token: `last_used_at` is coarse on purpose).
pub fn touch(tx: &Tx, id: i64, at: DateTime<Utc>) -> Result<()> {
    let at = stamp(at);
    if let Some(pg) = tx.pg() {
        return super::postgres::tokens::touch(pg, id, &at);
    }
    tx.prepare_cached("UPDATE tokens SET last_used_at = ?1 WHERE id = ?2")?
        .execute(params![at, id])?;
    Ok(())
}

/// The hashes of every token and every web session that exist (revoked
/// tokens and signed-out sessions are gone): what a streaming response
/// checks its caller against every few seconds. Both are sha256 of 32
/// random bytes, so one set holds both.
pub fn live_hashes(tx: &Tx) -> Result<HashSet<String>> {
    if let Some(pg) = tx.pg() {
        return super::postgres::tokens::live_hashes(pg);
    }
    let mut st =
        tx.prepare_cached("SELECT hash FROM tokens UNION ALL SELECT hash FROM sessions")?;
    let rows = st.query_map([], |r| r.get::<_, String>(0))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// The renames that make token names unique and non-empty, given every
/// token's (id, name, role) in id order: the first of a name keeps it,
/// the next ones become `name-2`, `name-3`, … (skipping names that are
/// taken); an empty name is first replaced by the role (what `token
/// create` used to default it to). Returns (id, old name, new name).
pub fn unique_names(tokens: &[(i64, String, String)]) -> Vec<(i64, String, String)> {
    let mut taken: HashSet<String> = HashSet::new();
    let mut first_of: HashSet<String> = HashSet::new();
    // Names that stay as they are come first, so a rename never takes a
    // name an existing token has.
    for (_, name, _) in tokens {
        if !name.is_empty() && first_of.insert(name.clone()) {
            taken.insert(name.clone());
        }
    }
    let mut kept: HashSet<String> = HashSet::new();
    let mut renames = Vec::new();
    for (id, name, role) in tokens {
        if !name.is_empty() && kept.insert(name.clone()) {
            continue;
        }
        let base = if name.is_empty() { role } else { name };
        let new = if taken.insert(base.clone()) {
            base.clone()
        } else {
            (2..)
                .map(|n| format!("{base}-{n}"))
                .find(|c| !taken.contains(c))
                .expect("a free name")
        };
        taken.insert(new.clone());
        kept.insert(new.clone());
        renames.push((*id, name.clone(), new));
    }
    renames
}

/// Applies [`unique_names`] to a SQLite archive before migration 013
/// builds the unique index on names; logs each rename.
pub(crate) fn make_names_unique_sqlite(conn: &rusqlite::Connection) -> Result<()> {
    let mut st = conn.prepare("SELECT id, name, role FROM tokens ORDER BY id")?;
    let tokens = st
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    for (id, old, new) in unique_names(&tokens) {
        conn.execute(
            "UPDATE tokens SET name = ?1 WHERE id = ?2",
            params![new, id],
        )?;
        log_rename(&old, &new);
    }
    Ok(())
}

pub(crate) fn log_rename(old: &str, new: &str) {
    tracing::warn!(
        old_name = old,
        new_name = new,
        "token names must be unique now: renamed token {old:?} to {new:?} \
         (`callvault token list` shows them)"
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::each_backend;

    #[test]
    fn a_created_token_is_found_by_its_text_only() {
        each_backend("a_created_token_is_found_by_its_text_only", |_, store| {
            let token = store
                .writer
                .write_blocking(|tx| super::create(tx, "qa-desk", "qa"))
                .expect("create");
            let found = store
                .read_blocking(|tx| super::lookup(tx, &token, Utc::now()))
                .expect("lookup")
                .expect("found");
            assert_eq!(
                (found.name.as_str(), found.role.as_str()),
                ("qa-desk", "qa")
            );
            assert_eq!(found.hash, hash(&token));
            let other = store
                .read_blocking(|tx| super::lookup(tx, "cv_00", Utc::now()))
                .expect("lookup");
            assert_eq!(other, None);
        });
    }

    #[test]
    fn names_are_unique_expiry_and_revocation_end_a_token() {
        each_backend(
            "names_are_unique_expiry_and_revocation_end_a_token",
            |_, store| {
                let soon = Utc::now() + chrono::Duration::hours(1);
                let t = store
                    .writer
                    .write_blocking(move |tx| create_unique(tx, "ops", "admin", Some(soon), &[]))
                    .expect("create")
                    .expect("free name");
                let again = store
                    .writer
                    .write_blocking(|tx| create_unique(tx, "ops", "qa", None, &[]))
                    .expect("create");
                assert_eq!(again, None, "a taken name is refused");
                let lenient = store
                    .writer
                    .write_blocking(|tx| create(tx, "ops", "qa"))
                    .expect("create");
                let names: Vec<_> = store
                    .read_blocking(list)
                    .expect("list")
                    .into_iter()
                    .map(|i| (i.name, i.role, i.expires_at.is_some()))
                    .collect();
                assert_eq!(
                    names,
                    [
                        ("ops".to_string(), "admin".to_string(), true),
                        ("ops-2".to_string(), "qa".to_string(), false)
                    ]
                );
                let later = soon + chrono::Duration::seconds(1);
                let t2 = t.clone();
                assert!(store
                    .read_blocking(move |tx| lookup(tx, &t2, later))
                    .expect("lookup")
                    .is_none());
                assert!(store
                    .read_blocking(move |tx| lookup(tx, &t, Utc::now()))
                    .expect("lookup")
                    .is_some());
                assert_eq!(
                    store
                        .writer
                        .write_blocking(|tx| revoke(tx, "ops-2"))
                        .expect("revoke"),
                    Some(0)
                );
                assert_eq!(
                    store
                        .writer
                        .write_blocking(|tx| revoke(tx, "ops-2"))
                        .expect("revoke"),
                    None
                );
                assert!(store
                    .read_blocking(move |tx| lookup(tx, &lenient, Utc::now()))
                    .expect("lookup")
                    .is_none());
            },
        );
    }

    #[test]
    fn touch_records_last_use_and_live_hashes_lose_revoked_tokens() {
        each_backend("touch_records_last_use", |_, store| {
            let t = store
                .writer
                .write_blocking(|tx| create(tx, "a", "qa"))
                .expect("create");
            let t2 = t.clone();
            let id = store
                .read_blocking(move |tx| lookup(tx, &t2, Utc::now()))
                .expect("lookup")
                .expect("found")
                .id;
            let at = parse_stamp("2026-01-02T03:04:05Z").expect("time");
            store
                .writer
                .write_blocking(move |tx| touch(tx, id, at))
                .expect("touch");
            let info = store.read_blocking(list).expect("list");
            assert_eq!(
                info[0].last_used_at.as_deref(),
                Some("2026-01-02T03:04:05Z")
            );
            assert!(store
                .read_blocking(live_hashes)
                .expect("hashes")
                .contains(&hash(&t)));
            store
                .writer
                .write_blocking(|tx| rotate(tx, "a", "qa"))
                .expect("rotate");
            let live = store.read_blocking(live_hashes).expect("hashes");
            assert!(!live.contains(&hash(&t)), "rotated away");
            assert_eq!(live.len(), 1);
        });
    }

    #[test]
    fn unique_names_renames_duplicates_and_empty_names() {
        let rows = |v: &[(i64, &str, &str)]| -> Vec<(i64, String, String)> {
            v.iter()
                .map(|(i, n, r)| (*i, n.to_string(), r.to_string()))
                .collect()
        };
        assert_eq!(
            unique_names(&rows(&[
                (1, "qa", "qa"),
                (2, "qa", "qa"),
                (3, "qa-2", "admin"),
                (4, "qa", "qa"),
                (5, "", "finance"),
                (6, "finance", "finance"),
                (7, "x", "qa"),
            ])),
            rows(&[(2, "qa", "qa-3"), (4, "qa", "qa-4"), (5, "", "finance-2")])
        );
        assert!(unique_names(&rows(&[(1, "a", "qa"), (2, "b", "qa")])).is_empty());
    }
}
