//! A consistent copy of the SQLite archive while it is being written
//! (`callvault backup`, docs/operations.md "Backup and restore"), and the
//! checks `restore` runs on a copy before it is put in place.
//!
//! `VACUUM INTO` reads the archive in one read transaction, so the copy is
//! the archive as of one commit: the writer goes on committing meanwhile
//! (WAL mode) and the devices keep getting their 200s. The copy is
//! compacted and has no WAL of its own.
//! On PostgreSQL there is nothing to do here: `pg_dump` is the tool
//! (the CLI refuses with a pointer to it).

use std::path::Path;

use rusqlite::{Connection, OpenFlags};

use super::{Result, StoreError};

/// Writes the archive at `archive` as of one commit to `dest`, which must
/// not exist yet.
pub fn snapshot(archive: &Path, dest: &Path) -> Result<()> {
    let conn = Connection::open_with_flags(
        archive,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    super::wait_for_locks(&conn, super::BUSY_TIMEOUT)?;
    let dest = dest
        .to_str()
        .ok_or_else(|| StoreError::Backend(format!("{} is not UTF-8", dest.display())))?;
    conn.execute("VACUUM INTO ?1", [dest])?;
    Ok(())
}

/// One recording file an archive refers to: its archive-relative key and,
/// for the playable file, the sha256 recorded when it was archived (the
/// kept G.729 halves have none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordingFile {
    pub key: String,
    pub sha256: Option<String>,
}

/// Opens an archive copy read-only (a backup's, never the live archive).
fn open_copy(path: &Path) -> Result<Connection> {
    Ok(Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?)
}

/// Every recording file the archive copy at `path` refers to (the playable
/// WAV and the kept halves of each `done` recording), in key order.
pub fn recording_files(path: &Path) -> Result<Vec<RecordingFile>> {
    let conn = open_copy(path)?;
    let mut st =
        conn.prepare("SELECT file, sha256, originals FROM recordings WHERE status = 'done'")?;
    let mut rows = st.query([])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        let file: Option<String> = r.get(0)?;
        let sha256: Option<String> = r.get(1)?;
        let originals: Option<String> = r.get(2)?;
        if let Some(key) = file {
            out.push(RecordingFile { key, sha256 });
        }
        let halves = super::recordings::parse_originals(originals.as_deref())
            .map_err(|e| StoreError::Backend(format!("recordings.originals: {e}")))?;
        out.extend(
            halves
                .into_iter()
                .map(|key| RecordingFile { key, sha256: None }),
        );
    }
    out.sort_by(|a, b| a.key.cmp(&b.key));
    out.dedup_by(|a, b| a.key == b.key);
    Ok(out)
}

/// Checks the archive copy at `path` page by page (`PRAGMA integrity_check`);
/// an error lists what SQLite found.
pub fn check_integrity(path: &Path) -> Result<()> {
    let conn = open_copy(path)?;
    let mut st = conn.prepare("PRAGMA integrity_check")?;
    let found: Vec<String> = st
        .query_map([], |r| r.get(0))?
        .collect::<std::result::Result<_, _>>()?;
    if found == ["ok"] {
        Ok(())
    } else {
        Err(StoreError::Backend(format!(
            "{} fails SQLite's integrity check: {}",
            path.display(),
            found.join("; ")
        )))
    }
}

/// Rows per table of the archive copy at `path` (for `backup`'s summary).
pub fn counts(path: &Path) -> Result<Vec<(String, i64)>> {
    let conn = open_copy(path)?;
    let mut out = Vec::new();
    for table in ["pushes", "legs", "calls", "queue_visits", "recordings"] {
        let n: i64 = conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))?;
        out.push((table.to_string(), n));
    }
    Ok(out)
}
