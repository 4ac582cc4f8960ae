//! Every named report gives the same columns and the same typed cells on
//! SQLite and on PostgreSQL, and the billing and daily exports the same
//! bytes, over the same rows (`store::reports::fixture`): the two dialects
//! of each report (`reports/*.sql`, `reports/postgres/*.sql`) must agree
//! on dates, rounding, integer sums and text order.

use chrono::NaiveDate;

use super::billing::{self, BillingOptions};
use super::tariffs::Tariffs;
use super::{daily, run, Catalog, Params, ReportError};
use crate::store::reports::{fixture, ReportReader};
use crate::store::testing::each_backend;
use crate::store::StoreError;

/// One report's result: columns and every cell with its type.
type Result_ = (String, Vec<String>, Vec<Vec<String>>);

fn params() -> Params {
    let d = |s| run::parse_date(s).expect("date");
    // Settled: last change at or before 1_000_000 ms (call c07 is not).
    Params::new(d("2024-01-08"), d("2024-01-09"), 1_000_000, 0, 20).expect("params")
}

fn report_rows(db: ReportReader<'_>, cat: &Catalog, p: &Params) -> super::Result<Vec<Result_>> {
    let mut out = Vec::new();
    for report in cat.list() {
        let mut q = run::prepare(db, report, p)?;
        let cols = q.columns();
        let mut rows = q.rows();
        let mut cells = Vec::new();
        while let Some(row) = rows.next_row().map_err(ReportError::query(&report.name))? {
            cells.push(
                (0..cols.len())
                    .map(|i| Ok(format!("{:?}", run::cell(report, &row, i)?)))
                    .collect::<super::Result<Vec<_>>>()?,
            );
        }
        out.push((report.name.clone(), cols, cells));
    }
    Ok(out)
}

/// The billing CSV per call and per leg, plain and with tariffs, and the
/// daily report of 2024-01-08 as CSV, JSON and HTML.
fn exports(db: ReportReader<'_>, cat: &Catalog, p: &Params) -> super::Result<Vec<Vec<u8>>> {
    let tariffs = Tariffs::from_csv(
        b"prefix,rate_per_minute,increment_seconds,minimum_seconds\n,1,60,0\n0216,0.35,6,30\n",
    )?;
    let mut out = Vec::new();
    for (per_leg, tariffs) in [
        (false, None),
        (true, None),
        (false, Some(tariffs.clone())),
        (true, Some(tariffs)),
    ] {
        let opts = BillingOptions {
            per_leg,
            bom: true,
            tariffs,
        };
        let mut csv = Vec::new();
        billing::write(db, cat, p, &opts, &mut csv)?;
        out.push(csv);
    }
    let day = NaiveDate::from_ymd_opt(2024, 1, 8).expect("day");
    let one_day = Params::new(day, day, 1_000_000, 0, 20)?;
    let r = daily::build(db, cat, &one_day, 0, "2024-01-10T00:00:00Z".into())?;
    for format in [
        daily::DailyFormat::Csv,
        daily::DailyFormat::Json,
        daily::DailyFormat::Html,
    ] {
        let mut bytes = Vec::new();
        daily::write(&r, format, &mut bytes)?;
        out.push(bytes);
    }
    Ok(out)
}

#[test]
fn every_report_and_export_is_the_same_on_both_backends() {
    let cat = Catalog::embedded().expect("catalog");
    let mut results: Vec<(Vec<Result_>, Vec<Vec<u8>>)> = Vec::new();
    each_backend(
        "every_report_is_the_same_on_both_backends",
        |backend, store| {
            store
                .writer
                .write_blocking(fixture::report_rows)
                .expect("fixture rows");
            let cat = cat.clone();
            let got = store
                .read_blocking(move |tx| {
                    let p = params();
                    let run = || -> super::Result<_> {
                        Ok((
                            report_rows(tx.into(), &cat, &p)?,
                            exports(tx.into(), &cat, &p)?,
                        ))
                    };
                    run().map_err(|e| StoreError::Backend(format!("{backend:?}: {e}")))
                })
                .expect("reports run");
            results.push(got);
        },
    );
    let (sqlite, sqlite_exports) = &results[0];
    for (name, _, rows) in sqlite {
        assert!(!rows.is_empty(), "the fixture gives {name} rows");
    }
    let Some((pg, pg_exports)) = results.get(1) else {
        return;
    };
    assert_eq!(sqlite.len(), pg.len());
    for (s, p) in sqlite.iter().zip(pg) {
        assert_eq!(s.0, p.0);
        assert_eq!(s.1, p.1, "{}: columns", s.0);
        for (i, (srow, prow)) in s.2.iter().zip(&p.2).enumerate() {
            assert_eq!(srow, prow, "{}: row {i} (SQLite, then PostgreSQL)", s.0);
        }
        assert_eq!(s.2.len(), p.2.len(), "{}: rows", s.0);
    }
    for (i, (s, p)) in sqlite_exports.iter().zip(pg_exports).enumerate() {
        assert_eq!(
            String::from_utf8_lossy(s),
            String::from_utf8_lossy(p),
            "export {i}"
        );
    }
}
