//! `store::tokens` on PostgreSQL.

use std::collections::HashSet;

use chrono::{DateTime, Utc};

use super::PgTx;
use crate::store::tokens::{parse_devices, Found, FoundParts, TokenInfo, FOUND_COLS};
use crate::store::Result;

/// Inserts `[name, role, hash, created_at, devices]` expiring at `expires_at`.
pub fn insert(pg: &PgTx, cols: [&str; 5], expires_at: Option<&str>) -> Result<()> {
    let [name, role, hash, created_at, devices] = cols;
    pg.execute(
        "INSERT INTO tokens (name, role, hash, created_at, expires_at, devices)
         VALUES ($1, $2, $3, $4, $5, $6)",
        &[&name, &role, &hash, &created_at, &expires_at, &devices],
    )?;
    Ok(())
}

pub fn exists(pg: &PgTx, name: &str) -> Result<bool> {
    Ok(pg
        .query_opt("SELECT 1 FROM tokens WHERE name = $1", &[&name])?
        .is_some())
}

pub fn list(pg: &PgTx) -> Result<Vec<TokenInfo>> {
    Ok(pg
        .query(
            "SELECT name, role, created_at, expires_at, last_used_at, devices FROM tokens ORDER BY name",
            &[],
        )?
        .iter()
        .map(|r| TokenInfo {
            name: r.get(0),
            role: r.get(1),
            created_at: r.get(2),
            expires_at: r.get(3),
            last_used_at: r.get(4),
            devices: parse_devices(r.get(5)).unwrap_or_default(),
        })
        .collect())
}

pub fn revoke(pg: &PgTx, name: &str) -> Result<Option<u64>> {
    let Some(row) = pg.query_opt("SELECT id FROM tokens WHERE name = $1", &[&name])? else {
        return Ok(None);
    };
    let id: i64 = row.get(0);
    let sessions = pg.execute("DELETE FROM sessions WHERE token_id = $1", &[&id])?;
    pg.execute("DELETE FROM tokens WHERE id = $1", &[&id])?;
    Ok(Some(sessions))
}

pub fn lookup(pg: &PgTx, hash: &str, now: DateTime<Utc>) -> Result<Option<Found>> {
    Ok(pg
        .query_opt(
            &format!("SELECT {FOUND_COLS} FROM tokens t WHERE t.hash = $1"),
            &[&hash],
        )?
        .and_then(|r| Found::from_parts(found_parts(&r, 0), now)))
}

/// The `FOUND_COLS` of a row, from column `at`.
pub(crate) fn found_parts(r: &tokio_postgres::Row, at: usize) -> FoundParts {
    (
        r.get(at),
        r.get(at + 1),
        r.get(at + 2),
        r.get(at + 3),
        r.get(at + 4),
        r.get(at + 5),
        r.get(at + 6),
    )
}

pub fn touch(pg: &PgTx, id: i64, at: &str) -> Result<()> {
    pg.execute(
        "UPDATE tokens SET last_used_at = $1 WHERE id = $2",
        &[&at, &id],
    )?;
    Ok(())
}

pub fn live_hashes(pg: &PgTx) -> Result<HashSet<String>> {
    Ok(pg
        .query(
            "SELECT hash FROM tokens UNION ALL SELECT hash FROM sessions",
            &[],
        )?
        .iter()
        .map(|r| r.get(0))
        .collect())
}
