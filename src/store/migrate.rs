//! Schema migrations from `sql/NNN_name.sql`, applied in order at start;
//! `PRAGMA user_version` records how many have been applied.

use rusqlite::Connection;

/// (name, SQL) in order. Adding a migration = adding a file and a line here.
pub const MIGRATIONS: &[(&str, &str)] = &[
    ("001_ingest", include_str!("../../sql/001_ingest.sql")),
    ("002_calls", include_str!("../../sql/002_calls.sql")),
    ("003_queues", include_str!("../../sql/003_queues.sql")),
    (
        "004_recordings",
        include_str!("../../sql/004_recordings.sql"),
    ),
    (
        "005_recordings_more",
        include_str!("../../sql/005_recordings_more.sql"),
    ),
    (
        "006_report_indexes",
        include_str!("../../sql/006_report_indexes.sql"),
    ),
    (
        "007_rebuild_indexes",
        include_str!("../../sql/007_rebuild_indexes.sql"),
    ),
    ("009_calls_seq", include_str!("../../sql/009_calls_seq.sql")),
];

pub fn apply(conn: &mut Connection) -> super::Result<()> {
    let done: usize = conn.query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0))? as usize;
    for (i, (name, sql)) in MIGRATIONS.iter().enumerate().skip(done) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        tx.commit()?;
        tracing::info!(migration = name, "applied schema migration");
    }
    // Not a migration: indexes that a rebuild drops while it replays, put
    // back if one was interrupted (nothing to do when they exist).
    super::calls::create_lookup_indexes(conn)?;
    Ok(())
}
