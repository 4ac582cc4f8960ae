//! `store::reports` on PostgreSQL: a report query (`reports/postgres/*.sql`)
//! with its named parameters bound, its rows read from a portal (a
//! server-side cursor) a batch at a time, and each cell turned into the
//! same typed [`Value`] as on SQLite (ARCHITECTURE.md "src/reports/").

use std::collections::VecDeque;

use tokio_postgres::types::{FromSql, ToSql, Type};
use tokio_postgres::{Portal, Row, RowStream, Statement};

use super::PgTx;
use crate::store::reports::{Param, QueryError, Value};
use crate::store::{Result, StoreError};

/// Rows fetched from the portal at a time: memory stays at two batches
/// (the one being read and the next, asked for before it) whatever the
/// report's size (a few MB for the widest built-in report). Each batch is
/// a round trip to the server: with 512 a 1 M-row billing export spent
/// more time waiting for batches than the server spent running the query.
const BATCH: i32 = 4096;

type Boxed = Box<dyn ToSql + Sync + Send>;

/// A prepared report query with its parameters.
pub struct PgQuery<'c> {
    pg: &'c PgTx<'c>,
    st: Statement,
    params: Vec<Boxed>,
}

/// `sql` with each `:name` replaced by `$n` (the same name, the same `n`),
/// and the names in order of their numbers. Quoted text, quoted names,
/// comments and `::` casts are left as they are.
pub fn number_params(sql: &str) -> (String, Vec<String>) {
    let b = sql.as_bytes();
    let mut out = String::with_capacity(sql.len());
    let mut names: Vec<String> = Vec::new();
    let mut i = 0;
    let mut copied = 0;
    let ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    while i < b.len() {
        match b[i] {
            q @ (b'\'' | b'"') => {
                i += 1;
                while i < b.len() && b[i] != q {
                    i += 1;
                }
                i += 1;
            }
            b'-' if b.get(i + 1) == Some(&b'-') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i < b.len() && !(b[i] == b'*' && b.get(i + 1) == Some(&b'/')) {
                    i += 1;
                }
                i += 2;
            }
            b':' if b.get(i + 1) == Some(&b':') => i += 2,
            b':' if b
                .get(i + 1)
                .is_some_and(|c| c.is_ascii_alphabetic() || *c == b'_') =>
            {
                let start = i;
                i += 1;
                while i < b.len() && ident(b[i]) {
                    i += 1;
                }
                let name = &sql[start..i];
                let n = match names.iter().position(|x| x == name) {
                    Some(p) => p + 1,
                    None => {
                        names.push(name.to_string());
                        names.len()
                    }
                };
                out.push_str(&sql[copied..start]);
                out.push('$');
                out.push_str(&n.to_string());
                copied = i;
            }
            _ => i += 1,
        }
    }
    out.push_str(&sql[copied.min(sql.len())..]);
    (out, names)
}

/// The server's own words for a refused report query (its message, detail
/// and position), which whoever wrote the query needs to fix it.
fn explained(e: super::PgError) -> StoreError {
    match &e {
        super::PgError::Db(db) => match db.as_db_error() {
            // Reports run in read-only transactions: a statement that
            // writes is refused by the server when it runs.
            Some(d) if d.code() == &tokio_postgres::error::SqlState::READ_ONLY_SQL_TRANSACTION => {
                StoreError::NotReadOnly(format!("PostgreSQL: {d}"))
            }
            Some(d) => StoreError::Backend(format!("PostgreSQL: {d}")),
            None => e.into(),
        },
        _ => e.into(),
    }
}

/// The value of `p` as the type PostgreSQL inferred for its placeholder.
fn as_type(name: &str, p: Param, ty: &Type) -> std::result::Result<Boxed, QueryError> {
    let wrong = || QueryError::ParamType {
        name: name.to_string(),
        ty: ty.name().to_string(),
    };
    Ok(match (p, ty) {
        (Param::Integer(n), &Type::INT8) => Box::new(n),
        (Param::Integer(n), &Type::INT4) => Box::new(i32::try_from(n).map_err(|_| wrong())?),
        (Param::Integer(n), &Type::INT2) => Box::new(i16::try_from(n).map_err(|_| wrong())?),
        (Param::Integer(n), &Type::FLOAT8) => Box::new(n as f64),
        (Param::Integer(n), &Type::TEXT | &Type::VARCHAR) => Box::new(n.to_string()),
        (Param::Text(s), &Type::TEXT | &Type::VARCHAR | &Type::BPCHAR | &Type::NAME) => Box::new(s),
        _ => return Err(wrong()),
    })
}

/// Prepares `sql` with each named parameter bound to what `bind` gives.
pub fn prepare<'c>(
    pg: &'c PgTx<'c>,
    sql: &str,
    bind: &dyn Fn(&str) -> Option<Param>,
) -> std::result::Result<PgQuery<'c>, QueryError> {
    let (numbered, names) = number_params(sql);
    let values = names
        .iter()
        .map(|n| bind(n).ok_or_else(|| QueryError::UnknownParam(n.clone())))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let st = pg.prepare(&numbered).map_err(explained)?;
    let params = names
        .iter()
        .zip(values)
        .zip(st.params())
        .map(|((n, v), ty)| as_type(n, v, ty))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    Ok(PgQuery { pg, st, params })
}

impl<'c> PgQuery<'c> {
    pub fn columns(&self) -> Vec<String> {
        self.st
            .columns()
            .iter()
            .map(|c| c.name().to_string())
            .collect()
    }

    pub fn rows(&mut self) -> PgRows<'_, 'c> {
        PgRows {
            q: self,
            portal: None,
            coming: None,
            batch: VecDeque::new(),
            current: None,
            done: false,
        }
    }
}

/// The rows of a running query, read from its portal a batch at a time.
/// The next batch is asked for as soon as one arrives, so the server
/// makes it while the caller writes out this one (a CSV export, a
/// workbook): the two work side by side instead of in turn.
pub struct PgRows<'s, 'c> {
    q: &'s PgQuery<'c>,
    portal: Option<Portal>,
    /// The batch asked for and not yet read.
    coming: Option<RowStream>,
    batch: VecDeque<Row>,
    current: Option<Row>,
    done: bool,
}

impl PgRows<'_, '_> {
    pub fn next_row(&mut self) -> Result<Option<&Row>> {
        if self.batch.is_empty() && !self.done {
            let portal = match &self.portal {
                Some(p) => p.clone(),
                None => {
                    let params: Vec<&(dyn ToSql + Sync)> = self
                        .q
                        .params
                        .iter()
                        .map(|p| &**p as &(dyn ToSql + Sync))
                        .collect();
                    let p = self.q.pg.bind(&self.q.st, &params).map_err(explained)?;
                    self.portal = Some(p.clone());
                    p
                }
            };
            let coming = match self.coming.take() {
                Some(c) => c,
                None => self
                    .q
                    .pg
                    .request_portal(&portal, BATCH)
                    .map_err(explained)?,
            };
            let rows = PgTx::rows_of(coming).map_err(explained)?;
            self.done = rows.len() < usize::try_from(BATCH).unwrap_or(0);
            if !self.done {
                self.coming = Some(
                    self.q
                        .pg
                        .request_portal(&portal, BATCH)
                        .map_err(explained)?,
                );
            }
            self.batch.extend(rows);
        }
        self.current = self.batch.pop_front();
        Ok(self.current.as_ref())
    }
}

/// A cell's bytes as the server sent them (binary format), any type.
struct Raw<'a>(Option<&'a [u8]>);

impl<'a> FromSql<'a> for Raw<'a> {
    fn from_sql(
        _: &Type,
        raw: &'a [u8],
    ) -> std::result::Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Raw(Some(raw)))
    }

    fn from_sql_null(
        _: &Type,
    ) -> std::result::Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Raw(None))
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

/// The cell of column `i` as a [`Value`]: integers (bigint, integer,
/// smallint, boolean as 0/1) → Integer, double precision, real and numeric
/// → Real, text → Text, bytea → Blob, NULL → Null.
pub fn cell(row: &Row, i: usize) -> Result<Value<'_>> {
    let ty = row
        .columns()
        .get(i)
        .map(|c| c.type_().clone())
        .ok_or_else(|| StoreError::Backend(format!("report has no column {i}")))?;
    let Raw(raw) = row.try_get::<_, Raw>(i)?;
    let Some(raw) = raw else {
        return Ok(Value::Null);
    };
    let bad = || {
        StoreError::Corrupt(format!(
            "report column {i}: a {} value is malformed",
            ty.name()
        ))
    };
    let fixed = |n: usize| -> Result<&[u8]> { (raw.len() == n).then_some(raw).ok_or_else(bad) };
    Ok(match ty {
        Type::INT8 => Value::Integer(i64::from_be_bytes(fixed(8)?.try_into().map_err(|_| bad())?)),
        Type::INT4 => {
            Value::Integer(i32::from_be_bytes(fixed(4)?.try_into().map_err(|_| bad())?).into())
        }
        Type::INT2 => {
            Value::Integer(i16::from_be_bytes(fixed(2)?.try_into().map_err(|_| bad())?).into())
        }
        Type::BOOL => Value::Integer(i64::from(fixed(1)?[0] != 0)),
        Type::FLOAT8 => Value::Real(f64::from_be_bytes(fixed(8)?.try_into().map_err(|_| bad())?)),
        Type::FLOAT4 => {
            Value::Real(f32::from_be_bytes(fixed(4)?.try_into().map_err(|_| bad())?).into())
        }
        Type::NUMERIC => Value::Real(numeric_f64(raw).ok_or_else(bad)?),
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN => {
            Value::Text(String::from_utf8_lossy(raw))
        }
        Type::BYTEA => Value::Blob(raw),
        other => {
            return Err(StoreError::Backend(format!(
                "report column {:?} is of type {}, which reports do not read: cast it to text, \
                 bigint or double precision",
                row.columns()[i].name(),
                other.name()
            )))
        }
    })
}

/// A `numeric` in PostgreSQL's binary form (ndigits, weight, sign, dscale,
/// then base-10000 digits) as the nearest f64, through its decimal text.
fn numeric_f64(raw: &[u8]) -> Option<f64> {
    let word = |k: usize| -> Option<u16> {
        Some(u16::from_be_bytes([*raw.get(2 * k)?, *raw.get(2 * k + 1)?]))
    };
    let ndigits = usize::from(word(0)?);
    let weight = i64::from(word(1)? as i16);
    let sign = word(2)?;
    match sign {
        0xC000 => return Some(f64::NAN),
        0xD000 => return Some(f64::INFINITY),
        0xF000 => return Some(f64::NEG_INFINITY),
        _ => {}
    }
    let digits = (0..ndigits)
        .map(|k| word(4 + k))
        .collect::<Option<Vec<u16>>>()?;
    let digit = |exp: i64| -> u16 {
        usize::try_from(weight - exp)
            .ok()
            .and_then(|k| digits.get(k).copied())
            .unwrap_or(0)
    };
    let mut text = String::from(if sign == 0x4000 { "-0" } else { "0" });
    for exp in (0..=weight).rev() {
        text.push_str(&format!("{:04}", digit(exp)));
    }
    text.push('.');
    let lowest = weight - i64::try_from(ndigits).ok()? + 1;
    for exp in (lowest.min(-1)..=-1).rev() {
        text.push_str(&format!("{:04}", digit(exp)));
    }
    text.push('0');
    text.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn number_params_numbers_each_name_once_and_skips_quotes_casts_and_comments() {
        let (sql, names) = number_params(
            "SELECT :from::text, ':to' AS \":x\", :to -- :nope\n, /* :no */ :from, a::int",
        );
        assert_eq!(
            sql,
            "SELECT $1::text, ':to' AS \":x\", $2 -- :nope\n, /* :no */ $1, a::int"
        );
        assert_eq!(names, [":from", ":to"]);
    }

    #[test]
    fn numeric_f64_reads_the_binary_form() {
        // 1.7: weight 0, digits [1, 7000]; -0.05: weight -1, digits [500];
        // 12345.6: weight 1, digits [1, 2345, 6000]; 0.00005: weight -2, [5000].
        let num = |weight: i16, sign: u16, digits: &[u16]| -> Vec<u8> {
            let mut v = Vec::new();
            for w in [digits.len() as u16, weight as u16, sign, 4] {
                v.extend_from_slice(&w.to_be_bytes());
            }
            for d in digits {
                v.extend_from_slice(&d.to_be_bytes());
            }
            v
        };
        assert_eq!(numeric_f64(&num(0, 0, &[1, 7000])), Some(1.7));
        assert_eq!(numeric_f64(&num(-1, 0x4000, &[500])), Some(-0.05));
        assert_eq!(numeric_f64(&num(1, 0, &[1, 2345, 6000])), Some(12345.6));
        assert_eq!(numeric_f64(&num(-2, 0, &[5000])), Some(0.00005));
        assert_eq!(numeric_f64(&num(2, 0, &[3])), Some(300_000_000.0));
        assert_eq!(numeric_f64(&num(0, 0, &[])), Some(0.0));
    }
}
