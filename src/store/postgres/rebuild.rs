//! `store::rebuild` on PostgreSQL: the calls cleared in one transaction,
//! then the legs replayed in committed batches, each in a transaction of
//! its own on a pooled connection (`PgBackend::with_tx`), so other
//! collectors keep writing between them, as a running server's writer does
//! between SQLite's batches.
//!
//! Placing legs in calls is one writer at a time
//! ([`PLACEMENT_LOCK`](super::calls::PLACEMENT_LOCK)): each batch takes the
//! lock the deriving collector takes for every leg, so a batch and the live
//! path never work on the calls at once. The lookup indexes stay
//! (`store::calls::drop_lookup_indexes` says why).

use super::backend::PgBackend;
use super::calls::PLACEMENT_LOCK;
use super::PgTx;
use crate::store::rebuild::{DerivedCounts, ReplayLegs};
use crate::store::{calls, Result};

pub fn rebuild_calls(
    db: &PgBackend,
    batch_legs: usize,
    progress: &mut dyn FnMut(u64, u64),
    replay: &mut ReplayLegs<'_>,
) -> Result<u64> {
    let (total, cleared_up_to) = db.with_tx(false, |tx| {
        let Some(pg) = tx.pg() else {
            return Ok((0, 0));
        };
        // Every leg with an id up to `cleared_up_to` is committed (and so in
        // its call) before the clear: the SHARE lock waits for the
        // transactions storing legs and holds off new ones until the clear
        // commits, so none with a smaller id can commit after it (and be
        // derived live, then replayed again by the batches). `leg_ids`
        // first, then the placement lock: the order the deriver takes them.
        pg.batch_execute("LOCK TABLE leg_ids, legs IN SHARE MODE")?;
        pg.batch_execute(PLACEMENT_LOCK)?;
        calls::clear(tx)?;
        let total: i64 = pg.query_one("SELECT COUNT(*) FROM legs", &[])?.get(0);
        let max: i64 = pg
            .query_one("SELECT COALESCE(MAX(id), 0) FROM legs", &[])?
            .get(0);
        Ok((total as u64, max))
    })?;
    let (mut done, mut last_id) = (0u64, 0i64);
    loop {
        let (n, last) = db.with_tx(false, |tx| {
            if let Some(pg) = tx.pg() {
                pg.batch_execute(PLACEMENT_LOCK)?;
            }
            replay(tx, last_id, batch_legs.max(1), cleared_up_to)
        })?;
        if n == 0 {
            break;
        }
        (done, last_id) = (done + n, last);
        progress(done, total.max(done));
    }
    Ok(done)
}

pub fn derived_counts(pg: &PgTx) -> Result<DerivedCounts> {
    let row = pg.query_one(
        "SELECT (SELECT COUNT(*) FROM calls), (SELECT COUNT(*) FROM queue_visits)",
        &[],
    )?;
    Ok(DerivedCounts {
        calls: row.try_get(0)?,
        queue_visits: row.try_get(1)?,
    })
}
