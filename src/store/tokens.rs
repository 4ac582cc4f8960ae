//! API bearer tokens. Only the sha256 of a token is stored; the token is
//! shown once, when it is created.

use rand::RngCore;
use rusqlite::{params, OptionalExtension};
use sha2::{Digest, Sha256};

use super::{Result, Tx};

pub fn hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Creates a token for `role`; returns the token text (`cv_` + 32 random bytes, hex).
pub fn create(tx: &Tx, name: &str, role: &str) -> Result<String> {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let token = format!("cv_{}", hex::encode(bytes));
    let created_at = chrono::Utc::now().to_rfc3339();
    if let Some(pg) = tx.pg() {
        super::postgres::tokens::insert(pg, name, role, &hash(&token), &created_at)?;
        return Ok(token);
    }
    tx.prepare_cached("INSERT INTO tokens (name, role, hash, created_at) VALUES (?1, ?2, ?3, ?4)")?
        .execute(params![name, role, hash(&token), created_at])?;
    Ok(token)
}

/// The (name, role) of a token, if it exists.
pub fn lookup(conn: &Tx, token: &str) -> Result<Option<(String, String)>> {
    if let Some(pg) = conn.pg() {
        return super::postgres::tokens::lookup(pg, &hash(token));
    }
    Ok(conn
        .prepare_cached("SELECT name, role FROM tokens WHERE hash = ?1")?
        .query_row([hash(token)], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?)
}

#[cfg(test)]
mod tests {
    use crate::store::testing::each_backend;

    #[test]
    fn a_created_token_is_found_by_its_text_only() {
        each_backend("a_created_token_is_found_by_its_text_only", |_, store| {
            let token = store
                .writer
                .write_blocking(|tx| super::create(tx, "qa-desk", "qa"))
                .expect("create");
            let found = store
                .read_blocking(|tx| super::lookup(tx, &token))
                .expect("lookup");
            assert_eq!(found, Some(("qa-desk".into(), "qa".into())));
            let other = store
                .read_blocking(|tx| super::lookup(tx, "cv_00"))
                .expect("lookup");
            assert_eq!(other, None);
        });
    }
}
