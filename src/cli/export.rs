//! `callvault export billing`: the billing CSV (or .xlsx) for finance
//! (docs/billing.md), streamed from the archive to the file or stdout.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};

use super::output::{self, Output};
use super::report::{catalog, params};
use crate::config::Config;
use crate::reports::billing::{self, BillingOptions};
use crate::reports::tariffs::Tariffs;
use crate::store::Store;

#[derive(Debug, Subcommand)]
pub enum ExportCmd {
    /// One row per settled call (or per billable leg): CSV (RFC 4180, UTF-8) or an Excel workbook.
    Billing(BillingArgs),
}

#[derive(Debug, Args)]
pub struct BillingArgs {
    /// First device-local day: YYYY-MM-DD, today or yesterday.
    #[arg(long)]
    pub from: String,
    /// Last day, inclusive (default: FROM).
    #[arg(long)]
    pub to: Option<String>,
    /// One row per carrier-billed leg (OU, FW, CB) instead of per call.
    #[arg(long)]
    pub per_leg: bool,
    /// Start with a UTF-8 byte order mark so Excel shows Chinese names right.
    #[arg(long)]
    pub bom: bool,
    /// Tariff table (CSV: prefix,rate_per_minute,increment_seconds,minimum_seconds);
    /// adds billed_seconds and cost.
    #[arg(long, value_name = "FILE")]
    pub tariffs: Option<PathBuf>,
    /// Write to FILE (atomically) instead of stdout.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// csv, or xlsx: an Excel workbook of the same rows, where numbers such
    /// as 0216… keep their leading zero and dates are dates. Default: xlsx
    /// when FILE ends in .xlsx, else csv.
    #[arg(long, value_enum)]
    pub format: Option<BillingFormat>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BillingFormat {
    Csv,
    Xlsx,
}

impl BillingArgs {
    fn format(&self) -> BillingFormat {
        self.format
            .unwrap_or(if output::is_xlsx_name(self.output.as_deref()) {
                BillingFormat::Xlsx
            } else {
                BillingFormat::Csv
            })
    }
}

pub fn run(cfg: Config, cmd: ExportCmd) -> anyhow::Result<ExitCode> {
    let ExportCmd::Billing(a) = cmd;
    let p = params(&cfg, &a.from, a.to.as_deref())?;
    let tariffs = a.tariffs.as_deref().map(Tariffs::from_file).transpose()?;
    let opts = BillingOptions {
        per_leg: a.per_leg,
        bom: a.bom,
        tariffs,
    };
    let format = a.format();
    if format == BillingFormat::Xlsx {
        output::check_xlsx(a.bom, a.output.as_deref())?;
    }
    let cat = catalog(&cfg)?;
    let store = Store::open_config(&cfg)?;
    let mut out = Output::open(a.output.as_deref())?;
    // Into a file, on a terminal: how much is written so far (a long
    // range takes a while); to stdout the bytes are the progress.
    let bar = match a.output {
        Some(_) => output::progress_bar("{spinner} {bytes} written ({bytes_per_sec})"),
        None => indicatif::ProgressBar::hidden(),
    };
    let rows = store.read_blocking(|c| {
        let mut sink = bar.wrap_write(&mut out);
        Ok(match format {
            BillingFormat::Csv => billing::write(c, &cat, &p, &opts, &mut sink),
            BillingFormat::Xlsx => billing::write_xlsx(c, &cat, &p, &opts, &mut sink),
        })
    })??;
    bar.finish_and_clear();
    let dest = out.describe();
    out.commit()?;
    let file = match format {
        BillingFormat::Csv => "billing.csv",
        BillingFormat::Xlsx => "billing.xlsx",
    };
    super::audit::record_command(
        &store,
        crate::audit::Action::BillingExport,
        format!("{file} {}..{}", p.from, p.to),
        true,
        format!("{rows} rows to {dest}"),
    );
    eprintln!(
        "billing {} to {}: {rows} rows written to {dest}",
        p.from, p.to
    );
    Ok(ExitCode::SUCCESS)
}
