//! `callvault calls --from --to [--format table|json|csv]`.

use std::io::Write;
use std::process::ExitCode;

use clap::{Args, ValueEnum};

use crate::config::Config;
use crate::query::{filter_from, Search};
use crate::reports::run::spreadsheet_safe;
use crate::store::call_search::{self, CallView};
use crate::store::Store;

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Format {
    Table,
    Json,
    Csv,
}

#[derive(Debug, Args)]
pub struct CallsArgs {
    /// First device-local day, YYYY-MM-DD.
    #[arg(long)]
    pub from: String,
    /// Last device-local day (inclusive), YYYY-MM-DD; default = --from.
    #[arg(long)]
    pub to: Option<String>,
    /// Only calls whose caller, callee or an extension contains this.
    #[arg(long)]
    pub number: Option<String>,
    /// Only calls involving this extension.
    #[arg(long)]
    pub ext: Option<String>,
    /// inbound, outbound, internal or callback.
    #[arg(long)]
    pub direction: Option<String>,
    /// Only calls whose longest silence is at least this many seconds
    /// (conversation figures, docs/recordings.md).
    #[arg(long)]
    pub longest_silence_min: Option<String>,
    /// Only calls with at least this many seconds of overtalk.
    #[arg(long)]
    pub overtalk_min: Option<String>,
    /// Only calls whose agent talk ratio is at least this (0..1).
    #[arg(long)]
    pub talk_ratio_min: Option<String>,
    /// Only calls whose agent talk ratio is at most this (0..1).
    #[arg(long)]
    pub talk_ratio_max: Option<String>,
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
}

pub fn run(cfg: Config, a: CallsArgs) -> anyhow::Result<ExitCode> {
    let store = Store::open_config(&cfg)?;
    let q = Search {
        from: Some(a.from.clone()),
        to: a.to.clone(),
        number: a.number,
        ext: a.ext,
        direction: a.direction,
        answered: None,
        has_recording: None,
        longest_silence_min: a.longest_silence_min,
        overtalk_min: a.overtalk_min,
        talk_ratio_min: a.talk_ratio_min,
        talk_ratio_max: a.talk_ratio_max,
        limit: None,
        cursor: None,
    };
    let mut f = filter_from(&q, cfg.default_tz())?;
    f.limit = i64::MAX;
    let view = CallView::now(&cfg);
    let out = std::io::stdout();
    let mut out = out.lock();
    let mut csv = csv::Writer::from_writer(std::io::stdout());
    if let Format::Table = a.format {
        writeln!(
            out,
            "{:<16} {:<25} {:<9} {:<16} {:<16} {:>5} {:>5} {:<3} {:<7}",
            "id", "start", "direction", "caller", "callee", "talk", "bill", "ans", "settled"
        )?;
    }
    if let Format::Csv = a.format {
        csv.write_record([
            "id",
            "device",
            "start",
            "end",
            "direction",
            "caller",
            "callee",
            "extensions",
            "answered_by",
            "trunk",
            "talk_seconds",
            "billable_seconds",
            "answered",
            "settled",
        ])?;
    }
    let mut first = true;
    if let Format::Json = a.format {
        write!(out, "[")?;
    }
    store.read_blocking(|c| {
        Ok(call_search::search::<anyhow::Error>(
            c,
            &f,
            &view,
            &mut |call| {
                match a.format {
                    Format::Table => writeln!(
                        out,
                        "{:<16} {:<25} {:<9} {:<16} {:<16} {:>5} {:>5} {:<3} {:<7}",
                        call.id,
                        call.start,
                        call.direction,
                        call.caller,
                        call.callee,
                        call.talk_seconds,
                        call.billable_seconds,
                        if call.answered { "yes" } else { "no" },
                        call.settled
                    )?,
                    Format::Json => {
                        write!(
                            out,
                            "{}{}",
                            if first { "\n" } else { ",\n" },
                            serde_json::to_string(&call)?
                        )?;
                        first = false;
                    }
                    Format::Csv => {
                        let record = [
                            call.id.as_str(),
                            &call.device,
                            &call.start,
                            &call.end,
                            &call.direction,
                            &call.caller,
                            &call.callee,
                            &call.extensions.join(" "),
                            call.answered_by.as_deref().unwrap_or(""),
                            call.trunk.as_deref().unwrap_or(""),
                            &call.talk_seconds.to_string(),
                            &call.billable_seconds.to_string(),
                            &call.answered.to_string(),
                            &call.settled.to_string(),
                        ];
                        csv.write_record(record.map(spreadsheet_safe).iter().map(|c| c.as_ref()))?;
                    }
                }
                Ok(())
            },
        ))
    })??;
    if let Format::Json = a.format {
        writeln!(out, "\n]")?;
    }
    csv.flush()?;
    Ok(ExitCode::SUCCESS)
}
