//! The one error type of the reports stage.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// A report file has no usable header (name, description, params).
    #[error("report file {file}: {reason}")]
    Header { file: String, reason: String },
    /// No report of that name.
    #[error("unknown report {name:?} (known: {known})")]
    Unknown { name: String, known: String },
    /// A report query uses a parameter we do not supply.
    #[error("report {report}: unknown parameter {param} (available: :from, :to, :to_next, :settled_before_ms, :sla_seconds, :devices)")]
    Param { report: String, param: String },
    /// The report has no query for the archive's backend (a file added
    /// to the data directory for one backend only).
    #[error("report {report} has no query for {backend}")]
    NoVersion {
        report: String,
        backend: &'static str,
    },
    /// A report query lacks a column the caller needs (e.g. billing without billable_seconds).
    #[error("report {report}: missing column {column}")]
    MissingColumn { report: String, column: String },
    /// A report file whose statement would change the archive.
    #[error("report {report} ({file}) is refused: its statement writes to the archive, and a report may only read (SELECT or WITH … SELECT)")]
    NotReadOnly { report: String, file: String },
    /// A device-limited caller (`Params::devices`) asked for a report
    /// whose SQL is not built in, or does not limit its rows to the
    /// caller's devices (`:devices`): its rows could be any device's.
    #[error("report {report} ({file}) is refused for a token limited to devices: only the built-in reports can be limited to a token's devices (they use :devices); a report file's SQL could read any device's calls")]
    DeviceLimited { report: String, file: String },
    /// The archive refused or failed the query.
    #[error("report {report}: {source}")]
    Query {
        report: String,
        source: crate::store::StoreError,
    },
    /// A date that is not `YYYY-MM-DD` (or `yesterday` / `today` where allowed).
    #[error("invalid date {0:?}: expected YYYY-MM-DD")]
    BadDate(String),
    /// `to` before `from`.
    #[error("`to` ({to}) is before `from` ({from})")]
    Range { from: String, to: String },
    /// An output format we do not produce here.
    #[error("unknown format {0:?}")]
    Format(String),
    /// A line of the tariff table is not usable.
    #[error("tariffs line {line}: {reason}")]
    Tariff { line: u64, reason: String },
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Writing the output failed (disk full, client went away, …).
    #[error("write failed: {0}")]
    Io(#[from] std::io::Error),
    /// CSV encoding or decoding failed.
    #[error("csv: {0}")]
    Csv(#[from] csv::Error),
    /// The workbook could not be built.
    #[error("xlsx: {0}")]
    Xlsx(String),
    /// More rows than an Excel worksheet holds.
    #[error(
        "more than {limit} rows, the most an Excel worksheet holds: export a shorter range, or CSV"
    )]
    TooManyRows { limit: u64 },
    /// JSON encoding failed.
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
    /// The archive could not be read.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

impl ReportError {
    /// Wraps a store error with the report it happened in.
    pub fn query(report: &str) -> impl FnOnce(crate::store::StoreError) -> ReportError + '_ {
        move |source| ReportError::Query {
            report: report.to_string(),
            source,
        }
    }
}
