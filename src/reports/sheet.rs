//! Tabular exports as CSV or as an Excel workbook, from one row loop.
//!
//! A CSV opened in Excel loses what finance needs most: `02161208234`
//! becomes the number 2161208234, `+8613800138000` becomes 8.6E+12, and the
//! text is read in the machine's code page unless a BOM says UTF-8. An XLSX
//! file has typed cells, so numbers from the device stay text, seconds stay
//! numbers, dates are dates, and no cell is ever a formula. Both sinks take
//! the same cells from the same loop ([`super::run::write_table`]).

use std::io::Write;

use chrono::{NaiveDate, NaiveDateTime};
use rust_xlsxwriter::{ExcelDateTime, Format, Workbook, Worksheet, XlsxError};

use super::run::{spreadsheet_safe, text_value};
use super::{ReportError, Result};
use crate::store::reports::Value;

/// One cell of an export.
#[derive(Debug, Clone, Copy)]
pub enum Cell<'a> {
    /// SQL NULL, or a value a row does not have.
    Empty,
    Int(i64),
    Real(f64),
    Text(&'a str),
    /// A decimal written as text of fixed places (a tariff cost, `"1.2000"`).
    Decimal(&'a str),
}

/// Where the rows of an export go.
pub trait Sink {
    fn header(&mut self, cols: &[String]) -> Result<()>;
    fn cell(&mut self, c: Cell<'_>) -> Result<()>;
    fn end_row(&mut self) -> Result<()>;
}

/// Passes a stored value to `sink` as its cell (blobs as hex text).
pub fn value_cell(sink: &mut dyn Sink, v: Value<'_>) -> Result<()> {
    match &v {
        Value::Null => sink.cell(Cell::Empty),
        Value::Integer(i) => sink.cell(Cell::Int(*i)),
        Value::Real(f) => sink.cell(Cell::Real(*f)),
        Value::Text(s) => sink.cell(Cell::Text(s)),
        Value::Blob(_) => sink.cell(Cell::Text(&text_value(&v))),
    }
}

/// RFC 4180 through the csv crate; text made [`spreadsheet_safe`].
pub struct CsvSink<W: Write> {
    w: csv::Writer<W>,
}

impl<W: Write> CsvSink<W> {
    pub fn new(out: W) -> Self {
        CsvSink {
            w: csv::Writer::from_writer(out),
        }
    }

    pub fn finish(mut self) -> Result<()> {
        self.w.flush()?;
        Ok(())
    }
}

impl<W: Write> Sink for CsvSink<W> {
    fn header(&mut self, cols: &[String]) -> Result<()> {
        Ok(self.w.write_record(cols)?)
    }

    fn cell(&mut self, c: Cell<'_>) -> Result<()> {
        match c {
            Cell::Empty => self.w.write_field("")?,
            Cell::Int(i) => self.w.write_field(i.to_string())?,
            Cell::Real(f) => self.w.write_field(f.to_string())?,
            Cell::Text(s) => self.w.write_field(spreadsheet_safe(s).as_ref())?,
            Cell::Decimal(s) => self.w.write_field(s)?,
        }
        Ok(())
    }

    fn end_row(&mut self) -> Result<()> {
        Ok(self.w.write_record(None::<&[u8]>)?)
    }
}

/// Excel's last row; the header takes one.
pub const XLSX_MAX_ROWS: u32 = 1_048_576;
/// Excel's longest text in a cell.
const XLSX_MAX_TEXT: usize = 32_767;

/// One worksheet written row by row in rust_xlsxwriter's constant-memory
/// mode (rows go to a temporary file, not memory); [`XlsxSink::finish`]
/// zips the workbook into the output.
pub struct XlsxSink {
    book: Workbook,
    row: u32,
    col: u16,
    cols: u16,
    /// Rows a worksheet holds, header included ([`XLSX_MAX_ROWS`]).
    max_rows: u32,
    /// Widest text seen per column (characters), for the column widths.
    widths: Vec<usize>,
    bold: Format,
    date: Format,
    datetime: Format,
    decimal: Format,
}

impl XlsxSink {
    /// A workbook with one sheet named `sheet` (made valid: Excel allows 31
    /// characters), its rows kept in a temporary file in `scratch` (None:
    /// the system's temporary directory) until `finish`.
    pub fn new(sheet: &str, scratch: Option<&std::path::Path>) -> Result<Self> {
        let mut book = Workbook::new();
        if let Some(dir) = scratch {
            book.set_tempdir(dir).map_err(xlsx_error)?;
        }
        // Deflate at level 3 rather than the default 6: billing of 108 k
        // rows takes 1.3 s instead of 1.9 s (compression was half of it), in
        // 10.4 MB instead of 8.9 MB (level 1: 1.2 s, 15.0 MB).
        book.set_zip_compression_level(3);
        book.add_worksheet_with_constant_memory()
            .and_then(|ws| ws.set_name(sheet_name(sheet)).map(|_| ()))
            .map_err(xlsx_error)?;
        Ok(XlsxSink {
            book,
            row: 0,
            col: 0,
            cols: 0,
            max_rows: XLSX_MAX_ROWS,
            widths: Vec::new(),
            bold: Format::new().set_bold(),
            date: Format::new().set_num_format("yyyy-mm-dd"),
            datetime: Format::new().set_num_format("yyyy-mm-dd hh:mm:ss"),
            decimal: Format::new().set_num_format("0.0000"),
        })
    }

    fn sheet(&mut self) -> Result<&mut Worksheet> {
        self.book.worksheet_from_index(0).map_err(xlsx_error)
    }

    /// Sizes the columns, freezes the header, adds filters, and writes the
    /// .xlsx file to `out` (the zip is written as it is made).
    pub fn finish(mut self, out: &mut (dyn Write + Send)) -> Result<()> {
        let (last_row, cols) = (self.row.saturating_sub(1), self.cols);
        let widths = std::mem::take(&mut self.widths);
        let ws = self.sheet()?;
        for (i, w) in widths.iter().enumerate() {
            ws.set_column_width(i as u16, (*w as f64 + 2.0).clamp(8.0, 60.0))
                .map_err(xlsx_error)?;
        }
        ws.set_freeze_panes(1, 0).map_err(xlsx_error)?;
        if cols > 0 {
            ws.autofilter(0, 0, last_row, cols - 1)
                .map_err(xlsx_error)?;
        }
        self.book.save_to_writer(&mut *out).map_err(xlsx_error)?;
        out.flush()?;
        Ok(())
    }

    fn note_width(&mut self, chars: usize) {
        let i = usize::from(self.col);
        if self.widths.len() <= i {
            self.widths.resize(i + 1, 0);
        }
        self.widths[i] = self.widths[i].max(chars);
    }
}

impl Sink for XlsxSink {
    fn header(&mut self, cols: &[String]) -> Result<()> {
        let bold = self.bold.clone();
        self.cols = u16::try_from(cols.len()).unwrap_or(u16::MAX);
        for (i, c) in cols.iter().enumerate() {
            self.col = i as u16;
            self.note_width(c.chars().count());
            let col = self.col;
            self.sheet()?
                .write_string_with_format(0, col, c, &bold)
                .map_err(xlsx_error)?;
        }
        self.row = 1;
        self.col = 0;
        Ok(())
    }

    fn cell(&mut self, c: Cell<'_>) -> Result<()> {
        if self.row >= self.max_rows {
            return Err(ReportError::TooManyRows {
                limit: u64::from(self.max_rows - 1),
            });
        }
        let (row, col) = (self.row, self.col);
        let date = match c {
            Cell::Text(s) => date_time(s),
            _ => None,
        };
        self.note_width(match c {
            Cell::Empty => 0,
            Cell::Int(i) => i.to_string().len(),
            Cell::Real(_) => 8,
            Cell::Decimal(s) => s.len(),
            Cell::Text(s) => s.chars().count().min(60),
        });
        // The sheet borrowed by field, beside the formats: no format is
        // cloned per cell.
        let ws = self.book.worksheet_from_index(0).map_err(xlsx_error)?;
        match (c, date) {
            (Cell::Empty, _) => {}
            // Exact in a spreadsheet up to 15 digits; longer ones as text.
            (Cell::Int(i), _) if i.unsigned_abs() < 1_000_000_000_000_000 => {
                ws.write_number(row, col, i as f64).map_err(xlsx_error)?;
            }
            (Cell::Int(i), _) => {
                ws.write_string(row, col, i.to_string())
                    .map_err(xlsx_error)?;
            }
            (Cell::Real(f), _) => {
                ws.write_number(row, col, f).map_err(xlsx_error)?;
            }
            (Cell::Decimal(s), _) => match s.parse::<f64>() {
                Ok(f) => ws.write_number_with_format(row, col, f, &self.decimal),
                Err(_) => ws.write_string(row, col, s),
            }
            .map(|_| ())
            .map_err(xlsx_error)?,
            (Cell::Text(_), Some((dt, with_time))) => {
                let fmt = if with_time {
                    &self.datetime
                } else {
                    &self.date
                };
                ws.write_datetime_with_format(row, col, &dt, fmt)
                    .map_err(xlsx_error)?;
            }
            (Cell::Text(s), None) => {
                // A string cell: never evaluated, leading zeros kept.
                ws.write_string(row, col, truncate_chars(s, XLSX_MAX_TEXT))
                    .map_err(xlsx_error)?;
            }
        }
        self.col = self.col.saturating_add(1);
        Ok(())
    }

    fn end_row(&mut self) -> Result<()> {
        self.row += 1;
        self.col = 0;
        Ok(())
    }
}

/// `YYYY-MM-DD` (false) or `YYYY-MM-DD HH:MM:SS` (true) as an Excel date:
/// the form of every date and time in callvault's reports.
fn date_time(s: &str) -> Option<(ExcelDateTime, bool)> {
    let t = match s.len() {
        10 => NaiveDate::parse_from_str(s, "%Y-%m-%d")
            .ok()?
            .and_hms_opt(0, 0, 0)?,
        19 => NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").ok()?,
        _ => return None,
    };
    // Excel's dates start in 1900, and its day numbers before 1900-03-01
    // are off by one (it counts a 29 February 1900): such text stays text.
    if t < NaiveDate::from_ymd_opt(1900, 3, 1)?.and_hms_opt(0, 0, 0)? {
        return None;
    }
    ExcelDateTime::from_timestamp(t.and_utc().timestamp())
        .ok()
        .map(|dt| (dt, s.len() == 19))
}

/// `name` as Excel accepts a worksheet name: at most 31 characters, none of
/// `[]:*?/\\`, not starting or ending with `'` (a custom report's name is
/// free text).
fn sheet_name(name: &str) -> String {
    let clean: String = name
        .chars()
        .map(|c| if "[]:*?/\\".contains(c) { '_' } else { c })
        .collect();
    let clean = truncate_chars(clean.trim_matches('\''), 31).trim_matches('\'');
    if clean.is_empty() {
        "report".into()
    } else {
        clean.into()
    }
}

fn truncate_chars(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

fn xlsx_error(e: XlsxError) -> ReportError {
    ReportError::Xlsx(e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn more_rows_than_a_worksheet_holds_is_an_error_not_a_cut() {
        let mut sink = XlsxSink::new("t", None).expect("workbook");
        sink.max_rows = 3;
        sink.header(&["a".to_string()]).expect("header");
        for i in 0..2 {
            sink.cell(Cell::Int(i)).expect("fits");
            sink.end_row().expect("row");
        }
        let e = sink
            .cell(Cell::Int(3))
            .expect_err("the 3rd data row does not fit");
        assert!(e.to_string().contains("more than 2 rows"), "{e}");
    }

    #[test]
    fn only_callvaults_own_date_forms_become_dates() {
        assert!(date_time("2024-01-08").is_some_and(|(_, t)| !t));
        assert!(date_time("2024-01-08 09:05:00").is_some_and(|(_, t)| t));
        for text in [
            "20240108",
            "2024-13-01",
            "2024-01-08T09:05:00",
            "02161208234",
            "1899-12-31",
        ] {
            assert!(date_time(text).is_none(), "{text}");
        }
    }

    #[test]
    fn any_report_name_is_a_valid_sheet_name() {
        assert_eq!(sheet_name("per_extension"), "per_extension");
        assert_eq!(sheet_name("a/b:c*d?[e]\\"), "a_b_c_d__e__");
        assert_eq!(sheet_name("'quoted'"), "quoted");
        assert_eq!(sheet_name("''"), "report");
        assert_eq!(sheet_name(&"长".repeat(40)).chars().count(), 31);
        for name in ["a/b:c*d?[e]\\", "'x'", "", &"长".repeat(40)] {
            XlsxSink::new(name, None).unwrap_or_else(|e| panic!("{name:?}: {e}"));
        }
    }

    #[test]
    fn rows_spill_into_the_scratch_directory_given() {
        let dir = tempfile::tempdir().expect("dir");
        let missing = dir.path().join("gone");
        let e = XlsxSink::new("t", Some(&missing))
            .err()
            .expect("no such directory");
        assert!(e.to_string().contains("gone"), "{e}");
        XlsxSink::new("t", Some(dir.path())).expect("a directory that exists");
    }

    #[test]
    fn long_text_is_cut_at_a_character_boundary() {
        assert_eq!(truncate_chars("张三李四", 2), "张三");
        assert_eq!(truncate_chars("ab", 5), "ab");
    }

    #[test]
    fn a_workbook_is_a_zip_with_its_sheet() {
        let mut sink = XlsxSink::new("billing", Some(&std::env::temp_dir())).expect("workbook");
        sink.header(&["n".to_string()]).expect("header");
        sink.cell(Cell::Text("0216")).expect("cell");
        sink.end_row().expect("row");
        let mut out = Vec::new();
        sink.finish(&mut out).expect("saved");
        assert!(out.starts_with(b"PK\x03\x04"), "a zip file");
    }
}
