//! Deriving legs and events from committed pushes, and handing each new
//! one to the live stages (calls, queue visits, recording schedule).
//!
//! Ingest commits only the raw push before it answers the device (DESIGN
//! §1: every pushed byte is stored raw before it is interpreted); this step
//! runs right after on the store's writer thread, in push order, and
//! records how far it got in `derive_cursor` in the same transaction as
//! what it derived — so a crash loses nothing and derives nothing twice.
//! Under a burst it falls behind and catches up when the burst ends, while
//! the devices keep getting their 200s within a commit (issue 2).

use std::sync::Arc;
use std::time::Instant;

use rusqlite::Transaction;

use crate::config::Config;
use crate::model::{Event, Leg, Message};
use crate::store::{self, legs::Inserted, pushes};

/// What one derived document became; handed to the live stages inside the
/// same transaction.
pub enum StoredItem<'a> {
    Leg {
        device: &'a str,
        row_id: i64,
        received_ms: i64,
        leg: &'a Leg,
    },
    Event {
        device: &'a str,
        seq: i64,
        received_ms: i64,
        event: &'a Event,
    },
}

/// Called for every newly stored leg or event, in the derivation's transaction.
pub type Hook = Arc<dyn Fn(&Transaction, &StoredItem) -> store::Result<()> + Send + Sync>;

/// Pushes read per query.
const PAGE: i64 = 64;

pub struct Deriver {
    cfg: Arc<Config>,
    hooks: Vec<Hook>,
}

impl Deriver {
    pub fn new(cfg: Arc<Config>, hooks: Vec<Hook>) -> Deriver {
        Deriver { cfg, hooks }
    }

    /// The step for [`store::Writer::set_background`].
    pub fn into_background(self) -> store::writer::Background {
        Box::new(move |tx, deadline| self.step(tx, deadline))
    }

    /// Derives committed pushes after the cursor until `deadline` passes or
    /// none is left; returns how many it derived. A push that fails is
    /// rolled back alone, marked with its error, and skipped.
    pub fn step(&self, tx: &Transaction, deadline: Instant) -> store::Result<usize> {
        let start = pushes::derive_cursor(tx)?;
        let (mut last, mut done) = (start, 0usize);
        'pages: loop {
            let page = pushes::committed_after(tx, last, PAGE)?;
            if page.is_empty() {
                break;
            }
            for p in &page {
                last = p.id;
                done += 1;
                tx.prepare_cached("SAVEPOINT push")?.execute([])?;
                if let Err(e) = self.derive(tx, p) {
                    tx.prepare_cached("ROLLBACK TO push")?.execute([])?;
                    tracing::error!(push = p.id, device = %p.device, error = %e,
                        "could not derive legs/events of a stored push (raw body kept; `rebuild` after a fix)");
                    metrics::counter!("callvault_derive_failures_total").increment(1);
                    pushes::set_derive_error(tx, p.id, &e.to_string())?;
                }
                tx.prepare_cached("RELEASE push")?.execute([])?;
                if Instant::now() >= deadline {
                    break 'pages;
                }
            }
        }
        if last != start {
            pushes::set_derive_cursor(tx, last)?;
        }
        Ok(done)
    }

    fn derive(&self, tx: &Transaction, p: &pushes::Committed) -> store::Result<()> {
        let docs = parse(p)?;
        let tz = self.cfg.device_tz(&p.device);
        let device = p.device.as_str();
        let (mut legs, mut events) = (0u64, 0u64);
        for doc in &docs {
            match &doc.message {
                Message::Cdr(leg) => {
                    let ins = store::legs::insert(tx, device, p.id, p.received_ms, leg, tz)?;
                    if let Inserted::New(row_id) = ins {
                        legs += 1;
                        self.run_hooks(
                            tx,
                            &StoredItem::Leg {
                                device,
                                row_id,
                                received_ms: p.received_ms,
                                leg,
                            },
                        )?;
                    } else {
                        let kind = if matches!(ins, Inserted::Duplicate(_)) {
                            "duplicate"
                        } else {
                            "conflict"
                        };
                        metrics::counter!("callvault_legs_repushed_total", "kind" => kind)
                            .increment(1);
                    }
                }
                Message::Event(ev) => {
                    let seq =
                        store::events::insert(tx, device, p.id, &p.received_at, p.received_ms, ev)?;
                    events += 1;
                    self.run_hooks(
                        tx,
                        &StoredItem::Event {
                            device,
                            seq,
                            received_ms: p.received_ms,
                            event: ev,
                        },
                    )?;
                }
            }
        }
        metrics::counter!("callvault_legs_stored_total").increment(legs);
        metrics::counter!("callvault_events_stored_total").increment(events);
        Ok(())
    }

    fn run_hooks(&self, tx: &Transaction, item: &StoredItem) -> store::Result<()> {
        self.hooks.iter().try_for_each(|h| h(tx, item))
    }
}

/// The documents of a stored push: the checks already passed before it was
/// committed, so a failure here means the parser changed (or a bug).
fn parse(p: &pushes::Committed) -> store::Result<Vec<crate::model::Document>> {
    let corrupt = |e: String| store::StoreError::Corrupt(format!("push {}: {e}", p.id));
    let text =
        super::pipeline::push_text(&p.body, p.query.as_deref()).map_err(|(_, e)| corrupt(e))?;
    super::parse_push(&text).map_err(corrupt)
}
