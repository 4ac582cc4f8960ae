//! `callvault recordings status|fetch`: the recording archiver from the
//! command line.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, Subcommand};

use crate::config::Config;
use crate::recordings::Fetcher;
use crate::store::conversations as conv_store;
use crate::store::recordings::{self as rec_store, FAILED, MISSING};
use crate::store::Store;

#[derive(Debug, Subcommand)]
pub enum RecordingsCmd {
    /// Count recordings by status (pending, fetching, done, missing, failed) and list
    /// the missing and failed ones with their last error.
    Status(StatusArgs),
    /// Run one pass over the due recording jobs now (each job tried once), then exit.
    /// Use while `serve` is not running, or to retry after fixing a device's address.
    Fetch(FetchArgs),
    /// Compute the conversation figures (who spoke when) of archived recordings that have
    /// none, from the kept G.729 halves or a stereo WAV (docs/recordings.md).
    Analyze(AnalyzeArgs),
}

#[derive(Debug, Args)]
pub struct AnalyzeArgs {
    /// Recompute every archived recording's figures, not only those that have none.
    #[arg(long)]
    pub all: bool,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// How many missing/failed recordings to list.
    #[arg(long, default_value_t = 20, value_name = "N")]
    pub limit: i64,
}

#[derive(Debug, Args)]
pub struct FetchArgs {
    /// Do not wait for fetch_delay_seconds or the retry backoff: try every pending job.
    #[arg(long)]
    pub now: bool,
}

pub fn run(cfg: Config, cmd: RecordingsCmd) -> anyhow::Result<ExitCode> {
    let cfg = Arc::new(cfg);
    let store =
        Store::open_config(&cfg).with_context(|| format!("opening {}", cfg.db_path().display()))?;
    match cmd {
        RecordingsCmd::Status(a) => status(&store, a),
        RecordingsCmd::Fetch(a) => fetch(store, cfg, a),
        RecordingsCmd::Analyze(a) => analyze(store, cfg, a),
    }
}

fn status(store: &Store, a: StatusArgs) -> anyhow::Result<ExitCode> {
    let counts = store.read_blocking(rec_store::counts)?;
    for (status, n) in &counts {
        println!("{status:<9} {n}");
    }
    let problems =
        store.read_blocking(|c| rec_store::with_status(c, &[FAILED, MISSING], a.limit))?;
    if !problems.is_empty() {
        println!();
        for r in problems {
            println!(
                "{:<7} #{} {} {} (attempts {}): {}",
                r.status,
                r.id,
                r.device,
                r.path,
                r.attempts,
                r.last_error.as_deref().unwrap_or("-")
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn fetch(store: Store, cfg: Arc<Config>, a: FetchArgs) -> anyhow::Result<ExitCode> {
    // The devices whose recorders may be asked: the config file's and the
    // archive's registered ones.
    let registry = crate::ingest::device::Registry::new(&cfg);
    registry.preload(store.read_blocking(crate::store::devices::active)?);
    let fetcher = Fetcher::new(store, cfg, registry)?;
    let stats = super::runtime()?.block_on(async move {
        // Rows a stopped process left `fetching` would otherwise block the per-device cap.
        fetcher.resume().await?;
        fetcher.run_due(a.now).await
    })?;
    println!(
        "attempted {}: {} done, {} to retry, {} missing, {} failed",
        stats.attempted, stats.done, stats.retrying, stats.missing, stats.failed
    );
    if let Some(why) = &stats.paused {
        println!("fetching paused: {why}");
    }
    Ok(if stats.failed + stats.missing > 0 {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
}

/// Recordings read per batch of `analyze`.
const ANALYZE_BATCH: i64 = 100;

fn analyze(store: Store, cfg: Arc<Config>, a: AnalyzeArgs) -> anyhow::Result<ExitCode> {
    let archive = crate::recordings::RecordingStore::from_config(&cfg)?;
    let total = store.read_blocking(move |c| conv_store::count_to_analyze(c, a.all))?;
    let bar = super::output::progress_bar(
        "{spinner} analysing recordings {bar:40} {pos}/{len} ({per_sec}, eta {eta})",
    );
    bar.set_length(u64::try_from(total).unwrap_or(0));
    let (mut ok, mut failed, mut mono, mut unreadable) = (0u64, 0u64, 0u64, 0u64);
    let mut problems = Vec::new();
    let mut after = 0;
    super::runtime()?.block_on(async {
        loop {
            let batch = store
                .read(move |c| conv_store::to_analyze(c, a.all, after, ANALYZE_BATCH))
                .await?;
            let Some(last) = batch.last() else {
                break;
            };
            after = last.id;
            for rec in batch {
                let side = cfg.send_side(&rec.device);
                match crate::recordings::analyze::analyze(&archive, &rec, side).await {
                    Ok(Some(outcome)) => {
                        match &outcome {
                            Ok(_) => ok += 1,
                            Err(why) => {
                                failed += 1;
                                problems.push(format!("#{} {}: {why}", rec.id, rec.path));
                            }
                        }
                        let id = rec.id;
                        store
                            .writer
                            .write(move |tx| conv_store::put(tx, id, &outcome))
                            .await?;
                    }
                    Ok(None) => mono += 1,
                    Err(e) => {
                        unreadable += 1;
                        problems.push(format!("#{} {}: {e}", rec.id, rec.path));
                    }
                }
                bar.inc(1);
            }
        }
        anyhow::Ok(())
    })?;
    bar.finish_and_clear();
    println!(
        "analysed {}: {ok} with figures, {failed} failed, {mono} mono (no sides), {unreadable} unreadable",
        ok + failed + mono + unreadable
    );
    for p in &problems {
        println!("  {p}");
    }
    Ok(if failed + unreadable > 0 {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
}
