//! Reading what an archive stored with plain SQL, on SQLite or on
//! PostgreSQL alike, for the integration tests whose assertions must hold
//! on both backends (`util::backends`).

#![allow(dead_code)]

use std::path::PathBuf;

/// One value of a row read with [`Reader`], the same on both backends
/// (SQLite's storage classes; PostgreSQL's integer types are `Int`, its
/// text types `Text`, `bytea` `Blob`, booleans 0/1).
#[derive(Debug, Clone, PartialEq)]
pub enum Val {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

impl Val {
    pub fn int(&self) -> i64 {
        match self {
            Val::Int(i) => *i,
            v => panic!("not an integer: {v:?}"),
        }
    }

    pub fn real(&self) -> f64 {
        match self {
            Val::Real(r) => *r,
            Val::Int(i) => *i as f64,
            v => panic!("not a number: {v:?}"),
        }
    }

    pub fn text(&self) -> &str {
        match self {
            Val::Text(s) => s,
            v => panic!("not text: {v:?}"),
        }
    }

    /// The text, or `None` for NULL.
    pub fn opt_text(&self) -> Option<&str> {
        match self {
            Val::Null => None,
            v => Some(v.text()),
        }
    }

    pub fn blob(&self) -> &[u8] {
        match self {
            Val::Blob(b) => b,
            v => panic!("not a blob: {v:?}"),
        }
    }
}

/// Reads an archive with plain SQL on either backend: for assertions on
/// what was stored that must hold on SQLite and on PostgreSQL alike (the
/// schemas have the same tables and columns, ARCHITECTURE.md "Two backends
/// behind one handle"). Test SQL only: the application reads through the
/// store's functions.
#[derive(Clone, Debug)]
pub enum Reader {
    /// The SQLite archive file.
    Sqlite(PathBuf),
    /// The PostgreSQL database URL.
    Postgres(String),
}

impl Reader {
    pub fn rows(&self, sql: &str) -> Vec<Vec<Val>> {
        match self {
            Reader::Sqlite(path) => sqlite_rows(path, sql),
            Reader::Postgres(url) => pg_rows(url, sql),
        }
    }

    pub fn count(&self, sql: &str) -> i64 {
        let rows = self.rows(sql);
        assert_eq!(rows.len(), 1, "{sql}: {rows:?}");
        rows[0][0].int()
    }

    /// Each row as one line of its values' debug text: for comparing
    /// derived tables exactly (live vs rebuild).
    pub fn rows_as_text(&self, sql: &str) -> Vec<String> {
        self.rows(sql)
            .iter()
            .map(|r| r.iter().map(|v| format!("{v:?}|")).collect())
            .collect()
    }
}

fn sqlite_rows(path: &std::path::Path, sql: &str) -> Vec<Vec<Val>> {
    use rusqlite::types::ValueRef;
    let c = rusqlite::Connection::open(path).expect("open archive");
    let mut st = c.prepare(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
    let n = st.column_count();
    st.query_map([], |r| {
        (0..n)
            .map(|i| {
                Ok(match r.get_ref(i)? {
                    ValueRef::Null => Val::Null,
                    ValueRef::Integer(i) => Val::Int(i),
                    ValueRef::Real(f) => Val::Real(f),
                    ValueRef::Text(t) => Val::Text(String::from_utf8_lossy(t).into_owned()),
                    ValueRef::Blob(b) => Val::Blob(b.to_vec()),
                })
            })
            .collect()
    })
    .unwrap_or_else(|e| panic!("{sql}: {e}"))
    .map(|r| r.unwrap_or_else(|e| panic!("{sql}: {e}")))
    .collect()
}

/// `sql` on the PostgreSQL database at `url`, on a thread of its own (the
/// caller may be inside a runtime, or polling from a blocking closure).
fn pg_rows(url: &str, sql: &str) -> Vec<Vec<Val>> {
    let (url, sql) = (url.to_string(), sql.to_string());
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                .await
                .expect("connect to the test database");
            let task = tokio::spawn(conn);
            let rows = client
                .query(sql.as_str(), &[])
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e:?}"));
            drop(client);
            let _ = task.await;
            rows.iter()
                .map(|r| (0..r.len()).map(|i| pg_val(r, i, &sql)).collect())
                .collect()
        })
    })
    .join()
    .unwrap_or_else(|e| std::panic::resume_unwind(e))
}

fn pg_val(r: &tokio_postgres::Row, i: usize, sql: &str) -> Val {
    use tokio_postgres::types::Type;
    let ty = r.columns()[i].type_().clone();
    let v = match ty {
        Type::INT2 => r.get::<_, Option<i16>>(i).map(|v| Val::Int(v.into())),
        Type::INT4 => r.get::<_, Option<i32>>(i).map(|v| Val::Int(v.into())),
        Type::INT8 => r.get::<_, Option<i64>>(i).map(Val::Int),
        Type::BOOL => r.get::<_, Option<bool>>(i).map(|v| Val::Int(v.into())),
        Type::FLOAT4 => r.get::<_, Option<f32>>(i).map(|v| Val::Real(v.into())),
        Type::FLOAT8 => r.get::<_, Option<f64>>(i).map(Val::Real),
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME => {
            r.get::<_, Option<String>>(i).map(Val::Text)
        }
        Type::BYTEA => r.get::<_, Option<Vec<u8>>>(i).map(Val::Blob),
        other => panic!(
            "{sql}: column {i} is {other}; cast it to a type both backends share (BIGINT, TEXT, …)"
        ),
    };
    v.unwrap_or(Val::Null)
}
