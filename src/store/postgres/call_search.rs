//! `store::call_search` on PostgreSQL: the same filters, order and keyset
//! paging as the SQLite query, in PostgreSQL's words. The text columns
//! compare bytewise (`COLLATE "C"`, sql/postgres/004_calls_queues.sql), so
//! the order and the cursor are SQLite's; `ILIKE … ESCAPE ''` is SQLite's
//! `LIKE`: ASCII letters match either case (the "C" collation folds no
//! others) and no character escapes the `%` and `_` a user typed.

use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

use super::PgTx;
use crate::store::call_search::{
    CallFilter, CallRow, CallView, RawCall, CALL_COLS, HAS_CONVERSATION, HAS_RECORDING,
};
use crate::store::{Result, StoreError};

/// Rows read per statement: the CLI streams a whole range (`limit` is
/// `i64::MAX` there), so it is read in keyset pages, never held whole.
const PAGE_ROWS: i64 = 1_000;

pub fn search<E: From<StoreError>>(
    pg: &PgTx,
    f: &CallFilter,
    view: &CallView,
    each: &mut dyn FnMut(CallRow) -> std::result::Result<(), E>,
) -> std::result::Result<(), E> {
    // A negative LIMIT is no limit on SQLite.
    let mut left = if f.limit < 0 { i64::MAX } else { f.limit };
    let mut after = f.after.clone();
    while left > 0 {
        let want = left.min(PAGE_ROWS);
        let (sql, args) = page_sql(f, after.as_ref(), want);
        let params: Vec<&(dyn ToSql + Sync)> = args.iter().map(|a| a.as_ref()).collect();
        let rows = pg
            .query_dynamic(&sql, &params)
            .map_err(|e| E::from(StoreError::from(e)))?;
        let n = rows.len() as i64;
        for r in &rows {
            let row = call_row(r).map_err(E::from)?.shown(view);
            after = Some((row.start_local.clone(), row.id.clone()));
            each(row)?;
        }
        if n < want {
            break;
        }
        left -= n;
    }
    Ok(())
}

/// The statement of one page of `f`: at most `limit` rows after `after`.
fn page_sql(
    f: &CallFilter,
    after: Option<&(String, String)>,
    limit: i64,
) -> (String, Vec<Box<dyn ToSql + Sync>>) {
    let (mut sql, mut args) = where_sql(f);
    sql.insert_str(0, &format!("SELECT {CALL_COLS} FROM calls WHERE "));
    if let Some((s, id)) = after {
        args.push(Box::new(s.clone()));
        let a = args.len();
        args.push(Box::new(id.clone()));
        let b = args.len();
        // SQLite's `start_local > a OR (start_local = a AND id > b)` as a
        // row comparison (both columns are NOT NULL: the same rows), which
        // PostgreSQL seeks to in `calls_start_id` instead of filtering every
        // row of the range before the cursor: the CLI reads a long range
        // page by page.
        sql.push_str(&format!(" AND (start_local, id) > (${a}, ${b})"));
    }
    args.push(Box::new(limit));
    sql.push_str(&format!(" ORDER BY start_local, id LIMIT ${}", args.len()));
    (sql, args)
}

/// How many calls match `f` (cursor and limit aside), up to `cap`.
pub fn count(pg: &PgTx, f: &CallFilter, cap: i64) -> Result<i64> {
    let (wh, mut args) = where_sql(f);
    args.push(Box::new(cap));
    let sql = format!(
        "SELECT COUNT(*) FROM (SELECT 1 FROM calls WHERE {wh} LIMIT ${}) AS matching",
        args.len()
    );
    let params: Vec<&(dyn ToSql + Sync)> = args.iter().map(|a| a.as_ref()).collect();
    Ok(pg.query_dynamic(&sql, &params)?[0].try_get(0)?)
}

/// The WHERE clause of `f` (without `WHERE`, without the cursor) and its values.
fn where_sql(f: &CallFilter) -> (String, Vec<Box<dyn ToSql + Sync>>) {
    let mut sql = "start_local >= $1 AND start_local < $2".to_string();
    let mut args: Vec<Box<dyn ToSql + Sync>> =
        vec![Box::new(f.from.clone()), Box::new(f.to.clone())];
    // Each condition binds its value as the next numbered parameter.
    let mut cond = |clause: &str, v: Box<dyn ToSql + Sync>| {
        args.push(v);
        sql.push_str(&clause.replace("$N", &format!("${}", args.len())));
    };
    if let Some(n) = &f.number {
        cond(
            " AND (caller ILIKE $N ESCAPE '' OR callee ILIKE $N ESCAPE '' OR extensions ILIKE $N ESCAPE '')",
            Box::new(format!("%{n}%")),
        );
    }
    if let Some(e) = &f.ext {
        cond(
            " AND extensions ILIKE $N ESCAPE ''",
            Box::new(format!("%\"{e}\"%")),
        );
    }
    if let Some(d) = &f.direction {
        cond(" AND direction = $N", Box::new(d.clone()));
    }
    if let Some(a) = f.answered {
        cond(" AND answered = $N", Box::new(a as i64));
    }
    if let Some(ms) = f.settled_before_ms {
        cond(" AND last_change_ms <= $N", Box::new(ms));
    }
    if !f.devices.is_empty() {
        cond(
            &format!(" AND {}", crate::store::scope::pg_clause("device", "$N")),
            Box::new(f.devices.clone()),
        );
    }
    if let Some(has) = f.has_recording {
        sql.push_str(if has { " AND " } else { " AND NOT " });
        sql.push_str(HAS_RECORDING);
    }
    let figures = f.conversation.conditions();
    if !figures.is_empty() {
        sql.push_str(" AND ");
        sql.push_str(HAS_CONVERSATION);
        for (c, v) in figures {
            args.push(Box::new(v));
            sql.push_str(" AND ");
            sql.push_str(&c.replace("{}", &format!("${}", args.len())));
        }
        sql.push(')');
    }
    (sql, args)
}

/// Reads a `CALL_COLS` row (the 0/1 columns are BIGINT, as on SQLite).
pub(super) fn call_row(r: &Row) -> Result<RawCall> {
    Ok(RawCall {
        id: r.try_get(0)?,
        device: r.try_get(1)?,
        direction: r.try_get(2)?,
        forwarded_out: r.try_get::<_, i64>(3)? != 0,
        caller: r.try_get(4)?,
        callee: r.try_get(5)?,
        extensions: r.try_get(6)?,
        answered_by: r.try_get(7)?,
        trunk: r.try_get(8)?,
        route: r.try_get(9)?,
        start_local: r.try_get(10)?,
        end_local: r.try_get(11)?,
        talk_seconds: r.try_get(12)?,
        billable_seconds: r.try_get(13)?,
        answered: r.try_get::<_, i64>(14)? != 0,
        leg_count: r.try_get(15)?,
        last_change_ms: r.try_get(16)?,
        recording: r.try_get(17)?,
    })
}
