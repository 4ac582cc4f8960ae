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
    tx.prepare_cached("INSERT INTO tokens (name, role, hash, created_at) VALUES (?1, ?2, ?3, ?4)")?
        .execute(params![
            name,
            role,
            hash(&token),
            chrono::Utc::now().to_rfc3339()
        ])?;
    Ok(token)
}

/// The (name, role) of a token, if it exists.
pub fn lookup(conn: &Tx, token: &str) -> Result<Option<(String, String)>> {
    Ok(conn
        .prepare_cached("SELECT name, role FROM tokens WHERE hash = ?1")?
        .query_row([hash(token)], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?)
}
