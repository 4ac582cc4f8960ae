//! The purge of `serve`: once shortly after start, then daily, with no
//! cron (docs/operations.md "Retention"). On PostgreSQL only the
//! maintenance leader (the collector that derives) purges, as it keeps the
//! partitions; the others look again later.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::{run, Cutoffs};
use crate::config::Config;
use crate::recordings::RecordingStore;
use crate::store::Store;

/// Delay of the first pass: start-up (queue replay, fetch resume) first.
pub const FIRST_PASS_AFTER: Duration = Duration::from_secs(10);
/// Between passes.
pub const EVERY: Duration = Duration::from_secs(24 * 3600);
/// A collector that is not the leader looks again after this.
const NOT_LEADER_RETRY: Duration = Duration::from_secs(600);

/// Runs until `stop` turns true (a pass under way stops between batches).
pub async fn daily(
    store: Store,
    files: RecordingStore,
    cfg: Arc<Config>,
    mut stop: watch::Receiver<bool>,
) {
    let mut wait = FIRST_PASS_AFTER;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.wait_for(|v| *v) => return,
        }
        if !store.writer.is_leader() {
            wait = NOT_LEADER_RETRY;
            continue;
        }
        wait = EVERY;
        let cutoffs = Cutoffs::new(&cfg, chrono::Utc::now().timestamp_millis());
        tokio::select! {
            res = run(&store, &files, &cutoffs, &|_, _| {}) => {
                if let Err(e) = res {
                    tracing::error!(error = %e, "retention purge failed; it runs again tomorrow");
                }
            }
            _ = stop.wait_for(|v| *v) => return,
        }
    }
}
