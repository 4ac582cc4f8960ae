//! The billing CSV for finance (docs/billing.md): one row per settled call (report
//! `billing`) or per carrier-billed leg (report `billing_legs`, `--per-leg`),
//! RFC 4180 via the csv crate, UTF-8 with an optional BOM, and with a tariff
//! table two more columns, `billed_seconds` and `cost`. Rows go from the store
//! straight to the writer, one at a time: memory does not grow with the range.
//! Columns are documented in docs/billing.md.

use std::io::Write;

use super::run::{cell, prepare, text_value, write_table, BOM};
use super::sheet::{Cell, CsvSink, Sink, XlsxSink};
use super::tariffs::Tariffs;
use super::{Catalog, Params, ReportError, Result};
use crate::store::reports::{ReportReader, Value};

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
pub fn check<'c>(
    db: impl Into<ReportReader<'c>>,
    catalog: &Catalog,
    p: &Params,
    opts: &BillingOptions,
) -> Result<()> {
    let report = catalog.get(opts.report_name())?;
    let cols = prepare(db.into(), report, p)?.columns();
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
pub fn write<'c>(
    db: impl Into<ReportReader<'c>>,
    catalog: &Catalog,
    p: &Params,
    opts: &BillingOptions,
    out: &mut dyn Write,
) -> Result<u64> {
    let db: ReportReader<'c> = db.into();
    check(db, catalog, p, opts)?;
    if opts.bom {
        out.write_all(BOM)?;
    }
    let mut sink = CsvSink::new(out);
    let n = write_rows(db, catalog, p, opts, &mut sink)?;
    sink.finish()?;
    Ok(n)
}

/// Writes the billing rows as an Excel workbook to `out`; returns the
/// number of data rows. The same rows and columns as the CSV, typed
/// (docs/billing.md); more rows than a worksheet holds is an error.
pub fn write_xlsx<'c>(
    db: impl Into<ReportReader<'c>>,
    catalog: &Catalog,
    p: &Params,
    opts: &BillingOptions,
    out: &mut (dyn Write + Send),
) -> Result<u64> {
    let (n, sheet) = xlsx_rows(db, catalog, p, opts)?;
    sheet.finish(out)?;
    Ok(n)
}

/// The first half of [`write_xlsx`]: the rows, into a worksheet kept in a
/// temporary file. Every failure of the export happens here, before a byte
/// is written, so a server can still answer it with a status code, then
/// stream the zip that [`XlsxSink::finish`] writes.
pub fn xlsx_rows<'c>(
    db: impl Into<ReportReader<'c>>,
    catalog: &Catalog,
    p: &Params,
    opts: &BillingOptions,
) -> Result<(u64, XlsxSink)> {
    let db: ReportReader<'c> = db.into();
    check(db, catalog, p, opts)?;
    let mut sink = XlsxSink::new(
        &format!("billing {} {}", p.from, p.to),
        p.scratch_dir.as_deref(),
    )?;
    let n = write_rows(db, catalog, p, opts, &mut sink)?;
    Ok((n, sink))
}

/// The header and the rows of the export into `sink`, one row in memory at
/// a time; the tariff columns priced from the number as the device sent it.
fn write_rows(
    db: ReportReader<'_>,
    catalog: &Catalog,
    p: &Params,
    opts: &BillingOptions,
    sink: &mut dyn Sink,
) -> Result<u64> {
    let report = catalog.get(opts.report_name())?;
    let Some(t) = &opts.tariffs else {
        return write_table(db, report, p, sink, &[], &mut |_, _| Ok(()));
    };
    let cols = prepare(db, report, p)?.columns();
    let pos = |name| cols.iter().position(|c| c == name).unwrap_or(0);
    let (number_at, seconds_at) = (pos(NUMBER_COL), pos(SECONDS_COL));
    write_table(
        db,
        report,
        p,
        sink,
        &["billed_seconds", "cost"],
        &mut |row, sink| {
            let number = text_value(&cell(report, row, number_at)?);
            let secs = match cell(report, row, seconds_at)? {
                Value::Integer(s) => s,
                Value::Real(s) => s.ceil() as i64,
                _ => 0,
            };
            match Some(number)
                .filter(|n| !n.is_empty())
                .and_then(|n| t.price(&n, secs))
            {
                Some((billed, cost)) => {
                    sink.cell(Cell::Int(billed))?;
                    sink.cell(Cell::Decimal(&cost))
                }
                None => {
                    sink.cell(Cell::Empty)?;
                    sink.cell(Cell::Empty)
                }
            }
        },
    )
}

/// The file name offered for download: `billing_<from>_<to>[_legs].<ext>`.
pub fn file_name(p: &Params, opts: &BillingOptions, ext: &str) -> String {
    format!(
        "billing_{}_{}{}.{ext}",
        p.from.format("%Y%m%d"),
        p.to.format("%Y%m%d"),
        if opts.per_leg { "_legs" } else { "" }
    )
}
