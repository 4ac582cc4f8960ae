//! `store::sessions` on PostgreSQL: every collector sees every session.

use super::PgTx;
use crate::store::tokens::FOUND_COLS;
use crate::store::Result;

type Parts = crate::store::tokens::FoundParts;

pub fn purge(pg: &PgTx, idle_before_ms: i64) -> Result<()> {
    pg.execute(
        "DELETE FROM sessions WHERE last_seen_ms < $1",
        &[&idle_before_ms],
    )?;
    Ok(())
}

pub fn insert(pg: &PgTx, hash: &str, token_id: i64, created_at: &str, now_ms: i64) -> Result<()> {
    pg.execute(
        "INSERT INTO sessions (hash, token_id, created_at, last_seen_ms) VALUES ($1, $2, $3, $4)",
        &[&hash, &token_id, &created_at, &now_ms],
    )?;
    Ok(())
}

pub fn lookup(pg: &PgTx, hash: &str) -> Result<Option<(Parts, i64)>> {
    Ok(pg
        .query_opt(
            &format!(
                "SELECT {FOUND_COLS}, s.last_seen_ms FROM sessions s JOIN tokens t ON t.id = s.token_id
                 WHERE s.hash = $1"
            ),
            &[&hash],
        )?
        .map(|r| (super::tokens::found_parts(&r, 0), r.get(7))))
}

pub fn touch(pg: &PgTx, hash: &str, now_ms: i64) -> Result<()> {
    pg.execute(
        "UPDATE sessions SET last_seen_ms = $1 WHERE hash = $2",
        &[&now_ms, &hash],
    )?;
    Ok(())
}

pub fn delete(pg: &PgTx, hash: &str) -> Result<bool> {
    Ok(pg.execute("DELETE FROM sessions WHERE hash = $1", &[&hash])? > 0)
}

pub fn count(pg: &PgTx) -> Result<i64> {
    Ok(pg.query_one("SELECT COUNT(*) FROM sessions", &[])?.get(0))
}
