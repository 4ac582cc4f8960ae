//! The store's side of `callvault rebuild`: clearing the derived calls,
//! replaying the legs in committed batches on a connection of its own, and
//! the row counts the command prints. What a leg does to the calls is the
//! calls stage's (`calls::live::rebuild_batch`), handed in as `replay`.

use rusqlite::TransactionBehavior::Immediate;

use super::{calls, legs, Result, Store, Tx};

/// Replays up to `max_legs` legs with id > `after` in id order, leaving
/// those above `cleared_up_to` that are already in a call alone; returns
/// (legs walked, last id walked), (0, after) once done.
pub type ReplayLegs<'r> = dyn FnMut(&Tx, i64, usize, i64) -> Result<(u64, i64)> + 'r;

/// Rebuilds the calls from the stored legs: clears them, then runs
/// `replay` over every leg, committing every `batch_legs` legs; `progress`
/// gets (done, total) after each commit. Returns the legs replayed.
///
/// Its cost is linear in the legs: the replay writes calls by `seq`, links
/// by leg id and join keys by the day their leg ends, all in arrival order,
/// so each batch writes the last pages of those b-trees whatever the archive
/// size (sql/sqlite/009_calls_time_order.sql). The indexes on the hashed ids,
/// which would take a random page per leg, are dropped while it replays (the
/// replay never reads them) and created at the end in one sorted pass each
/// ([`calls::create_lookup_indexes`]).
///
/// Not one transaction: over millions of legs that would grow the WAL by
/// the whole calls tables and lock out other writers (a running server's
/// ingest) for minutes. An interrupted rebuild leaves the calls half
/// rebuilt, and the lookup indexes dropped until the next open of the store
/// creates them; that is safe to simply rerun, since `calls`, `call_legs` and
/// `leg_keys` are derived data that the rebuild clears first. Legs stored
/// meanwhile by a running server are fine too: the result does not depend on
/// arrival order; the walk by id reaches them too, and `replay` replays
/// those the server has not derived yet; meanwhile the server finds calls
/// by id with a scan.
///
/// It runs on a connection of its own rather than through the store's
/// writer, which wraps each job in a savepoint: SQLite keeps the original of
/// every page modified under a savepoint (in memory, with temp_store =
/// MEMORY), which for one batch over a big archive grows to hundreds of MB
/// with the archive size.
///
/// On PostgreSQL the same steps run as transactions on the backend's pool
/// (`postgres::rebuild`, which says how they stay apart from the deriving
/// collector's).
pub fn rebuild_calls(
    store: &Store,
    batch_legs: usize,
    progress: &mut dyn FnMut(u64, u64),
    replay: &mut ReplayLegs<'_>,
) -> Result<u64> {
    if let Some(db) = store.postgres() {
        return super::postgres::rebuild::rebuild_calls(db, batch_legs, progress, replay);
    }
    let mut conn = super::open_connection(store.path())?;
    super::wait_for_locks(&conn, super::LONG_BUSY_TIMEOUT)?;
    // Clearing with foreign keys off: `call_legs` references `legs`, and with
    // them on SQLite deletes such a table row by row through all its
    // indexes; off, it drops the b-trees whole. Deleting the referencing
    // side cannot break a foreign key.
    conn.pragma_update(None, "foreign_keys", false)?;
    let tx = conn.transaction_with_behavior(Immediate)?;
    let (total, cleared_up_to) = {
        let h = Tx::new(&tx);
        calls::drop_lookup_indexes(&h)?;
        calls::clear(&h)?;
        let total = legs::count(&h)? as u64;
        // Legs stored after this commit may be derived by a running server.
        let cleared_up_to: i64 =
            h.query_row("SELECT COALESCE(MAX(id), 0) FROM legs", [], |r| r.get(0))?;
        (total, cleared_up_to)
    };
    tx.commit()?;
    conn.pragma_update(None, "foreign_keys", true)?;
    let (mut done, mut last_id) = (0u64, 0i64);
    loop {
        let tx = conn.transaction_with_behavior(Immediate)?;
        let (n, last) = replay(&Tx::new(&tx), last_id, batch_legs.max(1), cleared_up_to)?;
        tx.commit()?;
        if n == 0 {
            break;
        }
        // Let a running server's writer, waiting for the lock (it tries
        // every 2 ms), in between two batches.
        std::thread::sleep(std::time::Duration::from_millis(10));
        (done, last_id) = (done + n, last);
        progress(done, total.max(done));
    }
    // One sorted pass per index. The sort spills to temporary files: on
    // disk (temp_store = MEMORY would hold them in RAM, growing with the
    // archive), in runs no bigger than the page cache, cut to 16 MiB here,
    // which bounds the peak and sorts no slower than 64 MiB runs.
    conn.execute_batch("PRAGMA temp_store = FILE; PRAGMA cache_size = -16384;")?;
    calls::create_lookup_indexes(&Tx::new(&conn))?;
    Ok(done)
}

/// What the derived tables hold after a rebuild.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DerivedCounts {
    pub calls: i64,
    pub queue_visits: i64,
}

/// Counts the rows of the derived tables (`callvault rebuild` prints them).
pub fn derived_counts(tx: &Tx) -> Result<DerivedCounts> {
    if let Some(pg) = tx.pg() {
        return super::postgres::rebuild::derived_counts(pg);
    }
    let count = |table: &str| -> Result<i64> {
        Ok(tx.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0))?)
    };
    Ok(DerivedCounts {
        calls: count("calls")?,
        queue_visits: count("queue_visits")?,
    })
}
