//! `callvault audit [--actor A] [--action X] [--from D] [--to D]
//! [--format table|csv|json]`: the audit log, newest first
//! (docs/operations.md "Audit log"). Reads only; nothing in callvault
//! changes or deletes an audit row but the retention purge.

use std::io::Write;
use std::process::ExitCode;

use clap::{Args, ValueEnum};

use crate::audit::filter::{filter_of, AuditQuery, MAX_LIMIT};
use crate::audit::{Action, View};
use crate::config::Config;
use crate::reports::run::spreadsheet_safe;
use crate::store::audit as rows;
use crate::store::Store;

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Format {
    Table,
    Csv,
    Json,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Actions: recording.play, recording.download, call.view, billing.export, \
report.daily, report.run, auth.refused (401/403 of the API, one row per address and minute with a \
count), token.create, token.revoke, session.start, session.end.\n\nDates are days of the \
configured timezone; an RFC 3339 time (2024-01-08T09:30:00Z) is exact."
)]
pub struct AuditArgs {
    /// Only rows of this actor (a token's name; `cli` for commands).
    #[arg(long)]
    pub actor: Option<String>,
    /// Only rows of this action (see below).
    #[arg(long)]
    pub action: Option<String>,
    /// From this day (YYYY-MM-DD) or time (RFC 3339), inclusive.
    #[arg(long)]
    pub from: Option<String>,
    /// Up to this day (inclusive) or time (exclusive).
    #[arg(long)]
    pub to: Option<String>,
    /// At most this many rows (the newest); default: all.
    #[arg(long)]
    pub limit: Option<u64>,
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
}

pub fn run(cfg: Config, a: AuditArgs) -> anyhow::Result<ExitCode> {
    let q = AuditQuery {
        actor: a.actor,
        action: a.action,
        from: a.from,
        to: a.to,
        cursor: None,
        limit: Some(MAX_LIMIT),
    };
    let mut f = filter_of(&q, cfg.default_tz()).map_err(anyhow::Error::msg)?;
    let store = Store::open_config(&cfg)?;
    let out = std::io::stdout();
    let mut out = out.lock();
    let mut csv = csv::Writer::from_writer(std::io::stdout());
    match a.format {
        Format::Table => writeln!(
            out,
            "{:<24} {:<16} {:<8} {:<15} {:<18} {:>6} {:>5} target",
            "time", "actor", "role", "ip", "action", "status", "count"
        )?,
        Format::Csv => csv.write_record([
            "id", "time", "actor", "role", "ip", "action", "target", "status", "count", "detail",
        ])?,
        Format::Json => write!(out, "[")?,
    }
    let mut left = a.limit.unwrap_or(u64::MAX);
    let mut first = true;
    // A page at a time, so a long log is never held whole.
    while left > 0 {
        f.limit = MAX_LIMIT.min(i64::try_from(left).unwrap_or(i64::MAX));
        let page = {
            let f = f.clone();
            store.read_blocking(move |tx| rows::list(tx, &f))?
        };
        let Some(last) = page.last() else { break };
        f.before_id = Some(last.id);
        let n = page.len() as i64;
        left = left.saturating_sub(n as u64);
        for r in page {
            let v = View::from(r);
            let e = &v.entry;
            match a.format {
                Format::Table => writeln!(
                    out,
                    "{:<24} {:<16} {:<8} {:<15} {:<18} {:>6} {:>5} {}{}",
                    v.time,
                    e.actor.as_deref().unwrap_or("-"),
                    e.role.as_deref().unwrap_or("-"),
                    e.ip.as_deref().unwrap_or("-"),
                    e.action,
                    e.status,
                    e.count,
                    e.target,
                    e.detail
                        .as_deref()
                        .map(|d| format!(" ({d})"))
                        .unwrap_or_default()
                )?,
                Format::Csv => {
                    let cells = [
                        v.id.to_string(),
                        v.time.clone(),
                        e.actor.clone().unwrap_or_default(),
                        e.role.clone().unwrap_or_default(),
                        e.ip.clone().unwrap_or_default(),
                        e.action.clone(),
                        e.target.clone(),
                        e.status.to_string(),
                        e.count.to_string(),
                        e.detail.clone().unwrap_or_default(),
                    ];
                    // Targets hold request paths: never a formula in a spreadsheet.
                    csv.write_record(cells.iter().map(|c| spreadsheet_safe(c).into_owned()))?;
                }
                Format::Json => {
                    if !first {
                        write!(out, ",")?;
                    }
                    write!(out, "\n{}", serde_json::to_string(&v)?)?;
                }
            }
            first = false;
        }
        if n < f.limit {
            break;
        }
    }
    match a.format {
        Format::Json => writeln!(out, "\n]")?,
        Format::Csv => csv.flush()?,
        Format::Table => {}
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// Records a command's export or report in the audit log (actor `cli`, the
/// OS user in the detail), and waits for the row: the command exits next.
pub fn record_command(store: &Store, action: Action, target: String, ok: bool, detail: String) {
    let user = crate::audit::cli_user().unwrap_or_else(|| "unknown".into());
    let e = crate::audit::entry(action, &crate::audit::Who::cli(), target, i64::from(!ok));
    let e = crate::audit::with_detail(e, format!("OS user {user}; {detail}"));
    crate::audit::record_blocking(store, e);
}
