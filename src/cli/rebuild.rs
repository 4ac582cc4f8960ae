//! `callvault rebuild`: recompute calls and queue visits from stored legs
//! and events, through the same code the live path runs.

use std::process::ExitCode;
use std::sync::Arc;

use clap::Args;

use crate::config::Config;
use crate::queues::live::QueueLive;
use crate::store::rebuild::{self, DerivedCounts};
use crate::store::Store;

#[derive(Debug, Args)]
pub struct RebuildArgs {}

pub fn run(cfg: Config, _a: RebuildArgs) -> anyhow::Result<ExitCode> {
    let cfg = Arc::new(cfg);
    let store = Store::open_config(&cfg)?;
    let started = std::time::Instant::now();
    let bar = super::output::progress_bar(
        "{spinner} rebuilding calls {bar:40} {pos}/{len} legs ({per_sec}, eta {eta})",
    );
    let legs = crate::calls::live::rebuild_store(
        &store,
        crate::calls::live::REBUILD_BATCH_LEGS,
        &mut |done, total| {
            bar.set_length(total);
            bar.set_position(done);
        },
    )?;
    bar.finish_and_clear();
    let queues = QueueLive::new(cfg.queues.visit_timeout_seconds, crate::server::tz_of(&cfg));
    let now = chrono::Utc::now().timestamp_millis();
    let events = store
        .writer
        .write_blocking(move |tx| queues.replay(tx, true, now))?;
    let DerivedCounts {
        calls,
        queue_visits: visits,
    } = store.read_blocking(rebuild::derived_counts)?;
    println!(
        "rebuilt {calls} calls from {legs} legs and {visits} queue visits from {events} events in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    // The rebuild derives from the kept legs and events, never from raw
    // bodies; say where the raw bodies end (docs/operations.md "Retention").
    if let Some(ms) = store.read_blocking(crate::store::retention::raw_purged_until)? {
        println!(
            "raw push bodies received up to {} were purged ([retention] raw_days): the legs and \
events derived from them were kept and rebuilt from; those pushes cannot be derived again",
            crate::retention::cutoff::utc_text(ms)
        );
    }
    Ok(ExitCode::SUCCESS)
}
