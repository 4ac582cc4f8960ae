//! Keeping calls up to date as legs arrive, and `rebuild`.
//!
//! A call is a connected component of legs under `rules::joins`. When a leg
//! arrives we find the legs it joins (indexed by `join_keys` and time), take
//! the calls they are in, and replace those calls by one recomputed from all
//! their legs plus the new one. Connected components do not depend on the
//! order edges are added, and `summarize` is a pure function of the leg
//! set, so any arrival order gives the same calls — and `rebuild`, which
//! simply feeds every stored leg through this same function, reproduces the
//! live result exactly.

use rusqlite::Connection;

use super::{call_id, join_keys, joins, summarize};
use crate::model::Leg;
use crate::store::{self, calls as db};

/// No leg lasts longer (the parser refuses longer spans), so a leg that
/// started more than this (plus the tolerance) before a new one cannot
/// overlap it and is not searched.
pub const MAX_LEG_SECS: i64 = crate::model::MAX_LEG_DAYS * 86_400;

/// Updates the calls after leg `leg_id` (already stored) arrived.
///
/// `_tz_of` is unused since grouping and summaries work in device-local
/// time; it stays so that the ingest hook and tests keep their call shape.
pub fn on_leg(conn: &Connection, device: &str, leg_id: i64, leg: &Leg) -> store::Result<String> {
    // The stored row (for its receive time): the call is summarized from
    // stored legs only, whichever path runs.
    let stored = db::call_legs_by_ids(conn, &[leg_id])?.pop();
    update(conn, device, leg_id, leg, stored.as_ref())
}

/// `on_leg` with the stored row of the leg already at hand (`None`: not stored).
fn update(
    conn: &Connection,
    device: &str,
    leg_id: i64,
    leg: &Leg,
    stored: Option<&db::CallLeg>,
) -> store::Result<String> {
    let keys = join_keys(leg);
    let (s, e) = (db::local_secs(leg.time_start), db::local_secs(leg.time_end));
    let tol = super::TOLERANCE_SECS;
    // Only legs whose span overlaps this one's (the first test of `joins`)
    // can join it: `end + tol >= s` is passed down so the index does it, and
    // such a leg, at most MAX_LEG_SECS long, started after `s - tol - MAX_LEG_SECS`.
    let cand = db::call_legs_by_ids(
        conn,
        &db::candidates(
            conn,
            device,
            &keys,
            s - tol - MAX_LEG_SECS,
            e + tol,
            s - tol,
        )?,
    )?;
    db::insert_keys(conn, device, leg_id, &keys, s, e)?;

    // The calls this leg joins (their `seq`).
    let mut merged: Vec<i64> = Vec::new();
    for c in &cand {
        if c.id != leg_id && joins(leg, &c.leg) {
            if let Some(call) = db::call_seq_of_leg(conn, c.id)? {
                if !merged.contains(&call) {
                    merged.push(call);
                }
            }
        }
    }
    // Their legs, each with the call it is in now; candidates already
    // loaded are not read again (`cand` is in id order).
    let mut others: Vec<(i64, i64)> = Vec::new();
    for &call in &merged {
        others.extend(
            db::leg_ids_of_seq(conn, call)?
                .into_iter()
                .filter(|&id| id != leg_id)
                .map(|id| (id, call)),
        );
    }
    others.sort_unstable();
    let missing: Vec<i64> = others
        .iter()
        .map(|&(id, _)| id)
        .filter(|id| cand.binary_search_by_key(id, |c| c.id).is_err())
        .collect();
    let loaded = db::call_legs_by_ids(conn, &missing)?;
    let find = |id: i64| -> Option<&db::CallLeg> {
        match cand.binary_search_by_key(&id, |c| c.id) {
            Ok(i) => Some(&cand[i]),
            Err(_) => loaded
                .binary_search_by_key(&id, |c| c.id)
                .ok()
                .map(|i| &loaded[i]),
        }
    };
    let mut legs: Vec<(&db::CallLeg, Option<i64>)> = Vec::with_capacity(others.len() + 1);
    legs.extend(stored.map(|l| (l, None)));
    legs.extend(
        others
            .iter()
            .filter_map(|&(id, call)| find(id).map(|l| (l, Some(call)))),
    );

    let refs: Vec<&Leg> = legs.iter().map(|(l, _)| &l.leg).collect();
    let facts = summarize(device, &refs).ok_or(store::StoreError::NotFound)?;
    let last_change = legs.iter().map(|(l, _)| l.received_ms).max().unwrap_or(0);
    // The merged call keeps the oldest row (any fixed choice would do: the
    // same legs in the same order give the same rows, live or rebuilt), so
    // its legs keep their links even when the merge changes its id.
    let keep = merged.iter().min().copied();
    // Links only for legs not in the kept call already (the new leg
    // always): a call is rewritten for each of its legs, and relinking all
    // of them every time would be quadratic in the legs of the call.
    let links: Vec<(i64, String)> = legs
        .iter()
        .filter(|(_, now_in)| now_in.is_none_or(|c| Some(c) != keep))
        .map(|(l, _)| (l.id, call_id(device, &l.leg.cdr_id)))
        .collect();
    // Before the write: the call's new id may be one of theirs.
    for &call in merged.iter().filter(|&&c| Some(c) != keep) {
        db::delete_call(conn, call)?;
    }
    db::put_call(conn, keep, &facts, &links, last_change)?;
    Ok(facts.id)
}

/// Legs read per page by the rebuild (memory stays flat whatever the archive size).
const PAGE_LEGS: usize = 1_000;

/// Legs replayed per committed transaction by [`rebuild_store`]: big enough
/// that commits (an fsync, and a checkpoint copying the batch's pages into
/// the database) cost little: 10 k-leg batches made a 1 M-leg rebuild about
/// 20 % slower than 50 k ones; small enough that the WAL stays bounded (a
/// batch writes about 2,300 pages, 10 MB) and other writers (a running
/// server's ingest) wait a couple of seconds at most.
pub const REBUILD_BATCH_LEGS: usize = 50_000;

/// Replays `on_leg` over up to `max_legs` legs with id > `after`, in id
/// order. Returns (legs walked, last id walked); (0, after) when done.
///
/// Legs with an id above `cleared_up_to` were stored after the rebuild
/// cleared the calls, by a server running beside it, whose live path may
/// already have put them in their calls: those are left as they are. A
/// second `on_leg` of one leg would make a second call of it (the leg never
/// joins itself), with the same call id.
pub fn rebuild_batch(
    conn: &Connection,
    after: i64,
    max_legs: usize,
    cleared_up_to: i64,
) -> store::Result<(u64, i64)> {
    let (mut done, mut last_id) = (0u64, after);
    while (done as usize) < max_legs {
        let page = db::call_legs_page(conn, last_id, PAGE_LEGS.min(max_legs - done as usize))?;
        let Some((_, last)) = page.last() else {
            break;
        };
        last_id = last.id;
        for (device, l) in &page {
            if l.id <= cleared_up_to || db::call_seq_of_leg(conn, l.id)?.is_none() {
                update(conn, device, l.id, &l.leg, Some(l))?;
            }
            done += 1;
        }
    }
    Ok((done, last_id))
}

/// `callvault rebuild` of the calls: what the CLI runs (and the benchmark
/// measures). Commits every `batch_legs` legs; `progress` gets (done, total)
/// after each commit.
///
/// Its cost is linear in the legs: the replay writes calls by `seq`, links
/// by leg id and join keys by the day their leg ends, all in arrival order,
/// so each batch writes the last pages of those b-trees whatever the archive
/// size (sql/009_calls_time_order.sql). The indexes on the hashed ids,
/// which would take a random page per leg, are dropped while it replays (the
/// replay never reads them) and created at the end in one sorted pass each
/// (`store::calls::create_lookup_indexes`).
///
/// Not one transaction: over millions of legs that would grow the WAL by
/// the whole calls tables and lock out other writers (a running server's
/// ingest) for minutes. An interrupted rebuild leaves the calls half
/// rebuilt, and the lookup indexes dropped until the next open of the store
/// creates them; that is safe to simply rerun, since `calls`, `call_legs` and
/// `leg_keys` are derived data that the rebuild clears first. Legs stored
/// meanwhile by a running server are fine too: the result does not depend on
/// arrival order; the walk by id reaches them too, and replays those the
/// server has not derived yet (`rebuild_batch`); meanwhile the server finds
/// calls by id with a scan.
///
/// It runs on a connection of its own rather than through the store's
/// writer, which wraps each job in a savepoint: SQLite keeps the original of
/// every page modified under a savepoint (in memory, with temp_store =
/// MEMORY), which for one batch over a big archive grows to hundreds of MB
/// with the archive size.
pub fn rebuild_store(
    store: &store::Store,
    batch_legs: usize,
    progress: &mut dyn FnMut(u64, u64),
) -> store::Result<u64> {
    use rusqlite::TransactionBehavior::Immediate;
    let mut conn = store::open_connection(store.path())?;
    store::wait_for_locks(&conn, store::LONG_BUSY_TIMEOUT)?;
    // Clearing with foreign keys off: `call_legs` references `legs`, and with
    // them on SQLite deletes such a table row by row through all its
    // indexes; off, it drops the b-trees whole. Deleting the referencing
    // side cannot break a foreign key.
    conn.pragma_update(None, "foreign_keys", false)?;
    let tx = conn.transaction_with_behavior(Immediate)?;
    db::drop_lookup_indexes(&tx)?;
    db::clear(&tx)?;
    let total = store::legs::count(&tx)? as u64;
    // Legs stored after this commit may be derived by a running server.
    let cleared_up_to: i64 =
        tx.query_row("SELECT COALESCE(MAX(id), 0) FROM legs", [], |r| r.get(0))?;
    tx.commit()?;
    conn.pragma_update(None, "foreign_keys", true)?;
    let (mut done, mut last_id) = (0u64, 0i64);
    loop {
        let tx = conn.transaction_with_behavior(Immediate)?;
        let (n, last) = rebuild_batch(&tx, last_id, batch_legs.max(1), cleared_up_to)?;
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
    db::create_lookup_indexes(&conn)?;
    Ok(done)
}
