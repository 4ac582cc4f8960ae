//! Copying a SQLite archive into a PostgreSQL one (`callvault
//! migrate-store`): every table, in batches, resumable, counted and
//! checked at the end. The SQLite file is only read.
//!
//! The two schemas have the same tables and columns (sql/sqlite,
//! sql/postgres), so each table's columns are taken from PostgreSQL's
//! catalog and read by the same names from SQLite; the few columns that
//! exist only on PostgreSQL (the partition keys, the dedup key table
//! `leg_ids`, the `derive_pending` queue) are computed from SQLite's rows
//! ([`TABLES`]). Rows go over with `COPY … FROM STDIN (FORMAT csv)`, a batch
//! per transaction together with the table's progress, so an interrupted
//! copy goes on where it stopped; identity sequences are moved past the
//! copied ids at the end, so rows written later get new ids.

use rusqlite::types::ValueRef;

use super::postgres::PgTx;
use super::{Result, Store, StoreError, Tx};

/// Rows per batch (one transaction each).
const BATCH: i64 = 5_000;

/// How a table is walked.
#[derive(Clone, Copy)]
enum Walk {
    /// By an integer key, `BATCH` rows at a time, resumable after the last
    /// key copied.
    Key(&'static str),
    /// By ranges of a non-unique integer key (rows sharing a key stay in
    /// one batch).
    Range(&'static str),
    /// All at once (small or derived tables): emptied and copied again
    /// when an earlier run stopped before its end.
    Whole,
}

struct Table {
    /// The PostgreSQL table.
    name: &'static str,
    /// What to read on SQLite: a table, or a sub-select named `src`.
    from: &'static str,
    /// SQLite expressions for columns that are not read by their name.
    computed: &'static [(&'static str, &'static str)],
    walk: Walk,
}

/// The receive time of a leg's push (the partition key of `legs`).
const LEG_RECEIVED_AT: &str = "(SELECT p.received_at FROM pushes p WHERE p.id = legs.push_id)";

/// In dependency order (a table after those its rows point at).
const TABLES: &[Table] = &[
    Table {
        name: "devices",
        from: "devices",
        computed: &[],
        walk: Walk::Whole,
    },
    Table {
        name: "devices_version",
        from: "devices_version",
        computed: &[],
        walk: Walk::Whole,
    },
    Table {
        name: "auth_nonces",
        from: "auth_nonces",
        computed: &[],
        walk: Walk::Whole,
    },
    Table {
        name: "tokens",
        from: "tokens",
        computed: &[],
        walk: Walk::Key("id"),
    },
    // Web sessions (an id's hash and its token): signed-in pages stay
    // signed in across the move.
    Table {
        name: "sessions",
        from: "sessions",
        computed: &[],
        walk: Walk::Whole,
    },
    Table {
        name: "pushes",
        from: "pushes",
        computed: &[],
        walk: Walk::Key("id"),
    },
    Table {
        name: "leg_ids",
        from: "legs",
        computed: &[("received_at", LEG_RECEIVED_AT)],
        walk: Walk::Key("id"),
    },
    Table {
        name: "legs",
        from: "legs",
        computed: &[("received_at", LEG_RECEIVED_AT)],
        walk: Walk::Key("id"),
    },
    Table {
        name: "leg_conflicts",
        from: "leg_conflicts",
        computed: &[],
        walk: Walk::Key("id"),
    },
    Table {
        name: "events",
        from: "events",
        computed: &[("received_ts", "received_at")],
        walk: Walk::Key("id"),
    },
    Table {
        name: "event_parties",
        from: "event_parties",
        computed: &[],
        walk: Walk::Range("event_id"),
    },
    // Pushes committed but not derived yet: after the cursor, or released
    // held pushes waiting in the queue.
    Table {
        name: "derive_pending",
        from: "(SELECT id AS push_id, received_at, received_ms FROM pushes
                WHERE outcome = 'stored' AND id > (SELECT push_id FROM derive_cursor)) AS src",
        computed: &[],
        walk: Walk::Whole,
    },
    Table {
        name: "derive_queue",
        from: "derive_queue",
        computed: &[],
        walk: Walk::Whole,
    },
    Table {
        name: "calls",
        from: "calls",
        computed: &[],
        walk: Walk::Key("seq"),
    },
    Table {
        name: "call_legs",
        from: "call_legs",
        computed: &[],
        walk: Walk::Key("leg_id"),
    },
    Table {
        name: "leg_keys",
        from: "leg_keys",
        computed: &[],
        walk: Walk::Whole,
    },
    Table {
        name: "queue_visits",
        from: "queue_visits",
        computed: &[],
        walk: Walk::Key("rowid"),
    },
    // A fetch the single box had under way is nobody's claim now: its
    // lease is long stale, so the first collector's worker takes it back.
    Table {
        name: "recordings",
        from: "recordings",
        computed: &[
            ("claimed_by", "NULL"),
            ("lease_until_ms", "CASE WHEN status = 'fetching' THEN 0 END"),
        ],
        walk: Walk::Key("id"),
    },
    // Conversation figures, by the recording they were computed from.
    Table {
        name: "conversations",
        from: "conversations",
        computed: &[],
        walk: Walk::Key("recording_id"),
    },
    // Append-only: copied by id, so an interrupted copy goes on after the
    // last row it took (docs/operations.md "Audit log").
    Table {
        name: "audit_log",
        from: "audit_log",
        computed: &[],
        walk: Walk::Key("id"),
    },
    // Where the retention purge's walk over pushes stopped
    // (docs/operations.md "Retention"): the ids are copied as they are.
    Table {
        name: "retention_marks",
        from: "retention_marks",
        computed: &[],
        walk: Walk::Whole,
    },
];

/// What the copy of one table did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Copied {
    pub table: String,
    /// Rows copied by this run.
    pub rows: u64,
    /// Rows in the table on each side at the end (they must be equal).
    pub source_rows: i64,
    pub target_rows: i64,
}

/// Progress: (table, rows copied so far in this run, rows in the source).
pub type Progress<'p> = dyn FnMut(&str, u64, u64) + 'p;

/// Copies the SQLite archive `source` (opened read-only) into the
/// PostgreSQL archive `target`. Refuses a target that holds rows of its
/// own (not from an earlier, interrupted copy). Returns each table's
/// counts; an `Err` when a count differs at the end.
pub fn sqlite_to_postgres(
    source: &std::path::Path,
    target: &Store,
    progress: &mut Progress,
) -> Result<Vec<Copied>> {
    if !target.is_postgres() {
        return Err(StoreError::Backend(
            "migrate-store copies into a PostgreSQL archive".into(),
        ));
    }
    let src = rusqlite::Connection::open_with_flags(
        source,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    super::wait_for_locks(&src, super::BUSY_TIMEOUT)?;
    target.writer.write_blocking(|tx| start(pg(tx)?))?;
    let mut out = Vec::new();
    for t in TABLES {
        let cols = target.read_blocking(|tx| columns(pg(tx)?, t.name))?;
        let select = select_list(t, &cols);
        let total: i64 = src.query_row(&format!("SELECT COUNT(*) FROM {}", t.from), [], |r| {
            r.get(0)
        })?;
        let rows = copy_table(&src, target, t, &cols, &select, total, progress)?;
        let target_rows = target.read_blocking(|tx| {
            Ok(pg(tx)?
                .query_one(&format!("SELECT COUNT(*) FROM {}", t.name), &[])?
                .get::<_, i64>(0))
        })?;
        out.push(Copied {
            table: t.name.into(),
            rows,
            source_rows: total,
            target_rows,
        });
    }
    target.writer.write_blocking(|tx| finish(pg(tx)?))?;
    if let Some(c) = out.iter().find(|c| c.source_rows != c.target_rows) {
        return Err(StoreError::Corrupt(format!(
            "table {}: {} rows in the SQLite archive, {} in PostgreSQL after the copy",
            c.table, c.source_rows, c.target_rows
        )));
    }
    Ok(out)
}

fn pg<'a>(tx: &Tx<'a>) -> Result<&'a PgTx<'a>> {
    tx.pg()
        .ok_or_else(|| StoreError::Backend("not a PostgreSQL archive".into()))
}

/// Makes the progress table; refuses a target with rows of its own.
fn start(pg: &PgTx) -> Result<()> {
    let resumed: bool = pg
        .query_one("SELECT to_regclass('copy_progress') IS NOT NULL", &[])?
        .get(0);
    if !resumed {
        let has_rows: bool = pg
            .query_one("SELECT EXISTS (SELECT 1 FROM pushes)", &[])?
            .get(0);
        if has_rows {
            return Err(StoreError::Backend(
                "the PostgreSQL archive already holds pushes that were not copied by \
                 migrate-store: copy into an empty database"
                    .into(),
            ));
        }
    }
    pg.batch_execute(
        "CREATE TABLE IF NOT EXISTS copy_progress (
             tbl       TEXT PRIMARY KEY,
             last_key  BIGINT NOT NULL,
             done      BOOLEAN NOT NULL
         )",
    )?;
    Ok(())
}

/// Moves every identity sequence past the ids copied, and gathers the
/// planner's statistics: right after a bulk copy there are none until
/// autovacuum comes round, and without them a report over a million calls
/// picked a plan that walked every leg per call (minutes instead of
/// seconds).
fn finish(pg: &PgTx) -> Result<()> {
    pg.batch_execute("ANALYZE")?;
    let identities = pg.query(
        "SELECT c.table_name::TEXT, c.column_name::TEXT FROM information_schema.columns c
         JOIN pg_class k ON k.relname = c.table_name AND NOT k.relispartition
         WHERE c.table_schema = current_schema() AND c.is_identity = 'YES'",
        &[],
    )?;
    for r in identities {
        let (table, column): (String, String) = (r.get(0), r.get(1));
        // Names come from the catalog, not from input.
        pg.query_dynamic(
            &format!(
                "SELECT setval(pg_get_serial_sequence('{table}', '{column}'),
                        GREATEST((SELECT MAX({column}) FROM {table}), 1))"
            ),
            &[],
        )?;
    }
    Ok(())
}

/// The table's columns, in order.
fn columns(pg: &PgTx, table: &str) -> Result<Vec<String>> {
    let cols: Vec<String> = pg
        .query(
            "SELECT column_name::TEXT FROM information_schema.columns
             WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position",
            &[&table],
        )?
        .iter()
        .map(|r| r.get(0))
        .collect();
    if cols.is_empty() {
        return Err(StoreError::Backend(format!(
            "the PostgreSQL archive has no table {table}"
        )));
    }
    Ok(cols)
}

fn select_list(t: &Table, cols: &[String]) -> String {
    cols.iter()
        .map(|c| match t.computed.iter().find(|(name, _)| name == c) {
            Some((_, expr)) => expr.to_string(),
            None => c.clone(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn copy_table(
    src: &rusqlite::Connection,
    target: &Store,
    t: &Table,
    cols: &[String],
    select: &str,
    total: i64,
    progress: &mut Progress,
) -> Result<u64> {
    let copy_sql = format!(
        "COPY {} ({}) FROM STDIN (FORMAT csv)",
        t.name,
        cols.join(", ")
    );
    let name = t.name;
    let (mut last, done) = target.read_blocking(|tx| {
        Ok(pg(tx)?
            .query_opt(
                "SELECT last_key, done FROM copy_progress WHERE tbl = $1",
                &[&name],
            )?
            .map_or((i64::MIN, false), |r| (r.get(0), r.get(1))))
    })?;
    if done {
        progress(name, total as u64, total as u64);
        return Ok(0);
    }
    let mut copied = 0u64;
    loop {
        let (sql, params): (String, Vec<i64>) = match t.walk {
            Walk::Key(k) => (
                format!(
                    "SELECT {select}, {k} FROM {} WHERE {k} > ?1 ORDER BY {k} LIMIT ?2",
                    t.from
                ),
                vec![last, BATCH],
            ),
            Walk::Range(k) => {
                let start = if last == i64::MIN {
                    src.query_row(
                        &format!("SELECT COALESCE(MIN({k}), 0) - 1 FROM {}", t.from),
                        [],
                        |r| r.get(0),
                    )?
                } else {
                    last
                };
                (
                    format!(
                        "SELECT {select}, {k} FROM {} WHERE {k} > ?1 AND {k} <= ?2 ORDER BY {k}",
                        t.from
                    ),
                    vec![start, start.saturating_add(BATCH)],
                )
            }
            Walk::Whole => (format!("SELECT {select}, 0 FROM {}", t.from), vec![]),
        };
        let (csv, n, key) = read_batch(src, &sql, &params, cols.len())?;
        let next = match t.walk {
            Walk::Range(_) => params[1],
            _ => key.unwrap_or(last),
        };
        let range_left = match t.walk {
            Walk::Range(k) => src.query_row(
                &format!("SELECT EXISTS (SELECT 1 FROM {} WHERE {k} > ?1)", t.from),
                [next],
                |r| r.get::<_, bool>(0),
            )?,
            _ => false,
        };
        let finished = match t.walk {
            Walk::Key(_) => n < BATCH as u64,
            Walk::Range(_) => !range_left,
            Walk::Whole => true,
        };
        let copy_sql = copy_sql.clone();
        let whole = matches!(t.walk, Walk::Whole);
        target.writer.write_blocking(move |tx| {
            let pg = pg(tx)?;
            if whole {
                pg.batch_execute(&format!("DELETE FROM {name}"))?;
            }
            if n > 0 {
                pg.copy_in_csv(&copy_sql, csv)?;
            }
            pg.execute(
                "INSERT INTO copy_progress (tbl, last_key, done) VALUES ($1, $2, $3)
                 ON CONFLICT (tbl) DO UPDATE SET last_key = EXCLUDED.last_key, done = EXCLUDED.done",
                &[&name, &next, &finished],
            )?;
            Ok(())
        })?;
        copied += n;
        last = next;
        progress(name, copied, total as u64);
        if finished {
            return Ok(copied);
        }
    }
}

/// Reads one batch as CSV (the last column is the walk key, not sent);
/// returns the CSV, its rows and the last key.
fn read_batch(
    src: &rusqlite::Connection,
    sql: &str,
    params: &[i64],
    ncols: usize,
) -> Result<(Vec<u8>, u64, Option<i64>)> {
    let mut st = src.prepare(sql)?;
    let mut rows = st.query(rusqlite::params_from_iter(params.iter()))?;
    let (mut csv, mut n, mut key) = (Vec::new(), 0u64, None);
    while let Some(r) = rows.next()? {
        for i in 0..ncols {
            if i > 0 {
                csv.push(b',');
            }
            csv_field(&mut csv, r.get_ref(i)?);
        }
        csv.push(b'\n');
        key = Some(r.get::<_, i64>(ncols)?);
        n += 1;
    }
    Ok((csv, n, key))
}

/// One CSV field as PostgreSQL's COPY reads it: NULL is an unquoted empty
/// field, every value is quoted (so an empty text stays an empty text),
/// bytes in bytea's hex form.
fn csv_field(out: &mut Vec<u8>, v: ValueRef) {
    let quoted = |out: &mut Vec<u8>, bytes: &[u8]| {
        out.push(b'"');
        for &b in bytes {
            if b == b'"' {
                out.push(b'"');
            }
            out.push(b);
        }
        out.push(b'"');
    };
    match v {
        ValueRef::Null => {}
        ValueRef::Integer(i) => out.extend_from_slice(i.to_string().as_bytes()),
        ValueRef::Real(f) => out.extend_from_slice(format!("{f:?}").as_bytes()),
        ValueRef::Text(t) => quoted(out, t),
        ValueRef::Blob(b) => {
            out.extend_from_slice(b"\"\\x");
            out.extend_from_slice(hex::encode(b).as_bytes());
            out.push(b'"');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_keep_null_empty_quotes_and_bytes_apart() {
        let mut out = Vec::new();
        for v in [
            ValueRef::Null,
            ValueRef::Text(b""),
            ValueRef::Text(b"a \"b\", c\nd"),
            ValueRef::Integer(-7),
            ValueRef::Real(0.5),
            ValueRef::Blob(&[0, 255]),
        ] {
            csv_field(&mut out, v);
            out.push(b',');
        }
        assert_eq!(
            String::from_utf8(out).unwrap(),
            ",\"\",\"a \"\"b\"\", c\nd\",-7,0.5,\"\\x00ff\","
        );
    }
}
