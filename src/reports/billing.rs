//! The billing CSV for finance (DESIGN §7): one row per settled call (report
//! `billing`) or per carrier-billed leg (report `billing_legs`, `--per-leg`),
//! RFC 4180 via the csv crate, UTF-8 with an optional BOM, and with a tariff
//! table two more columns, `billed_seconds` and `cost`. Rows go from SQLite
//! straight to the writer, one at a time: memory does not grow with the range.
//! Columns are documented in docs/billing.md.

use std::io::Write;

use rusqlite::Connection;

use super::run::{csv_field, for_each_row, text_value, BOM};
use super::tariffs::Tariffs;
use super::{Catalog, Params, ReportError, Result};

/// What to export.
#[derive(Debug, Clone, Default)]
pub struct BillingOptions {
    /// One row per billable leg (OU, FW, CB) instead of per call.
    pub per_leg: bool,
    /// Start with a UTF-8 byte order mark (Excel).
    pub bom: bool,
    /// Adds `billed_seconds` and `cost`.
    pub tariffs: Option<Tariffs>,
}

impl BillingOptions {
    /// The report the export runs.
    pub fn report_name(&self) -> &'static str {
        if self.per_leg {
            "billing_legs"
        } else {
            "billing"
        }
    }
}

/// Columns the tariffs need from the query.
const NUMBER_COL: &str = "billed_number";
const SECONDS_COL: &str = "billable_seconds";

/// Checks the report exists and has the columns the export needs, before any
/// byte is written (so HTTP can still answer with an error status).
pub fn check(
    conn: &Connection,
    catalog: &Catalog,
    p: &Params,
    opts: &BillingOptions,
) -> Result<()> {
    let report = catalog.get(opts.report_name())?;
    let st = super::run::prepare(conn, report, p)?;
    let cols = super::run::columns(&st);
    for c in [NUMBER_COL, SECONDS_COL] {
        if opts.tariffs.is_some() && !cols.iter().any(|x| x == c) {
            return Err(ReportError::MissingColumn {
                report: report.name.clone(),
                column: c.into(),
            });
        }
    }
    Ok(())
}

/// Writes the billing CSV to `out`; returns the number of data rows.
pub fn write(
    conn: &Connection,
    catalog: &Catalog,
    p: &Params,
    opts: &BillingOptions,
    out: &mut dyn Write,
) -> Result<u64> {
    check(conn, catalog, p, opts)?;
    let report = catalog.get(opts.report_name())?;
    if opts.bom {
        out.write_all(BOM)?;
    }
    let mut w = csv::Writer::from_writer(out);
    let header = |cols: &[String]| {
        let mut h: Vec<String> = cols.to_vec();
        if opts.tariffs.is_some() {
            h.extend(["billed_seconds".to_string(), "cost".to_string()]);
        }
        h
    };
    let mut started = false;
    let mut idx = (0usize, 0usize);
    let n = for_each_row(conn, report, p, &mut |cols, row| {
        if !started {
            w.write_record(header(cols))?;
            let pos = |name| cols.iter().position(|c| c == name).unwrap_or(0);
            idx = (pos(NUMBER_COL), pos(SECONDS_COL));
            started = true;
        }
        let cell = |i: usize| row.get_ref(i).map_err(ReportError::query(&report.name));
        for i in 0..cols.len() {
            w.write_field(csv_field(cell(i)?))?;
        }
        if let Some(t) = &opts.tariffs {
            let number = text_value(cell(idx.0)?);
            let secs = match cell(idx.1)? {
                rusqlite::types::ValueRef::Integer(s) => s,
                rusqlite::types::ValueRef::Real(s) => s.ceil() as i64,
                _ => 0,
            };
            match Some(number)
                .filter(|n| !n.is_empty())
                .and_then(|n| t.price(&n, secs))
            {
                Some((billed, cost)) => {
                    w.write_field(billed.to_string())?;
                    w.write_field(cost)?;
                }
                None => {
                    w.write_field("")?;
                    w.write_field("")?;
                }
            }
        }
        w.write_record(None::<&[u8]>)?;
        Ok(())
    })?;
    if !started {
        let st = super::run::prepare(conn, report, p)?;
        w.write_record(header(&super::run::columns(&st)))?;
    }
    w.flush()?;
    Ok(n)
}

/// The file name offered for download: `billing_<from>_<to>[_legs].csv`.
pub fn file_name(p: &Params, opts: &BillingOptions) -> String {
    format!(
        "billing_{}_{}{}.csv",
        p.from.format("%Y%m%d"),
        p.to.format("%Y%m%d"),
        if opts.per_leg { "_legs" } else { "" }
    )
}
