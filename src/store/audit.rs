//! The audit log (`audit_log`): who read what, and every refusal of the API
//! listener (docs/operations.md "Audit log"). Append-only: rows are
//! inserted, refusals collapsed into their row by a count, and removed
//! only by [`purge_older_than`] (retention, `[retention] audit_days`);
//! nothing else changes or deletes them. What is recorded, and when, is
//! decided by `crate::audit`.

use rusqlite::params;
use serde::Serialize;

use super::cells::Cells;
use super::{Result, Tx};

/// One audit row as written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entry {
    /// Unix milliseconds, UTC.
    pub time_ms: i64,
    /// The token's name; `None` when the request had no valid token.
    pub actor: Option<String>,
    /// The token's role, when there was one.
    pub role: Option<String>,
    /// The peer address of the request (`None` for commands).
    pub ip: Option<String>,
    /// What was done (`crate::audit::Action`).
    pub action: String,
    /// What it was done to: a recording, a call, a report and its dates, a
    /// token's name, a route.
    pub target: String,
    /// The HTTP status; for commands, the exit status (0: done).
    pub status: i64,
    /// How many events the row stands for (refusals collapse; else 1).
    pub count: i64,
    /// A short note (rows exported, the call of a recording).
    pub detail: Option<String>,
}

/// A stored row: its id (the order rows were written in) and its entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Row {
    pub id: i64,
    #[serde(flatten)]
    pub entry: Entry,
}

/// Which rows [`list`] returns: newest first, `limit` of them, with ids
/// below `before_id` (the paging cursor).
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub actor: Option<String>,
    pub action: Option<String>,
    /// Inclusive, unix ms.
    pub from_ms: Option<i64>,
    /// Exclusive, unix ms.
    pub to_ms: Option<i64>,
    pub before_id: Option<i64>,
    pub limit: i64,
}

pub(in crate::store) const COLS: &str =
    "id, time_ms, actor, role, ip, action, target, status, count, detail";

pub(in crate::store) fn from_row(r: &impl Cells) -> Result<Row> {
    Ok(Row {
        id: r.cell(0)?,
        entry: Entry {
            time_ms: r.cell(1)?,
            actor: r.cell(2)?,
            role: r.cell(3)?,
            ip: r.cell(4)?,
            action: r.cell(5)?,
            target: r.cell(6)?,
            status: r.cell(7)?,
            count: r.cell(8)?,
            detail: r.cell(9)?,
        },
    })
}

/// Appends `e`; returns its id.
pub fn insert(tx: &Tx, e: &Entry) -> Result<i64> {
    if let Some(pg) = tx.pg() {
        return super::postgres::audit::insert(pg, e, None);
    }
    tx.prepare_cached(
        "INSERT INTO audit_log (time_ms, actor, role, ip, action, target, status, count, detail)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?
    .execute(params![
        e.time_ms, e.actor, e.role, e.ip, e.action, e.target, e.status, e.count, e.detail
    ])?;
    Ok(tx.last_insert_rowid())
}

/// Adds `e` to the row of `key` (refusals of one address, minute, status
/// and actor): its count grows by `e.count`; the first one makes the row.
/// Collectors sharing a PostgreSQL archive add to the same row.
pub fn add_collapsed(tx: &Tx, key: &str, e: &Entry) -> Result<()> {
    if let Some(pg) = tx.pg() {
        super::postgres::audit::insert(pg, e, Some(key))?;
        return Ok(());
    }
    tx.prepare_cached(
        "INSERT INTO audit_log
             (time_ms, actor, role, ip, action, target, status, count, detail, collapse_key)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
         ON CONFLICT (collapse_key) DO UPDATE SET count = count + excluded.count",
    )?
    .execute(params![
        e.time_ms, e.actor, e.role, e.ip, e.action, e.target, e.status, e.count, e.detail, key
    ])?;
    Ok(())
}

/// The rows `f` selects, newest first.
pub fn list(tx: &Tx, f: &Filter) -> Result<Vec<Row>> {
    if let Some(pg) = tx.pg() {
        return super::postgres::audit::list(pg, f);
    }
    let mut st = tx.prepare_cached(&format!(
        "SELECT {COLS} FROM audit_log
         WHERE (?1 IS NULL OR actor = ?1) AND (?2 IS NULL OR action = ?2)
           AND (?3 IS NULL OR time_ms >= ?3) AND (?4 IS NULL OR time_ms < ?4)
           AND (?5 IS NULL OR id < ?5)
         ORDER BY id DESC LIMIT ?6"
    ))?;
    let mut rows = st.query(params![
        f.actor,
        f.action,
        f.from_ms,
        f.to_ms,
        f.before_id,
        f.limit
    ])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        out.push(from_row(r)?);
    }
    Ok(out)
}

/// Removes the rows written before `cutoff_ms` (unix ms): the retention of
/// `[retention] audit_days`. Returns how many went. The only delete of the
/// audit log.
pub fn purge_older_than(tx: &Tx, cutoff_ms: i64) -> Result<u64> {
    if let Some(pg) = tx.pg() {
        return super::postgres::audit::purge_older_than(pg, cutoff_ms);
    }
    Ok(tx
        .prepare_cached("DELETE FROM audit_log WHERE time_ms < ?1")?
        .execute([cutoff_ms])? as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::each_backend;

    fn entry(time_ms: i64, actor: Option<&str>, action: &str) -> Entry {
        Entry {
            time_ms,
            actor: actor.map(Into::into),
            role: actor.map(|_| "qa".into()),
            ip: Some("192.0.2.7".into()),
            action: action.into(),
            target: "recording 1".into(),
            status: 200,
            count: 1,
            detail: None,
        }
    }

    fn all(store: &crate::store::Store) -> Vec<Row> {
        store
            .read_blocking(|tx| {
                list(
                    tx,
                    &Filter {
                        limit: 1000,
                        ..Default::default()
                    },
                )
            })
            .expect("list")
    }

    #[test]
    fn purge_removes_only_rows_older_than_the_cutoff() {
        each_backend(
            "purge_removes_only_rows_older_than_the_cutoff",
            |_, store| {
                for t in [1_000, 2_000, 3_000, 4_000] {
                    store
                        .writer
                        .write_blocking(move |tx| insert(tx, &entry(t, Some("a"), "call.view")))
                        .expect("insert");
                }
                let gone = store
                    .writer
                    .write_blocking(|tx| purge_older_than(tx, 3_000))
                    .expect("purge");
                assert_eq!(gone, 2);
                let left: Vec<i64> = all(store).iter().map(|r| r.entry.time_ms).collect();
                assert_eq!(
                    left,
                    [4_000, 3_000],
                    "the rows at and after the cutoff stay"
                );
            },
        );
    }

    #[test]
    fn collapsed_rows_add_their_counts_and_keep_their_first_entry() {
        each_backend("collapsed_rows_add_their_counts", |_, store| {
            for (t, n, key) in [(10, 3, "k1"), (20, 4, "k1"), (30, 1, "k2")] {
                let mut e = entry(t, None, "auth.refused");
                e.count = n;
                e.status = 401;
                store
                    .writer
                    .write_blocking(move |tx| add_collapsed(tx, key, &e))
                    .expect("add");
            }
            let rows = all(store);
            let got: Vec<(i64, i64)> = rows
                .iter()
                .map(|r| (r.entry.time_ms, r.entry.count))
                .collect();
            assert_eq!(got, [(30, 1), (10, 7)]);
            assert_eq!(rows[1].entry.actor, None);
        });
    }

    #[test]
    fn list_filters_and_pages_newest_first() {
        each_backend("list_filters_and_pages_newest_first", |_, store| {
            for (t, who, what) in [
                (100, "a", "call.view"),
                (200, "b", "call.view"),
                (300, "a", "recording.play"),
                (400, "a", "call.view"),
            ] {
                store
                    .writer
                    .write_blocking(move |tx| insert(tx, &entry(t, Some(who), what)))
                    .expect("insert");
            }
            let times = |f: Filter| -> Vec<i64> {
                store
                    .read_blocking(move |tx| list(tx, &f))
                    .expect("list")
                    .iter()
                    .map(|r| r.entry.time_ms)
                    .collect()
            };
            let f = |actor: Option<&str>, action: Option<&str>| Filter {
                actor: actor.map(Into::into),
                action: action.map(Into::into),
                limit: 10,
                ..Default::default()
            };
            assert_eq!(times(f(Some("a"), None)), [400, 300, 100]);
            assert_eq!(times(f(Some("a"), Some("call.view"))), [400, 100]);
            assert_eq!(times(f(None, Some("recording.play"))), [300]);
            let window = Filter {
                from_ms: Some(200),
                to_ms: Some(400),
                ..f(None, None)
            };
            assert_eq!(times(window), [300, 200], "from inclusive, to exclusive");
            let first = store
                .read_blocking(|tx| {
                    list(
                        tx,
                        &Filter {
                            limit: 2,
                            ..Default::default()
                        },
                    )
                })
                .expect("page");
            let next = Filter {
                before_id: Some(first[1].id),
                limit: 2,
                ..Default::default()
            };
            assert_eq!(times(next), [200, 100]);
        });
    }
}
