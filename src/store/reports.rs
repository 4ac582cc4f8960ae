//! Running the named report queries: the SQL text and its name come from
//! `reports::catalog` (the `reports/*.sql` files), the store prepares it,
//! binds its named parameters and hands back column names and rows of typed
//! [`Value`]s, one row at a time, so that the CSV, XLSX, HTML and JSON
//! writers of `reports` format rows without knowing the database.
//!
//! Reports run on a read connection (`Store::read` / `read_blocking`) and
//! only read: a billing export of millions of rows streams from the cursor
//! to its writer without being collected (ARCHITECTURE.md, "Limits").

use std::borrow::Cow;

use rusqlite::types::ValueRef;
use rusqlite::Connection;

use super::{Result, StoreError, Tx};

/// Rows written the same on both backends, for tests.
#[cfg(test)]
pub(crate) mod fixture;

/// One cell of a report row, as the database holds it.
#[derive(Debug, Clone, PartialEq)]
pub enum Value<'a> {
    Null,
    Integer(i64),
    Real(f64),
    /// Text; bytes that are not UTF-8 are replaced (U+FFFD).
    Text(Cow<'a, str>),
    Blob(&'a [u8]),
}

/// A value bound to a named parameter of a report query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Param {
    Integer(i64),
    Text(String),
}

/// Preparing a report query failed.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// The query uses a named parameter (`:name`) the caller does not supply.
    #[error("unknown parameter {0}")]
    UnknownParam(String),
    /// PostgreSQL reads a parameter as a type its value cannot be given as.
    #[error("parameter {name} is used as {ty}: cast it (`{name}::text`, `{name}::bigint`)")]
    ParamType { name: String, ty: String },
    /// The query would change the archive: reports only read.
    #[error("the query writes to the archive; a report may only read (SELECT or WITH … SELECT)")]
    NotReadOnly,
    /// The database refused the query (syntax, a missing table or column, …).
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Whether `sql` uses the named parameter `name` (`:devices`): outside
/// quotes and comments, as the parameters are bound.
pub fn uses_param(sql: &str, name: &str) -> bool {
    super::postgres::reports::number_params(sql)
        .1
        .iter()
        .any(|n| n == name)
}

/// Read access for running report queries; made from a read connection.
#[derive(Clone, Copy)]
pub struct ReportReader<'c> {
    tx: Tx<'c>,
}

impl<'c> From<&Tx<'c>> for ReportReader<'c> {
    fn from(tx: &Tx<'c>) -> Self {
        ReportReader { tx: *tx }
    }
}

/// For tests and benchmarks that open an archive file themselves.
impl<'c> From<&'c Connection> for ReportReader<'c> {
    fn from(conn: &'c Connection) -> Self {
        ReportReader { tx: Tx::new(conn) }
    }
}

impl<'c> ReportReader<'c> {
    /// True on PostgreSQL: the report's SQL must be in its dialect
    /// (`reports/postgres/`).
    pub fn is_postgres(&self) -> bool {
        self.tx.is_postgres()
    }

    /// Prepares `sql` with each of its named parameters bound to what
    /// `bind` gives for the name (`:from`, …).
    pub fn prepare(
        &self,
        sql: &str,
        bind: &dyn Fn(&str) -> Option<Param>,
    ) -> std::result::Result<ReportQuery<'c>, QueryError> {
        if let Some(pg) = self.tx.pg() {
            return Ok(ReportQuery {
                st: Query::Postgres(super::postgres::reports::prepare(pg, sql, bind)?),
            });
        }
        let mut st = self.tx.prepare(sql).map_err(StoreError::from)?;
        if !st.readonly() {
            return Err(QueryError::NotReadOnly);
        }
        for i in 1..=st.parameter_count() {
            let name = st.parameter_name(i).unwrap_or("?").to_string();
            let v = match bind(&name).ok_or(QueryError::UnknownParam(name))? {
                Param::Integer(n) => rusqlite::types::Value::Integer(n),
                Param::Text(s) => rusqlite::types::Value::Text(s),
            };
            st.raw_bind_parameter(i, v).map_err(StoreError::from)?;
        }
        Ok(ReportQuery {
            st: Query::Sqlite(st),
        })
    }
}

/// A prepared report query with its parameters bound.
pub struct ReportQuery<'c> {
    st: Query<'c>,
}

enum Query<'c> {
    Sqlite(rusqlite::Statement<'c>),
    Postgres(super::postgres::reports::PgQuery<'c>),
}

impl<'c> ReportQuery<'c> {
    /// The names of the result columns, in order.
    pub fn columns(&self) -> Vec<String> {
        match &self.st {
            Query::Sqlite(st) => st.column_names().into_iter().map(str::to_string).collect(),
            Query::Postgres(q) => q.columns(),
        }
    }

    /// Runs the query; the rows are read one at a time from the cursor (on
    /// PostgreSQL a server-side one, a batch at a time).
    pub fn rows(&mut self) -> ReportRows<'_, 'c> {
        ReportRows {
            rows: match &mut self.st {
                Query::Sqlite(st) => Rows::Sqlite(st.raw_query()),
                Query::Postgres(q) => Rows::Postgres(q.rows()),
            },
        }
    }
}

/// The rows of a running report query.
pub struct ReportRows<'s, 'c> {
    rows: Rows<'s, 'c>,
}

enum Rows<'s, 'c> {
    Sqlite(rusqlite::Rows<'s>),
    Postgres(super::postgres::reports::PgRows<'s, 'c>),
}

impl ReportRows<'_, '_> {
    /// The next row, or `None` after the last.
    pub fn next_row(&mut self) -> Result<Option<ReportRow<'_>>> {
        Ok(match &mut self.rows {
            Rows::Sqlite(rows) => rows.next()?.map(|row| ReportRow {
                row: Row::Sqlite(row),
            }),
            Rows::Postgres(rows) => rows.next_row()?.map(|row| ReportRow {
                row: Row::Postgres(row),
            }),
        })
    }
}

/// One row of a report; valid until the next call of [`ReportRows::next_row`].
pub struct ReportRow<'r> {
    row: Row<'r>,
}

enum Row<'r> {
    Sqlite(&'r rusqlite::Row<'r>),
    Postgres(&'r tokio_postgres::Row),
}

impl ReportRow<'_> {
    /// The cell of column `i` (0-based).
    pub fn get(&self, i: usize) -> Result<Value<'_>> {
        let row = match self.row {
            Row::Sqlite(row) => row,
            Row::Postgres(row) => return super::postgres::reports::cell(row, i),
        };
        Ok(match row.get_ref(i)? {
            ValueRef::Null => Value::Null,
            ValueRef::Integer(n) => Value::Integer(n),
            ValueRef::Real(f) => Value::Real(f),
            ValueRef::Text(t) => Value::Text(String::from_utf8_lossy(t)),
            ValueRef::Blob(b) => Value::Blob(b),
        })
    }
}

/// Runs `f` on an in-memory archive with the schema and `setup` applied
/// (the report writers' unit tests).
#[cfg(test)]
pub fn with_scratch_archive<T>(setup: &str, f: impl FnOnce(ReportReader<'_>) -> T) -> T {
    let mut conn = Connection::open_in_memory().expect("in-memory db");
    super::migrate::apply(&mut conn).expect("schema");
    conn.execute_batch(setup).expect("setup");
    f(ReportReader::from(&conn))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bind(name: &str) -> Option<Param> {
        match name {
            ":n" => Some(Param::Integer(7)),
            ":s" => Some(Param::Text("x".into())),
            _ => None,
        }
    }

    #[test]
    fn prepare_binds_named_params_and_rows_are_typed() {
        let conn = Connection::open_in_memory().expect("db");
        let db = ReportReader::from(&conn);
        let mut q = db
            .prepare(
                "SELECT :n AS n, :s AS s, 1.5 AS r, NULL AS z, x'00ff' AS b;",
                &bind,
            )
            .expect("prepared");
        assert_eq!(q.columns(), ["n", "s", "r", "z", "b"]);
        let mut rows = q.rows();
        let row = rows.next_row().expect("runs").expect("a row");
        let got: Vec<Value> = (0..5).map(|i| row.get(i).expect("cell")).collect();
        assert_eq!(
            got,
            [
                Value::Integer(7),
                Value::Text("x".into()),
                Value::Real(1.5),
                Value::Null,
                Value::Blob(&[0, 255]),
            ]
        );
        assert!(rows.next_row().expect("runs").is_none());
    }

    #[test]
    fn prepare_refuses_a_param_not_supplied() {
        let conn = Connection::open_in_memory().expect("db");
        let e = ReportReader::from(&conn)
            .prepare("SELECT :carrier;", &bind)
            .err()
            .expect("refused");
        assert!(matches!(e, QueryError::UnknownParam(p) if p == ":carrier"));
    }

    /// On PostgreSQL the rows come from a portal a batch at a time: a result
    /// of several batches arrives whole and in order, parameters bound.
    #[test]
    fn rows_stream_in_order_past_a_batch_on_both_backends() {
        crate::store::testing::each_backend("rows_stream_in_order", |_, store| {
            let got = store
                .read_blocking(|tx| {
                    let db = ReportReader::from(tx);
                    let mut q = db
                        .prepare(
                            "WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < 1300)
                             SELECT n, CAST(:n AS BIGINT) AS p, CAST(:s AS TEXT) AS t FROM s ORDER BY n",
                            &bind,
                        )
                        .map_err(|e| StoreError::Backend(e.to_string()))?;
                    assert_eq!(q.columns(), ["n", "p", "t"]);
                    let mut rows = q.rows();
                    let mut got = Vec::new();
                    while let Some(row) = rows.next_row()? {
                        assert_eq!(row.get(1)?, Value::Integer(7));
                        assert_eq!(row.get(2)?, Value::Text("x".into()));
                        match row.get(0)? {
                            Value::Integer(n) => got.push(n),
                            other => panic!("not an integer: {other:?}"),
                        }
                    }
                    Ok(got)
                })
                .expect("runs");
            assert_eq!(got, (1..=1300).collect::<Vec<i64>>());
        });
    }

    /// Each PostgreSQL type a report may give, as the cell SQLite would give.
    #[test]
    fn postgres_cells_are_typed_as_on_sqlite() {
        crate::store::testing::each_backend("postgres_cells_are_typed", |backend, store| {
            if backend != crate::store::testing::Backend::Postgres {
                return;
            }
            let got = store
                .read_blocking(|tx| {
                    let mut q = ReportReader::from(tx)
                        .prepare(
                            "SELECT 5::int8, 6::int4, 7::int2, true, 1.5::float8, 0.25::float4,
                                    -12.05::numeric, 'é'::text, 'v'::varchar, NULL, '\\x00ff'::bytea",
                            &bind,
                        )
                        .map_err(|e| StoreError::Backend(e.to_string()))?;
                    let cols = q.columns().len();
                    let mut rows = q.rows();
                    let row = rows.next_row()?.expect("a row");
                    let cells: Vec<String> = (0..cols)
                        .map(|i| row.get(i).map(|v| format!("{v:?}")))
                        .collect::<Result<_>>()?;
                    Ok(cells)
                })
                .expect("runs");
            assert_eq!(
                got,
                [
                    "Integer(5)",
                    "Integer(6)",
                    "Integer(7)",
                    "Integer(1)",
                    "Real(1.5)",
                    "Real(0.25)",
                    "Real(-12.05)",
                    "Text(\"é\")",
                    "Text(\"v\")",
                    "Null",
                    "Blob([0, 255])",
                ]
            );
            let refused = store.read_blocking(|tx| {
                Ok(ReportReader::from(tx)
                    .prepare("SELECT now()", &bind)
                    .and_then(|mut q| {
                        let mut rows = q.rows();
                        let row = rows.next_row()?.expect("a row");
                        row.get(0).map(|_| ()).map_err(QueryError::from)
                    })
                    .err()
                    .map(|e| e.to_string()))
            });
            let refused = refused.expect("runs").expect("a timestamp is refused");
            assert!(refused.contains("cast it to text"), "{refused}");
        });
    }

    #[test]
    fn text_that_is_not_utf8_is_replaced() {
        let conn = Connection::open_in_memory().expect("db");
        let mut q = ReportReader::from(&conn)
            .prepare("SELECT CAST(x'61ff' AS TEXT);", &bind)
            .expect("prepared");
        let mut rows = q.rows();
        let row = rows.next_row().expect("runs").expect("a row");
        assert_eq!(row.get(0).expect("cell"), Value::Text("a\u{FFFD}".into()));
    }
}
