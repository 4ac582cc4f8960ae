//! `callvault report list | run NAME | daily`: the named report queries and
//! the daily report. Failures exit non-zero with a one-line message, so a
//! cron job notices.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;

use super::output::{self, Output};
use crate::config::Config;
use crate::reports::daily::{self, DailyFormat};
use crate::reports::{run, Catalog, Format, Params};
use crate::store::Store;

#[derive(Debug, Subcommand)]
pub enum ReportCmd {
    /// List the named reports (built in, plus <data>/reports/*.sql).
    List,
    /// Run a named report over device-local days FROM..=TO.
    Run {
        /// Report name (see `report list`).
        name: String,
        /// First day: YYYY-MM-DD, today or yesterday.
        #[arg(long)]
        from: String,
        /// Last day, inclusive (default: FROM).
        #[arg(long)]
        to: Option<String>,
        /// csv, json, or xlsx (an Excel workbook: numbers from the device stay
        /// text, dates are dates). Default: xlsx when FILE ends in .xlsx, else csv.
        #[arg(long, value_parser = ["csv", "json", "xlsx"])]
        format: Option<String>,
        /// Start CSV output with a UTF-8 byte order mark (for Excel).
        #[arg(long)]
        bom: bool,
        /// Write to FILE (atomically) instead of stdout.
        #[arg(short = 'o', long = "output", value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// The daily report of one device-local day: totals, hourly profile, peak
    /// concurrent calls, extensions, trunks, queues, recording coverage.
    Daily {
        /// YYYY-MM-DD, today or yesterday (in the default time zone).
        #[arg(long, default_value = "yesterday")]
        date: String,
        #[arg(long, default_value = "html", value_parser = ["csv", "json", "html"])]
        format: String,
        /// Write to FILE (atomically) instead of stdout.
        #[arg(short = 'o', long = "output", value_name = "FILE")]
        output: Option<PathBuf>,
    },
}

/// The catalog with `<data>/reports/*.sql` added.
pub fn catalog(cfg: &Config) -> anyhow::Result<Catalog> {
    Ok(Catalog::load(Some(&cfg.data_dir.join("reports")))?)
}

/// Report parameters for `from..=to` as of now.
pub fn params(cfg: &Config, from: &str, to: Option<&str>) -> anyhow::Result<Params> {
    let tz = cfg.default_tz();
    let from_d = run::resolve_day(from, tz)?;
    let to_d = match to {
        Some(t) => run::resolve_day(t, tz)?,
        None => from_d,
    };
    let now_ms = chrono::Utc::now().timestamp_millis();
    let mut p = Params::new(
        from_d,
        to_d,
        now_ms,
        cfg.calls.settle_seconds,
        cfg.queues.sla_seconds,
    )?;
    p.scratch_dir = Some(cfg.data_dir.clone());
    Ok(p)
}

fn open_store(cfg: &Config) -> anyhow::Result<Store> {
    Store::open_config(cfg).with_context(|| format!("opening archive {}", cfg.db_path().display()))
}

pub fn run(cfg: Config, cmd: ReportCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        ReportCmd::List => {
            for r in catalog(&cfg)?.list() {
                let origin = r
                    .file
                    .as_ref()
                    .map(|f| format!(" [{}]", f.display()))
                    .unwrap_or_default();
                println!(
                    "{:<20} params: {:<9} {}{origin}",
                    r.name,
                    r.params.join(","),
                    r.description
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        ReportCmd::Run {
            name,
            from,
            to,
            format,
            bom,
            output,
        } => {
            let cat = catalog(&cfg)?;
            let report = cat.get(&name)?.clone();
            let p = params(&cfg, &from, to.as_deref())?;
            let format: Format = match format {
                Some(f) => f.parse()?,
                None if output::is_xlsx_name(output.as_deref()) => Format::Xlsx,
                None => Format::Csv,
            };
            if format == Format::Xlsx {
                output::check_xlsx(bom, output.as_deref())?;
            }
            let store = open_store(&cfg)?;
            let mut out = Output::open(output.as_deref())?;
            let rows = store.read_blocking(|c| {
                Ok(match format {
                    Format::Csv => run::write_csv(c, &report, &p, &mut out, bom),
                    Format::Json => run::write_json(c, &report, &p, &mut out),
                    Format::Xlsx => run::write_xlsx(c, &report, &p, &mut out),
                })
            })??;
            let dest = out.describe();
            out.commit()?;
            super::audit::record_command(
                &store,
                crate::audit::Action::ReportRun,
                format!("report {name} {}..{}", p.from, p.to),
                true,
                format!("{rows} rows to {dest}"),
            );
            eprintln!(
                "report {name}: {rows} rows ({} to {}) written to {dest}",
                p.from, p.to
            );
            Ok(ExitCode::SUCCESS)
        }
        ReportCmd::Daily {
            date,
            format,
            output,
        } => {
            let p = params(&cfg, &date, None).context("report daily")?;
            let format: DailyFormat = format.parse()?;
            let cat = catalog(&cfg)?;
            let store = open_store(&cfg)?;
            let (generated, _) = crate::store::now_stamp();
            let settle = cfg.calls.settle_seconds;
            let report =
                store.read_blocking(|c| Ok(daily::build(c, &cat, &p, settle, generated)))??;
            let mut out = Output::open(output.as_deref())?;
            daily::write(&report, format, &mut out)?;
            let dest = out.describe();
            out.commit()?;
            super::audit::record_command(
                &store,
                crate::audit::Action::ReportDaily,
                format!("daily {} {format:?}", p.from).to_lowercase(),
                true,
                format!("written to {dest}"),
            );
            eprintln!(
                "daily report {}: {} calls, {} answered, {} missed; written to {dest}",
                p.from, report.headline.calls, report.headline.answered, report.headline.missed
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}
