//! The retention purge (docs/operations.md "Retention"): what `[retention]`
//! says is past its time, planned ([`plan`], what `callvault purge
//! --dry-run` prints) and removed ([`run`]) in bounded batches, each one
//! write job of the store's writer, so ingest waits for one batch at most.
//! `serve` runs it daily ([`daily`]); `callvault purge` on demand.
//!
//! Order matters: recordings are marked `purged` first and their files
//! removed from storage, then calls go (a call whose files could not be
//! removed stays for the next pass, so no file loses its row), then what
//! is dated by receive time. Calls and queue visits are dated by the
//! device's local clock and compared with the cutoff in the device's zone
//! ([`cutoff`]).

pub mod cutoff;
mod daily;

use std::collections::HashMap;

use crate::recordings::RecordingStore;
use crate::store::retention::{self as db, Dated, DatedTable, MsKind, SpanMs};
use crate::store::{Result, Store};

pub use cutoff::Cutoffs;
pub use daily::daily;

/// Rows per batch (one write job).
pub const BATCH: i64 = 500;

/// The kinds of rows the purge removes, in the order it removes them (the
/// `kind` label of `callvault_purged_total`).
pub const KINDS: &[&str] = &[
    "recordings",
    "calls",
    "queue_visits",
    "events",
    "raw",
    "quarantine",
    "audit",
    "sessions",
];

/// What is past its limit of one kind: how many, and the dates of the
/// oldest and newest (device-local for calls, recordings and queue visits;
/// UTC for the rest).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub kind: &'static str,
    pub count: u64,
    pub oldest: Option<String>,
    pub newest: Option<String>,
}

/// Lists what a purge at `cutoffs` would remove, changing nothing. Kinds
/// kept for ever are left out.
pub async fn plan(store: &Store, cutoffs: &Cutoffs) -> Result<Vec<Line>> {
    let mut out = Vec::new();
    if let Some(c) = &cutoffs.recordings {
        let mut line = Line::new("recordings");
        let mut after = None;
        while let Some((last, page)) = next_page(store, DatedTable::Calls, c, after.take()).await? {
            let seqs: Vec<i64> = page.iter().map(|d| d.seq).collect();
            let counts: HashMap<i64, i64> = store
                .read(move |tx| db::recordings_to_purge(tx, &seqs))
                .await?
                .into_iter()
                .collect();
            for d in &page {
                if let Some(n) = counts.get(&d.seq) {
                    line.add(&d.local, *n as u64);
                }
            }
            after = Some(last);
        }
        out.push(line);
    }
    if let Some(c) = &cutoffs.calls {
        for (kind, table) in [
            ("calls", DatedTable::Calls),
            ("queue_visits", DatedTable::QueueVisits),
        ] {
            let mut line = Line::new(kind);
            let mut after = None;
            while let Some((last, page)) = next_page(store, table, c, after.take()).await? {
                for d in &page {
                    line.add(&d.local, 1);
                }
                after = Some(last);
            }
            out.push(line);
        }
        out.push(span_line(store, "events", MsKind::Events, c.before_ms).await?);
    }
    if let Some(ms) = cutoffs.raw_ms {
        let s = store.read(move |tx| db::raw_span(tx, ms)).await?;
        out.push(Line::of_span("raw", s));
    }
    if let Some(ms) = cutoffs.quarantine_ms {
        out.push(span_line(store, "quarantine", MsKind::Quarantine, ms).await?);
    }
    if let Some(ms) = cutoffs.audit_ms {
        out.push(span_line(store, "audit", MsKind::Audit, ms).await?);
    }
    out.push(span_line(store, "sessions", MsKind::Sessions, cutoffs.sessions_ms).await?);
    Ok(out)
}

impl Line {
    fn new(kind: &'static str) -> Line {
        Line {
            kind,
            count: 0,
            oldest: None,
            newest: None,
        }
    }

    fn of_span(kind: &'static str, s: SpanMs) -> Line {
        Line {
            kind,
            count: s.count.max(0) as u64,
            oldest: s.oldest_ms.map(cutoff::utc_text),
            newest: s.newest_ms.map(cutoff::utc_text),
        }
    }

    /// Counts `n` rows dated `local` (pages come oldest first).
    fn add(&mut self, local: &str, n: u64) {
        if n == 0 {
            return;
        }
        self.count += n;
        if self.oldest.is_none() {
            self.oldest = Some(local.to_string());
        }
        self.newest = Some(local.to_string());
    }
}

async fn span_line(store: &Store, kind: &'static str, k: MsKind, ms: i64) -> Result<Line> {
    let s = store.read(move |tx| db::span(tx, k, ms)).await?;
    Ok(Line::of_span(kind, s))
}

/// The next page of `table` before the latest local cutoff, keeping the rows
/// past their own device's cutoff; with the key to continue after.
async fn next_page(
    store: &Store,
    table: DatedTable,
    c: &cutoff::Local,
    after: Option<(String, String)>,
) -> Result<Option<((String, String), Vec<Dated>)>> {
    let before = c.latest.clone();
    let page = store
        .read(move |tx| {
            let after = after.as_ref().map(|(l, k)| (l.as_str(), k.as_str()));
            db::dated_page(tx, table, &before, after, BATCH)
        })
        .await?;
    let Some(last) = page.last().map(|d| (d.local.clone(), d.key.clone())) else {
        return Ok(None);
    };
    Ok(Some((
        last,
        page.into_iter()
            .filter(|d| c.is_past(&d.device, &d.local))
            .collect(),
    )))
}

/// What a purge removed, per kind (every kind listed, zeros included).
pub type Removed = Vec<(&'static str, u64)>;

/// Removes what is past its limit at `cutoffs`: the files of purged
/// recordings from `files`, rows through the writer in batches of
/// [`BATCH`]. `progress` hears of each batch (kind, rows). Counts each
/// kind in `callvault_purged_total` and logs what went.
pub async fn run(
    store: &Store,
    files: &RecordingStore,
    cutoffs: &Cutoffs,
    progress: &(dyn Fn(&'static str, u64) + Send + Sync),
) -> Result<Removed> {
    let mut removed: Removed = KINDS.iter().map(|k| (*k, 0)).collect();
    let mut note = |kind: &'static str, n: u64| {
        if n > 0 {
            progress(kind, n);
            metrics::counter!("callvault_purged_total", "kind" => kind).increment(n);
            if let Some(slot) = removed.iter_mut().find(|(k, _)| *k == kind) {
                slot.1 += n;
            }
        }
    };
    if let Some(c) = &cutoffs.recordings {
        let mut after = None;
        while let Some((last, page)) = next_page(store, DatedTable::Calls, c, after.take()).await? {
            let seqs: Vec<i64> = page.iter().map(|d| d.seq).collect();
            let n = store
                .writer
                .write(move |tx| db::mark_recordings_purged(tx, &seqs))
                .await?;
            note("recordings", n);
            after = Some(last);
        }
    }
    remove_purged_files(store, files).await?;
    if let Some(c) = &cutoffs.calls {
        let mut after = None;
        while let Some((last, page)) = next_page(store, DatedTable::Calls, c, after.take()).await? {
            let seqs: Vec<i64> = page.iter().map(|d| d.seq).collect();
            note(
                "calls",
                store
                    .writer
                    .write(move |tx| db::delete_calls(tx, &seqs))
                    .await?,
            );
            after = Some(last);
        }
        let mut after = None;
        while let Some((last, page)) =
            next_page(store, DatedTable::QueueVisits, c, after.take()).await?
        {
            let keys: Vec<String> = page.into_iter().map(|d| d.key).collect();
            note(
                "queue_visits",
                store
                    .writer
                    .write(move |tx| db::delete_visits(tx, &keys))
                    .await?,
            );
            after = Some(last);
        }
        note(
            "events",
            delete_all(store, MsKind::Events, c.before_ms).await?,
        );
    }
    if let Some(ms) = cutoffs.raw_ms {
        loop {
            let b = store
                .writer
                .write(move |tx| db::purge_raw(tx, ms, BATCH))
                .await?;
            note("raw", b.emptied);
            if b.walked == 0 {
                break;
            }
        }
    }
    if let Some(ms) = cutoffs.quarantine_ms {
        note(
            "quarantine",
            delete_all(store, MsKind::Quarantine, ms).await?,
        );
    }
    if let Some(ms) = cutoffs.audit_ms {
        note("audit", delete_all(store, MsKind::Audit, ms).await?);
    }
    note(
        "sessions",
        delete_all(store, MsKind::Sessions, cutoffs.sessions_ms).await?,
    );
    let total: u64 = removed.iter().map(|(_, n)| n).sum();
    if total > 0 {
        tracing::info!(
            recordings = removed[0].1,
            calls = removed[1].1,
            queue_visits = removed[2].1,
            events = removed[3].1,
            raw = removed[4].1,
            quarantine = removed[5].1,
            audit = removed[6].1,
            sessions = removed[7].1,
            "retention purge removed what was past [retention]"
        );
    }
    Ok(removed)
}

/// Deletes every row of `kind` before `ms`, a batch per write job.
async fn delete_all(store: &Store, kind: MsKind, ms: i64) -> Result<u64> {
    let mut total = 0;
    loop {
        let n = store
            .writer
            .write(move |tx| db::delete_batch(tx, kind, ms, BATCH))
            .await?;
        total += n;
        if n == 0 {
            return Ok(total);
        }
    }
}

/// Removes from storage the files of recordings marked `purged`, then
/// forgets them on the row. A file that cannot be removed now (the object
/// store is down) is logged and left listed: the next pass tries again,
/// and its call stays until then.
async fn remove_purged_files(store: &Store, files: &RecordingStore) -> Result<()> {
    let mut after = 0;
    loop {
        let page = store
            .read(move |tx| db::purged_with_files(tx, after, BATCH))
            .await?;
        let Some(last) = page.last().map(|p| p.id) else {
            return Ok(());
        };
        let mut gone = Vec::new();
        for p in page {
            let mut ok = true;
            for key in &p.keys {
                if let Err(e) = files.delete(key).await {
                    tracing::warn!(recording = p.id, error = %e,
                        "could not remove a purged recording's file; next pass tries again");
                    ok = false;
                }
            }
            if ok {
                gone.push(p.id);
            }
        }
        store
            .writer
            .write(move |tx| db::forget_files(tx, &gone))
            .await?;
        after = last;
    }
}
