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
//!
//! [`hook`] is what ingest's derivation runs for each new leg.

use std::sync::Arc;

use super::{call_id, join_keys, joins, summarize_call};
use crate::ingest::derive::HookError;
use crate::ingest::{Hook, StoredItem};
use crate::model::Leg;
use crate::store::{self, calls as db, Tx};

/// No leg lasts longer (the parser refuses longer spans), so a leg that
/// started more than this (plus the tolerance) before a new one cannot
/// overlap it and is not searched.
pub const MAX_LEG_SECS: i64 = crate::model::MAX_LEG_DAYS * 86_400;

/// Why the calls stage could not place a leg.
#[derive(Debug, thiserror::Error)]
pub enum CallsError {
    /// The leg handed in is not in the archive: calls are summarized from
    /// stored legs only, so the caller must store it first.
    #[error("leg {0} is not stored: a call is made of stored legs only")]
    LegNotStored(i64),
    /// The archive refused a read or write.
    #[error(transparent)]
    Store(#[from] store::StoreError),
}

/// The derivation hook of the calls stage: puts every newly stored leg in
/// its call.
pub fn hook() -> Hook {
    Arc::new(|tx: &Tx, item: &StoredItem| -> Result<(), HookError> {
        if let StoredItem::Leg {
            device,
            row_id,
            leg,
            ..
        } = *item
        {
            on_leg(tx, device, row_id, leg)?;
        }
        Ok(())
    })
}

/// Updates the calls after leg `leg_id` (already stored) arrived; returns
/// the id of the call it is in now.
pub fn on_leg(conn: &Tx, device: &str, leg_id: i64, leg: &Leg) -> Result<String, CallsError> {
    // The stored row (for its receive time): the call is summarized from
    // stored legs only, whichever path runs.
    let stored = db::call_legs_by_ids(conn, &[leg_id])?
        .pop()
        .ok_or(CallsError::LegNotStored(leg_id))?;
    Ok(update(conn, device, leg_id, leg, &stored)?)
}

/// `on_leg` with the stored row of the leg already at hand.
fn update(
    conn: &Tx,
    device: &str,
    leg_id: i64,
    leg: &Leg,
    stored: &db::CallLeg,
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
    legs.push((stored, None));
    legs.extend(
        others
            .iter()
            .filter_map(|&(id, call)| find(id).map(|l| (l, Some(call)))),
    );

    let rest: Vec<&Leg> = legs.iter().skip(1).map(|(l, _)| &l.leg).collect();
    let facts = summarize_call(device, &stored.leg, &rest);
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
    conn: &Tx,
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
                update(conn, device, l.id, &l.leg, l)?;
            }
            done += 1;
        }
    }
    Ok((done, last_id))
}

/// `callvault rebuild` of the calls: what the CLI runs (and the benchmark
/// measures). Commits every `batch_legs` legs; `progress` gets (done, total)
/// after each commit. The store clears the calls and commits the batches
/// (`store::rebuild::rebuild_calls`, which says why it is not one
/// transaction); each batch is [`rebuild_batch`].
pub fn rebuild_store(
    store: &store::Store,
    batch_legs: usize,
    progress: &mut dyn FnMut(u64, u64),
) -> store::Result<u64> {
    store::rebuild::rebuild_calls(store, batch_legs, progress, &mut rebuild_batch)
}
