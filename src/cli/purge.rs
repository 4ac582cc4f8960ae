//! `callvault purge [--dry-run]`: one retention pass now
//! (docs/operations.md "Retention"), the same as `serve` runs daily.

use std::process::ExitCode;

use clap::Args;

use super::output::progress_bar;
use crate::config::Config;
use crate::recordings::RecordingStore;
use crate::retention::{self, Cutoffs};
use crate::store::Store;

#[derive(Debug, Args)]
#[command(
    long_about = "Removes what the [retention] settings say is past its time: recording files of \
calls older than recordings_days (the row stays, status purged), calls older than calls_days with \
their legs, events, queue visits and recordings, raw push bodies older than raw_days (what was \
derived from them stays), quarantined pushes older than quarantine_days, audit rows older than \
audit_days, and web sessions idle past [api] session_idle_minutes. A setting of 0 keeps that kind \
for ever. `serve` does the same once shortly after start and then daily; this runs it now, safely \
beside a running server (in small batches through the store)."
)]
pub struct PurgeArgs {
    /// List what would be removed (counts per kind, oldest and newest dates); change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

pub fn run(cfg: Config, a: PurgeArgs) -> anyhow::Result<ExitCode> {
    let store = Store::open_config(&cfg)?;
    let cutoffs = Cutoffs::new(&cfg, chrono::Utc::now().timestamp_millis());
    let rt = super::runtime()?;
    let plan = rt.block_on(retention::plan(&store, &cutoffs))?;
    for (key, days) in cfg.retention.keys() {
        if days == 0 {
            println!("[retention] {key} = 0: kept for ever");
        }
    }
    if a.dry_run {
        println!("would remove:");
        print_lines(&plan);
        return Ok(ExitCode::SUCCESS);
    }
    let files = RecordingStore::from_config(&cfg)?;
    let bar = progress_bar("{spinner} purging {msg} {bar:40} {pos}/{len} rows");
    bar.set_length(plan.iter().map(|l| l.count).sum());
    let removed = rt.block_on(retention::run(&store, &files, &cutoffs, &|kind, n| {
        bar.set_message(kind);
        bar.inc(n);
    }))?;
    bar.finish_and_clear();
    println!("removed:");
    for (kind, n) in removed {
        println!("  {kind:<13} {n}");
    }
    Ok(ExitCode::SUCCESS)
}

fn print_lines(plan: &[retention::Line]) {
    for l in plan {
        match (&l.oldest, &l.newest) {
            (Some(o), Some(n)) if l.count > 0 => {
                println!("  {:<13} {:>8}  oldest {o}  newest {n}", l.kind, l.count)
            }
            _ => println!("  {:<13} {:>8}", l.kind, l.count),
        }
    }
}
