//! `store::tokens` on PostgreSQL.

use super::PgTx;
use crate::store::Result;

pub fn insert(pg: &PgTx, name: &str, role: &str, hash: &str, created_at: &str) -> Result<()> {
    pg.execute(
        "INSERT INTO tokens (name, role, hash, created_at) VALUES ($1, $2, $3, $4)",
        &[&name, &role, &hash, &created_at],
    )?;
    Ok(())
}

pub fn lookup(pg: &PgTx, hash: &str) -> Result<Option<(String, String)>> {
    Ok(pg
        .query_opt("SELECT name, role FROM tokens WHERE hash = $1", &[&hash])?
        .map(|r| (r.get(0), r.get(1))))
}
