//! The ingest hook of the recordings stage: every newly stored leg that
//! names a Recording gets a `pending` row, due `fetch_delay_seconds` after
//! the CDR arrived (the device needs ~10 s to finish the file).

use std::sync::Arc;

use crate::config::Config;
use crate::ingest::derive::HookError;
use crate::ingest::{Hook, StoredItem};
use crate::store::{recordings, Tx};

/// The hook to add to the ingest pipeline (`server::ingestor`).
pub fn hook(cfg: Arc<Config>) -> Hook {
    Arc::new(move |tx: &Tx, item: &StoredItem| -> Result<(), HookError> {
        let StoredItem::Leg {
            device,
            row_id,
            received_ms,
            leg,
        } = item
        else {
            return Ok(());
        };
        let Some(path) = leg
            .recording
            .as_deref()
            .map(str::trim)
            .filter(|p| !p.is_empty())
        else {
            return Ok(());
        };
        let delay_ms = i64::try_from(cfg.recordings.fetch_delay_seconds.saturating_mul(1000))
            .unwrap_or(i64::MAX / 4);
        recordings::schedule(
            tx,
            *row_id,
            device,
            path,
            leg.rec_codec.as_deref(),
            received_ms.saturating_add(delay_ms),
        )?;
        metrics::counter!("callvault_recordings_scheduled_total").increment(1);
        Ok(())
    })
}
