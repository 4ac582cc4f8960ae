//! The monthly partitions of the big tables on PostgreSQL, made ahead of
//! time, and the DEFAULT partitions watched.
//!
//! A row whose month has no partition lands in the table's DEFAULT
//! partition instead of being refused ("no partition of relation found for
//! row" would lose a push). Rows there are a sign the partitions fell
//! behind, and they stop that month's partition from being made: so
//! [`ensure`] runs at every start and daily, months ahead, and
//! [`default_rows`] is reported.

use chrono::{DateTime, Datelike, NaiveDate, Utc};

use super::migrate::SCHEMA_LOCK;
use super::{PgError, Pool};

/// The partitioned tables (`<name>_default` is each one's DEFAULT).
pub const PARTITIONED: &[&str] = &["pushes", "legs", "events"];

/// Makes the partitions of the month of `now` and the `ahead` months after
/// it, for every partitioned table; returns the names it created (already
/// existing ones are left alone). One collector at a time.
pub async fn ensure(pool: &Pool, now: DateTime<Utc>, ahead: u32) -> Result<Vec<String>, PgError> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK])
        .await?;
    let mut made = Vec::new();
    let first = NaiveDate::from_ymd_opt(now.year(), now.month(), 1).expect("first of a month");
    for table in PARTITIONED {
        for m in 0..=ahead {
            let (start, end) = (add_months(first, m), add_months(first, m + 1));
            let name = format!("{table}_{}", start.format("%Y%m"));
            let exists: bool = tx
                .query_one("SELECT to_regclass($1) IS NOT NULL", &[&name])
                .await?
                .get(0);
            if exists {
                continue;
            }
            // Names and bounds are built from dates and the constant table
            // list above, never from input.
            let sql = format!(
                "CREATE TABLE {name} PARTITION OF {table} \
                 FOR VALUES FROM ('{start} 00:00:00+00') TO ('{end} 00:00:00+00')"
            );
            tx.batch_execute(&sql)
                .await
                .map_err(|source| PgError::Partition {
                    name: name.clone(),
                    source,
                })?;
            tracing::info!(partition = %name, "made a monthly partition");
            made.push(name);
        }
    }
    tx.commit().await?;
    Ok(made)
}

/// Rows sitting in the DEFAULT partitions, per table: anything above 0
/// means a month had no partition when its rows came.
pub async fn default_rows(pool: &Pool) -> Result<Vec<(String, i64)>, PgError> {
    let client = pool.get().await?;
    let mut out = Vec::new();
    for table in PARTITIONED {
        let n: i64 = client
            .query_one(&format!("SELECT COUNT(*) FROM {table}_default"), &[])
            .await?
            .get(0);
        out.push((table.to_string(), n));
    }
    Ok(out)
}

fn add_months(d: NaiveDate, n: u32) -> NaiveDate {
    d.checked_add_months(chrono::Months::new(n))
        .expect("a month within chrono's calendar")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_roll_over_the_year() {
        let d = NaiveDate::from_ymd_opt(2026, 11, 1).unwrap();
        assert_eq!(
            add_months(d, 2),
            NaiveDate::from_ymd_opt(2027, 1, 1).unwrap()
        );
    }
}
