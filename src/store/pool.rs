//! A few read connections reused across requests (opening one per request
//! would re-read the schema each time).

use std::path::PathBuf;
use std::sync::Mutex;

use rusqlite::Connection;

use super::Tx;

pub struct ReadPool {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

impl ReadPool {
    pub fn new(path: PathBuf) -> ReadPool {
        ReadPool {
            path,
            idle: Mutex::new(Vec::new()),
        }
    }

    /// Runs `f` on an idle connection (or a new one), then returns it to the pool.
    pub fn with<T>(&self, f: impl FnOnce(&Tx) -> super::Result<T>) -> super::Result<T> {
        let conn = self.idle.lock().ok().and_then(|mut v| v.pop());
        let conn = match conn {
            Some(c) => c,
            None => super::open_connection(&self.path)?,
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
