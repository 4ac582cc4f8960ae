//! Reports and exports (docs/reports.md, docs/billing.md): what finance, QA
//! and the nightly job use.
//!
//! - [`catalog`]: the named report queries of `reports/*.sql` (embedded at
//!   build time; `<data_dir>/reports/*.sql` adds or overrides), each with a
//!   header naming it, describing it and listing its parameters.
//! - [`run`]: binds the parameters and streams rows as CSV or JSON.
//! - [`billing`] and [`tariffs`]: the billing CSV, optionally costed.
//! - [`daily`], [`html`] and [`svg`]: the daily report in csv, json or one
//!   self-contained HTML file with inline SVG charts.
//!
//! The store runs the queries (`store::reports::ReportReader`) and hands back
//! rows of typed cells; this stage only binds parameters and formats. The
//! same code serves the CLI (blocking) and HTTP (on a blocking task).

pub mod billing;
pub mod catalog;
pub mod daily;
mod error;
pub mod html;
pub mod run;
pub mod sheet;
pub mod svg;
pub mod tariffs;

#[cfg(test)]
mod parity_tests;

pub use catalog::{Catalog, Report};
pub use error::ReportError;
pub use run::{Format, Params, Table};

pub type Result<T> = std::result::Result<T, ReportError>;
