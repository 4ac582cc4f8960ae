//! Deriving legs and events from committed pushes, and handing each new
//! one to the live stages (calls, queue visits, recording schedule).
//!
//! Ingest commits only the raw push before it answers the device (every
//! pushed byte is stored raw before it is interpreted: ARCHITECTURE.md,
//! "Durability"); this step runs right after on the store's writer thread,
//! in push order, and records how far it got in `derive_cursor` in the same
//! transaction as what it derived — so a crash loses nothing and derives
//! nothing twice. Under a burst it falls behind and catches up when the
//! burst ends, while the devices keep getting their 200s within a commit
//! (ARCHITECTURE.md, "Derivation").
//!
//! The live stages plug in as [`Hook`]s (`calls::live::hook`,
//! `queues::live::hook`, `recordings::schedule::hook`); `server` wires them.

use std::sync::Arc;
use std::time::Instant;

use super::device::{norm_mac, Registry};
use crate::config::Config;
use crate::model::{Event, Leg, Message};
use crate::store::{self, legs::Inserted, pushes, Tx};

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
pub type Hook = Arc<dyn Fn(&Tx, &StoredItem) -> Result<(), HookError> + Send + Sync>;

/// Why a live stage's hook failed: each stage has its own error type.
pub type HookError = Box<dyn std::error::Error + Send + Sync>;

/// Why one push could not be derived (it is marked with this and skipped).
#[derive(Debug, thiserror::Error)]
pub enum DeriveError {
    /// The archive refused a read or write.
    #[error(transparent)]
    Store(#[from] store::StoreError),
    /// The stored push no longer parses: it passed the checks when it was
    /// committed, so the parser changed (or has a bug).
    #[error("push {push} does not parse again: {reason}")]
    Reparse { push: i64, reason: String },
    /// A live stage (calls, queue visits, recordings) failed on an item.
    #[error(transparent)]
    Stage(HookError),
}

/// Pushes read per query.
const PAGE: i64 = 64;

pub struct Deriver {
    cfg: Arc<Config>,
    hooks: Vec<Hook>,
    registry: Arc<Registry>,
}

impl Deriver {
    pub fn new(cfg: Arc<Config>, hooks: Vec<Hook>, registry: Arc<Registry>) -> Deriver {
        Deriver {
            cfg,
            hooks,
            registry,
        }
    }

    /// The step for [`store::Writer::set_background`].
    pub fn into_background(self) -> store::Background {
        Box::new(
            move |tx: &Tx, deadline: Instant| -> Result<usize, store::StepError> {
                Ok(self.step(tx, deadline)?)
            },
        )
    }

    /// Derives committed pushes after the cursor until `deadline` passes or
    /// none is left; returns how many it derived. A push that fails is
    /// rolled back alone, marked with its error, and skipped.
    ///
    /// First it notices devices registered or removed since the last step
    /// (and gives them their held pushes), then derives released held
    /// pushes the cursor had passed, then goes on after the cursor: each
    /// device's pushes are derived in push order.
    pub fn step(&self, tx: &Tx, deadline: Instant) -> store::Result<usize> {
        self.refresh_devices(tx)?;
        let mut done = 0usize;
        loop {
            let page = pushes::queued(tx, PAGE)?;
            if page.is_empty() {
                break;
            }
            for p in &page {
                self.derive_one(tx, p)?;
                pushes::dequeue(tx, p.id)?;
                done += 1;
                if Instant::now() >= deadline {
                    return Ok(done);
                }
            }
        }
        let start = pushes::derive_cursor(tx)?;
        let mut last = start;
        'pages: loop {
            let page = pushes::committed_after(tx, last, PAGE)?;
            if page.is_empty() {
                break;
            }
            for p in &page {
                last = p.id;
                done += 1;
                self.derive_one(tx, p)?;
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

    /// Derives one push in a savepoint: a failure is rolled back alone,
    /// marked with its error, and skipped.
    fn derive_one(&self, tx: &Tx, p: &pushes::Committed) -> store::Result<()> {
        if let Err(e) = store::savepoint(tx, |tx| self.derive(tx, p))? {
            tracing::error!(push = p.id, device = %p.device, error = %e,
                "could not derive legs/events of a stored push (raw body kept; `rebuild` after a fix)");
            metrics::counter!("callvault_derive_failures_total").increment(1);
            pushes::set_derive_error(tx, p.id, &e.to_string())?;
        }
        Ok(())
    }

    /// Reloads the archive's devices when `devices_version` moved (or on
    /// the first step) and releases every device's held pushes.
    fn refresh_devices(&self, tx: &Tx) -> store::Result<()> {
        let version = store::devices::version(tx)?;
        if self.registry.version() == Some(version) {
            return Ok(());
        }
        let devices = self
            .registry
            .set_registered(store::devices::active(tx)?, version);
        for d in devices {
            let mac = d.mac.as_deref().map(norm_mac);
            let released = store::devices::release_held(
                tx,
                &store::devices::Claim {
                    name: &d.name,
                    mac: mac.as_deref(),
                    sources: &d.allowed_sources(),
                },
            )?;
            if released > 0 {
                tracing::info!(device = %d.name, pushes = released,
                    "device registered: deriving the pushes held from it");
            }
        }
        Ok(())
    }

    fn derive(&self, tx: &Tx, p: &pushes::Committed) -> Result<(), DeriveError> {
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

    fn run_hooks(&self, tx: &Tx, item: &StoredItem) -> Result<(), DeriveError> {
        self.hooks
            .iter()
            .try_for_each(|h| h(tx, item))
            .map_err(DeriveError::Stage)
    }
}

/// The documents of a stored push: the checks already passed before it was
/// committed, so a failure here means the parser changed (or a bug).
fn parse(p: &pushes::Committed) -> Result<Vec<crate::model::Document>, DeriveError> {
    let reparse = |reason: String| DeriveError::Reparse { push: p.id, reason };
    let text =
        super::pipeline::push_text(&p.body, p.query.as_deref()).map_err(|(_, e)| reparse(e))?;
    // No cap here: the push passed the one it was accepted under.
    super::parse_push(&text, usize::MAX).map_err(|e| reparse(e.reason))
}
