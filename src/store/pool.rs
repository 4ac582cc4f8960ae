//! A few read connections reused across requests (opening one per request
//! would re-read the schema each time); on PostgreSQL, read-only
//! transactions on the backend's pool.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use rusqlite::Connection;

use super::postgres::backend::PgBackend;
use super::Tx;

pub struct ReadPool {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    pg: Option<Arc<PgBackend>>,
}

impl ReadPool {
    pub fn new(path: PathBuf) -> ReadPool {
        ReadPool {
            path,
            idle: Mutex::new(Vec::new()),
            pg: None,
        }
    }

    pub(in crate::store) fn postgres(db: Arc<PgBackend>) -> ReadPool {
        ReadPool {
            path: PathBuf::new(),
            idle: Mutex::new(Vec::new()),
            pg: Some(db),
        }
    }

    /// Runs `f` on an idle connection (or a new one), then returns it to the pool.
    pub fn with<T>(&self, f: impl FnOnce(&Tx) -> super::Result<T>) -> super::Result<T> {
        if let Some(db) = &self.pg {
            return db.with_tx(true, f);
        }
        let conn = self.idle.lock().ok().and_then(|mut v| v.pop());
        let conn = match conn {
            Some(c) => c,
            None => {
                // Reads never write: a report's SQL (a custom file in the
                // data directory included) cannot change the archive.
                let c = super::open_connection(&self.path)?;
                c.pragma_update(None, "query_only", true)?;
                c
            }
        };
        let out = f(&Tx::new(&conn));
        if let Ok(mut idle) = self.idle.lock() {
            if idle.len() < 8 {
                idle.push(conn);
            }
        }
        out
    }
}
